package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gpudra/gpudra/internal/failpoint"
	"github.com/gpudra/gpudra/internal/gpu"
)

// memorySlicesPerGPU is the number of memory slices of every MIG-capable
// model in the catalog; GPU-instance IDs are numbered over them.
const memorySlicesPerGPU = 8

// FailpointAfterGPUInstance is hit by CreateMIGDevice between recording the
// GPU instance and its compute instance: a crash there leaves an Incomplete
// device in the state directory, as a crash between NVML's two calls does.
const FailpointAfterGPUInstance = "sim/after-gpu-instance"

var _ gpu.MIGManager = (*Backend)(nil)

// SetMIGMode turns MIG mode on or off. Turning it off is refused while MIG
// devices exist, as the driver refuses it while GPU instances exist.
func (b *Backend) SetMIGMode(uuid string, enabled bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.mutateHardware(func() error {
		g, err := b.gpuByUUID(uuid)
		if err != nil {
			return err
		}
		if !g.state.MIGCapable {
			return fmt.Errorf("%s does not support MIG", g.state.ProductName)
		}
		if !enabled && len(g.state.MIGDevices) > 0 {
			return fmt.Errorf("%d MIG devices exist; destroy them first", len(g.state.MIGDevices))
		}
		g.state.MIGEnabled = enabled
		return nil
	})
	if err != nil {
		verb := "enable"
		if !enabled {
			verb = "disable"
		}
		return fmt.Errorf("%s MIG mode of %s: %w", verb, uuid, err)
	}
	return nil
}

