package contract

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/gpudra/gpudra/internal/gpu"
)

// SettingsBackend is a backend that can change GPU-wide settings and cut
// MIG devices (the cases need a MIG device's UUID to refuse).
type SettingsBackend interface {
	gpu.Backend
	gpu.SettingsManager
	gpu.MIGManager
}

// SettingsNode is a backend under test for the settings cases. When built,
// the node has at least one GPU in MIG mode with no MIG devices and at
// least two GPUs not in MIG mode, all with the Default compute mode and
// time slice.
type SettingsNode struct {
	Backend SettingsBackend
	// Reopen returns a new backend over the same hardware, as a restarted
	// plugin sees it: settings outlive the process that made them.
	Reopen func(t *testing.T) SettingsBackend
	// TimeSlice reads a GPU's time slice from the hardware. For a backend
	// whose Inventory can read it, that is Inventory; NVML cannot, so its
	// tests read what nvidia-smi was told.
	TimeSlice func(t *testing.T, uuid string) gpu.TimeSlice
}

// RunSettings runs every settings case, each on a node newNode builds.
func RunSettings(t *testing.T, newNode func(t *testing.T) SettingsNode) {
	cases := []struct {
		name string
		test func(t *testing.T, n SettingsNode)
	}{
		{"ComputeModeChangesOneGPU", testComputeMode},
		{"TimeSliceChangesOneGPU", testTimeSlice},
		{"RefusalsChangeNothing", testSettingsRefusals},
		{"SettingsOutliveTheProcess", testSettingsReopen},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.test(t, newNode(t)) })
	}
}

// settingsGPUs returns the node's GPUs not in MIG mode and one in MIG mode.
func settingsGPUs(t *testing.T, b gpu.Backend) (whole []gpu.GPU, mig gpu.GPU) {
	t.Helper()
	found := false
	for _, g := range inventory(t, b).GPUs {
		switch {
		case !g.MIGEnabled:
			whole = append(whole, g)
		case !found:
			mig, found = g, true
		}
	}
	if len(whole) < 2 || !found {
		t.Fatalf("node has %d GPUs not in MIG mode and MIG GPU %v, want at least two and one", len(whole), found)
	}
	return whole, mig
}

func computeModes(t *testing.T, b gpu.Backend) map[string]gpu.ComputeMode {
	t.Helper()
	out := map[string]gpu.ComputeMode{}
	for _, g := range inventory(t, b).GPUs {
		out[g.UUID] = g.ComputeMode
	}
	return out
}

func timeSlices(t *testing.T, n SettingsNode, gpus []gpu.GPU) map[string]gpu.TimeSlice {
	t.Helper()
	out := map[string]gpu.TimeSlice{}
	for _, g := range gpus {
		out[g.UUID] = n.TimeSlice(t, g.UUID)
	}
	return out
}

// testComputeMode: Exclusive_Process on one GPU shows in Inventory on that
// GPU only, and Default puts it back.
func testComputeMode(t *testing.T, n SettingsNode) {
	ctx := context.Background()
	whole, _ := settingsGPUs(t, n.Backend)
	before := computeModes(t, n.Backend)
	target := whole[1].UUID
	if err := n.Backend.SetComputeMode(ctx, target, gpu.ComputeModeExclusiveProcess); err != nil {
		t.Fatalf("SetComputeMode: %v", err)
	}
	want := maps(before, target, gpu.ComputeModeExclusiveProcess)
	if got := computeModes(t, n.Backend); !reflect.DeepEqual(got, want) {
		t.Errorf("after Exclusive_Process on %s:\n got  %v\n want %v", target, got, want)
	}
	if err := n.Backend.SetComputeMode(ctx, target, gpu.ComputeModeDefault); err != nil {
		t.Fatalf("SetComputeMode back: %v", err)
	}
	if got := computeModes(t, n.Backend); !reflect.DeepEqual(got, before) {
		t.Errorf("after Default on %s:\n got  %v\n want %v", target, got, before)
	}
}

