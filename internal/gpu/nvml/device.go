package nvml

import (
	"context"
	"fmt"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"

	"github.com/gpudra/gpudra/internal/gpu"
)

// skippedProductNames are NVML devices that are not compute GPUs: the display
// adapter of a DGX Station enumerates like a GPU but cannot run CUDA work.
var skippedProductNames = map[string]bool{
	"DGX Display":        true,
	"NVIDIA DGX Display": true,
}

// readGPU reads one physical GPU. ok is false for devices that are not
// compute GPUs and must not be published. An error makes this GPU
// unavailable, not the node: it names the NVML call and return code and no
// GPU index, which the caller records next to it.
func (b *Backend) readGPU(ctx context.Context, index int, dev gonvml.Device) (g gpu.GPU, ok bool, err error) {
	name, ret := dev.GetName()
	if ret != gonvml.SUCCESS {
		return gpu.GPU{}, false, nvmlCall("nvmlDeviceGetName", ret)
	}
	if skippedProductNames[name] {
		return gpu.GPU{}, false, nil
	}
	g = gpu.GPU{Index: index, ProductName: name}

	if g.Minor, ret = dev.GetMinorNumber(); ret != gonvml.SUCCESS {
		return gpu.GPU{}, false, nvmlCall("nvmlDeviceGetMinorNumber", ret)
	}
	if g.UUID, ret = dev.GetUUID(); ret != gonvml.SUCCESS {
		return gpu.GPU{}, false, nvmlCall("nvmlDeviceGetUUID", ret)
	}
	brand, ret := dev.GetBrand()
	if ret != gonvml.SUCCESS {
		return gpu.GPU{}, false, nvmlCall("nvmlDeviceGetBrand", ret)
	}
	g.Brand = brandName(brand)
	arch, ret := dev.GetArchitecture()
	if ret != gonvml.SUCCESS {
		return gpu.GPU{}, false, nvmlCall("nvmlDeviceGetArchitecture", ret)
	}
	g.Architecture = architectureName(arch)
	major, minor, ret := dev.GetCudaComputeCapability()
	if ret != gonvml.SUCCESS {
		return gpu.GPU{}, false, nvmlCall("nvmlDeviceGetCudaComputeCapability", ret)
	}
	g.CUDAComputeCapability = gpu.Version{Major: major, Minor: minor}

	if g.MemoryBytes, err = b.totalMemory(dev); err != nil {
		return gpu.GPU{}, false, err
	}
	if g.PCIBusID, err = pciBusID(dev); err != nil {
		return gpu.GPU{}, false, err
	}
	g.PCIeRoot, g.NUMANode = readTopology(ctx, b.sysfsRoot, g.PCIBusID)

	// NVML has no call that reads the compute time slice.
	g.TimeSlice = gpu.TimeSliceUnknown
	if g.ComputeMode, err = computeMode(dev); err != nil {
		return gpu.GPU{}, false, err
	}
	if g.AddressingMode, err = b.addressingMode(ctx, index, dev); err != nil {
		return gpu.GPU{}, false, err
	}
	if g.MIGCapable, g.MIGEnabled, err = b.migMode(dev); err != nil {
		return gpu.GPU{}, false, err
	}
	if g.MIGCapable {
		if err := b.readMIG(ctx, index, dev, &g); err != nil {
			return gpu.GPU{}, false, err
		}
	}
	return g, true, nil
}

// totalMemory prefers the v1 call, which every driver has, and falls back to
// v2 where v1 is refused (as on some coherent-memory platforms).
func (b *Backend) totalMemory(dev gonvml.Device) (uint64, error) {
	mem, ret := dev.GetMemoryInfo()
	if ret == gonvml.SUCCESS {
		return mem.Total, nil
	}
	if !b.symbols.memoryInfoV2 {
		return 0, nvmlCall("nvmlDeviceGetMemoryInfo", ret)
	}
	mem2, ret2 := dev.GetMemoryInfo_v2()
	if ret2 != gonvml.SUCCESS {
		return 0, fmt.Errorf("%w; %w", nvmlCall("nvmlDeviceGetMemoryInfo", ret), nvmlCall("nvmlDeviceGetMemoryInfo_v2", ret2))
	}
	return mem2.Total, nil
}

// pciBusID returns the GPU's bus ID in the form sysfs and the DRA standard
// attributes use.
func pciBusID(dev gonvml.Device) (string, error) {
	info, ret := dev.GetPciInfo()
	if ret != gonvml.SUCCESS {
		return "", nvmlCall("nvmlDeviceGetPciInfo", ret)
	}
	id, err := normalizePCIBusID(cString(info.BusId[:]))
	if err != nil {
		return "", fmt.Errorf("nvmlDeviceGetPciInfo: %w", err)
	}
	return id, nil
}

// cString converts a NUL-terminated C char array into a Go string.
func cString(chars []int8) string {
	buf := make([]byte, 0, len(chars))
	for _, c := range chars {
		if c == 0 {
			break
		}
		buf = append(buf, byte(c))
	}
	return string(buf)
}

// computeMode returns "" where the GPU does not report a compute mode.
func computeMode(dev gonvml.Device) (gpu.ComputeMode, error) {
	mode, ret := dev.GetComputeMode()
	switch ret {
	case gonvml.SUCCESS:
		return computeModeName(mode), nil
	case gonvml.ERROR_NOT_SUPPORTED:
		return "", nil
	default:
		return "", nvmlCall("nvmlDeviceGetComputeMode", ret)
	}
}

// addressingMode returns "" on drivers without the API and on platforms that
// do not report a mode.
func (b *Backend) addressingMode(ctx context.Context, index int, dev gonvml.Device) (string, error) {
	if !b.symbols.addressingMode {
		return "", nil
	}
	mode, ret := dev.GetAddressingMode()
	switch ret {
	case gonvml.SUCCESS:
	case gonvml.ERROR_NOT_SUPPORTED:
		return "", nil
	default:
		return "", nvmlCall("nvmlDeviceGetAddressingMode", ret)
	}
	name, known := addressingModeName(gonvml.DeviceAddressingModeType(mode.Value))
	if !known {
		klog.FromContext(ctx).V(2).Info("Unknown GPU addressing mode, not publishing it", "gpu", index, "mode", mode.Value)
	}
	return name, nil
}

// migMode treats ERROR_NOT_SUPPORTED as "not MIG capable", which is how NVML
// answers on GPUs without MIG.
func (b *Backend) migMode(dev gonvml.Device) (capable, enabled bool, err error) {
	if !b.symbols.migMode {
		return false, false, nil
	}
	current, _, ret := dev.GetMigMode()
	switch ret {
	case gonvml.SUCCESS:
		return true, current == gonvml.DEVICE_MIG_ENABLE, nil
	case gonvml.ERROR_NOT_SUPPORTED:
		return false, false, nil
	default:
		return false, false, nvmlCall("nvmlDeviceGetMigMode", ret)
	}
}
