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
//     so it is safe on shared machines.
//   - One bad GPU is one bad GPU: when a call on one device fails (its handle,
//     UUID, memory, PCI info, MIG profiles or MIG devices; GPU_IS_LOST is the
//     usual answer of a GPU that fell off the bus), that GPU goes into
//     Inventory.Unavailable with the NVML call and return code as its reason
//     ("nvmlDeviceGetUUID: GPU_IS_LOST") and the other GPUs are read as usual.
//     Inventory returns an error only when NVML as a whole fails (driver
//     version, device count); that error names the call and wraps the
//     nvml.Return so callers can test it with errors.Is.
//   - SetComputeMode and SetTimeSlice (settings.go, the latter through
//     nvidia-smi) change a GPU only when a claim asks for sharing.
//   - CreateMIGDevice, DestroyMIGDevice and EnableMIGMode (migmanager.go)
//     are the only other calls that change a GPU; the plugin makes them only in
//     dynamic MIG mode. MIG mode is never switched off and no GPU is reset.
//     They are tested over go-nvml's mock servers, taught NVML's refusals
//     (migmock_test.go), with the same contract suite as the sim backend.
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
	// NvidiaSMI is the nvidia-smi to set time slices with; empty finds it
	// under DriverRoot when first needed.
	NvidiaSMI string
}

// Backend reads GPUs through NVML. It is safe for concurrent use: NVML is
// thread-safe, and the lock only keeps Close from unloading the library under
// a running Inventory.
type Backend struct {
	lib       gonvml.Interface
	devices   nvdevice.Interface
	sysfsRoot string
	symbols   optionalSymbols
	// driverRoot, libraryPath (empty for an injected library) and
	// nvidiaSMIPath are for running nvidia-smi (settings.go).
	driverRoot    string
	libraryPath   string
	nvidiaSMIPath string

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
	libraryPath := ""
	if lib == nil {
		path, err := findLibrary(opts.DriverRoot)
		if err != nil {
			return nil, err
		}
		lib = gonvml.New(gonvml.WithLibraryPath(path))
		source, libraryPath = path, path
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

		driverRoot:    opts.DriverRoot,
		libraryPath:   libraryPath,
		nvidiaSMIPath: opts.NvidiaSMI,
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
		return nil, nvmlCall("nvmlSystemGetDriverVersion", ret)
	}
	cudaVersion, ret := b.lib.SystemGetCudaDriverVersion()
	if ret != gonvml.SUCCESS {
		return nil, nvmlCall("nvmlSystemGetCudaDriverVersion", ret)
	}
	count, ret := b.lib.DeviceGetCount()
	if ret != gonvml.SUCCESS {
		return nil, nvmlCall("nvmlDeviceGetCount", ret)
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
			inv.Unavailable = append(inv.Unavailable, unavailableGPU(index, nil, nvmlCall("nvmlDeviceGetHandleByIndex", ret)))
			continue
		}
		g, ok, err := b.readGPU(ctx, index, dev)
		switch {
		case err != nil:
			inv.Unavailable = append(inv.Unavailable, unavailableGPU(index, dev, err))
		case ok:
			inv.GPUs = append(inv.GPUs, g)
		}
	}

	// Extended BDF strings have fixed-width hex fields, so string order is
	// bus order.
	sort.Slice(inv.GPUs, func(i, j int) bool { return inv.GPUs[i].PCIBusID < inv.GPUs[j].PCIBusID })
	return inv, nil
}

// unavailableGPU describes a GPU that could not be read, with as much of its
// identity as NVML still gives (dev is nil when not even its handle could
// be had). A GPU that fell off the bus answers nothing, so these calls fail
// too; one with unreadable MIG state still names itself. They run only on
// this rare path, so repeating calls readGPU already made costs nothing.
func unavailableGPU(index int, dev gonvml.Device, reason error) gpu.UnavailableGPU {
	u := gpu.UnavailableGPU{Index: index, Minor: -1, Reason: reason.Error()}
	if dev == nil {
		return u
	}
	if minor, ret := dev.GetMinorNumber(); ret == gonvml.SUCCESS {
		u.Minor = minor
	}
	if uuid, ret := dev.GetUUID(); ret == gonvml.SUCCESS {
		u.UUID = uuid
	}
	if busID, err := pciBusID(dev); err == nil {
		u.PCIBusID = busID
	}
	return u
}

// callError is a failed NVML call. Its text is the C function and the
// return code's name ("nvmlDeviceGetUUID: GPU_IS_LOST"): stable across
// drivers, unlike nvmlErrorString's wording, and what an operator looks up
// in NVML's documentation. errors.Is still sees the nvml.Return.
type callError struct {
	call string
	ret  gonvml.Return
}

func (e *callError) Error() string { return e.call + ": " + returnCodeName(e.ret) }
func (e *callError) Unwrap() error { return e.ret }

// nvmlCall returns the error for a call that answered ret.
func nvmlCall(call string, ret gonvml.Return) error {
	return &callError{call: call, ret: ret}
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
