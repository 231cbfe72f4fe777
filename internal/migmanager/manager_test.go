package migmanager

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

func newNode(t *testing.T) (*sim.Backend, *Manager, *gpu.Inventory) {
	t.Helper()
	b, err := sim.New(sim.Options{NodeName: "node-a", Profile: "dgxh100-mig"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(b)
	if err != nil {
		t.Fatal(err)
	}
	return b, m, inventory(t, b)
}

func inventory(t *testing.T, b gpu.Backend) *gpu.Inventory {
	t.Helper()
	inv, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func slotFor(t *testing.T, inv *gpu.Inventory, device string) checkpoint.MIGSlot {
	t.Helper()
	s, err := SlotFor(inv, device)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSlotFor(t *testing.T) {
	_, _, inv := newNode(t)
	g := inv.GPUs[1]
	tests := []struct {
		device string
		want   checkpoint.MIGSlot
		err    string
	}{
		{device: "gpu-1-mig-3g40gb-9-4", want: checkpoint.MIGSlot{ParentUUID: g.UUID, Profile: "3g.40gb", GIProfileID: 9, PlacementStart: 4, PlacementSize: 4}},
		// A whole GPU in MIG mode is a MIG device spanning it.
		{device: "gpu-1", want: checkpoint.MIGSlot{ParentUUID: g.UUID, Profile: "7g.80gb", GIProfileID: 0, PlacementStart: 0, PlacementSize: 8}},
		{device: "gpu-1-mig-3g40gb-9-1", err: "1 is not a placement of 3g.40gb"},
		{device: "gpu-12", err: "no GPU with minor number 12"},
	}
	for _, tt := range tests {
		got, err := SlotFor(inv, tt.device)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %v, want %q", tt.device, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %+v %v, want %+v", tt.device, got, err, tt.want)
		}
	}
	if _, err := New(noMIG{}); err == nil || !strings.Contains(err.Error(), "cannot create MIG devices") {
		t.Errorf("New on a backend without MIG: %v", err)
	}
}

type noMIG struct{ gpu.Backend }

func (noMIG) Name() string { return "plain" }

// TestDestroyTakesOnlyItsOwnDevice: a record that knew its device's UUID
// never removes another device at the same slot.
func TestDestroyTakesOnlyItsOwnDevice(t *testing.T) {
	b, m, inv := newNode(t)
	ctx := context.Background()
	s := slotFor(t, inv, "gpu-0-mig-2g20gb-14-2")
	first, parent, err := m.Create(ctx, s, false)
	if err != nil || parent.UUID != s.ParentUUID {
		t.Fatalf("Create: %v (parent %v)", err, parent)
	}
	if err := m.Destroy(ctx, s, first.UUID); err != nil {
		t.Fatal(err)
	}
	second, _, err := m.Create(ctx, s, false)
	if err != nil {
		t.Fatal(err)
	}
	// The first claim's unprepare, retried, must not take the second's.
	if err := m.Destroy(ctx, s, first.UUID); err != nil {
		t.Fatal(err)
	}
	if got := inventory(t, b).GPUs[0].MIGDevices; len(got) != 1 || got[0].UUID != second.UUID {
		t.Fatalf("after a stale destroy: %+v, want %s", got, second.UUID)
	}
	if err := m.Destroy(ctx, s, ""); err != nil {
		t.Fatal(err)
	}
	if got := inventory(t, b).GPUs[0].MIGDevices; len(got) != 0 {
		t.Errorf("destroy without a UUID left %+v", got)
	}
}

func TestCreateAdoptsOnlyWhenAllowed(t *testing.T) {
	b, m, inv := newNode(t)
	ctx := context.Background()
	s := slotFor(t, inv, "gpu-2-mig-1g10gb-19-3")
	made, _, err := m.Create(ctx, s, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Create(ctx, s, false); !errors.Is(err, gpu.ErrMIGSlotTaken) {
		t.Errorf("second create without adopting: %v, want ErrMIGSlotTaken", err)
	}
	got, _, err := m.Create(ctx, s, true)
	if err != nil || got.UUID != made.UUID {
		t.Errorf("adopting: %+v %v, want %s", got, err, made.UUID)
	}
	// An overlapping slot is never adopted.
	if _, _, err := m.Create(ctx, slotFor(t, inv, "gpu-2-mig-2g20gb-14-2"), true); !errors.Is(err, gpu.ErrMIGSlotTaken) {
		t.Errorf("overlapping slot: %v, want ErrMIGSlotTaken", err)
	}
	// A half-made device at the slot is replaced.
	inc := slotFor(t, inv, "gpu-2-mig-3g40gb-9-4")
	if err := b.CreateIncompleteMIGDevice(Slot(inc)); err != nil {
		t.Fatal(err)
	}
	d, _, err := m.Create(ctx, inc, true)
	if err != nil || d.Incomplete || d.UUID == "" {
		t.Errorf("over an incomplete device: %+v %v", d, err)
	}
}

func TestReconcile(t *testing.T) {
	b, m, inv := newNode(t)
	ctx := context.Background()
	mk := func(device string) (checkpoint.MIGSlot, gpu.MIGDevice) {
		s := slotFor(t, inv, device)
		d, _, err := m.Create(ctx, s, false)
		if err != nil {
			t.Fatal(err)
		}
		return s, d
	}
	keptSlot, kept := mk("gpu-0-mig-3g40gb-9-0")
	_, orphan := mk("gpu-0-mig-1g10gb-19-6")
	adoptSlot, adopt := mk("gpu-1-mig-4g40gb-5-0")
	incSlot := slotFor(t, inv, "gpu-3-mig-2g20gb-14-4")
	if err := b.CreateIncompleteMIGDevice(Slot(incSlot)); err != nil {
		t.Fatal(err)
	}
	missing := slotFor(t, inv, "gpu-4") // completed before a reboot
	started := slotFor(t, inv, "gpu-5-mig-1g10gb-19-0")
	wants := []Want{
		{Slot: keptSlot, UUID: kept.UUID, Completed: true},
		{Slot: adoptSlot, Completed: false},
		{Slot: incSlot, Completed: false},
		{Slot: missing, UUID: "MIG-before-reboot", Completed: true},
		{Slot: started},
	}

	r, err := m.Reconcile(ctx, func() []Want { return wants }, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Destroyed) != 2 || !strings.Contains(strings.Join(r.Destroyed, ";"), orphan.UUID) || !strings.Contains(strings.Join(r.Destroyed, ";"), "incomplete") {
		t.Errorf("destroyed %v, want the orphan %s and the incomplete device", r.Destroyed, orphan.UUID)
	}
	if len(r.Recreated) != 0 || r.Adopted[1].UUID != adopt.UUID || len(r.Errors) != 0 {
		t.Errorf("without recreate: recreated %v, adopted %v, errors %v", r.Recreated, r.Adopted, r.Errors)
	}

	r, err = m.Reconcile(ctx, func() []Want { return wants }, true)
	if err != nil {
		t.Fatal(err)
	}
	re, ok := r.Recreated[3]
	if !ok || len(r.Recreated) != 1 || re.Profile.Name != "7g.80gb" || re.UUID == "MIG-before-reboot" || len(r.Destroyed) != 0 {
		t.Errorf("with recreate: recreated %+v, destroyed %v; want only the missing completed one, with a new UUID", r.Recreated, r.Destroyed)
	}
	after := inventory(t, b)
	count := 0
	for _, g := range after.GPUs {
		count += len(g.MIGDevices)
	}
	// kept, adopted, re-created; the started record's device is not made.
	if count != 3 || len(after.GPUs[5].MIGDevices) != 0 {
		t.Errorf("%d MIG devices on the node (GPU 5 has %d), want 3 and none", count, len(after.GPUs[5].MIGDevices))
	}
}
