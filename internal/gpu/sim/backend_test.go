package sim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/gpudra/gpudra/internal/gpu"
)

func TestNewOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{name: "profile", opts: Options{NodeName: "n", Profile: "l4x4"}},
		{name: "config file", opts: Options{NodeName: "n", ConfigFile: "testdata/mig-node.yaml"}},
		{name: "neither", opts: Options{NodeName: "n"}, want: []string{"a profile", "dgxh100", "or a config file is required"}},
		{name: "both", opts: Options{NodeName: "n", Profile: "l4x4", ConfigFile: "testdata/mig-node.yaml"}, want: []string{"not both"}},
		{name: "unknown profile", opts: Options{NodeName: "n", Profile: "dgx1"}, want: []string{`profile: unknown profile "dgx1"`, "mixed"}},
		{name: "no node name", opts: Options{Profile: "l4x4"}, want: []string{"node name is required"}},
		{name: "missing file", opts: Options{NodeName: "n", ConfigFile: "testdata/absent.yaml"}, want: []string{"sim config", "testdata/absent.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(tt.opts)
			wantErr(t, err, tt.want...)
			if err == nil && b.Name() != "sim" {
				t.Errorf("Name() = %q", b.Name())
			}
		})
	}
}

func TestInventoryIsADeepCopy(t *testing.T) {
	b := newProfile(t, "node-a", "mixed")
	inv := inventory(t, b)
	want := fmt.Sprintf("%+v", inv)

	g := &inv.GPUs[0]
	g.UUID = "GPU-changed"
	g.MIGEnabled = false
	g.MIGProfiles[0].Name = "changed"
	g.MIGProfiles[0].Placements[0].Start = 99
	g.MIGDevices[0].UUID = "MIG-changed"
	g.MIGDevices[0].Profile.Placements[0].Size = 99
	g.MIGDevices = append(g.MIGDevices[:1], g.MIGDevices[2:]...)
	inv.GPUs = inv.GPUs[:1]

	if got := fmt.Sprintf("%+v", inventory(t, b)); got != want {
		t.Errorf("mutating an inventory changed the backend:\n got %s\nwant %s", got, want)
	}
}

func TestCreatedMIGDeviceIsACopy(t *testing.T) {
	b, gpus := migNode(t)
	d, err := create(b, gpus[0], 9, 0)
	wantErr(t, err)
	d.Profile.Placements[0].Start = 99
	if got := inventory(t, b).GPUs[0].MIGDevices[0].Profile.Placements[0].Start; got != 0 {
		t.Errorf("mutating a returned MIG device changed the backend: start %d", got)
	}
}

func TestSetComputeMode(t *testing.T) {
	tests := []struct {
		name string
		mode gpu.ComputeMode
		uuid func(inv *gpu.Inventory) string
		want []string
	}{
		{name: "exclusive process", mode: gpu.ComputeModeExclusiveProcess},
		{name: "prohibited", mode: gpu.ComputeModeProhibited},
		{name: "back to default", mode: gpu.ComputeModeDefault},
		{name: "unknown mode", mode: "Exclusive_Thread", want: []string{`unknown compute mode "Exclusive_Thread"`}},
		{name: "MIG UUID", mode: gpu.ComputeModeDefault, uuid: func(inv *gpu.Inventory) string { return inv.GPUs[0].MIGDevices[0].UUID },
			want: []string{"is a MIG device of"}},
		{name: "unknown GPU", mode: gpu.ComputeModeDefault, uuid: func(*gpu.Inventory) string { return "GPU-missing" },
			want: []string{"GPU-missing: not a GPU of this node"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newProfile(t, "node-a", "mixed")
			inv := inventory(t, b)
			uuid := inv.GPUs[2].UUID
			if tt.uuid != nil {
				uuid = tt.uuid(inv)
			}
			wantErr(t, b.SetComputeMode(context.Background(), uuid, tt.mode), tt.want...)
			after := inventory(t, b)
			for i, g := range after.GPUs {
				want := gpu.ComputeModeDefault
				if i == 2 && len(tt.want) == 0 {
					want = tt.mode
				}
				if g.ComputeMode != want {
					t.Errorf("GPU %d compute mode %q, want %q", i, g.ComputeMode, want)
				}
			}
		})
	}
}

func TestClosedBackendRefusesCalls(t *testing.T) {
	b, gpus := migNode(t)
	mig := inventory(t, b).GPUs[1].MIGDevices[0]
	wantErr(t, b.Close())
	wantErr(t, b.Close())
	_, err := b.Inventory(context.Background())
	wantErr(t, err, "closed")
	_, err = create(b, gpus[0], 19, 0)
	wantErr(t, err, "closed")
	wantErr(t, destroy(b, gpus[1], mig), "closed")
	wantErr(t, b.SetMIGMode(gpus[0], false), "closed")
	wantErr(t, b.SetComputeMode(context.Background(), gpus[0], gpu.ComputeModeDefault), "closed")
	wantErr(t, b.SetTimeSlice(context.Background(), gpus[0], gpu.TimeSliceLong), "closed")
}

func TestInventoryHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newProfile(t, "node-a", "l4x4").Inventory(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Inventory on a cancelled context: %v", err)
	}
}

// TestConcurrentMIGOperations fills every GPU of a DGX H100 with 1g.10gb
// devices from parallel goroutines while others read the inventory; run
// with -race.
func TestConcurrentMIGOperations(t *testing.T) {
	b := newProfile(t, "node-a", "dgxh100")
	inv := inventory(t, b)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for _, g := range inv.GPUs {
		wantErr(t, b.SetMIGMode(g.UUID, true))
		for start := range 7 {
			wg.Go(func() {
				if _, err := create(b, g.UUID, 19, start); err != nil {
					errs <- err
				}
			})
		}
		wg.Go(func() {
			if _, err := b.Inventory(context.Background()); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, g := range inventory(t, b).GPUs {
		if len(g.MIGDevices) != 7 {
			t.Errorf("GPU %d has %d MIG devices, want 7", i, len(g.MIGDevices))
		}
		for j, d := range g.MIGDevices {
			if d.Placement.Start != j {
				t.Errorf("GPU %d device %d at placement %d: not sorted", i, j, d.Placement.Start)
			}
		}
	}
}

// TestConcurrentConflictingCreates races creates of overlapping devices on
// one GPU: exactly one may win.
func TestConcurrentConflictingCreates(t *testing.T) {
	b, gpus := migNode(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for range 16 {
		wg.Go(func() {
			if _, err := create(b, gpus[0], 0, 0); err == nil {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d concurrent creates of the whole-GPU profile succeeded, want 1", won)
	}
}
