package nvcdi

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"golang.org/x/sys/unix"

	"github.com/gpudra/gpudra/internal/cdi"
	"github.com/gpudra/gpudra/internal/gpu"
)

// driverVersion is the version the dgxa100 mock reports; the fake driver
// root's libraries carry it as their suffix, as a real installation does.
const driverVersion = "550.54.15"

// fakeNode is a GPU node without a GPU: a driver root in a temporary
// directory holding the files the toolkit looks for, and go-nvml's DGX A100
// mock made deterministic and filled in where the toolkit calls methods the
// mock leaves out.
type fakeNode struct {
	root string
	nvml *server.Server
	gpus []*server.Device
	// migHandles are the MIG devices created with addMIGDevice, by UUID.
	migHandles map[string]*mock.Device
}

const libDir = "usr/lib/x86_64-linux-gnu"

func newFakeNode(t *testing.T) *fakeNode {
	t.Helper()
	n := &fakeNode{
		root:       t.TempDir(),
		nvml:       dgxa100.New(),
		migHandles: map[string]*mock.Device{},
	}
	for _, lib := range []string{"libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so"} {
		versioned := filepath.Join(libDir, lib+"."+driverVersion)
		n.writeFile(t, versioned, 0o644)
		n.symlink(t, lib+"."+driverVersion, filepath.Join(libDir, lib+".1"))
	}
	n.writeFile(t, "usr/bin/nvidia-smi", 0o755)
	n.writeFile(t, "lib/firmware/nvidia/"+driverVersion+"/gsp_ga10x.bin", 0o644)
	for _, node := range []string{"nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"} {
		n.charDevice(t, "dev/"+node)
	}

	for i, d := range n.nvml.Devices {
		dev := d.(*server.Device)
		// Deterministic identity; the mock's UUIDs are random and its
		// PciInfo has no bus ID. Bus IDs are ones no host has a DRM node
		// for, so the toolkit's sysfs lookup finds none.
		dev.UUID = fmt.Sprintf("GPU-00000000-0000-0000-0000-%012d", i)
		dev.PciBusID = fmt.Sprintf("0000:%02x:00.0", 0xe0+i)
		dev.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
			info := nvml.PciInfo{PciDeviceId: dev.Config.PciDeviceId}
			for j, c := range []byte(dev.PciBusID) {
				info.BusId[j] = int8(c)
			}
			return info, nvml.SUCCESS
		}
		dev.IsMigDeviceHandleFunc = func() (bool, nvml.Return) { return false, nvml.SUCCESS }
		n.gpus = append(n.gpus, dev)
		n.charDevice(t, fmt.Sprintf("dev/nvidia%d", dev.Minor))
	}

	// Handles are looked up by UUID for GPUs and MIG devices alike.
	gpuByUUID := n.nvml.DeviceGetHandleByUUIDFunc
	n.nvml.DeviceGetHandleByUUIDFunc = func(uuid string) (nvml.Device, nvml.Return) {
		if mig, ok := n.migHandles[uuid]; ok {
			return mig, nvml.SUCCESS
		}
		return gpuByUUID(uuid)
	}
	return n
}

// options are the editor options for this node, with the driver root as
// both driver and dev root.
func (n *fakeNode) options(t *testing.T) Options {
	return Options{
		DriverRoot:        n.root,
		NVIDIACDIHookPath: "/opt/gpudra/nvidia-cdi-hook",
		NvmlLib:           n.nvml,
		Logger:            testLogger(t),
		DriverVersion:     func() (string, error) { return driverVersion, nil },
	}
}

// gpuDevice is the cdi.Device for the GPU at index i.
func (n *fakeNode) gpuDevice(i int) cdi.Device {
	d := n.gpus[i]
	return cdi.Device{
		Name: fmt.Sprintf("gpu-%d", d.Minor),
		GPU:  gpu.GPU{Index: d.Index, Minor: d.Minor, UUID: d.UUID, PCIBusID: d.PciBusID},
	}
}

