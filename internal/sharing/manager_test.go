package sharing

import (
	"context"
	"strings"
	"testing"

	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

func newNode(t *testing.T) (*sim.Backend, []gpu.GPU) {
	t.Helper()
	b, err := sim.NewFromConfig("node-a", &sim.Config{Profile: "dgxh100"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	inv, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b, inv.GPUs
}

func gpuState(t *testing.T, b *sim.Backend, uuid string) gpu.GPU {
	t.Helper()
	inv, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return *inv.FindGPU(uuid)
}

// A claim asking for another time slice than the GPU's holder: refused
// with both claims named, nothing recorded, the GPU unchanged.
func TestConflictRecordsNothingAndChangesNothing(t *testing.T) {
	ctx := context.Background()
	b, gpus := newNode(t)
	m := NewManager(b)
	g := gpus[1].UUID
	first, err := m.Acquire(ctx, "ns/a", "uid-a", []Setting{{GPU: g, Kind: TimeSlice, Value: "Long"}}, func() []Hold { return nil }, func([]Hold) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	recorded := false
	_, err = m.Acquire(ctx, "ns/b", "uid-b", []Setting{{GPU: g, Kind: TimeSlice, Value: "Short"}}, func() []Hold { return first }, func([]Hold) error { recorded = true; return nil })
	if err == nil || !strings.Contains(err.Error(), "claim ns/b asks for timeSlice Short on GPU "+g) || !strings.Contains(err.Error(), "claim ns/a (uid uid-a)") {
		t.Fatalf("err = %v, want one naming ns/b, ns/a and the GPU", err)
	}
	if recorded {
		t.Error("the refused claim was recorded")
	}
	if got := gpuState(t, b, g).TimeSlice; got != gpu.TimeSliceLong {
		t.Errorf("time slice %s after the refusal, want Long", got)
	}
}

// A GPU that lost its settings under a holder (a reset, an admin) gets
// them back from Reconcile; other GPUs are not touched.
func TestReconcileReappliesWhatIsHeld(t *testing.T) {
	ctx := context.Background()
	b, gpus := newNode(t)
	m := NewManager(b)
	g := gpus[2].UUID
	holds, err := m.Acquire(ctx, "ns/a", "uid-a", []Setting{{GPU: g, Kind: TimeSlice, Value: "Short"}, {GPU: g, Kind: ComputeMode, Value: "Default"}}, func() []Hold { return nil }, func([]Hold) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetTimeSlice(ctx, g, gpu.TimeSliceDefault); err != nil {
		t.Fatal(err)
	}
	if err := b.SetComputeMode(ctx, g, gpu.ComputeModeExclusiveProcess); err != nil {
		t.Fatal(err)
	}
	if err := NewManager(b).Reconcile(ctx, func() []Hold { return holds }); err != nil {
		t.Fatal(err)
	}
	if st := gpuState(t, b, g); st.TimeSlice != gpu.TimeSliceShort || st.ComputeMode != gpu.ComputeModeDefault {
		t.Errorf("after Reconcile: %s, %s; want Short, Default", st.TimeSlice, st.ComputeMode)
	}
	if st := gpuState(t, b, gpus[3].UUID); st.TimeSlice != gpu.TimeSliceDefault || st.ComputeMode != gpu.ComputeModeDefault {
		t.Errorf("another GPU changed: %s, %s", st.TimeSlice, st.ComputeMode)
	}
}

// A restore that fails keeps the record: forget is not called, and the
// next Release (once the GPU answers) restores and forgets.
func TestFailedRestoreKeepsTheRecord(t *testing.T) {
	ctx := context.Background()
	b, gpus := newNode(t)
	m := NewManager(b)
	g := gpus[0].UUID
	holds, err := m.Acquire(ctx, "ns/a", "uid-a", []Setting{{GPU: g, Kind: TimeSlice, Value: "Long"}}, func() []Hold { return nil }, func([]Hold) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	broken := holds[0]
	broken.Previous = "Sideways" // what a hand-edited checkpoint could hold
	forgot := false
	err = m.Release(ctx, "ns/a", []Hold{broken}, func() []Hold { return nil }, func() error { forgot = true; return nil })
	if err == nil || !strings.Contains(err.Error(), "claim ns/a: restore") || forgot {
		t.Fatalf("Release = %v, forgot %v; want a restore error and the record kept", err, forgot)
	}
	if err := m.Release(ctx, "ns/a", holds, func() []Hold { return nil }, func() error { forgot = true; return nil }); err != nil || !forgot {
		t.Fatalf("second Release = %v, forgot %v", err, forgot)
	}
	if got := gpuState(t, b, g).TimeSlice; got != gpu.TimeSliceDefault {
		t.Errorf("time slice %s after release, want Default", got)
	}
}

// A hold released between Reconcile's first look and its turn at the GPU
// (an unprepare that just restored the setting) is not applied again.
func TestReconcileDoesNotApplyAHoldReleasedMeanwhile(t *testing.T) {
	ctx := context.Background()
	b, gpus := newNode(t)
	m := NewManager(b)
	g := gpus[4].UUID
	holds, err := m.Acquire(ctx, "ns/a", "uid-a", []Setting{{GPU: g, Kind: ComputeMode, Value: "Exclusive_Process"}}, func() []Hold { return nil }, func([]Hold) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	current := func() []Hold {
		calls++
		if calls == 1 {
			// Reconcile's first look sees the hold; the claim is then
			// unprepared before Reconcile takes the GPU's lock.
			if err := m.Release(ctx, "ns/a", holds, func() []Hold { return nil }, func() error { return nil }); err != nil {
				t.Fatal(err)
			}
			return holds
		}
		return nil
	}
	if err := m.Reconcile(ctx, current); err != nil {
		t.Fatal(err)
	}
	if calls < 2 {
		t.Fatalf("Reconcile read the holds %d time(s); it must read them again under the GPU's lock", calls)
	}
	if cm := gpuState(t, b, g).ComputeMode; cm != gpu.ComputeModeDefault {
		t.Errorf("compute mode %s after a released hold was reconciled, want Default", cm)
	}
}
