// Package migmanager makes and removes the MIG devices that dynamic-MIG
// claims get, and reconciles a node's MIG devices with the ones its claims
// hold.
//
// Contract:
//   - The plugin records a slot in the checkpoint before Create, and
//     forgets it only after Destroy: the hardware never holds a device the
//     checkpoint cannot account for, except between a crash and the next
//     Reconcile.
//   - Create and Destroy of different claims run concurrently; Reconcile
//     excludes them, and reads the wanted slots under that exclusion, so a
//     device made by a prepare that recorded its slot is never taken for an
//     orphan.
//   - Destroy removes only the device the caller made (by UUID), never one
//     another claim got at the same slot later.
//   - Dynamic MIG owns every GPU in MIG mode: a MIG device that no record
//     wants is destroyed by Reconcile. MIG mode is never switched off.
package migmanager

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/devicemodel"
	"github.com/gpudra/gpudra/internal/gpu"
)

// Backend is a backend that can cut MIG devices.
type Backend interface {
	gpu.Backend
	gpu.MIGManager
}

// Manager serialises MIG changes against reconciliation.
type Manager struct {
	b  Backend
	mu sync.RWMutex
}

// New wraps a backend; it fails for one that cannot cut MIG devices.
func New(b gpu.Backend) (*Manager, error) {
	mb, ok := b.(Backend)
	if !ok {
		return nil, fmt.Errorf("the %s backend cannot create MIG devices, so dynamic MIG is not available with it", b.Name())
	}
	return &Manager{b: mb}, nil
}

// SlotFor returns where the MIG device behind a dynamic-MIG device name
// goes. A whole GPU in MIG mode is served by a MIG device spanning it: the
// largest profile with a placement that covers every memory slice.
func SlotFor(inv *gpu.Inventory, device string) (checkpoint.MIGSlot, error) {
	t, err := devicemodel.LocateDynamic(inv, device)
	if err != nil {
		return checkpoint.MIGSlot{}, err
	}
	if t.Profile == nil {
		p, pl, ok := fullCover(t.GPU)
		if !ok {
			return checkpoint.MIGSlot{}, fmt.Errorf("device %s: %s has no MIG profile that spans the whole GPU", device, t.GPU.ProductName)
		}
		t.Profile, t.Placement = p, pl
	}
	return checkpoint.MIGSlot{
		ParentUUID: t.GPU.UUID, Profile: t.Profile.Name, GIProfileID: t.Profile.GIProfileID,
		PlacementStart: t.Placement.Start, PlacementSize: t.Placement.Size,
	}, nil
}

// fullCover is the profile and placement that span every memory slice of g.
func fullCover(g *gpu.GPU) (*gpu.MIGProfile, gpu.Placement, bool) {
	end := 0
	for _, p := range g.MIGProfiles {
		for _, pl := range p.Placements {
			end = max(end, pl.Start+pl.Size)
		}
	}
	var best *gpu.MIGProfile
	var bestPl gpu.Placement
	for i := range g.MIGProfiles {
		p := &g.MIGProfiles[i]
		for _, pl := range p.Placements {
			if pl.Start == 0 && pl.Size == end && (best == nil || p.SliceCount > best.SliceCount) {
				best, bestPl = p, pl
			}
		}
	}
	return best, bestPl, best != nil
}

// Slot converts a checkpoint slot to the backend's.
func Slot(s checkpoint.MIGSlot) gpu.MIGSlot {
	return gpu.MIGSlot{ParentUUID: s.ParentUUID, GIProfileID: s.GIProfileID, Placement: gpu.Placement{Start: s.PlacementStart, Size: s.PlacementSize}}
}

// Create makes the MIG device at slot and returns it with its parent.
// mayAdopt says that no other record wants the slot: a complete device
// already sitting exactly there (one an earlier attempt of the same claim
// made before it crashed) is then taken over instead of refused, and an
// incomplete one is removed first.
func (m *Manager) Create(ctx context.Context, s checkpoint.MIGSlot, mayAdopt bool) (gpu.MIGDevice, *gpu.GPU, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	slot := Slot(s)
	for attempt := 0; ; attempt++ {
		dev, err := m.b.CreateMIGDevice(ctx, slot)
		if err == nil {
			parent, err := m.parent(ctx, s.ParentUUID)
			return dev, parent, err
		}
		if !errors.Is(err, gpu.ErrMIGSlotTaken) || !mayAdopt || attempt > 0 {
			return gpu.MIGDevice{}, nil, err
		}
		parent, err2 := m.parent(ctx, s.ParentUUID)
		if err2 != nil {
			return gpu.MIGDevice{}, nil, errors.Join(err, err2)
		}
		i := slices.IndexFunc(parent.MIGDevices, func(d gpu.MIGDevice) bool { return gpu.SlotOf(parent.UUID, d) == slot })
		if i < 0 {
			return gpu.MIGDevice{}, nil, err // another device overlaps the slot
		}
		if d := parent.MIGDevices[i]; !d.Incomplete {
			return d, parent, nil
		}
		if err := m.b.DestroyMIGDevice(ctx, slot); err != nil && !errors.Is(err, gpu.ErrMIGNotFound) {
			return gpu.MIGDevice{}, nil, fmt.Errorf("remove the incomplete MIG device at %s first: %w", slot, err)
		}
	}
}

