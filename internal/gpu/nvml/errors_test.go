package nvml

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/gpudra/gpudra/internal/gpu"
)

func TestInventoryFailsWhenNVMLDoes(t *testing.T) {
	unknown := gonvml.ERROR_UNKNOWN
	tests := []struct {
		name    string
		breakIt func(srv *server.Server)
		want    string
	}{
		{
			name: "driver version",
			breakIt: func(srv *server.Server) {
				srv.SystemGetDriverVersionFunc = func() (string, gonvml.Return) { return "", unknown }
			},
			want: "nvmlSystemGetDriverVersion: UNKNOWN",
		},
		{
			name: "CUDA version",
			breakIt: func(srv *server.Server) {
				srv.SystemGetCudaDriverVersionFunc = func() (int, gonvml.Return) { return 0, unknown }
			},
			want: "nvmlSystemGetCudaDriverVersion: UNKNOWN",
		},
		{
			name:    "device count",
			breakIt: func(srv *server.Server) { srv.DeviceGetCountFunc = func() (int, gonvml.Return) { return 0, unknown } },
			want:    "nvmlDeviceGetCount: UNKNOWN",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := dgxh100.New()
			fillMockGaps(t, srv)
			tt.breakIt(srv)
			_, err := newTestBackend(t, srv).Inventory(context.Background())
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Inventory error = %v, want %q", err, tt.want)
			}
			if !errors.Is(err, unknown) {
				t.Errorf("error %q does not wrap %v", err, unknown)
			}
		})
	}
}

