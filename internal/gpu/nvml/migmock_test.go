package nvml

import (
	"sync"
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/gpudra/gpudra/internal/gpu"
)

// migHardware makes a mock server's MIG calls refuse what NVML refuses, so
// the MIG contract can run on it: go-nvml's mock creates a GPU instance at
// any placement, overlapping or not, with MIG mode off, and destroys a GPU
// instance that still holds compute instances. The GPUs with the given
// indexes are put in MIG mode.
type migHardware struct {
	mu sync.Mutex
	// failCI: the next compute-instance create on the GPU fails.
	failCI map[*server.Device]bool
}

func newMIGHardware(t *testing.T, srv *server.Server, migGPUs ...int) *migHardware {
	t.Helper()
	h := &migHardware{failCI: map[*server.Device]bool{}}
	for _, i := range migGPUs {
		srv.Devices[i].(*server.Device).MigMode = gonvml.DEVICE_MIG_ENABLE
	}
	for _, d := range srv.Devices {
		dev := d.(*server.Device)
		create := dev.CreateGpuInstanceWithPlacementFunc
		dev.CreateGpuInstanceWithPlacementFunc = func(info *gonvml.GpuInstanceProfileInfo, p *gonvml.GpuInstancePlacement) (gonvml.GpuInstance, gonvml.Return) {
			h.mu.Lock()
			defer h.mu.Unlock()
			if ret := h.checkCreate(dev, info, p); ret != gonvml.SUCCESS {
				return nil, ret
			}
			gi, ret := create(info, p)
			if ret == gonvml.SUCCESS {
				h.guard(dev, gi.(*server.GpuInstance))
			}
			return gi, ret
		}
		dev.CreateGpuInstanceFunc = func(*gonvml.GpuInstanceProfileInfo) (gonvml.GpuInstance, gonvml.Return) {
			t.Error("gpudra must create GPU instances at a placement, not with CreateGpuInstance")
			return nil, gonvml.ERROR_NOT_SUPPORTED
		}
	}
	return h
}

// checkCreate answers as NVML does: NOT_SUPPORTED with MIG mode off,
// INVALID_ARGUMENT for a placement not of the profile, INSUFFICIENT_RESOURCES
// for one overlapping a GPU instance. h.mu is held.
func (h *migHardware) checkCreate(dev *server.Device, info *gonvml.GpuInstanceProfileInfo, p *gonvml.GpuInstancePlacement) gonvml.Return {
	dev.RLock()
	defer dev.RUnlock()
	if dev.MigMode != gonvml.DEVICE_MIG_ENABLE {
		return gonvml.ERROR_NOT_SUPPORTED
	}
	valid := false
	for _, q := range dev.Config.MIGProfiles.GpuInstancePlacements[int(info.Id)] {
		valid = valid || q == *p
	}
	if !valid {
		return gonvml.ERROR_INVALID_ARGUMENT
	}
	want := gpu.Placement{Start: int(p.Start), Size: int(p.Size)}
	for gi := range dev.GpuInstances {
		have := gpu.Placement{Start: int(gi.Info.Placement.Start), Size: int(gi.Info.Placement.Size)}
		if have.Overlaps(want) {
			return gonvml.ERROR_INSUFFICIENT_RESOURCES
		}
	}
	return gonvml.SUCCESS
}

// guard gives a new GPU instance NVML's rules: an armed compute-instance
// failure, and IN_USE for destroying it while compute instances remain.
func (h *migHardware) guard(dev *server.Device, gi *server.GpuInstance) {
	createCI, destroy := gi.CreateComputeInstanceFunc, gi.DestroyFunc
	gi.CreateComputeInstanceFunc = func(info *gonvml.ComputeInstanceProfileInfo) (gonvml.ComputeInstance, gonvml.Return) {
		h.mu.Lock()
		fail := h.failCI[dev]
		delete(h.failCI, dev)
		h.mu.Unlock()
		if fail {
			return nil, gonvml.ERROR_INSUFFICIENT_RESOURCES
		}
		return createCI(info)
	}
	gi.DestroyFunc = func() gonvml.Return {
		gi.RLock()
		busy := len(gi.ComputeInstances) > 0
		gi.RUnlock()
		if busy {
			return gonvml.ERROR_IN_USE
		}
		return destroy()
	}
}

// failNextComputeInstance arms a compute-instance failure on the GPU.
func (h *migHardware) failNextComputeInstance(dev *server.Device) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failCI[dev] = true
}

// leaveIncomplete makes only the GPU instance at slot, through the checked
// create, as a process that dies between the two NVML calls leaves it.
func (h *migHardware) leaveIncomplete(t *testing.T, srv *server.Server, slot gpu.MIGSlot) {
	t.Helper()
	dev, ret := srv.DeviceGetHandleByUUID(slot.ParentUUID)
	if ret != gonvml.SUCCESS {
		t.Fatalf("no GPU %s: %v", slot.ParentUUID, ret)
	}
	for i := range gonvml.GPU_INSTANCE_PROFILE_COUNT {
		info, ret := dev.GetGpuInstanceProfileInfo(i)
		if ret != gonvml.SUCCESS || int(info.Id) != slot.GIProfileID {
			continue
		}
		p := gonvml.GpuInstancePlacement{Start: uint32(slot.Placement.Start), Size: uint32(slot.Placement.Size)}
		if _, ret := dev.CreateGpuInstanceWithPlacement(&info, &p); ret != gonvml.SUCCESS {
			t.Fatalf("create GPU instance at %s: %v", slot, ret)
		}
		return
	}
	t.Fatalf("GPU %s has no GPU instance profile %d", slot.ParentUUID, slot.GIProfileID)
}
