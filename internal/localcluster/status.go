package localcluster

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// ComponentStatus is whether one component's recorded process runs.
type ComponentStatus struct {
	Name    string
	PID     int
	Running bool
}

// Status reports each component of the cluster recorded under Root.
func (c *Cluster) Status() ([]ComponentStatus, State, error) {
	s, err := LoadState(c.Root)
	if err != nil {
		return nil, s, err
	}
	comps := controlPlaneComponents
	if s.Full {
		comps = fullComponents
	}
	var out []ComponentStatus
	for _, name := range comps {
		st := ComponentStatus{Name: name}
		if data, err := os.ReadFile(filepath.Join(c.Root, "pids", name+".pid")); err == nil {
			st.PID, _ = strconv.Atoi(string(data))
			if st.PID > 1 && syscall.Kill(st.PID, 0) == nil {
				exe, _ := os.Readlink("/proc/" + strconv.Itoa(st.PID) + "/exe")
				st.Running = filepath.Base(exe) == name
			}
		}
		out = append(out, st)
	}
	return out, s, nil
}
