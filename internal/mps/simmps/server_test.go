package simmps

import (
	"strings"
	"testing"
)

func TestHandle(t *testing.T) {
	s := NewServer("GPU-a,GPU-b", nil)
	steps := []struct {
		line, reply, err string
		quit             bool
	}{
		{line: "get_default_active_thread_percentage", reply: "100"},
		{line: "set_default_active_thread_percentage 25"},
		{line: "get_default_active_thread_percentage", reply: "25"},
		{line: "set_default_active_thread_percentage 0", err: "invalid active thread percentage"},
		{line: "set_default_active_thread_percentage 101", err: "invalid active thread percentage"},
		{line: "get_default_active_thread_percentage", reply: "25"},
		{line: "get_default_device_pinned_mem_limit 1", reply: ""},
		{line: "set_default_device_pinned_mem_limit 1 20480M"},
		{line: "get_default_device_pinned_mem_limit 1", reply: "20480M"},
		{line: "set_default_device_pinned_mem_limit 2 1G", err: "invalid device \"2\": the daemon has 2 devices"},
		{line: "set_default_device_pinned_mem_limit 0 lots", err: "invalid memory limit"},
		{line: "get_default_device_pinned_mem_limit 0", reply: ""},
		{line: "sim_get_devices", reply: "GPU-a,GPU-b"},
		{line: "start_server -uid 0", err: "unknown command"},
		{line: "quit", quit: true},
	}
	for _, st := range steps {
		reply, quit, err := s.Handle(st.line)
		switch {
		case st.err != "" && (err == nil || !strings.Contains(err.Error(), st.err)):
			t.Errorf("%q: err %v, want %q", st.line, err, st.err)
		case st.err == "" && err != nil:
			t.Errorf("%q: %v", st.line, err)
		case reply != st.reply || quit != st.quit:
			t.Errorf("%q = %q quit %v, want %q quit %v", st.line, reply, quit, st.reply, st.quit)
		}
	}
}