// Destroy removes the device at slot if it is the one with the UUID; with
// uuid "" (a record that never learned it), whatever sits exactly at the
// slot. A slot with nothing there, or with another device, is done.
func (m *Manager) Destroy(ctx context.Context, s checkpoint.MIGSlot, uuid string) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.destroyIfOurs(ctx, s, uuid)
}

func (m *Manager) destroyIfOurs(ctx context.Context, s checkpoint.MIGSlot, uuid string) error {
	parent, err := m.parent(ctx, s.ParentUUID)
	if err != nil {
		return err
	}
	slot := Slot(s)
	i := slices.IndexFunc(parent.MIGDevices, func(d gpu.MIGDevice) bool { return gpu.SlotOf(parent.UUID, d) == slot })
	if i < 0 {
		return nil
	}
	if d := parent.MIGDevices[i]; uuid != "" && !d.Incomplete && d.UUID != uuid {
		return nil
	}
	if err := m.b.DestroyMIGDevice(ctx, slot); err != nil && !errors.Is(err, gpu.ErrMIGNotFound) {
		return err
	}
	return nil
}

func (m *Manager) parent(ctx context.Context, uuid string) (*gpu.GPU, error) {
	inv, err := m.b.Inventory(ctx)
	if err != nil {
		return nil, fmt.Errorf("read GPU inventory: %w", err)
	}
	g := inv.FindGPU(uuid)
	if g == nil {
		return nil, fmt.Errorf("GPU %s is not in the inventory", uuid)
	}
	return g, nil
}

// Want is a slot a record holds.
type Want struct {
	Slot checkpoint.MIGSlot
	// UUID is the device the record knows of ("" before it was made).
	UUID string
	// Completed: the claim was prepared, so its device must exist.
	Completed bool
}

// Report says what Reconcile did.
type Report struct {
	// Destroyed describes each device removed.
	Destroyed []string
	// Recreated maps the index of a completed want whose device was
	// missing to the device made for it now (with a new UUID).
	Recreated map[int]gpu.MIGDevice
	// Adopted maps the index of a want whose record had another UUID (or
	// none) to the device that sits at its slot.
	Adopted map[int]gpu.MIGDevice
	// Errors are the operations that failed; the rest were done.
	Errors []error
}

// Reconcile makes the node's MIG devices those the records want: it removes
// incomplete devices and devices no record wants on every GPU in MIG mode,
// and with recreate, makes the device of each completed record whose device
// is missing (after a reboot), at its placement, before a new prepare can
// take the space. wants is read under the exclusion (see the package
// comment). Lost GPUs are left for a later pass.
func (m *Manager) Reconcile(ctx context.Context, wants func() []Want, recreate bool) (Report, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := wants()
	inv, err := m.b.Inventory(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("read GPU inventory: %w", err)
	}
	r := Report{Recreated: map[int]gpu.MIGDevice{}, Adopted: map[int]gpu.MIGDevice{}}
	bySlot := map[gpu.MIGSlot]int{}
	for i, w := range want {
		bySlot[Slot(w.Slot)] = i
	}
	found := map[int]bool{}
	for gi := range inv.GPUs {
		g := &inv.GPUs[gi]
		if !g.MIGEnabled {
			continue
		}
		for _, d := range g.MIGDevices {
			slot := gpu.SlotOf(g.UUID, d)
			i, wanted := bySlot[slot]
			switch {
			case d.Incomplete:
				// A create that died half-way; its claim's prepare, if it
				// is retried, makes it again.
			case wanted:
				found[i] = true
				if want[i].UUID != d.UUID {
					r.Adopted[i] = d
				}
				continue
			}
			if err := m.b.DestroyMIGDevice(ctx, slot); err != nil && !errors.Is(err, gpu.ErrMIGNotFound) {
				r.Errors = append(r.Errors, fmt.Errorf("destroy %s: %w", describe(g, d), err))
				continue
			}
			r.Destroyed = append(r.Destroyed, describe(g, d))
		}
	}
	if !recreate {
		return r, nil
	}
	for i, w := range want {
		if !w.Completed || found[i] || inv.FindGPU(w.Slot.ParentUUID) == nil {
			continue
		}
		dev, err := m.b.CreateMIGDevice(ctx, Slot(w.Slot))
		if err != nil {
			r.Errors = append(r.Errors, fmt.Errorf("re-create %s %s on %s at placement %d: %w", w.Slot.Profile, w.UUID, w.Slot.ParentUUID, w.Slot.PlacementStart, err))
			continue
		}
		r.Recreated[i] = dev
	}
	return r, nil
}

func describe(g *gpu.GPU, d gpu.MIGDevice) string {
	what := d.UUID
	if d.Incomplete {
		what = "incomplete GPU instance"
	}
	return fmt.Sprintf("%s %s on %s at placement %d", d.Profile.Name, what, g.UUID, d.Placement.Start)
}