// TestInventoryLeavesOutUnreadableGPU breaks one call on GPU 2 of eight: the
// inventory still succeeds, the other seven GPUs (one of them with a MIG
// device) are exactly as before, and GPU 2 is in Unavailable with the call,
// the return code and as much of its identity as NVML still gives.
func TestInventoryLeavesOutUnreadableGPU(t *testing.T) {
	unknown := gonvml.ERROR_UNKNOWN
	const bad = 2
	busID := "0000:02:00.0"
	fullIdentity := func(reason string) gpu.UnavailableGPU {
		return gpu.UnavailableGPU{Index: bad, Minor: bad, UUID: mockUUID(bad), PCIBusID: busID, Reason: reason}
	}
	tests := []struct {
		name    string
		breakIt func(srv *server.Server, dev *server.Device)
		want    gpu.UnavailableGPU
	}{
		{
			name: "device handle",
			breakIt: func(srv *server.Server, dev *server.Device) {
				srv.DeviceGetHandleByIndexFunc = func(i int) (gonvml.Device, gonvml.Return) {
					if i == bad {
						return nil, gonvml.ERROR_GPU_IS_LOST
					}
					return srv.Devices[i], gonvml.SUCCESS
				}
			},
			want: gpu.UnavailableGPU{Index: bad, Minor: -1, Reason: "nvmlDeviceGetHandleByIndex: GPU_IS_LOST"},
		},
		{
			name:    "GPU lost: every call fails",
			breakIt: func(srv *server.Server, dev *server.Device) { loseDevice(dev) },
			want:    gpu.UnavailableGPU{Index: bad, Minor: -1, Reason: "nvmlDeviceGetName: GPU_IS_LOST"},
		},
		{
			name: "UUID",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.GetUUIDFunc = func() (string, gonvml.Return) { return "", gonvml.ERROR_GPU_IS_LOST }
			},
			want: gpu.UnavailableGPU{Index: bad, Minor: bad, PCIBusID: busID, Reason: "nvmlDeviceGetUUID: GPU_IS_LOST"},
		},
		{
			name: "minor number",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.GetMinorNumberFunc = func() (int, gonvml.Return) { return 0, unknown }
			},
			want: gpu.UnavailableGPU{Index: bad, Minor: -1, UUID: mockUUID(bad), PCIBusID: busID, Reason: "nvmlDeviceGetMinorNumber: UNKNOWN"},
		},
		{
			name: "memory, both versions",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.GetMemoryInfoFunc = func() (gonvml.Memory, gonvml.Return) { return gonvml.Memory{}, gonvml.ERROR_NOT_SUPPORTED }
				dev.GetMemoryInfo_v2Func = func() (gonvml.Memory_v2, gonvml.Return) { return gonvml.Memory_v2{}, unknown }
			},
			want: fullIdentity("nvmlDeviceGetMemoryInfo: NOT_SUPPORTED; nvmlDeviceGetMemoryInfo_v2: UNKNOWN"),
		},
		{
			name: "PCI info",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.GetPciInfoFunc = func() (gonvml.PciInfo, gonvml.Return) { return gonvml.PciInfo{}, unknown }
			},
			want: gpu.UnavailableGPU{Index: bad, Minor: bad, UUID: mockUUID(bad), Reason: "nvmlDeviceGetPciInfo: UNKNOWN"},
		},
		{
			name:    "malformed bus ID",
			breakIt: func(srv *server.Server, dev *server.Device) { dev.PciBusID = "not-a-bus-id" },
			want: gpu.UnavailableGPU{Index: bad, Minor: bad, UUID: mockUUID(bad),
				Reason: `nvmlDeviceGetPciInfo: PCI bus ID "0000NOT-A-BUS-ID" is not domain:bus:device.function`},
		},
		{
			name: "compute mode",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.GetComputeModeFunc = func() (gonvml.ComputeMode, gonvml.Return) { return 0, unknown }
			},
			want: fullIdentity("nvmlDeviceGetComputeMode: UNKNOWN"),
		},
		{
			name: "MIG mode",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.GetMigModeFunc = func() (int, int, gonvml.Return) { return 0, 0, unknown }
			},
			want: fullIdentity("nvmlDeviceGetMigMode: UNKNOWN"),
		},
		{
			name: "MIG profile",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.GetGpuInstanceProfileInfoFunc = func(int) (gonvml.GpuInstanceProfileInfo, gonvml.Return) {
					return gonvml.GpuInstanceProfileInfo{}, unknown
				}
			},
			want: fullIdentity("nvmlDeviceGetGpuInstanceProfileInfo(0): UNKNOWN"),
		},
		{
			name: "MIG placements",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.GetGpuInstancePossiblePlacementsFunc = func(*gonvml.GpuInstanceProfileInfo) ([]gonvml.GpuInstancePlacement, gonvml.Return) {
					return nil, unknown
				}
			},
			want: fullIdentity("nvmlDeviceGetGpuInstancePossiblePlacements(1g.10gb): UNKNOWN"),
		},
		{
			name: "MIG GPU instances",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.MigMode = gonvml.DEVICE_MIG_ENABLE
				dev.GetGpuInstancesFunc = func(*gonvml.GpuInstanceProfileInfo) ([]gonvml.GpuInstance, gonvml.Return) { return nil, unknown }
			},
			want: fullIdentity("nvmlDeviceGetGpuInstances(1g.10gb): UNKNOWN"),
		},
		{
			name: "MIG device handle",
			breakIt: func(srv *server.Server, dev *server.Device) {
				dev.MigMode = gonvml.DEVICE_MIG_ENABLE
				dev.GetMigDeviceHandleByIndexFunc = func(int) (gonvml.Device, gonvml.Return) { return nil, unknown }
			},
			want: fullIdentity("nvmlDeviceGetMigDeviceHandleByIndex(0): UNKNOWN"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := dgxh100.New()
			fillMockGaps(t, srv)
			// A neighbour with a MIG device: MIG reading goes on past the bad GPU.
			neighbour := srv.Devices[bad+1]
			if _, ret := neighbour.SetMigMode(gonvml.DEVICE_MIG_ENABLE); ret != gonvml.SUCCESS {
				t.Fatalf("SetMigMode: %v", ret)
			}
			createMIGDevice(t, neighbour, gonvml.GPU_INSTANCE_PROFILE_1_SLICE, 0, gonvml.COMPUTE_INSTANCE_PROFILE_1_SLICE)
			b := newTestBackend(t, srv)
			before := inventory(t, b)
			if len(before.GPUs) != 8 || len(before.GPUs[bad+1].MIGDevices) != 1 {
				t.Fatalf("setup: %d GPUs, GPU %d has %d MIG devices; want 8 and 1", len(before.GPUs), bad+1, len(before.GPUs[bad+1].MIGDevices))
			}

			tt.breakIt(srv, srv.Devices[bad].(*server.Device))
			inv := inventory(t, b)
			wantGPUs := slices.DeleteFunc(slices.Clone(before.GPUs), func(g gpu.GPU) bool { return g.Index == bad })
			if !reflect.DeepEqual(inv.GPUs, wantGPUs) {
				t.Errorf("the other GPUs changed:\n got  %+v\n want %+v", inv.GPUs, wantGPUs)
			}
			if want := []gpu.UnavailableGPU{tt.want}; !reflect.DeepEqual(inv.Unavailable, want) {
				t.Errorf("Unavailable:\n got  %+v\n want %+v", inv.Unavailable, want)
			}
		})
	}
}

func TestReturnCodeName(t *testing.T) {
	for ret, want := range map[gonvml.Return]string{
		gonvml.ERROR_GPU_IS_LOST: "GPU_IS_LOST",
		gonvml.ERROR_UNKNOWN:     "UNKNOWN",
		gonvml.Return(12345):     "return code 12345",
	} {
		if got := returnCodeName(ret); got != want {
			t.Errorf("returnCodeName(%d) = %q, want %q", ret, got, want)
		}
		if err := nvmlCall("nvmlX", ret); !errors.Is(err, ret) || !strings.HasPrefix(err.Error(), "nvmlX: ") {
			t.Errorf("nvmlCall(nvmlX, %d) = %v, want it to wrap the return and name the call", ret, err)
		}
	}
}
