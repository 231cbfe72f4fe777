package mps

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procRoot is where /proc is; tests point it elsewhere.
var procRoot = "/proc"

// startTime returns a process's start time (clock ticks after boot,
// field 22 of /proc/<pid>/stat), which with the PID names one process for
// the life of a boot.
func startTime(pid int) (uint64, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	return parseStartTime(string(data))
}

// parseStartTime reads field 22 of a stat line. The command name (field 2)
// is in parentheses and may hold spaces or parentheses, so fields are
// counted from the last ')'.
func parseStartTime(stat string) (uint64, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, errors.New("stat: no command name")
	}
	fields := strings.Fields(stat[end+1:])
	// fields[0] is field 3 (state); start time is field 22.
	const idx = 22 - 3
	if len(fields) <= idx {
		return 0, fmt.Errorf("stat: %d fields after the command name, want more than %d", len(fields), idx)
	}
	v, err := strconv.ParseUint(fields[idx], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: start time %q: %w", fields[idx], err)
	}
	return v, nil
}

// running tells whether the process pid started at start still runs (a
// zombie does not).
func running(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(data)
	got, err := parseStartTime(s)
	if err != nil || got != start {
		return false
	}
	end := strings.LastIndexByte(s, ')')
	state := strings.Fields(s[end+1:])
	return len(state) > 0 && state[0] != "Z" && state[0] != "X"
}