// CreateMIGDevice implements gpu.MIGManager. The GPU instance and the
// compute instance are two changes of the hardware state, with
// FailpointAfterGPUInstance between them; each MIG device made gets a UUID
// no device of this node had before.
func (b *Backend) CreateMIGDevice(ctx context.Context, slot gpu.MIGSlot) (gpu.MIGDevice, error) {
	if err := ctx.Err(); err != nil {
		return gpu.MIGDevice{}, fmt.Errorf("create MIG device %s: %w", slot, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.createGPUInstance(slot); err != nil {
		return gpu.MIGDevice{}, err
	}
	failpoint.Hit(FailpointAfterGPUInstance)

	var dev gpu.MIGDevice
	var ciErr error
	err := b.mutateHardware(func() error {
		g, i, err := b.migAtSlot(slot)
		if err != nil {
			return err
		}
		if !g.state.MIGDevices[i].Incomplete {
			return fmt.Errorf("%w: another process completed the GPU instance made a moment ago", gpu.ErrMIGSlotTaken)
		}
		if g.failNextComputeInstance {
			g.failNextComputeInstance = false
			g.state.MIGDevices = slices.Delete(g.state.MIGDevices, i, i+1)
			ciErr = errors.New("create compute instance: simulated failure (armed by gpudra sim); the GPU instance was destroyed again")
			return nil
		}
		d := &g.state.MIGDevices[i]
		d.UUID = createdMIGUUID(b.nodeName, b.nextSerial)
		b.nextSerial++
		d.CIID, d.Incomplete = 0, false
		dev = *d
		dev.Profile = copyMIGProfile(d.Profile)
		return nil
	})
	if err == nil {
		err = ciErr
	}
	if err != nil {
		return gpu.MIGDevice{}, fmt.Errorf("create MIG device %s: %w", slot, err)
	}
	return dev, nil
}

// CreateIncompleteMIGDevice makes only the GPU instance at slot: what a
// process that dies inside CreateMIGDevice leaves. For tests and the crash
// harness's checks; the plugin never calls it.
func (b *Backend) CreateIncompleteMIGDevice(slot gpu.MIGSlot) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.createGPUInstance(slot)
}

// createGPUInstance validates slot and records an Incomplete device there;
// b.mu must be held.
func (b *Backend) createGPUInstance(slot gpu.MIGSlot) error {
	err := b.mutateHardware(func() error {
		g, spec, err := b.migTarget(slot.ParentUUID, slot.GIProfileID)
		if err != nil {
			return err
		}
		pl, err := g.checkPlacement(spec, slot.Placement)
		if err != nil {
			return err
		}
		g.insertMIG(gpu.MIGDevice{
			Profile:    copyMIGProfile(spec.profile),
			Placement:  pl,
			GIID:       g.freeGIID(pl),
			CIID:       -1,
			Incomplete: true,
		})
		return nil
	})
	if err != nil {
		return fmt.Errorf("create MIG device %s: %w", slot, err)
	}
	return nil
}

// DestroyMIGDevice implements gpu.MIGManager.
func (b *Backend) DestroyMIGDevice(ctx context.Context, slot gpu.MIGSlot) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("destroy MIG device %s: %w", slot, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.mutateHardware(func() error {
		g, i, err := b.migAtSlot(slot)
		if err != nil {
			return err
		}
		g.state.MIGDevices = slices.Delete(g.state.MIGDevices, i, i+1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("destroy MIG device %s: %w", slot, err)
	}
	return nil
}

// FailNextComputeInstance makes the next compute-instance create on the
// parent GPU fail (see ArmComputeInstanceFailure, which does the same from
// another process).
func (b *Backend) FailNextComputeInstance(parentUUID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.mutateHardware(func() error {
		g, err := b.gpuByUUID(parentUUID)
		if err != nil {
			return err
		}
		g.failNextComputeInstance = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("arm a compute-instance failure on %s: %w", parentUUID, err)
	}
	return nil
}

// migTarget finds a GPU that can take a MIG device of the profile; b.mu
// must be held.
func (b *Backend) migTarget(parentUUID string, giProfileID int) (*simGPU, migProfileSpec, error) {
	g, err := b.gpuByUUID(parentUUID)
	if err != nil {
		return nil, migProfileSpec{}, err
	}
	if !g.state.MIGCapable {
		return nil, migProfileSpec{}, fmt.Errorf("%w: %s does not support MIG", gpu.ErrMIGDisabled, g.state.ProductName)
	}
	if !g.state.MIGEnabled {
		return nil, migProfileSpec{}, gpu.ErrMIGDisabled
	}
	spec, ok := g.model.migProfileByID(giProfileID)
	if !ok {
		ids := make([]int, len(g.model.migProfiles))
		for i, s := range g.model.migProfiles {
			ids[i] = s.profile.GIProfileID
		}
		return nil, migProfileSpec{}, fmt.Errorf("%w: %s has no GPU instance profile %d (valid: %s)",
			gpu.ErrMIGProfileUnsupported, g.state.ProductName, giProfileID, joinInts(ids))
	}
	return g, spec, nil
}

// migAtSlot finds the device at slot (also an Incomplete one); b.mu must be
// held.
func (b *Backend) migAtSlot(slot gpu.MIGSlot) (*simGPU, int, error) {
	g, err := b.gpuByUUID(slot.ParentUUID)
	if err != nil {
		return nil, -1, err
	}
	if !g.state.MIGEnabled {
		return nil, -1, gpu.ErrMIGDisabled
	}
	i := slices.IndexFunc(g.state.MIGDevices, func(d gpu.MIGDevice) bool {
		return d.Profile.GIProfileID == slot.GIProfileID && d.Placement.Start == slot.Placement.Start
	})
	if i < 0 {
		return nil, -1, gpu.ErrMIGNotFound
	}
	return g, i, nil
}

// checkPlacement returns the profile's placement at want.Start if a new
// device can take it: it is one of the profile's (and of its size, when
// want has one), the profile's instance limit is not reached and no device
// overlaps it.
func (g *simGPU) checkPlacement(spec migProfileSpec, want gpu.Placement) (gpu.Placement, error) {
	p := spec.profile
	pi := slices.IndexFunc(p.Placements, func(pl gpu.Placement) bool { return pl.Start == want.Start })
	if pi < 0 {
		return gpu.Placement{}, fmt.Errorf("%w: %d is not a placement of %s (valid starts: %s)",
			gpu.ErrMIGPlacementInvalid, want.Start, p.Name, joinInts(placementStarts(p)))
	}
	placement := p.Placements[pi]
	if want.Size != 0 && want.Size != placement.Size {
		return gpu.Placement{}, fmt.Errorf("%w: %s spans %d memory slices, not %d",
			gpu.ErrMIGPlacementInvalid, p.Name, placement.Size, want.Size)
	}
	existing := 0
	for _, d := range g.state.MIGDevices {
		if d.Profile.GIProfileID == p.GIProfileID {
			existing++
		}
	}
	if existing >= spec.instanceCount {
		return gpu.Placement{}, fmt.Errorf("%w: %d of at most %d %s instances exist", gpu.ErrMIGSlotTaken, existing, spec.instanceCount, p.Name)
	}
	for _, d := range g.state.MIGDevices {
		if d.Placement.Overlaps(placement) {
			return gpu.Placement{}, fmt.Errorf("%w: %s at placement %d overlaps %s (%s at placement %d, size %d)",
				gpu.ErrMIGSlotTaken, p.Name, placement.Start, migLabel(d), d.Profile.Name, d.Placement.Start, d.Placement.Size)
		}
	}
	return placement, nil
}

func migLabel(d gpu.MIGDevice) string {
	if d.Incomplete {
		return fmt.Sprintf("an incomplete GPU instance %d", d.GIID)
	}
	return d.UUID
}

// insertMIG adds a device, keeping MIGDevices sorted by placement.
func (g *simGPU) insertMIG(d gpu.MIGDevice) {
	g.state.MIGDevices = append(g.state.MIGDevices, d)
	slices.SortFunc(g.state.MIGDevices, func(a, b gpu.MIGDevice) int {
		if a.Placement.Start != b.Placement.Start {
			return a.Placement.Start - b.Placement.Start
		}
		return a.Profile.GIProfileID - b.Profile.GIProfileID
	})
}

// createConfiguredMIG creates a MIG device declared in a Config while the
// node is built, at the declared placement or the first free one. Its UUID
// derives from the placement, so the same config builds the same devices.
func (g *simGPU) createConfiguredMIG(nodeName string, d MIGDeviceConfig) error {
	spec, _ := g.model.migProfileByName(d.Profile) // validated by Config.validate
	p := spec.profile
	start := 0
	if d.Placement != nil {
		start = *d.Placement
	} else {
		free, ok := g.firstFreePlacement(spec)
		if !ok {
			return fmt.Errorf("no free placement for %s on %s", d.Profile, g.state.UUID)
		}
		start = free
	}
	if !g.state.MIGEnabled {
		return fmt.Errorf("create MIG device %s (profile %d) at placement %d on %s: MIG mode is disabled", p.Name, p.GIProfileID, start, g.state.UUID)
	}
	pl, err := g.checkPlacement(spec, gpu.Placement{Start: start})
	if err != nil {
		return fmt.Errorf("create MIG device %s (profile %d) at placement %d on %s: %w", p.Name, p.GIProfileID, start, g.state.UUID, err)
	}
	g.insertMIG(gpu.MIGDevice{
		UUID:      migUUID(nodeName, g.state.Index, p.GIProfileID, pl.Start),
		Profile:   copyMIGProfile(p),
		Placement: pl,
		GIID:      g.freeGIID(pl),
		// The first compute instance of a GPU instance gets ID 0, and gpudra
		// creates exactly one.
		CIID: 0,
	})
	return nil
}

// freeGIID numbers a GPU instance by its slot in a binary split of the
// memory slices (0 for the whole GPU, 1-2 for halves, 3-6 for quarters,
// 7-14 for eighths). The ID then depends only on the placement, and
// non-overlapping aligned placements never share one. An unaligned
// placement that would collide takes the next free ID.
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

var _ gpu.MIGModeEnabler = (*Backend)(nil)

// EnableMIGMode implements gpu.MIGModeEnabler.
func (b *Backend) EnableMIGMode(ctx context.Context, uuid string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("enable MIG mode of %s: %w", uuid, err)
	}
	return b.SetMIGMode(uuid, true)
}