// testTimeSlice: Long on one GPU reaches that GPU only; Default puts it
// back. A time slice does not touch the compute mode.
func testTimeSlice(t *testing.T, n SettingsNode) {
	ctx := context.Background()
	whole, _ := settingsGPUs(t, n.Backend)
	modes := computeModes(t, n.Backend)
	before := timeSlices(t, n, whole)
	target := whole[0].UUID
	if err := n.Backend.SetTimeSlice(ctx, target, gpu.TimeSliceLong); err != nil {
		t.Fatalf("SetTimeSlice: %v", err)
	}
	want := maps(before, target, gpu.TimeSliceLong)
	if got := timeSlices(t, n, whole); !reflect.DeepEqual(got, want) {
		t.Errorf("after Long on %s:\n got  %v\n want %v", target, got, want)
	}
	if got := computeModes(t, n.Backend); !reflect.DeepEqual(got, modes) {
		t.Errorf("a time slice changed compute modes:\n got  %v\n want %v", got, modes)
	}
	if err := n.Backend.SetTimeSlice(ctx, target, gpu.TimeSliceDefault); err != nil {
		t.Fatalf("SetTimeSlice back: %v", err)
	}
	if got := timeSlices(t, n, whole); !reflect.DeepEqual(got, before) {
		t.Errorf("after Default on %s:\n got  %v\n want %v", target, got, before)
	}
}

// testSettingsRefusals: an unknown UUID and a MIG device's UUID wrap
// ErrNotAGPU; a mode or time slice that does not exist is an error; none
// of them changes anything.
func testSettingsRefusals(t *testing.T, n SettingsNode) {
	ctx := context.Background()
	whole, migGPU := settingsGPUs(t, n.Backend)
	p := profile(t, migGPU, "1g.10gb")
	migDev := mustCreate(t, n.Backend, gpu.MIGSlot{ParentUUID: migGPU.UUID, GIProfileID: p.GIProfileID, Placement: p.Placements[0]})
	invBefore := inventory(t, n.Backend)
	slicesBefore := timeSlices(t, n, whole)

	for _, uuid := range []string{"GPU-00000000-dead-beef-0000-000000000000", migDev.UUID} {
		if err := n.Backend.SetComputeMode(ctx, uuid, gpu.ComputeModeExclusiveProcess); !errors.Is(err, gpu.ErrNotAGPU) {
			t.Errorf("SetComputeMode(%s) = %v, want an error wrapping ErrNotAGPU", uuid, err)
		}
		if err := n.Backend.SetTimeSlice(ctx, uuid, gpu.TimeSliceShort); !errors.Is(err, gpu.ErrNotAGPU) {
			t.Errorf("SetTimeSlice(%s) = %v, want an error wrapping ErrNotAGPU", uuid, err)
		}
	}
	if err := n.Backend.SetComputeMode(ctx, whole[0].UUID, "Exclusive_Thread"); err == nil {
		t.Error("SetComputeMode(Exclusive_Thread) succeeded; the mode is deprecated and not offered")
	}
	for _, ts := range []gpu.TimeSlice{gpu.TimeSliceUnknown, 4} {
		if err := n.Backend.SetTimeSlice(ctx, whole[0].UUID, ts); err == nil {
			t.Errorf("SetTimeSlice(%d) succeeded", int(ts))
		}
	}
	if got := inventory(t, n.Backend); !reflect.DeepEqual(got, invBefore) {
		t.Errorf("refused calls changed the inventory:\n got  %+v\n want %+v", got, invBefore)
	}
	if got := timeSlices(t, n, whole); !reflect.DeepEqual(got, slicesBefore) {
		t.Errorf("refused calls changed time slices: got %v, want %v", got, slicesBefore)
	}
}

// testSettingsReopen: a compute mode and a time slice set by one process
// are what the next one finds.
func testSettingsReopen(t *testing.T, n SettingsNode) {
	ctx := context.Background()
	whole, _ := settingsGPUs(t, n.Backend)
	target := whole[1].UUID
	if err := n.Backend.SetComputeMode(ctx, target, gpu.ComputeModeExclusiveProcess); err != nil {
		t.Fatal(err)
	}
	if err := n.Backend.SetTimeSlice(ctx, target, gpu.TimeSliceMedium); err != nil {
		t.Fatal(err)
	}
	if err := n.Backend.Close(); err != nil {
		t.Fatal(err)
	}
	b := n.Reopen(t)
	if got := inventory(t, b).FindGPU(target); got == nil || got.ComputeMode != gpu.ComputeModeExclusiveProcess {
		t.Errorf("after reopening, %s is %+v, want compute mode Exclusive_Process", target, got)
	}
	if got := n.TimeSlice(t, target); got != gpu.TimeSliceMedium {
		t.Errorf("after reopening, %s has time slice %s, want Medium", target, got)
	}
}

// maps returns a copy of m with key set to v.
func maps[V any](m map[string]V, key string, v V) map[string]V {
	out := make(map[string]V, len(m))
	for k, x := range m {
		out[k] = x
	}
	out[key] = v
	return out
}
