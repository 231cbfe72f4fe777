package contract

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gpudra/gpudra/internal/gpu"
)

// MIGBackend is a backend that can cut MIG devices.
type MIGBackend interface {
	gpu.Backend
	gpu.MIGManager
}

// MIGNode is a MIG-capable backend under test and the levers its MIG cases
// pull. When built, the node has at least two GPUs in MIG mode with no MIG
// devices, and none unavailable; the GPUs support the H100's profiles
// (1g.10gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb). Cases find profiles by name
// in the inventory, never by a hard-coded ID.
type MIGNode struct {
	Backend MIGBackend
	// Reopen returns a new backend over the same hardware, as a restarted
	// plugin sees it: MIG devices outlive the process that made them.
	Reopen func(t *testing.T) MIGBackend
	// FailNextComputeInstance makes the next compute-instance create on the
	// parent GPU fail (NVML: an error return from CreateComputeInstance).
	FailNextComputeInstance func(t *testing.T, parentUUID string)
	// LeaveIncomplete creates only the GPU instance at slot, as a process
	// that dies between the two steps of CreateMIGDevice leaves it.
	LeaveIncomplete func(t *testing.T, slot gpu.MIGSlot)
}

// RunMIG runs every MIG case, each on a node newNode builds.
func RunMIG(t *testing.T, newNode func(t *testing.T) MIGNode) {
	cases := []struct {
		name string
		test func(t *testing.T, n MIGNode)
	}{
		{"CreateReportsWhatInventoryShows", testMIGCreate},
		{"SevenSmallDevicesFillAGPU", testMIGFill},
		{"OverlapIsRefusedAndChangesNothing", testMIGOverlap},
		{"BadSlotsGetTypedErrors", testMIGBadSlots},
		{"DestroyThenNotFound", testMIGDestroy},
		{"DevicesOutliveTheProcess", testMIGReopen},
		{"ReCreatedDeviceGetsANewUUID", testMIGNewUUID},
		{"FailedComputeInstanceRollsBack", testMIGFailedCI},
		{"IncompleteDeviceIsReportedAndRemovable", testMIGIncomplete},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.test(t, newNode(t)) })
	}
}

// migGPUs returns the node's GPUs in MIG mode, failing unless there are two
// without MIG devices.
func migGPUs(t *testing.T, b gpu.Backend) []gpu.GPU {
	t.Helper()
	var out []gpu.GPU
	for _, g := range inventory(t, b).GPUs {
		if g.MIGEnabled {
			out = append(out, g)
		}
	}
	if len(out) < 2 || len(out[0].MIGDevices) != 0 || len(out[1].MIGDevices) != 0 {
		t.Fatalf("node has %d GPUs in MIG mode, want at least two without MIG devices", len(out))
	}
	return out
}

// profile finds a profile by name, failing if the GPU lacks it.
func profile(t *testing.T, g gpu.GPU, name string) gpu.MIGProfile {
	t.Helper()
	i := slices.IndexFunc(g.MIGProfiles, func(p gpu.MIGProfile) bool { return p.Name == name })
	if i < 0 {
		t.Fatalf("GPU %s has no profile %s", g.UUID, name)
	}
	return g.MIGProfiles[i]
}

// slot is the slot of the profile's placement-th placement on g.
func slot(t *testing.T, g gpu.GPU, name string, placement int) gpu.MIGSlot {
	t.Helper()
	p := profile(t, g, name)
	if placement >= len(p.Placements) {
		t.Fatalf("%s has %d placements, not %d", name, len(p.Placements), placement+1)
	}
	return gpu.MIGSlot{ParentUUID: g.UUID, GIProfileID: p.GIProfileID, Placement: p.Placements[placement]}
}

func mustCreate(t *testing.T, b gpu.MIGManager, s gpu.MIGSlot) gpu.MIGDevice {
	t.Helper()
	d, err := b.CreateMIGDevice(context.Background(), s)
	if err != nil {
		t.Fatalf("CreateMIGDevice(%s): %v", s, err)
	}
	return d
}

// migDevices returns what Inventory reports on the GPU with the UUID.
func migDevices(t *testing.T, b gpu.Backend, uuid string) []gpu.MIGDevice {
	t.Helper()
	g := inventory(t, b).FindGPU(uuid)
	if g == nil {
		t.Fatalf("GPU %s is gone from the inventory", uuid)
	}
	return g.MIGDevices
}

