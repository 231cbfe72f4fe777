package mps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// installFake puts the test binary (acting as gpudra-sim-mps) at path, as a
// driver root holds nvidia-cuda-mps-control.
func installFake(t *testing.T, path string) {
	t.Helper()
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, self, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestControlFor(t *testing.T) {
	root, err := os.MkdirTemp("", "drv")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(root) }()
	installFake(t, filepath.Join(root, "usr/bin/nvidia-cuda-mps-control"))
	simDir := filepath.Join(root, "bin")
	installFake(t, filepath.Join(simDir, "gpudra-sim-mps"))

	c, err := ControlFor(Setup{DriverRoot: root, PluginDir: root})
	if err != nil || c == nil {
		t.Fatalf("NVML node with the driver's control binary: %v, %v", c, err)
	}
	if c.Binary != filepath.Join(root, "usr/bin/nvidia-cuda-mps-control") || len(c.Env) != 1 || !strings.HasPrefix(c.Env[0], "LD_LIBRARY_PATH="+filepath.Join(root, "usr/lib/x86_64-linux-gnu")) {
		t.Errorf("NVML control %+v", c)
	}
	if c.Root != filepath.Join(root, "mps") || c.Launcher != nil {
		t.Errorf("root %s launcher %v", c.Root, c.Launcher)
	}
	// The daemon from the driver root runs and answers (the fake is the sim).
	c.Env = append(c.Env, envAsSim+"=1")
	d, err := c.Start(context.Background(), "drv", []string{"GPU-a"}, Limits{})
	if err != nil {
		t.Fatalf("start nvidia-cuda-mps-control from the driver root: %v", err)
	}
	stopAtEnd(t, c, d)
	if err := c.Stop(context.Background(), d); err != nil {
		t.Fatal(err)
	}

	if c, err := ControlFor(Setup{Sim: true, Self: filepath.Join(simDir, "gpudra-kubelet-plugin"), PluginDir: root, LauncherSocket: "/run/l.sock"}); err != nil || c == nil ||
		c.Binary != filepath.Join(simDir, "gpudra-sim-mps") || c.Launcher != (SocketLauncher{Socket: "/run/l.sock"}) || len(c.Env) != 0 {
		t.Errorf("sim node: %+v, %v", c, err)
	}
	if c, err := ControlFor(Setup{Sim: true, Self: filepath.Join(root, "elsewhere", "plugin")}); c != nil || err != nil {
		t.Errorf("sim node without gpudra-sim-mps: %+v, %v; want MPS off", c, err)
	}
	if c, err := ControlFor(Setup{DriverRoot: filepath.Join(root, "nodriver")}); c != nil || err != nil {
		t.Errorf("driver root without the binary: %+v, %v; want MPS off", c, err)
	}
	if c, err := ControlFor(Setup{Binary: "none", Sim: true, Self: filepath.Join(simDir, "x")}); c != nil || err != nil {
		t.Errorf("none: %+v, %v", c, err)
	}
	if _, err := ControlFor(Setup{Binary: filepath.Join(root, "missing")}); err == nil || !strings.Contains(err.Error(), "--mps-control "+filepath.Join(root, "missing")+": not an executable file") {
		t.Errorf("an explicit binary that is not there: %v", err)
	}
}
