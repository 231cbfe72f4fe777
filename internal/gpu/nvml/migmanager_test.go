package nvml

import (
	"context"
	"errors"
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/gpudra/gpudra/internal/gpu"
)

// TestEnableMIGMode: a GPU that takes the change at once is in MIG mode
// afterwards; one that leaves it pending (it needs a reset) or refuses it
// (processes run) is an error saying so; a GPU already in MIG mode is left
// alone (no SetMigMode call).
func TestEnableMIGMode(t *testing.T) {
	tests := []struct {
		name    string
		already bool
		// set replaces the mock's SetMigMode; nil keeps it (the change
		// takes effect at once).
		set     func(dev *server.Device) func(int) (gonvml.Return, gonvml.Return)
		wantErr string
	}{
		{name: "takes effect"},
		{name: "already on", already: true, set: func(*server.Device) func(int) (gonvml.Return, gonvml.Return) {
			return func(int) (gonvml.Return, gonvml.Return) {
				t.Error("SetMigMode called on a GPU already in MIG mode")
				return gonvml.SUCCESS, gonvml.SUCCESS
			}
		}},
		{name: "pending until a reset", set: func(dev *server.Device) func(int) (gonvml.Return, gonvml.Return) {
			return func(int) (gonvml.Return, gonvml.Return) {
				dev.GetMigModeFunc = func() (int, int, gonvml.Return) {
					return gonvml.DEVICE_MIG_DISABLE, gonvml.DEVICE_MIG_ENABLE, gonvml.SUCCESS
				}
				return gonvml.ERROR_RESET_REQUIRED, gonvml.SUCCESS
			}
		}, wantErr: "needs a reset"},
		{name: "processes run", set: func(*server.Device) func(int) (gonvml.Return, gonvml.Return) {
			return func(int) (gonvml.Return, gonvml.Return) { return gonvml.SUCCESS, gonvml.ERROR_IN_USE }
		}, wantErr: "processes run on the GPU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := dgxh100.New()
			fillMockGaps(t, srv)
			dev := srv.Devices[2].(*server.Device)
			if tt.already {
				dev.MigMode = gonvml.DEVICE_MIG_ENABLE
			}
			if tt.set != nil {
				dev.SetMigModeFunc = tt.set(dev)
			}
			b := newTestBackend(t, srv)
			err := b.EnableMIGMode(context.Background(), dev.UUID)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), dev.UUID) {
					t.Fatalf("EnableMIGMode: %v, want an error naming %s and saying %q", err, dev.UUID, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("EnableMIGMode: %v", err)
			}
			g := inventory(t, b).FindGPU(dev.UUID)
			if g == nil || !g.MIGEnabled {
				t.Fatalf("after EnableMIGMode the inventory shows %+v, want MIG mode on", g)
			}
			if other := inventory(t, b).FindGPU(srv.Devices[3].(*server.Device).UUID); other.MIGEnabled {
				t.Error("enabling MIG mode on one GPU turned it on on another")
			}
		})
	}
}

// TestDestroyRefusedWhileInUse: a compute instance NVML will not destroy
// (processes on it) fails the destroy with the reason, and the device stays.
func TestDestroyRefusedWhileInUse(t *testing.T) {
	srv := dgxh100.New()
	fillMockGaps(t, srv)
	newMIGHardware(t, srv, 0)
	b := newTestBackend(t, srv)
	g := inventory(t, b).GPUs[0]
	p := g.MIGProfiles[0]
	slot := gpu.MIGSlot{ParentUUID: g.UUID, GIProfileID: p.GIProfileID, Placement: p.Placements[0]}
	if _, err := b.CreateMIGDevice(context.Background(), slot); err != nil {
		t.Fatal(err)
	}
	dev := srv.Devices[0].(*server.Device)
	for gi := range dev.GpuInstances {
		for ci := range gi.ComputeInstances {
			ci.DestroyFunc = func() gonvml.Return { return gonvml.ERROR_IN_USE }
		}
	}
	err := b.DestroyMIGDevice(context.Background(), slot)
	if err == nil || !strings.Contains(err.Error(), "processes still run") || errors.Is(err, gpu.ErrMIGNotFound) {
		t.Fatalf("destroy of a busy device: %v, want an IN_USE error", err)
	}
	if got := inventory(t, b).GPUs[0].MIGDevices; len(got) != 1 {
		t.Errorf("a refused destroy left %d devices, want 1", len(got))
	}
}