// testMIGCreate: the device returned is the one Inventory then reports, on
// that GPU only, with the profile and placement asked for.
func testMIGCreate(t *testing.T, n MIGNode) {
	gpus := migGPUs(t, n.Backend)
	s := slot(t, gpus[0], "3g.40gb", 1)
	d := mustCreate(t, n.Backend, s)
	if !strings.HasPrefix(d.UUID, "MIG-") || d.Incomplete || d.CIID < 0 {
		t.Errorf("created %+v, want a complete device with a MIG- UUID", d)
	}
	if d.Profile.Name != "3g.40gb" || d.Placement != s.Placement || gpu.SlotOf(s.ParentUUID, d) != s {
		t.Errorf("created %s at %+v, want 3g.40gb at %+v", d.Profile.Name, d.Placement, s.Placement)
	}
	got := migDevices(t, n.Backend, gpus[0].UUID)
	if len(got) != 1 || got[0].UUID != d.UUID || got[0].Placement != d.Placement || got[0].GIID != d.GIID || got[0].CIID != d.CIID {
		t.Errorf("inventory shows %+v, want exactly %+v", got, d)
	}
	if other := migDevices(t, n.Backend, gpus[1].UUID); len(other) != 0 {
		t.Errorf("creating on %s put %d devices on %s", gpus[0].UUID, len(other), gpus[1].UUID)
	}
}

// testMIGFill: seven 1g devices, one per placement, fill a GPU with seven
// different UUIDs and GPU-instance IDs; an eighth has nowhere to go.
func testMIGFill(t *testing.T, n MIGNode) {
	g := migGPUs(t, n.Backend)[0]
	p := profile(t, g, "1g.10gb")
	uuids, giids := map[string]bool{}, map[int]bool{}
	for i := range p.Placements {
		d := mustCreate(t, n.Backend, slot(t, g, "1g.10gb", i))
		uuids[d.UUID], giids[d.GIID] = true, true
	}
	if len(p.Placements) != 7 || len(uuids) != 7 || len(giids) != 7 {
		t.Errorf("%d placements gave %d UUIDs and %d GPU-instance IDs, want 7 each", len(p.Placements), len(uuids), len(giids))
	}
	if got := migDevices(t, n.Backend, g.UUID); len(got) != 7 {
		t.Errorf("inventory shows %d devices, want 7", len(got))
	}
	_, err := n.Backend.CreateMIGDevice(context.Background(), slot(t, g, "1g.10gb", 0))
	if !errors.Is(err, gpu.ErrMIGSlotTaken) {
		t.Errorf("an eighth 1g.10gb: %v, want ErrMIGSlotTaken", err)
	}
}

// testMIGOverlap: every placement that shares a memory slice with an
// existing device is refused with ErrMIGSlotTaken, naming the parent, and
// the inventory is unchanged; placements that do not overlap still work.
func testMIGOverlap(t *testing.T, n MIGNode) {
	g := migGPUs(t, n.Backend)[0]
	held := mustCreate(t, n.Backend, slot(t, g, "2g.20gb", 1)) // memory slices 2-3
	before := migDevices(t, n.Backend, g.UUID)
	for _, name := range []string{"1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"} {
		p := profile(t, g, name)
		for i, pl := range p.Placements {
			if !pl.Overlaps(held.Placement) {
				continue
			}
			s := slot(t, g, name, i)
			_, err := n.Backend.CreateMIGDevice(context.Background(), s)
			if !errors.Is(err, gpu.ErrMIGSlotTaken) || !strings.Contains(err.Error(), g.UUID) {
				t.Errorf("%s: %v, want ErrMIGSlotTaken naming %s", s, err, g.UUID)
			}
		}
	}
	if after := migDevices(t, n.Backend, g.UUID); !slices.EqualFunc(before, after, sameDevice) {
		t.Errorf("refused creates changed the GPU:\n before %+v\n after  %+v", before, after)
	}
	mustCreate(t, n.Backend, slot(t, g, "2g.20gb", 0))
	mustCreate(t, n.Backend, slot(t, g, "3g.40gb", 1))
}

