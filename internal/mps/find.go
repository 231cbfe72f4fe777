package mps

import (
	"fmt"
	"os"
	"path/filepath"
)

// Where nvidia-cuda-mps-control and the driver's libraries are under a
// driver root.
const (
	driverControl = "usr/bin/nvidia-cuda-mps-control"
)

var driverLibDirs = []string{"usr/lib/x86_64-linux-gnu", "usr/lib64", "usr/lib/aarch64-linux-gnu"}

// Setup says how a node runs MPS daemons, as the plugin's flags give it.
type Setup struct {
	// Binary is --mps-control: a path, "none" (MPS off), or "" (find it).
	Binary string
	// Sim: the node runs the sim backend, whose daemon is gpudra-sim-mps
	// next to Self (the plugin's executable).
	Sim  bool
	Self string
	// DriverRoot is where the NVIDIA driver is (NVML backend).
	DriverRoot string
	// PluginDir holds the daemons' directories (<PluginDir>/mps).
	PluginDir string
	// LauncherSocket, when set, is the mps-launcher that starts daemons.
	LauncherSocket string
}

// ControlFor returns the Control a node's setup calls for, or nil when the
// node has no control binary (MPS is then refused, saying so). An explicit
// binary that is not an executable file is an error.
func ControlFor(s Setup) (*Control, error) {
	binary := s.Binary
	var env []string
	switch {
	case binary == "none":
		return nil, nil
	case binary != "":
	case s.Sim:
		binary = filepath.Join(filepath.Dir(s.Self), "gpudra-sim-mps")
	default:
		root := s.DriverRoot
		if root == "" {
			root = "/"
		}
		binary = filepath.Join(root, driverControl)
		if root != "/" {
			// From a mounted driver root, the daemon loads the driver's
			// CUDA libraries from there.
			libs := ""
			for i, d := range driverLibDirs {
				if i > 0 {
					libs += ":"
				}
				libs += filepath.Join(root, d)
			}
			env = append(env, "LD_LIBRARY_PATH="+libs)
		}
	}
	if info, err := os.Stat(binary); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		if s.Binary != "" {
			return nil, fmt.Errorf("--mps-control %s: not an executable file", binary)
		}
		return nil, nil
	}
	c := &Control{Binary: binary, Env: env, Root: filepath.Join(s.PluginDir, "mps")}
	if s.LauncherSocket != "" {
		c.Launcher = SocketLauncher{Socket: s.LauncherSocket}
	}
	return c, nil
}
