package crash

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/sim"
	"github.com/gpudra/gpudra/internal/mps"
)

// checkSharing (sharing mode) compares the simulated GPUs' settings and the
// MPS daemons with the records and with what the kubelet holds:
//
//   - a prepared claim's GPU has its settings: a time-sliced claim its
//     interval and the Default compute mode, an MPS claim Exclusive_Process
//     and a daemon that runs (the record's PID and start time) and answers
//     on its pipe directory;
//   - a GPU no record holds a setting of has the sim's own (Default time
//     slice and compute mode): nothing a departed claim set stays;
//   - every daemon directory belongs to a record's daemon, and every
//     running daemon of the run to a directory (no orphan);
//   - with final: no daemon directory and no daemon process at all.
func checkSharing(opts PluginOptions, k *kubelet, records map[string]checkpoint.Claim, final bool) []string {
	var v []string
	st, err := sim.ReadHardware(opts.SimStateDir())
	if err != nil || st == nil {
		return []string{fmt.Sprintf("sim hardware unreadable: %v", err)}
	}
	byUUID := map[string]sim.HardwareGPU{}
	for _, g := range st.GPUs {
		byUUID[g.UUID] = g
	}
	held := map[string]bool{}
	daemons := map[string]checkpoint.MPSDaemon{}
	for _, rec := range records {
		for _, h := range rec.Settings {
			held[h.GPU] = true
		}
		for _, m := range rec.MPS {
			daemons[m.ID] = m
		}
	}
	control := mps.Control{Binary: opts.SimMPS, Root: opts.MPSDir()}
	for _, c := range k.claims {
		if !c.prepared {
			continue
		}
		rec := records[string(c.claim.UID)]
		if len(rec.Devices) != 1 {
			continue // checkState reports it
		}
		g, ok := byUUID[rec.Devices[0].UUID]
		if !ok {
			v = append(v, fmt.Sprintf("claim %s: GPU %s is not in the sim's hardware", c.claim.Name, rec.Devices[0].UUID))
			continue
		}
		switch {
		case strings.Contains(c.config, `"TimeSlicing"`):
			want := "Short"
			if strings.Contains(c.config, `"Long"`) {
				want = "Long"
			}
			if g.TimeSlice.String() != want || g.ComputeMode != gpu.ComputeModeDefault {
				v = append(v, fmt.Sprintf("claim %s: prepared time-sliced %s, but GPU %s has time slice %s, compute mode %s", c.claim.Name, want, g.UUID, g.TimeSlice, g.ComputeMode))
			}
		case strings.Contains(c.config, `"MPS"`):
			if g.ComputeMode != gpu.ComputeModeExclusiveProcess {
				v = append(v, fmt.Sprintf("claim %s: prepared with MPS, but GPU %s has compute mode %s", c.claim.Name, g.UUID, g.ComputeMode))
			}
			if len(rec.MPS) != 1 {
				v = append(v, fmt.Sprintf("claim %s: prepared with MPS, but the record names %d daemons", c.claim.Name, len(rec.MPS)))
				continue
			}
			m := rec.MPS[0]
			if !control.Alive(mps.Daemon{ID: m.ID, PID: m.PID, StartTime: m.StartTime}) {
				v = append(v, fmt.Sprintf("claim %s: its MPS daemon (pid %d) does not run", c.claim.Name, m.PID))
			}
		}
	}
	for _, g := range st.GPUs {
		if !held[g.UUID] && (g.TimeSlice != gpu.TimeSliceDefault || g.ComputeMode != gpu.ComputeModeDefault) {
			v = append(v, fmt.Sprintf("GPU %s: no record holds its settings, but it has time slice %s, compute mode %s", g.UUID, g.TimeSlice, g.ComputeMode))
		}
	}
	ids, err := control.List()
	if err != nil {
		return append(v, err.Error())
	}
	for _, id := range ids {
		if _, ok := daemons[id]; !ok {
			v = append(v, fmt.Sprintf("MPS daemon directory %s left with no record", id))
		}
	}
	for _, pipe := range runDaemonPipes(opts.Dir) {
		id := filepath.Base(filepath.Dir(pipe))
		if _, ok := daemons[id]; !ok {
			v = append(v, fmt.Sprintf("MPS daemon on %s runs with no record (an orphan)", pipe))
		}
	}
	if final && (len(ids) > 0 || len(runDaemonPipes(opts.Dir)) > 0) {
		v = append(v, fmt.Sprintf("after every claim was unprepared, MPS daemon directories %v and processes on %v are left", ids, runDaemonPipes(opts.Dir)))
	}
	return v
}

// runDaemonPipes lists the pipe directories of the MPS daemons running
// for a run (under dir), from /proc.
func runDaemonPipes(dir string) []string {
	var out []string
	for _, p := range runDaemonProcs(dir) {
		out = append(out, p.pipe)
	}
	slices.Sort(out)
	return out
}

// runDaemons are the PIDs of the MPS daemons running for a run.
func runDaemons(dir string) []int {
	var out []int
	for _, p := range runDaemonProcs(dir) {
		out = append(out, p.pid)
	}
	return out
}

type daemonProc struct {
	pid  int
	pipe string
}

// runDaemonProcs finds daemons (processes run with -f whose
// CUDA_MPS_PIPE_DIRECTORY is under dir), skipping zombies.
func runDaemonProcs(dir string) []daemonProc {
	entries, _ := os.ReadDir("/proc")
	var out []daemonProc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !slices.ContainsFunc(bytes.Split(cmdline, []byte{0}), func(arg []byte) bool { return string(arg) == "-f" }) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err != nil || zombie(string(stat)) {
			continue
		}
		environ, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(environ, []byte{0}) {
			if pipe, ok := strings.CutPrefix(string(kv), mps.EnvPipeDirectory+"="); ok && strings.HasPrefix(pipe, dir+string(filepath.Separator)) {
				out = append(out, daemonProc{pid: pid, pipe: pipe})
			}
		}
	}
	return out
}

func zombie(stat string) bool {
	end := strings.LastIndexByte(stat, ')')
	f := strings.Fields(stat[end+1:])
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}
