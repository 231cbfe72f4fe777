package nvml

import (
	"context"
	"errors"
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

func TestInventoryErrorsNameGPUAndCall(t *testing.T) {
	unknown := gonvml.ERROR_UNKNOWN
	tests := []struct {
		name    string
		breakIt func(srv *server.Server, dev *server.Device)
		want    []string
		wantIs  error
	}{
		{
			name: "driver version",
			breakIt: func(srv *server.Server, dev *server.Device) {
				srv.SystemGetDriverVersionFunc = func() (string, gonvml.Return) { return "", unknown }
			},
			want:   []string{"SystemGetDriverVersion"},
			wantIs: unknown,
		},
		{
			name: "device handle",
			breakIt: func(srv *server.Server, dev *server.Device) {
				srv.DeviceGetHandleByIndexFunc = func(i int) (gonvml.Device, gonvml.Return) {
					if i == 2 {
						return nil, gonvml.ERROR_GPU_IS_LOST
					}
					return srv.Devices[i], gonvml.SUCCESS
				}
			},
			want:   []string{"gpu 2: DeviceGetHandleByIndex"},
			wantIs: gonvml.ERROR_GPU_IS_LOST,
		},
		{
			name: "UUID",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.GetUUIDFunc = func() (string, gonvml.Return) { return "", unknown }
			},
			want:   []string{"gpu 2: GetUUID"},
			wantIs: unknown,
		},
		{
			name: "memory, both versions",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.GetMemoryInfoFunc = func() (gonvml.Memory, gonvml.Return) { return gonvml.Memory{}, unknown }
				dev.GetMemoryInfo_v2Func = func() (gonvml.Memory_v2, gonvml.Return) { return gonvml.Memory_v2{}, unknown }
			},
			want:   []string{"gpu 2: GetMemoryInfo", "GetMemoryInfo_v2"},
			wantIs: unknown,
		},
		{
			name: "PCI info",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.GetPciInfoFunc = func() (gonvml.PciInfo, gonvml.Return) { return gonvml.PciInfo{}, unknown }
			},
			want:   []string{"gpu 2: GetPciInfo"},
			wantIs: unknown,
		},
		{
			name: "malformed bus ID",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.PciBusID = "not-a-bus-id"
			},
			want: []string{"gpu 2: GetPciInfo", `"0000NOT-A-BUS-ID"`},
		},
		{
			name: "MIG mode",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.GetMigModeFunc = func() (int, int, gonvml.Return) { return 0, 0, unknown }
			},
			want:   []string{"gpu 2: GetMigMode"},
			wantIs: unknown,
		},
		{
			name: "MIG profile",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.GetGpuInstanceProfileInfoFunc = func(int) (gonvml.GpuInstanceProfileInfo, gonvml.Return) {
					return gonvml.GpuInstanceProfileInfo{}, unknown
				}
			},
			want:   []string{"gpu 2: GetGpuInstanceProfileInfo(0)"},
			wantIs: unknown,
		},
		{
			name: "MIG device handle",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.MigMode = gonvml.DEVICE_MIG_ENABLE
				dev.GetMigDeviceHandleByIndexFunc = func(int) (gonvml.Device, gonvml.Return) { return nil, unknown }
			},
			want:   []string{"gpu 2: GetMigDeviceHandleByIndex(0)"},
			wantIs: unknown,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := dgxh100.New()
			fillMockGaps(t, srv)
			tt.breakIt(srv, srv.Devices[2].(*server.Device))
			_, err := newTestBackend(t, srv).Inventory(context.Background())
			if err == nil {
				t.Fatal("Inventory succeeded, want an error")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q does not wrap %v", err, tt.wantIs)
			}
		})
	}
}
