// Package backend chooses and opens the GPU backend a gpudra binary runs on:
// the simulator when a sim profile or inventory file is given, NVML
// otherwise. It is shared wiring for the plugin and the gpudra tool, so both
// accept the same flags and mean the same thing by them.
package backend

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/nvml"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// Options select a backend.
type Options struct {
	// NodeName seeds the simulator's UUIDs.
	NodeName string
	// SimProfile is a simulated node profile (see sim.Profiles).
	SimProfile string
	// SimConfig is a simulated inventory file.
	SimConfig string
	// SimStateDir is the simulator's control surface (see sim.Options.StateDir):
	// faults injected there with `gpudra sim` apply to this node. Empty, the
	// default here, means none can be injected; the plugin command chooses
	// its own default (<plugin-dir>/sim). Ignored in NVML mode.
	SimStateDir string
	// DriverRoot is where the NVIDIA driver is installed (NVML mode).
	DriverRoot string
	// SysfsRoot is where sysfs is mounted (NVML mode).
	SysfsRoot string
}

// AddFlags registers the backend flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.SimProfile, "sim-profile", o.SimProfile, "simulate a node instead of using NVML; one of: "+strings.Join(sim.Profiles(), ", "))
	fs.StringVar(&o.SimConfig, "sim-config", o.SimConfig, "simulate the node described by this inventory file instead of using NVML")
	fs.StringVar(&o.SimStateDir, "sim-state-dir", o.SimStateDir, "directory of the simulated node's injected faults (see gpudra sim); empty: no faults can be injected (sim mode only)")
	fs.StringVar(&o.DriverRoot, "driver-root", "/", "root of the NVIDIA driver installation (NVML mode), e.g. /run/nvidia/driver")
	fs.StringVar(&o.SysfsRoot, "sysfs-root", "/sys", "where sysfs is mounted (NVML mode)")
}

// Sim tells whether the options select the simulator.
func (o *Options) Sim() bool { return o.SimProfile != "" || o.SimConfig != "" }

// Open opens the selected backend.
func Open(o Options) (gpu.Backend, error) {
	if o.SimProfile != "" && o.SimConfig != "" {
		return nil, errors.New("--sim-profile and --sim-config are mutually exclusive")
	}
	if o.Sim() {
		if o.NodeName == "" {
			return nil, errors.New("the simulator needs a node name (--node-name): it derives the GPU UUIDs from it")
		}
		b, err := sim.New(sim.Options{NodeName: o.NodeName, Profile: o.SimProfile, ConfigFile: o.SimConfig, StateDir: o.SimStateDir})
		if err != nil {
			return nil, fmt.Errorf("simulated GPUs: %w", err)
		}
		return b, nil
	}
	b, err := nvml.New(nvml.Options{DriverRoot: o.DriverRoot, SysfsRoot: o.SysfsRoot})
	if err != nil {
		return nil, fmt.Errorf("NVML (no --sim-profile or --sim-config given): %w", err)
	}
	return b, nil
}
