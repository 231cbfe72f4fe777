package gpu

import (
	"context"
	"errors"
	"fmt"
)

// MIGManager cuts MIG devices on demand and removes them. Both backends
// implement it; the plugin calls it only for GPUs it runs in dynamic MIG
// mode, inside the node lease, after the checkpoint records the slot.
//
// A MIG device that gpudra makes is always one GPU instance with one compute
// instance spanning it. Implementations must be safe for concurrent use.
type MIGManager interface {
	// CreateMIGDevice creates a GPU instance of slot's profile at exactly
	// slot's placement on the parent GPU, then one compute instance spanning
	// it, and returns the new device as Inventory will report it. If the
	// compute instance cannot be created, the GPU instance is destroyed
	// again before the error is returned (no half-made device is left by a
	// failed call; a process that dies between the two steps leaves one,
	// which Inventory reports as Incomplete).
	//
	// Errors wrap ErrMIGDisabled, ErrMIGProfileUnsupported,
	// ErrMIGPlacementInvalid or ErrMIGSlotTaken where they apply, and name
	// the parent, the profile and the placement.
	CreateMIGDevice(ctx context.Context, slot MIGSlot) (MIGDevice, error)
	// DestroyMIGDevice destroys the device at slot: its compute instances,
	// then its GPU instance. It also removes an Incomplete device. A slot
	// where no GPU instance of that profile sits returns an error wrapping
	// ErrMIGNotFound, so callers that undo their own work can treat it as
	// done.
	DestroyMIGDevice(ctx context.Context, slot MIGSlot) error
}

// MIGSlot names a MIG device by where it sits: at most one GPU instance
// occupies a placement on a GPU, so a slot names at most one device, also
// one that has no compute instance yet (and so no UUID).
type MIGSlot struct {
	// ParentUUID is the GPU's "GPU-<uuid>".
	ParentUUID string
	// GIProfileID is NVML's GPU-instance profile ID (MIGProfile.GIProfileID).
	GIProfileID int
	// Placement is where on the parent. Create uses Start and checks Size
	// against the profile.
	Placement Placement
}

func (s MIGSlot) String() string {
	return fmt.Sprintf("%s profile %d at placement %d+%d", s.ParentUUID, s.GIProfileID, s.Placement.Start, s.Placement.Size)
}

// SlotOf returns the slot a MIG device of parent occupies.
func SlotOf(parentUUID string, d MIGDevice) MIGSlot {
	return MIGSlot{ParentUUID: parentUUID, GIProfileID: d.Profile.GIProfileID, Placement: d.Placement}
}

// Errors a MIGManager wraps, so callers can tell the cases apart without
// parsing messages.
var (
	// ErrMIGDisabled: the parent GPU is not in MIG mode.
	ErrMIGDisabled = errors.New("MIG mode is disabled")
	// ErrMIGProfileUnsupported: the parent has no such GPU-instance profile.
	ErrMIGProfileUnsupported = errors.New("GPU instance profile not supported")
	// ErrMIGPlacementInvalid: the placement is not one of the profile's.
	ErrMIGPlacementInvalid = errors.New("not a placement of the profile")
	// ErrMIGSlotTaken: the placement overlaps an existing GPU instance, or
	// the profile's instance limit is reached.
	ErrMIGSlotTaken = errors.New("placement overlaps an existing GPU instance")
	// ErrMIGNotFound: no GPU instance of the profile sits at the placement.
	ErrMIGNotFound = errors.New("no GPU instance at this placement")
)

// MIGModeEnabler turns MIG mode on. There is deliberately no way to turn
// it off: on some cloud GPUs that leaves the GPU needing a reset, which a
// plugin must never cause. Enabling fails for a GPU with processes on it
// and, on GPUs that need it, until the GPU is reset; the error says so.
type MIGModeEnabler interface {
	EnableMIGMode(ctx context.Context, uuid string) error
}
