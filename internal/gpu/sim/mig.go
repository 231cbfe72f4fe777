package sim

import (
	"fmt"
	"slices"

	"github.com/gpudra/gpudra/internal/gpu"
)

// memorySlicesPerGPU is the number of memory slices of every MIG-capable
// model in the catalog; GPU-instance IDs are numbered over them.
const memorySlicesPerGPU = 8

// SetMIGMode turns MIG mode on or off. Turning it off is refused while MIG
// devices exist, as the driver refuses it while GPU instances exist.
func (b *Backend) SetMIGMode(uuid string, enabled bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.gpuByUUID(uuid)
	if err != nil {
		return fmt.Errorf("set MIG mode of %s: %w", uuid, err)
	}
	if !g.state.MIGCapable {
		return fmt.Errorf("set MIG mode of %s: %s does not support MIG", uuid, g.state.ProductName)
	}
	if !enabled && len(g.state.MIGDevices) > 0 {
		return fmt.Errorf("disable MIG mode of %s: %d MIG devices exist; destroy them first", uuid, len(g.state.MIGDevices))
	}
	g.state.MIGEnabled = enabled
	return nil
}

// CreateMIGDevice creates a GPU instance of the given profile at the given
// placement, with one compute instance spanning it, and returns it.
func (b *Backend) CreateMIGDevice(parentUUID string, giProfileID int, placementStart int) (gpu.MIGDevice, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.gpuByUUID(parentUUID)
	if err != nil {
		return gpu.MIGDevice{}, fmt.Errorf("create MIG device on %s: %w", parentUUID, err)
	}
	if !g.state.MIGCapable {
		return gpu.MIGDevice{}, fmt.Errorf("create MIG device on %s: %s does not support MIG", parentUUID, g.state.ProductName)
	}
	idx := slices.IndexFunc(g.model.migProfiles, func(s migProfileSpec) bool { return s.profile.GIProfileID == giProfileID })
	if idx < 0 {
		ids := make([]int, len(g.model.migProfiles))
		for i, s := range g.model.migProfiles {
			ids[i] = s.profile.GIProfileID
		}
		return gpu.MIGDevice{}, fmt.Errorf("create MIG device on %s: %s has no GPU instance profile %d (valid: %s)",
			parentUUID, g.state.ProductName, giProfileID, joinInts(ids))
	}
	return g.createMIG(b.nodeName, g.model.migProfiles[idx], placementStart)
}

// DestroyMIGDevice destroys a MIG device (its compute and GPU instance).
func (b *Backend) DestroyMIGDevice(uuid string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("destroy MIG device %s: %w", uuid, errBackendClosed)
	}
	g, i := b.migByUUID(uuid)
	if g == nil {
		return fmt.Errorf("destroy MIG device %s: no such MIG device on this node", uuid)
	}
	if err := b.refuseLost(g); err != nil {
		return fmt.Errorf("destroy MIG device %s: %w", uuid, err)
	}
	g.state.MIGDevices = slices.Delete(g.state.MIGDevices, i, i+1)
	return nil
}

// createMIG validates and records a new MIG device; the backend lock must be
// held (or the GPU not yet shared, while building).
func (g *simGPU) createMIG(nodeName string, spec migProfileSpec, start int) (gpu.MIGDevice, error) {
	p := spec.profile
	fail := func(format string, args ...any) (gpu.MIGDevice, error) {
		return gpu.MIGDevice{}, fmt.Errorf("create MIG device %s (profile %d) at placement %d on %s: %s",
			p.Name, p.GIProfileID, start, g.state.UUID, fmt.Sprintf(format, args...))
	}
	if !g.state.MIGEnabled {
		return fail("MIG mode is disabled")
	}
	pi := slices.IndexFunc(p.Placements, func(pl gpu.Placement) bool { return pl.Start == start })
	if pi < 0 {
		return fail("not a placement of %s (valid starts: %s)", p.Name, joinInts(placementStarts(p)))
	}
	placement := p.Placements[pi]
	existing := 0
	for _, d := range g.state.MIGDevices {
		if d.Profile.GIProfileID == p.GIProfileID {
			existing++
		}
	}
	if existing >= spec.instanceCount {
		return fail("%d of at most %d %s instances exist", existing, spec.instanceCount, p.Name)
	}
	for _, d := range g.state.MIGDevices {
		if d.Placement.Overlaps(placement) {
			return fail("overlaps %s (%s at placement %d, size %d)", d.UUID, d.Profile.Name, d.Placement.Start, d.Placement.Size)
		}
	}
	dev := gpu.MIGDevice{
		UUID:      migUUID(nodeName, g.state.Index, p.GIProfileID, placement.Start),
		Profile:   copyMIGProfile(p),
		Placement: placement,
		GIID:      g.freeGIID(placement),
		// The first compute instance of a GPU instance gets ID 0, and gpudra
		// creates exactly one.
		CIID: 0,
	}
	g.state.MIGDevices = append(g.state.MIGDevices, dev)
	slices.SortFunc(g.state.MIGDevices, func(a, b gpu.MIGDevice) int {
		if a.Placement.Start != b.Placement.Start {
			return a.Placement.Start - b.Placement.Start
		}
		return a.Profile.GIProfileID - b.Profile.GIProfileID
	})
	dev.Profile = copyMIGProfile(dev.Profile)
	return dev, nil
}

// freeGIID numbers a GPU instance by its slot in a binary split of the
// memory slices (0 for the whole GPU, 1-2 for halves, 3-6 for quarters,
// 7-14 for eighths). The ID then depends only on the placement, so it is the
// same after a restart, and non-overlapping aligned placements never share
// one. An unaligned placement that would collide takes the next free ID.
func (g *simGPU) freeGIID(p gpu.Placement) int {
	width := 1
	for width < p.Size && width < memorySlicesPerGPU {
		width *= 2
	}
	id := memorySlicesPerGPU/width - 1 + p.Start/width
	used := map[int]bool{}
	for _, d := range g.state.MIGDevices {
		used[d.GIID] = true
	}
	for used[id] {
		id++
	}
	return id
}

// firstFreePlacement returns the lowest placement of the profile that
// overlaps no existing MIG device.
func (g *simGPU) firstFreePlacement(spec migProfileSpec) (int, bool) {
	for _, pl := range spec.profile.Placements {
		free := true
		for _, d := range g.state.MIGDevices {
			if d.Placement.Overlaps(pl) {
				free = false
				break
			}
		}
		if free {
			return pl.Start, true
		}
	}
	return 0, false
}
