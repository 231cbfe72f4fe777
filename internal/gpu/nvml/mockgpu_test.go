package nvml

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

// This file fills the gaps of go-nvml's mock servers so the backend reads
// them like real hardware: the mocks have random UUIDs, an empty
// PciInfo.BusId, and panic on compute mode, addressing mode and MIG device
// handles.

// mockUUID is the deterministic UUID given to mock GPU i.
func mockUUID(i int) string {
	return fmt.Sprintf("GPU-00000000-0000-0000-0000-%012d", i)
}

// mockMIGUUID is the UUID of the MIG device (gi, ci) on mock GPU i.
func mockMIGUUID(i, gi, ci int) string {
	return fmt.Sprintf("MIG-%08d-0000-0000-%04d-%012d", i, gi, ci)
}

// fillMockGaps prepares every device of srv. busIDs, if given, replace the
// mock's bus IDs (one per device, in the mock's "0000:65:00.0" form).
func fillMockGaps(t *testing.T, srv *server.Server, busIDs ...string) {
	t.Helper()
	if len(busIDs) != 0 && len(busIDs) != len(srv.Devices) {
		t.Fatalf("fillMockGaps: %d bus IDs for %d devices", len(busIDs), len(srv.Devices))
	}
	for i, d := range srv.Devices {
		dev := d.(*server.Device)
		dev.UUID = mockUUID(i)
		if len(busIDs) != 0 {
			dev.PciBusID = busIDs[i]
		}
		dev.GetPciInfoFunc = func() (gonvml.PciInfo, gonvml.Return) {
			return gonvml.PciInfo{
				BusId:       nvmlBusID(dev.PciBusID),
				PciDeviceId: dev.Config.PciDeviceId,
			}, gonvml.SUCCESS
		}
		dev.GetComputeModeFunc = func() (gonvml.ComputeMode, gonvml.Return) {
			return gonvml.COMPUTEMODE_DEFAULT, gonvml.SUCCESS
		}
		dev.GetAddressingModeFunc = func() (gonvml.DeviceAddressingMode, gonvml.Return) {
			return gonvml.DeviceAddressingMode{Value: uint32(gonvml.DEVICE_ADDRESSING_MODE_HMM)}, gonvml.SUCCESS
		}
		dev.GetMaxMigDeviceCountFunc = func() (int, gonvml.Return) {
			return 7, gonvml.SUCCESS
		}
		dev.GetMigDeviceHandleByIndexFunc = func(slot int) (gonvml.Device, gonvml.Return) {
			handles := mockMIGHandles(i, dev)
			if slot < 0 || slot >= len(handles) {
				return nil, gonvml.ERROR_NOT_FOUND
			}
			return handles[slot], gonvml.SUCCESS
		}
	}
}

// nvmlBusID renders a bus ID the way NVML does: eight-digit domain, upper
// case, in a NUL-padded C char array.
func nvmlBusID(busID string) [32]int8 {
	var out [32]int8
	for i, c := range "0000" + strings.ToUpper(busID) {
		out[i] = int8(c)
	}
	return out
}

// mockMIGHandles returns one MIG device handle per compute instance on the
// mock GPU, in (GI ID, CI ID) order, as NVML does after MIG devices are made.
func mockMIGHandles(gpuIndex int, dev *server.Device) []gonvml.Device {
	type ids struct{ gi, ci int }
	var all []ids
	dev.RLock()
	for gi := range dev.GpuInstances {
		gi.RLock()
		for ci := range gi.ComputeInstances {
			all = append(all, ids{int(gi.Info.Id), int(ci.Info.Id)})
		}
		gi.RUnlock()
	}
	dev.RUnlock()
	sort.Slice(all, func(a, b int) bool {
		if all[a].gi != all[b].gi {
			return all[a].gi < all[b].gi
		}
		return all[a].ci < all[b].ci
	})

	handles := make([]gonvml.Device, 0, len(all))
	for _, id := range all {
		handles = append(handles, &mock.Device{
			IsMigDeviceHandleFunc:    func() (bool, gonvml.Return) { return true, gonvml.SUCCESS },
			GetGpuInstanceIdFunc:     func() (int, gonvml.Return) { return id.gi, gonvml.SUCCESS },
			GetComputeInstanceIdFunc: func() (int, gonvml.Return) { return id.ci, gonvml.SUCCESS },
			GetUUIDFunc:              func() (string, gonvml.Return) { return mockMIGUUID(gpuIndex, id.gi, id.ci), gonvml.SUCCESS },
		})
	}
	return handles
}

