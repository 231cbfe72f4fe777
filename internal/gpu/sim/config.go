package sim

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/gpudra/gpudra/internal/gpu"
)

// Config describes a simulated node; it is the schema of the inventory file.
// A node is either a named Profile or a list of GPUs.
type Config struct {
	// Profile starts from a named node profile (see Profiles). It cannot be
	// combined with GPUs; the versions below still override its defaults.
	Profile string `json:"profile,omitempty"`
	// DriverVersion is the kernel driver version ("550.54.15"). Default: the
	// newest driver among the models' go-nvml DGX mocks.
	DriverVersion string `json:"driverVersion,omitempty"`
	// CUDADriverVersion is the CUDA version the driver supports ("12.4").
	// Default: the one that goes with the default driver.
	CUDADriverVersion string `json:"cudaDriverVersion,omitempty"`
	// GPUs in PCI bus order; each entry may stand for several identical GPUs.
	GPUs []GPUConfig `json:"gpus,omitempty"`
	// Minors are the GPUs' device minor numbers (/dev/nvidia<minor>), one
	// per GPU in PCI bus order. NVML numbers GPUs (index) in bus order, the
	// driver numbers device nodes in probe order, and the two differ on
	// real nodes; default: the index.
	Minors []int `json:"minors,omitempty"`
}

// GPUConfig is one or more identical GPUs.
type GPUConfig struct {
	// Model is a catalog key (see Models), e.g. "h100-sxm5-80gb".
	Model string `json:"model"`
	// Count of GPUs this entry stands for; default 1.
	Count *int `json:"count,omitempty"`
	// MIGEnabled starts the GPUs in MIG mode.
	MIGEnabled bool `json:"migEnabled,omitempty"`
	// MIGDevices exist on each GPU of the entry at start; only with MIGEnabled.
	MIGDevices []MIGDeviceConfig `json:"migDevices,omitempty"`
}

// MIGDeviceConfig is a MIG device that exists when the node starts.
type MIGDeviceConfig struct {
	// Profile is the nvidia-smi profile name, e.g. "1g.10gb".
	Profile string `json:"profile"`
	// Placement is the start slice; default: the first free placement.
	Placement *int `json:"placement,omitempty"`
}

func (g GPUConfig) count() int {
	if g.Count == nil {
		return 1
	}
	return *g.Count
}

// LoadConfig decodes and validates an inventory file. Decoding is strict:
// unknown and duplicate fields are errors naming the field's path.
func LoadConfig(data []byte) (*Config, error) {
	jsonData, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	var c Config
	strictErrs, err := sigsjson.UnmarshalStrict(jsonData, &c)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if len(strictErrs) > 0 {
		return nil, errors.Join(strictErrs...)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// validate checks everything that does not depend on state: names, counts,
// versions and placements. Overlaps and instance limits are checked when
// the MIG devices are created, by the same code as CreateMIGDevice.
func (c *Config) validate() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	switch {
	case c.Profile != "" && len(c.GPUs) > 0:
		fail("profile: cannot be combined with gpus")
	case c.Profile != "":
		if _, ok := nodeProfiles[c.Profile]; !ok {
			fail("profile: unknown profile %q (valid: %s)", c.Profile, strings.Join(Profiles(), ", "))
		}
	case len(c.GPUs) == 0:
		fail("gpus: at least one GPU (or a profile) is required")
	}
	if c.DriverVersion != "" {
		if _, err := parseVersion(c.DriverVersion); err != nil {
			fail("driverVersion: %w", err)
		}
	}
	if c.CUDADriverVersion != "" {
		if _, err := parseVersion(c.CUDADriverVersion); err != nil {
			fail("cudaDriverVersion: %w", err)
		}
	}

	total := 0
	for i, g := range c.GPUs {
		total += max(g.count(), 0)
		if err := g.validate(); err != nil {
			fail("gpus[%d].%w", i, err)
		}
	}
	if total > maxGeneratedGPUs {
		fail("gpus: %d GPUs exceed the limit of %d per node", total, maxGeneratedGPUs)
	}
	seen := map[int]bool{}
	for i, m := range c.Minors {
		switch {
		case m < 0 || m > 254:
			fail("minors[%d]: %d is not a device minor (0-254)", i, m)
		case seen[m]:
			fail("minors[%d]: minor %d is given twice", i, m)
		}
		seen[m] = true
	}
	return errors.Join(errs...)
}

// validate returns the first problem of one entry, prefixed with the field
// path below the entry.
func (g GPUConfig) validate() error {
	if g.count() < 1 {
		return fmt.Errorf("count: must be at least 1, got %d", g.count())
	}
	m, err := lookupModel(g.Model)
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if g.MIGEnabled && !m.migCapable() {
		return fmt.Errorf("migEnabled: model %s does not support MIG", m.key)
	}
	if len(g.MIGDevices) > 0 && !g.MIGEnabled {
		return fmt.Errorf("migDevices: requires migEnabled: true")
	}
	for j, d := range g.MIGDevices {
		spec, ok := m.migProfileByName(d.Profile)
		if !ok {
			return fmt.Errorf("migDevices[%d].profile: model %s has no MIG profile %q (valid: %s)",
				j, m.key, d.Profile, strings.Join(m.migProfileNames(), ", "))
		}
		if d.Placement != nil && !slices.Contains(placementStarts(spec.profile), *d.Placement) {
			return fmt.Errorf("migDevices[%d].placement: %d is not a placement of %s (valid starts: %s)",
				j, *d.Placement, d.Profile, joinInts(placementStarts(spec.profile)))
		}
	}
	return nil
}

// parseVersion accepts "major.minor" or "major.minor.patch".
func parseVersion(s string) (gpu.Version, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return gpu.Version{}, fmt.Errorf("%q is not a version like 12.4 or 550.54.15", s)
	}
	nums := make([]int, 3)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return gpu.Version{}, fmt.Errorf("%q is not a version like 12.4 or 550.54.15", s)
		}
		nums[i] = n
	}
	return gpu.Version{Major: nums[0], Minor: nums[1], Patch: nums[2]}, nil
}

func placementStarts(p gpu.MIGProfile) []int {
	starts := make([]int, len(p.Placements))
	for i, pl := range p.Placements {
		starts[i] = pl.Start
	}
	return starts
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}
