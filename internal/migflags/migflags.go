// Package migflags holds the flags that say how GPUs in MIG mode are
// published, shared by the kubelet plugin and `gpudra discover` so that
// discover prints what the plugin would publish with the same flags.
package migflags

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/gpudra/gpudra/internal/devicemodel"
)

// Flags are the MIG publishing flags.
type Flags struct {
	Mode       string
	Profiles   []string
	PerProfile int
	OpenGPUs   int
	EnableMIG  bool
	KeepWindow time.Duration
}

// AddFlags registers the flags. plugin adds the ones only the plugin acts
// on (turning MIG mode on, the keep window).
func (f *Flags) AddFlags(fs *pflag.FlagSet, plugin bool) {
	if f.Mode == "" {
		f.Mode = string(devicemodel.MIGModeStatic)
	}
	fs.StringVar(&f.Mode, "mig-mode", f.Mode, "how GPUs in MIG mode are published: static (the MIG devices an admin cut) or dynamic (MIG devices cut on demand at prepare, as partitionable devices with shared counters)")
	fs.StringSliceVar(&f.Profiles, "dynamic-mig-profiles", f.Profiles, "dynamic MIG: the profiles offered (default: per slice count the profile with the least memory and no extra engines, e.g. 1g.10gb,2g.20gb,3g.40gb,4g.40gb,7g.80gb on H100)")
	fs.IntVar(&f.PerProfile, "dynamic-mig-placements", f.PerProfile, "dynamic MIG: free placements offered per profile and GPU, best fit first; 0 offers all, so a burst of pods packs onto one GPU; 1 halves what an empty node costs the scheduler (see BENCHMARKS.md)")
	fs.IntVar(&f.OpenGPUs, "dynamic-mig-open-gpus", f.OpenGPUs, "dynamic MIG: untouched GPUs that also offer MIG devices (the rest are offered whole until one is cut); 0 means 1, -1 all")
	if plugin {
		fs.BoolVar(&f.EnableMIG, "enable-mig", f.EnableMIG, "dynamic MIG: at start, turn MIG mode on for MIG-capable GPUs no claim holds (never off)")
		fs.DurationVar(&f.KeepWindow, "dynamic-mig-keep", 15*time.Minute, "dynamic MIG: how long an offered MIG device stays published while its placement is free; must outlast the time from scheduling to prepare")
	}
}

// ParsedMode returns the checked MIG mode.
func (f *Flags) ParsedMode() (devicemodel.MIGMode, error) {
	m, err := devicemodel.ParseMIGMode(f.Mode)
	if err != nil {
		return "", fmt.Errorf("--mig-mode: %w", err)
	}
	return m, nil
}

// Dynamic returns the dynamic layout's options.
func (f *Flags) Dynamic() (devicemodel.DynamicOptions, error) {
	if f.PerProfile < 0 {
		return devicemodel.DynamicOptions{}, fmt.Errorf("--dynamic-mig-placements: %d: want 0 (all) or more", f.PerProfile)
	}
	if f.OpenGPUs < -1 {
		return devicemodel.DynamicOptions{}, fmt.Errorf("--dynamic-mig-open-gpus: %d: want -1 (all), 0 (one) or more", f.OpenGPUs)
	}
	return devicemodel.DynamicOptions{Profiles: f.Profiles, PerProfile: f.PerProfile, OpenGPUs: f.OpenGPUs}, nil
}
