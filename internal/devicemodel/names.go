package devicemodel

import (
	"fmt"
	"strings"

	"github.com/gpudra/gpudra/internal/gpu"
)

// Device types, the value of the "type" attribute.
const (
	TypeGPU = "gpu"
	TypeMIG = "mig"
)

// GPUDeviceName names a full GPU after its minor number ("gpu-0"): the
// minor is stable when another GPU drops off the bus, the NVML index is not.
func GPUDeviceName(g *gpu.GPU) string {
	return fmt.Sprintf("gpu-%d", g.Minor)
}

// MIGDeviceName names a MIG device after its parent's minor, its profile,
// GPU-instance profile ID and placement start, as the upstream driver does
// ("gpu-0-mig-1g10gb-19-0"). The triple (parent, profile ID, placement)
// identifies the physical slot, so the name survives a re-creation.
func MIGDeviceName(g *gpu.GPU, m *gpu.MIGDevice) string {
	return fmt.Sprintf("gpu-%d-mig-%s-%d-%d", g.Minor, profileNameForDevice(m.Profile.Name), m.Profile.GIProfileID, m.Placement.Start)
}

// profileNameForDevice turns a profile name into a DNS-label fragment:
// lower case, dots removed, anything else outside [a-z0-9-] replaced by "-"
// ("1g.10gb+me" -> "1g10gb-me").
func profileNameForDevice(profile string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(profile) {
		switch {
		case r == '.':
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	return b.String()
}

// CounterSetName names the per-GPU counter set used by dynamic MIG.
func CounterSetName(g *gpu.GPU) string {
	return fmt.Sprintf("gpu-%d-counter-set", g.Minor)
}

// Located is an inventory entry found by its DRA device name.
type Located struct {
	// GPU is the physical GPU (the parent, for a MIG device).
	GPU *gpu.GPU
	// MIG is set for a MIG device.
	MIG *gpu.MIGDevice
}

// Type is TypeGPU or TypeMIG.
func (l Located) Type() string {
	if l.MIG != nil {
		return TypeMIG
	}
	return TypeGPU
}

// UUID is the device's UUID (GPU-... or MIG-...).
func (l Located) UUID() string {
	if l.MIG != nil {
		return l.MIG.UUID
	}
	return l.GPU.UUID
}

// Index maps the published device names of an inventory to the hardware
// behind them. Only devices that Build would publish are in it: a GPU in MIG
// mode is reachable through its MIG devices only.
func Index(inv *gpu.Inventory) map[string]Located {
	idx := make(map[string]Located)
	for i := range inv.GPUs {
		g := &inv.GPUs[i]
		if !g.MIGEnabled {
			idx[GPUDeviceName(g)] = Located{GPU: g}
			continue
		}
		for j := range g.MIGDevices {
			if m := &g.MIGDevices[j]; !m.Incomplete {
				idx[MIGDeviceName(g, m)] = Located{GPU: g, MIG: m}
			}
		}
	}
	return idx
}