// createMIGDevice makes a GPU instance of the given profile index at the
// given placement start, with a compute instance of ciIndex inside it.
func createMIGDevice(t *testing.T, dev gonvml.Device, profileIndex, start, ciIndex int) {
	t.Helper()
	info, ret := dev.GetGpuInstanceProfileInfo(profileIndex)
	if ret != gonvml.SUCCESS {
		t.Fatalf("GetGpuInstanceProfileInfo(%d): %v", profileIndex, ret)
	}
	placements, ret := dev.GetGpuInstancePossiblePlacements(&info)
	if ret != gonvml.SUCCESS {
		t.Fatalf("GetGpuInstancePossiblePlacements(%d): %v", profileIndex, ret)
	}
	var placement *gonvml.GpuInstancePlacement
	for i := range placements {
		if int(placements[i].Start) == start {
			placement = &placements[i]
		}
	}
	if placement == nil {
		t.Fatalf("profile %d has no placement starting at %d", profileIndex, start)
	}
	gi, ret := dev.CreateGpuInstanceWithPlacement(&info, placement)
	if ret != gonvml.SUCCESS {
		t.Fatalf("CreateGpuInstanceWithPlacement: %v", ret)
	}
	ciInfo, ret := gi.GetComputeInstanceProfileInfo(ciIndex, gonvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
	if ret != gonvml.SUCCESS {
		t.Fatalf("GetComputeInstanceProfileInfo(%d): %v", ciIndex, ret)
	}
	if _, ret := gi.CreateComputeInstance(&ciInfo); ret != gonvml.SUCCESS {
		t.Fatalf("CreateComputeInstance: %v", ret)
	}
}

// failOnEveryCall sets every XxxFunc field of a moq mock (a pointer to
// struct) to one that fails the test, so a test can then allow only the
// calls it expects.
func failOnEveryCall(t *testing.T, moqMock any) {
	t.Helper()
	v := reflect.ValueOf(moqMock).Elem()
	for i := range v.NumField() {
		field, def := v.Field(i), v.Type().Field(i)
		if field.Kind() != reflect.Func || !field.CanSet() {
			continue
		}
		name := strings.TrimSuffix(def.Name, "Func")
		fnType := field.Type()
		field.Set(reflect.MakeFunc(fnType, func([]reflect.Value) []reflect.Value {
			t.Errorf("unexpected NVML call %s", name)
			results := make([]reflect.Value, fnType.NumOut())
			for j := range results {
				results[j] = reflect.Zero(fnType.Out(j))
			}
			return results
		}))
	}
}

// loseDevice makes every call on dev answer ERROR_GPU_IS_LOST, as NVML does
// for a GPU that fell off the bus (it still enumerates), and returns the
// function that brings it back.
func loseDevice(dev *server.Device) (recover func()) {
	v := reflect.ValueOf(&dev.Device).Elem()
	returnType := reflect.TypeFor[gonvml.Return]()
	saved := make(map[int]reflect.Value)
	for i := range v.NumField() {
		field := v.Field(i)
		if field.Kind() != reflect.Func || !field.CanSet() {
			continue
		}
		fnType := field.Type()
		if fnType.NumOut() == 0 || fnType.Out(fnType.NumOut()-1) != returnType {
			continue
		}
		saved[i] = reflect.ValueOf(field.Interface())
		field.Set(reflect.MakeFunc(fnType, func([]reflect.Value) []reflect.Value {
			results := make([]reflect.Value, fnType.NumOut())
			for j := range results {
				results[j] = reflect.Zero(fnType.Out(j))
			}
			results[len(results)-1] = reflect.ValueOf(gonvml.ERROR_GPU_IS_LOST)
			return results
		}))
	}
	return func() {
		for i, fn := range saved {
			v.Field(i).Set(fn)
		}
	}
}