// testMIGBadSlots: each kind of bad slot wraps its own error and names the
// parent; none changes the hardware.
func testMIGBadSlots(t *testing.T, n MIGNode) {
	gpus := migGPUs(t, n.Backend)
	g := gpus[0]
	three := slot(t, g, "3g.40gb", 0)
	var notMIG *gpu.GPU
	for _, o := range inventory(t, n.Backend).GPUs {
		if !o.MIGEnabled {
			notMIG = &o
			break
		}
	}
	tests := []struct {
		name string
		slot gpu.MIGSlot
		want error
	}{
		{"unknown profile", gpu.MIGSlot{ParentUUID: g.UUID, GIProfileID: 9999, Placement: gpu.Placement{Start: 0, Size: 1}}, gpu.ErrMIGProfileUnsupported},
		{"start between placements", gpu.MIGSlot{ParentUUID: g.UUID, GIProfileID: three.GIProfileID, Placement: gpu.Placement{Start: 1, Size: 4}}, gpu.ErrMIGPlacementInvalid},
		{"wrong size", gpu.MIGSlot{ParentUUID: g.UUID, GIProfileID: three.GIProfileID, Placement: gpu.Placement{Start: three.Placement.Start, Size: three.Placement.Size + 1}}, gpu.ErrMIGPlacementInvalid},
	}
	if notMIG != nil {
		tests = append(tests, struct {
			name string
			slot gpu.MIGSlot
			want error
		}{"GPU not in MIG mode", gpu.MIGSlot{ParentUUID: notMIG.UUID, GIProfileID: three.GIProfileID, Placement: three.Placement}, gpu.ErrMIGDisabled})
	}
	for _, tt := range tests {
		_, err := n.Backend.CreateMIGDevice(context.Background(), tt.slot)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.slot.ParentUUID) {
			t.Errorf("%s (%s): %v, want an error wrapping %q naming the parent", tt.name, tt.slot, err, tt.want)
		}
	}
	for _, o := range inventory(t, n.Backend).GPUs {
		if len(o.MIGDevices) != 0 {
			t.Errorf("refused creates left %d devices on %s", len(o.MIGDevices), o.UUID)
		}
	}
	if _, err := n.Backend.CreateMIGDevice(context.Background(), gpu.MIGSlot{ParentUUID: "GPU-ffffffff-ffff-ffff-ffff-ffffffffffff", GIProfileID: three.GIProfileID, Placement: three.Placement}); err == nil {
		t.Error("creating on a GPU the node does not have succeeded")
	}
}

// testMIGDestroy: destroy removes exactly the device at the slot, a second
// destroy wraps ErrMIGNotFound, and the freed slot can be cut again.
func testMIGDestroy(t *testing.T, n MIGNode) {
	g := migGPUs(t, n.Backend)[0]
	keep := mustCreate(t, n.Backend, slot(t, g, "4g.40gb", 0))
	gone := mustCreate(t, n.Backend, slot(t, g, "3g.40gb", 1))
	s := gpu.SlotOf(g.UUID, gone)
	if err := n.Backend.DestroyMIGDevice(context.Background(), s); err != nil {
		t.Fatalf("DestroyMIGDevice(%s): %v", s, err)
	}
	if got := migDevices(t, n.Backend, g.UUID); len(got) != 1 || got[0].UUID != keep.UUID {
		t.Errorf("after destroying %s: %+v, want only %s", gone.UUID, got, keep.UUID)
	}
	if err := n.Backend.DestroyMIGDevice(context.Background(), s); !errors.Is(err, gpu.ErrMIGNotFound) {
		t.Errorf("destroying twice: %v, want ErrMIGNotFound", err)
	}
	// A slot of another profile at a start where a device sits is not that
	// device.
	other := slot(t, g, "1g.10gb", 0)
	if err := n.Backend.DestroyMIGDevice(context.Background(), other); !errors.Is(err, gpu.ErrMIGNotFound) {
		t.Errorf("destroying %s, where a 4g.40gb sits: %v, want ErrMIGNotFound", other, err)
	}
	mustCreate(t, n.Backend, s)
}

// testMIGReopen: a new backend over the same hardware sees the same devices
// with the same UUIDs and IDs, and can destroy them.
func testMIGReopen(t *testing.T, n MIGNode) {
	g := migGPUs(t, n.Backend)[0]
	a := mustCreate(t, n.Backend, slot(t, g, "1g.10gb", 6))
	b := mustCreate(t, n.Backend, slot(t, g, "3g.40gb", 0))
	before := migDevices(t, n.Backend, g.UUID)

	again := n.Reopen(t)
	after := migDevices(t, again, g.UUID)
	if !slices.EqualFunc(before, after, sameDevice) {
		t.Fatalf("after reopening:\n got  %+v\n want %+v", after, before)
	}
	for _, d := range []gpu.MIGDevice{a, b} {
		if err := again.DestroyMIGDevice(context.Background(), gpu.SlotOf(g.UUID, d)); err != nil {
			t.Errorf("reopened backend cannot destroy %s: %v", d.UUID, err)
		}
	}
	if got := migDevices(t, again, g.UUID); len(got) != 0 {
		t.Errorf("after destroying both: %+v", got)
	}
}