// addMIGDevice creates a 1g.5gb MIG device (GPU instance with one compute
// instance) on the GPU at index i, and returns it as a cdi.Device.
func (n *fakeNode) addMIGDevice(t *testing.T, i int) cdi.Device {
	t.Helper()
	parent := n.gpus[i]
	if ret, _ := parent.SetMigMode(nvml.DEVICE_MIG_ENABLE); ret != nvml.SUCCESS {
		t.Fatalf("enable MIG on GPU %d: %v", i, ret)
	}
	giProfile, ret := parent.GetGpuInstanceProfileInfo(nvml.GPU_INSTANCE_PROFILE_1_SLICE)
	if ret != nvml.SUCCESS {
		t.Fatalf("GPU instance profile: %v", ret)
	}
	placement := nvml.GpuInstancePlacement{Start: uint32(len(n.migHandles)), Size: 1}
	giHandle, ret := parent.CreateGpuInstanceWithPlacement(&giProfile, &placement)
	if ret != nvml.SUCCESS {
		t.Fatalf("create GPU instance: %v", ret)
	}
	gi := giHandle.(*server.GpuInstance)
	ciProfile, ret := gi.GetComputeInstanceProfileInfo(nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
	if ret != nvml.SUCCESS {
		t.Fatalf("compute instance profile: %v", ret)
	}
	ciHandle, ret := gi.CreateComputeInstance(&ciProfile)
	if ret != nvml.SUCCESS {
		t.Fatalf("create compute instance: %v", ret)
	}
	ci := ciHandle.(*server.ComputeInstance)

	// The mock cannot look instances up by ID, nor hand out MIG device
	// handles; these fill in what go-nvlib asks for.
	parent.GetGpuInstanceByIdFunc = func(id int) (nvml.GpuInstance, nvml.Return) {
		parent.RLock()
		defer parent.RUnlock()
		for g := range parent.GpuInstances {
			if int(g.Info.Id) == id {
				return g, nvml.SUCCESS
			}
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	gi.GetComputeInstanceByIdFunc = func(id int) (nvml.ComputeInstance, nvml.Return) {
		gi.RLock()
		defer gi.RUnlock()
		for c := range gi.ComputeInstances {
			if int(c.Info.Id) == id {
				return c, nvml.SUCCESS
			}
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	migIndex := len(n.migHandles)
	uuid := fmt.Sprintf("MIG-00000000-0000-0000-0001-%012d", migIndex)
	n.migHandles[uuid] = &mock.Device{
		IsMigDeviceHandleFunc:                  func() (bool, nvml.Return) { return true, nvml.SUCCESS },
		GetUUIDFunc:                            func() (string, nvml.Return) { return uuid, nvml.SUCCESS },
		GetIndexFunc:                           func() (int, nvml.Return) { return migIndex, nvml.SUCCESS },
		GetDeviceHandleFromMigDeviceHandleFunc: func() (nvml.Device, nvml.Return) { return parent, nvml.SUCCESS },
		GetGpuInstanceIdFunc:                   func() (int, nvml.Return) { return int(gi.Info.Id), nvml.SUCCESS },
		GetComputeInstanceIdFunc:               func() (int, nvml.Return) { return int(ci.Info.Id), nvml.SUCCESS },
		GetAttributesFunc: func() (nvml.DeviceAttributes, nvml.Return) {
			return nvml.DeviceAttributes{
				MultiprocessorCount:   giProfile.MultiprocessorCount,
				GpuInstanceSliceCount: giProfile.SliceCount,
				MemorySizeMB:          giProfile.MemorySizeMB,
			}, nvml.SUCCESS
		},
	}
	return cdi.Device{
		Name: fmt.Sprintf("gpu-%d-mig-1g5gb-%d-%d", parent.Minor, giProfile.Id, placement.Start),
		GPU:  n.gpuDevice(i).GPU,
		MIG: &gpu.MIGDevice{
			UUID:      uuid,
			Placement: gpu.Placement{Start: int(placement.Start), Size: 1},
			GIID:      int(gi.Info.Id),
			CIID:      int(ci.Info.Id),
		},
	}
}

func (n *fakeNode) path(rel string) string { return filepath.Join(n.root, rel) }

func (n *fakeNode) writeFile(t *testing.T, rel string, mode os.FileMode) {
	t.Helper()
	mkdirFor(t, n.path(rel))
	if err := os.WriteFile(n.path(rel), nil, mode); err != nil {
		t.Fatal(err)
	}
}

func (n *fakeNode) symlink(t *testing.T, target, rel string) {
	t.Helper()
	mkdirFor(t, n.path(rel))
	if err := os.Symlink(target, n.path(rel)); err != nil {
		t.Fatal(err)
	}
}

// charDevice creates a character device node at rel. It is a 0:0 device
// (an overlayfs whiteout), the one kind Linux lets any user create: the
// toolkit only needs to see a character device, never to open it.
func (n *fakeNode) charDevice(t *testing.T, rel string) {
	t.Helper()
	mkdirFor(t, n.path(rel))
	if err := unix.Mknod(n.path(rel), unix.S_IFCHR|0o666, 0); err != nil {
		t.Fatalf("create character device %s: %v", rel, err)
	}
}

func mkdirFor(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
}

// upgradeDriver replaces the driver's libraries and firmware of version
// from with those of version to, and makes NVML report to.
func (n *fakeNode) upgradeDriver(t *testing.T, from, to string) {
	t.Helper()
	for _, lib := range []string{"libcuda.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so"} {
		for _, old := range []string{lib + "." + from, lib + ".1"} {
			if err := os.Remove(n.path(filepath.Join(libDir, old))); err != nil {
				t.Fatal(err)
			}
		}
		n.writeFile(t, filepath.Join(libDir, lib+"."+to), 0o644)
		n.symlink(t, lib+"."+to, filepath.Join(libDir, lib+".1"))
	}
	if err := os.RemoveAll(n.path("lib/firmware/nvidia/" + from)); err != nil {
		t.Fatal(err)
	}
	n.writeFile(t, "lib/firmware/nvidia/"+to+"/gsp_ga10x.bin", 0o644)
	n.nvml.DriverVersion = to
}
