package nvml

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/gpudra/gpudra/internal/gpu"
)

const mib = 1024 * 1024

// newTestBackend opens a backend on a prepared mock server with an empty
// sysfs, and closes it when the test ends.
func newTestBackend(t *testing.T, srv *server.Server) *Backend {
	t.Helper()
	b, err := New(Options{Lib: srv, SysfsRoot: t.TempDir()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func inventory(t *testing.T, b *Backend) *gpu.Inventory {
	t.Helper()
	inv, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	return inv
}

func profileNames(profiles []gpu.MIGProfile) []string {
	names := make([]string, 0, len(profiles))
	for _, p := range profiles {
		names = append(names, p.Name)
	}
	return names
}

func TestInventoryDGXH100(t *testing.T) {
	srv := dgxh100.New()
	// Bus IDs out of index order, so sorting by bus is visible.
	fillMockGaps(t, srv,
		"0000:ca:00.0", "0000:18:00.0", "0000:9a:00.0", "0000:2a:00.0",
		"0000:db:00.0", "0000:3a:00.0", "0000:ba:00.0", "0000:ab:00.0")
	inv := inventory(t, newTestBackend(t, srv))

	if inv.DriverVersion != "550.54.15" {
		t.Errorf("DriverVersion = %q, want 550.54.15", inv.DriverVersion)
	}
	if want := (gpu.Version{Major: 12, Minor: 4}); inv.CUDADriverVersion != want {
		t.Errorf("CUDADriverVersion = %v, want %v", inv.CUDADriverVersion, want)
	}

	wantOrder := []struct {
		index int
		busID string
	}{
		{1, "0000:18:00.0"}, {3, "0000:2a:00.0"}, {5, "0000:3a:00.0"}, {2, "0000:9a:00.0"},
		{7, "0000:ab:00.0"}, {6, "0000:ba:00.0"}, {0, "0000:ca:00.0"}, {4, "0000:db:00.0"},
	}
	if len(inv.GPUs) != len(wantOrder) {
		t.Fatalf("found %d GPUs, want %d", len(inv.GPUs), len(wantOrder))
	}
	wantProfiles := []string{"1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb", "1g.10gb+me", "1g.20gb"}
	for i, want := range wantOrder {
		g := inv.GPUs[i]
		wantGPU := gpu.GPU{
			Index:                 want.index,
			Minor:                 want.index,
			UUID:                  mockUUID(want.index),
			ProductName:           "NVIDIA H100 80GB HBM3",
			Brand:                 "Nvidia",
			Architecture:          "Hopper",
			CUDAComputeCapability: gpu.Version{Major: 9, Minor: 0},
			MemoryBytes:           81920 * mib,
			PCIBusID:              want.busID,
			NUMANode:              -1,
			AddressingMode:        "HMM",
			MIGCapable:            true,
			ComputeMode:           gpu.ComputeModeDefault,
			TimeSlice:             gpu.TimeSliceUnknown,
			MIGProfiles:           g.MIGProfiles,
		}
		if !reflect.DeepEqual(g, wantGPU) {
			t.Errorf("GPU %d:\n got  %+v\n want %+v", i, g, wantGPU)
		}
		if got := profileNames(g.MIGProfiles); !reflect.DeepEqual(got, wantProfiles) {
			t.Errorf("GPU %d profiles = %v, want %v", i, got, wantProfiles)
		}
	}

	wantSmallest := gpu.MIGProfile{
		Name:            "1g.10gb",
		GIProfileID:     gonvml.GPU_INSTANCE_PROFILE_1_SLICE,
		CIProfileID:     gonvml.COMPUTE_INSTANCE_PROFILE_1_SLICE,
		SliceCount:      1,
		Multiprocessors: 16,
		CopyEngines:     1,
		Decoders:        1,
		MemoryBytes:     10240 * mib,
		Placements: []gpu.Placement{
			{Start: 0, Size: 1}, {Start: 1, Size: 1}, {Start: 2, Size: 1}, {Start: 3, Size: 1},
			{Start: 4, Size: 1}, {Start: 5, Size: 1}, {Start: 6, Size: 1},
		},
	}
	if got := inv.GPUs[0].MIGProfiles[0]; !reflect.DeepEqual(got, wantSmallest) {
		t.Errorf("first profile:\n got  %+v\n want %+v", got, wantSmallest)
	}
	whole := inv.GPUs[0].MIGProfiles[4]
	if whole.CIProfileID != gonvml.COMPUTE_INSTANCE_PROFILE_7_SLICE || whole.Multiprocessors != 112 {
		t.Errorf("7g.80gb profile = %+v, want CI profile %d and 112 multiprocessors", whole, gonvml.COMPUTE_INSTANCE_PROFILE_7_SLICE)
	}
}

func TestInventoryMIGDevices(t *testing.T) {
	srv := dgxa100.New()
	fillMockGaps(t, srv)
	dev := srv.Devices[0]
	if _, ret := dev.SetMigMode(gonvml.DEVICE_MIG_ENABLE); ret != gonvml.SUCCESS {
		t.Fatalf("SetMigMode: %v", ret)
	}
	// The smaller profile sits at the higher placement, so profile order and
	// placement order disagree and the inventory must sort.
	createMIGDevice(t, dev, gonvml.GPU_INSTANCE_PROFILE_3_SLICE, 0, gonvml.COMPUTE_INSTANCE_PROFILE_3_SLICE) // GI 0
	createMIGDevice(t, dev, gonvml.GPU_INSTANCE_PROFILE_1_SLICE, 6, gonvml.COMPUTE_INSTANCE_PROFILE_1_SLICE) // GI 1
	// A GPU instance split into a smaller compute instance is not a gpudra
	// MIG device and must not be reported as one.
	createMIGDevice(t, dev, gonvml.GPU_INSTANCE_PROFILE_2_SLICE, 4, gonvml.COMPUTE_INSTANCE_PROFILE_1_SLICE) // GI 2

	inv := inventory(t, newTestBackend(t, srv))
	g := inv.GPUs[0]
	if !g.MIGCapable || !g.MIGEnabled {
		t.Fatalf("GPU 0 MIGCapable=%v MIGEnabled=%v, want both true", g.MIGCapable, g.MIGEnabled)
	}
	profileByID := make(map[int]gpu.MIGProfile)
	for _, p := range g.MIGProfiles {
		profileByID[p.GIProfileID] = p
	}

	want := []gpu.MIGDevice{
		{
			UUID:      mockMIGUUID(0, 0, 0),
			Profile:   profileByID[gonvml.GPU_INSTANCE_PROFILE_3_SLICE],
			Placement: gpu.Placement{Start: 0, Size: 4},
			GIID:      0,
			CIID:      0,
		},
		{
			UUID:      mockMIGUUID(0, 1, 0),
			Profile:   profileByID[gonvml.GPU_INSTANCE_PROFILE_1_SLICE],
			Placement: gpu.Placement{Start: 6, Size: 1},
			GIID:      1,
			CIID:      0,
		},
	}
	if !reflect.DeepEqual(g.MIGDevices, want) {
		t.Fatalf("MIG devices:\n got  %+v\n want %+v", g.MIGDevices, want)
	}
	if got := []string{g.MIGDevices[0].Profile.Name, g.MIGDevices[1].Profile.Name}; !reflect.DeepEqual(got, []string{"3g.20gb", "1g.5gb"}) {
		t.Errorf("MIG device profiles = %v, want [3g.20gb 1g.5gb]", got)
	}
	for _, other := range inv.GPUs[1:] {
		if other.MIGEnabled || len(other.MIGDevices) != 0 {
			t.Errorf("GPU %d: MIGEnabled=%v with %d MIG devices, want MIG off", other.Index, other.MIGEnabled, len(other.MIGDevices))
		}
	}
}

// singleH100 returns a one-GPU mock node and its device.
func singleH100(t *testing.T) (*server.Server, *server.Device) {
	srv := dgxh100.NewWithGPUs(gpus.H100_SXM5_80GB)
	fillMockGaps(t, srv)
	return srv, srv.Devices[0].(*server.Device)
}

func TestInventoryOptionalReadings(t *testing.T) {
	tests := []struct {
		name   string
		modify func(t *testing.T, srv *server.Server, dev *server.Device)
		check  func(t *testing.T, inv *gpu.Inventory)
	}{
		{
			name: "memory falls back to GetMemoryInfo_v2",
			modify: func(t *testing.T, srv *server.Server, dev *server.Device) {
				dev.GetMemoryInfoFunc = func() (gonvml.Memory, gonvml.Return) { return gonvml.Memory{}, gonvml.ERROR_NOT_SUPPORTED }
				dev.GetMemoryInfo_v2Func = func() (gonvml.Memory_v2, gonvml.Return) {
					return gonvml.Memory_v2{Total: 96 * 1024 * mib}, gonvml.SUCCESS
				}
			},
			check: func(t *testing.T, inv *gpu.Inventory) {
				if got := inv.GPUs[0].MemoryBytes; got != 96*1024*mib {
					t.Errorf("MemoryBytes = %d, want %d", got, 96*1024*mib)
				}
			},
		},
		{
			name: "GPU without MIG has no profiles and no profile queries",
			modify: func(t *testing.T, srv *server.Server, dev *server.Device) {
				dev.GetMigModeFunc = func() (int, int, gonvml.Return) { return 0, 0, gonvml.ERROR_NOT_SUPPORTED }
				dev.GetGpuInstanceProfileInfoFunc = func(int) (gonvml.GpuInstanceProfileInfo, gonvml.Return) {
					t.Errorf("GetGpuInstanceProfileInfo called on a GPU without MIG")
					return gonvml.GpuInstanceProfileInfo{}, gonvml.ERROR_NOT_SUPPORTED
				}
			},
			check: func(t *testing.T, inv *gpu.Inventory) {
				g := inv.GPUs[0]
				if g.MIGCapable || g.MIGEnabled || g.MIGProfiles != nil {
					t.Errorf("MIGCapable=%v MIGEnabled=%v profiles=%v, want no MIG", g.MIGCapable, g.MIGEnabled, g.MIGProfiles)
				}
			},
		},
		{
			name: "exclusive-process compute mode",
			modify: func(t *testing.T, srv *server.Server, dev *server.Device) {
				dev.GetComputeModeFunc = func() (gonvml.ComputeMode, gonvml.Return) {
					return gonvml.COMPUTEMODE_EXCLUSIVE_PROCESS, gonvml.SUCCESS
				}
			},
			check: func(t *testing.T, inv *gpu.Inventory) {
				if got := inv.GPUs[0].ComputeMode; got != gpu.ComputeModeExclusiveProcess {
					t.Errorf("ComputeMode = %q, want %q", got, gpu.ComputeModeExclusiveProcess)
				}
			},
		},
		{
			name: "compute mode not supported is empty",
			modify: func(t *testing.T, srv *server.Server, dev *server.Device) {
				dev.GetComputeModeFunc = func() (gonvml.ComputeMode, gonvml.Return) { return 0, gonvml.ERROR_NOT_SUPPORTED }
			},
			check: func(t *testing.T, inv *gpu.Inventory) {
				if got := inv.GPUs[0].ComputeMode; got != "" {
					t.Errorf("ComputeMode = %q, want empty", got)
				}
			},
		},
		{
			name: "addressing mode not supported is empty",
			modify: func(t *testing.T, srv *server.Server, dev *server.Device) {
				dev.GetAddressingModeFunc = func() (gonvml.DeviceAddressingMode, gonvml.Return) {
					return gonvml.DeviceAddressingMode{}, gonvml.ERROR_NOT_SUPPORTED
				}
			},
			check: func(t *testing.T, inv *gpu.Inventory) {
				if got := inv.GPUs[0].AddressingMode; got != "" {
					t.Errorf("AddressingMode = %q, want empty", got)
				}
			},
		},
		{
			name: "driver without the addressing-mode API is never asked",
			modify: func(t *testing.T, srv *server.Server, dev *server.Device) {
				srv.LookupSymbolFunc = func(symbol string) error {
					if symbol == "nvmlDeviceGetAddressingMode" {
						return errors.New("undefined symbol")
					}
					return nil
				}
				dev.GetAddressingModeFunc = func() (gonvml.DeviceAddressingMode, gonvml.Return) {
					t.Errorf("GetAddressingMode called although the driver lacks it")
					return gonvml.DeviceAddressingMode{}, gonvml.SUCCESS
				}
			},
			check: func(t *testing.T, inv *gpu.Inventory) {
				if got := inv.GPUs[0].AddressingMode; got != "" {
					t.Errorf("AddressingMode = %q, want empty", got)
				}
			},
		},
		{
			name: "DGX Station display adapter is not a GPU",
			modify: func(t *testing.T, srv *server.Server, dev *server.Device) {
				dev.GetNameFunc = func() (string, gonvml.Return) { return "DGX Display", gonvml.SUCCESS }
			},
			check: func(t *testing.T, inv *gpu.Inventory) {
				if len(inv.GPUs) != 0 {
					t.Errorf("found %d GPUs, want the display adapter skipped", len(inv.GPUs))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, dev := singleH100(t)
			tt.modify(t, srv, dev)
			tt.check(t, inventory(t, newTestBackend(t, srv)))
		})
	}
}

func TestNewInitFailureCallsNothingElse(t *testing.T) {
	lib := &mock.Interface{}
	failOnEveryCall(t, lib)
	lib.InitFunc = func() gonvml.Return { return gonvml.ERROR_DRIVER_NOT_LOADED }

	b, err := New(Options{Lib: lib})
	if err == nil {
		t.Fatal("New succeeded, want an error")
	}
	if b != nil {
		t.Errorf("New returned a backend with its error")
	}
	if !errors.Is(err, gonvml.ERROR_DRIVER_NOT_LOADED) || !strings.Contains(err.Error(), "ERROR_DRIVER_NOT_LOADED") {
		t.Errorf("error %q does not carry ERROR_DRIVER_NOT_LOADED", err)
	}
	if n := len(lib.InitCalls()); n != 1 {
		t.Errorf("Init called %d times, want 1", n)
	}
}

func TestCloseShutsDownOnce(t *testing.T) {
	srv, _ := singleH100(t)
	b, err := New(Options{Lib: srv, SysfsRoot: t.TempDir()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if b.Name() != "nvml" {
		t.Errorf("Name = %q, want nvml", b.Name())
	}
	for range 2 {
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if n := len(srv.ShutdownCalls()); n != 1 {
		t.Errorf("Shutdown called %d times, want 1", n)
	}
	// After Shutdown the library is unloaded; a call into it would crash.
	srv.SystemGetDriverVersionFunc = func() (string, gonvml.Return) {
		t.Errorf("NVML called after Close")
		return "", gonvml.ERROR_UNINITIALIZED
	}
	if _, err := b.Inventory(context.Background()); !errors.Is(err, errClosed) {
		t.Errorf("Inventory after Close: err = %v, want %v", err, errClosed)
	}
}

func TestInventoryConcurrentCallsAgree(t *testing.T) {
	srv := dgxh100.New()
	fillMockGaps(t, srv)
	b := newTestBackend(t, srv)
	want := inventory(t, b)

	const callers = 4
	results := make([]*gpu.Inventory, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { results[i], errs[i] = b.Inventory(context.Background()) })
	}
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if !reflect.DeepEqual(results[i], want) {
			t.Errorf("caller %d saw a different inventory", i)
		}
	}
}
