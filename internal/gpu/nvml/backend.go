// Package nvml is the gpu.Backend for real NVIDIA GPUs. It reads the node's
// GPUs, their MIG profiles and their existing MIG devices through NVML
// (go-nvml, which dlopens libnvidia-ml.so.1 from the driver root) and reads PCIe
// topology from sysfs.
//
// Contract:
//   - New loads and initialises NVML once. A missing library or a failed Init
//     is returned as an error, and no other NVML function is called after a
//     failed Init: doing so kills the process with a symbol lookup error.
//   - Inventory only reads; it never changes MIG mode, compute mode or clocks,
//     so it is safe on shared machines. Every NVML error it returns names the
//     GPU index and the call that failed, and wraps the nvml.Return so callers
//     can test it with errors.Is.
//   - Close shuts NVML down once; Inventory after Close is an error rather
//     than a call into an unloaded library.
package nvml

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	nvdevice "github.com/NVIDIA/go-nvlib/pkg/nvlib/device"
	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/gpudra/gpudra/internal/gpu"
)

// Options configures New.
type Options struct {
	// DriverRoot is where the NVIDIA driver is installed, "/" when empty. In a
	// container it is the mount point of the host's (or the driver
	// container's) root file system.
	DriverRoot string
	// SysfsRoot is where sysfs is mounted, "/sys" when empty.
	SysfsRoot string
	// Lib replaces the NVML library found under DriverRoot; tests pass a
	// go-nvml mock here.
	Lib gonvml.Interface
}

// Backend reads GPUs through NVML. It is safe for concurrent use: NVML is
// thread-safe, and the lock only keeps Close from unloading the library under
// a running Inventory.
type Backend struct {
	lib       gonvml.Interface
	devices   nvdevice.Interface
	sysfsRoot string
	symbols   optionalSymbols

	mu     sync.RWMutex
	closed bool
}

var _ gpu.Backend = (*Backend)(nil)

// errClosed is returned by Inventory after Close.
var errClosed = errors.New("nvml backend is closed")

// New loads NVML and initialises it.
func New(opts Options) (*Backend, error) {
	if opts.DriverRoot == "" {
		opts.DriverRoot = "/"
	}
	if opts.SysfsRoot == "" {
		opts.SysfsRoot = "/sys"
	}

	lib := opts.Lib
	source := "injected NVML library"
	if lib == nil {
		path, err := findLibrary(opts.DriverRoot)
		if err != nil {
			return nil, err
		}
		lib = gonvml.New(gonvml.WithLibraryPath(path))
		source = path
	}

	// Nothing but Init may be called until Init has succeeded. Formatting the
	// Return is safe either way: go-nvml uses its own strings until the
	// library is loaded, and nvmlErrorString is valid after a failed nvmlInit.
	if ret := lib.Init(); ret != gonvml.SUCCESS {
		if ret == gonvml.ERROR_LIBRARY_NOT_FOUND && opts.Lib == nil {
			return nil, fmt.Errorf("initialize NVML from %s: the file exists but could not be loaded (wrong architecture or not a shared library?): %w", source, ret)
		}
		return nil, fmt.Errorf("initialize NVML from %s: %w", source, ret)
	}

	return &Backend{
		lib:       lib,
		devices:   nvdevice.New(lib),
		sysfsRoot: opts.SysfsRoot,
		symbols:   lookupOptionalSymbols(lib),
	}, nil
}

// Name implements gpu.Backend.
func (b *Backend) Name() string { return "nvml" }

// Close shuts NVML down. Later calls do nothing.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if ret := b.lib.Shutdown(); ret != gonvml.SUCCESS {
		return fmt.Errorf("shut down NVML: %w", ret)
	}
	return nil
}

// Inventory implements gpu.Backend.
func (b *Backend) Inventory(ctx context.Context) (*gpu.Inventory, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, errClosed
	}

	driverVersion, ret := b.lib.SystemGetDriverVersion()
	if ret != gonvml.SUCCESS {
		return nil, fmt.Errorf("SystemGetDriverVersion: %w", ret)
	}
	cudaVersion, ret := b.lib.SystemGetCudaDriverVersion()
	if ret != gonvml.SUCCESS {
		return nil, fmt.Errorf("SystemGetCudaDriverVersion: %w", ret)
	}
	count, ret := b.lib.DeviceGetCount()
	if ret != gonvml.SUCCESS {
		return nil, fmt.Errorf("DeviceGetCount: %w", ret)
	}

	inv := &gpu.Inventory{
		DriverVersion:     driverVersion,
		CUDADriverVersion: gpu.CUDAVersionFromInt(cudaVersion),
	}
	for index := range count {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dev, ret := b.lib.DeviceGetHandleByIndex(index)
		if ret != gonvml.SUCCESS {
			return nil, callError(index, "DeviceGetHandleByIndex", ret)
		}
		g, ok, err := b.readGPU(ctx, index, dev)
		if err != nil {
			return nil, err
		}
		if ok {
			inv.GPUs = append(inv.GPUs, g)
		}
	}

	// Extended BDF strings have fixed-width hex fields, so string order is
	// bus order.
	sort.Slice(inv.GPUs, func(i, j int) bool { return inv.GPUs[i].PCIBusID < inv.GPUs[j].PCIBusID })
	return inv, nil
}

// callError wraps a failed NVML call so the message points at the hardware
// and the API that refused, and errors.Is still sees the nvml.Return.
func callError(index int, call string, ret gonvml.Return) error {
	return fmt.Errorf("gpu %d: %s: %w", index, call, ret)
}

// optionalSymbols records which NVML entry points that older drivers lack are
// present. go-nvml resolves symbols lazily, so calling a missing one would
// abort the process instead of returning an error.
type optionalSymbols struct {
	migMode        bool
	addressingMode bool
	memoryInfoV2   bool
}

func lookupOptionalSymbols(lib gonvml.Interface) optionalSymbols {
	has := func(name string) bool { return lib.Extensions().LookupSymbol(name) == nil }
	return optionalSymbols{
		migMode:        has("nvmlDeviceGetMigMode"),
		addressingMode: has("nvmlDeviceGetAddressingMode"),
		memoryInfoV2:   has("nvmlDeviceGetMemoryInfo_v2"),
	}
}