// testMIGNewUUID: destroying a device and cutting the same slot again gives
// a new UUID, also across a reopen: a checkpoint naming the old UUID must
// never match the new device.
func testMIGNewUUID(t *testing.T, n MIGNode) {
	g := migGPUs(t, n.Backend)[0]
	s := slot(t, g, "2g.20gb", 2)
	seen := map[string]bool{}
	b := n.Backend
	for round := range 3 {
		d := mustCreate(t, b, s)
		if seen[d.UUID] {
			t.Fatalf("round %d: UUID %s was used before", round, d.UUID)
		}
		seen[d.UUID] = true
		if err := b.DestroyMIGDevice(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		b = n.Reopen(t)
	}
}

// testMIGFailedCI: when the compute instance cannot be made, the call
// fails, no device (complete or not) is left, other GPUs are untouched, and
// the next create at the slot works.
func testMIGFailedCI(t *testing.T, n MIGNode) {
	gpus := migGPUs(t, n.Backend)
	other := mustCreate(t, n.Backend, slot(t, gpus[1], "1g.10gb", 0))
	s := slot(t, gpus[0], "4g.40gb", 0)
	n.FailNextComputeInstance(t, gpus[0].UUID)
	if _, err := n.Backend.CreateMIGDevice(context.Background(), s); err == nil || !strings.Contains(err.Error(), gpus[0].UUID) {
		t.Fatalf("create with a failing compute instance: %v, want an error naming %s", err, gpus[0].UUID)
	}
	if got := migDevices(t, n.Backend, gpus[0].UUID); len(got) != 0 {
		t.Errorf("a failed create left %+v", got)
	}
	if got := migDevices(t, n.Backend, gpus[1].UUID); len(got) != 1 || got[0].UUID != other.UUID {
		t.Errorf("a failed create on one GPU changed another: %+v", got)
	}
	mustCreate(t, n.Backend, s)
}

// testMIGIncomplete: a GPU instance without a compute instance is reported
// as Incomplete (no UUID), holds its memory slices, and DestroyMIGDevice
// removes it, also from a reopened backend.
func testMIGIncomplete(t *testing.T, n MIGNode) {
	g := migGPUs(t, n.Backend)[0]
	s := slot(t, g, "3g.40gb", 1)
	n.LeaveIncomplete(t, s)
	got := migDevices(t, n.Backend, g.UUID)
	if len(got) != 1 || !got[0].Incomplete || got[0].UUID != "" || gpu.SlotOf(g.UUID, got[0]) != s {
		t.Fatalf("after a half-made create: %+v, want one Incomplete device without UUID at %s", got, s)
	}
	if _, err := n.Backend.CreateMIGDevice(context.Background(), slot(t, g, "1g.10gb", 5)); !errors.Is(err, gpu.ErrMIGSlotTaken) {
		t.Errorf("creating over an incomplete device: %v, want ErrMIGSlotTaken", err)
	}
	again := n.Reopen(t)
	if got := migDevices(t, again, g.UUID); len(got) != 1 || !got[0].Incomplete {
		t.Fatalf("reopened backend sees %+v, want the Incomplete device", got)
	}
	if err := again.DestroyMIGDevice(context.Background(), s); err != nil {
		t.Fatalf("destroying the incomplete device: %v", err)
	}
	if got := migDevices(t, again, g.UUID); len(got) != 0 {
		t.Errorf("after destroy: %+v", got)
	}
	mustCreate(t, again, s)
}

// sameDevice compares what identifies a device; profiles are compared by ID.
func sameDevice(a, b gpu.MIGDevice) bool {
	return a.UUID == b.UUID && a.Profile.GIProfileID == b.Profile.GIProfileID && a.Placement == b.Placement &&
		a.GIID == b.GIID && a.CIID == b.CIID && a.Incomplete == b.Incomplete
}
