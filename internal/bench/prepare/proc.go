package prepare

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProcessUsage is what the plugin process used, from /proc.
type ProcessUsage struct {
	// PeakRSSBytes is VmHWM: the largest resident set since the process started.
	PeakRSSBytes int64 `json:"peakRSSBytes"`
	// RSSBytes is the resident set now.
	RSSBytes int64 `json:"rssBytes"`
	// CPUSeconds is user + system time since the process started.
	CPUSeconds float64 `json:"cpuSeconds"`
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// readUsage reads a process's memory and CPU counters.
func readUsage(pid int) (ProcessUsage, error) {
	var u ProcessUsage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) != 2 || fields[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch key {
		case "VmHWM":
			u.PeakRSSBytes = kb * 1024
		case "VmRSS":
			u.RSSBytes = kb * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// Fields after "(comm)": state is field 3, utime 14, stime 15.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 13 {
		return u, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return u, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	u.CPUSeconds = float64(utime+stime) / clockTicks
	return u, nil
}
