// Package gpu defines what the rest of gpudra knows about a node's GPUs: the
// Backend interface and the Inventory it returns. Two backends implement it:
// nvml (real hardware through libnvidia-ml) and sim (a faithful model of GPUs
// for machines without one). Everything above this package sees only these
// types, never NVML handles.
package gpu

import (
	"context"
	"fmt"
)

// Backend is the node's source of truth about GPUs.
//
// Implementations must be safe for concurrent use.
type Backend interface {
	// Name is "nvml" or "sim"; it decides how CDI specs are built.
	Name() string
	// Inventory returns a fresh snapshot of the node's GPUs and their
	// existing MIG devices. GPUs are ordered by PCI bus ID.
	//
	// One bad GPU is one bad GPU: a GPU that enumerates but cannot be read
	// (NVML answers GPU_IS_LOST, its MIG state is unreadable, ...) is left
	// out of Inventory.GPUs and reported in Inventory.Unavailable, and the
	// call succeeds. An error is returned only when the backend as a whole
	// cannot answer (NVML init, driver version or device count fail, the
	// simulator's control file is unreadable): then nothing it said about
	// any GPU could be trusted.
	Inventory(ctx context.Context) (*Inventory, error)
	// Close releases the backend (nvml.Shutdown for NVML).
	Close() error
}

// Inventory is one snapshot of a node's GPUs.
type Inventory struct {
	// DriverVersion is the kernel driver version, e.g. "550.54.15".
	DriverVersion string
	// CUDADriverVersion is the CUDA version the driver supports.
	CUDADriverVersion Version
	// GPUs in PCI bus ID order.
	GPUs []GPU
	// Unavailable are the GPUs that enumerate but cannot be read, in
	// enumeration index order. They are not in GPUs, so nothing above the
	// backend publishes or prepares them; each says why.
	Unavailable []UnavailableGPU
}

// UnavailableGPU is a GPU the backend enumerated but could not read. Its
// identity is whatever the backend could still learn: a GPU that fell off
// the bus answers nothing but its enumeration index.
type UnavailableGPU struct {
	// Index is the enumeration index (NVML's device index).
	Index int
	// Minor is the N of /dev/nvidiaN; -1 if unknown.
	Minor int
	// UUID is "GPU-<uuid>"; "" if unknown.
	UUID string
	// PCIBusID in the form of GPU.PCIBusID; "" if unknown.
	PCIBusID string
	// Reason says what failed, for an operator: the backend call and its
	// return code ("nvmlDeviceGetUUID: GPU_IS_LOST"), or the simulated
	// fault and who injected it.
	Reason string
}

// Version is a major.minor(.patch) version number.
type Version struct {
	Major, Minor, Patch int
}

// String formats the version as a semantic version ("12.4.0"), which is the
// form DRA version attributes require.
func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// CUDAVersionFromInt converts NVML's integer CUDA driver version (12040)
// into a Version (12.4.0).
func CUDAVersionFromInt(v int) Version {
	return Version{Major: v / 1000, Minor: (v % 1000) / 10}
}

// ComputeMode mirrors NVML's compute modes.
type ComputeMode string

// Compute modes (nvidia-smi names).
const (
	ComputeModeDefault          ComputeMode = "Default"
	ComputeModeExclusiveProcess ComputeMode = "Exclusive_Process"
	ComputeModeProhibited       ComputeMode = "Prohibited"
)

// GPU is one physical GPU.
type GPU struct {
	// Index is NVML's enumeration index. It shifts when a GPU drops off the
	// bus; use Minor to name devices.
	Index int
	// Minor is the N of /dev/nvidiaN, stable across enumeration changes.
	Minor int
	// UUID is "GPU-<uuid>".
	UUID string
	// ProductName as NVML reports it, e.g. "NVIDIA H100 80GB HBM3".
	ProductName string
	// Brand, e.g. "Nvidia" (see BrandName in the backends).
	Brand string
	// Architecture, e.g. "Hopper".
	Architecture string
	// CUDAComputeCapability, e.g. 9.0.0.
	CUDAComputeCapability Version
	// MemoryBytes is total framebuffer memory.
	MemoryBytes uint64
	// PCIBusID in the canonical extended BDF form "0000:65:00.0" (lower case).
	PCIBusID string
	// PCIeRoot is the PCIe root complex, "pci<domain>:<bus>" (e.g.
	// "pci0000:64"); empty when unknown. Backends read it from sysfs
	// (k8s.io/dynamic-resource-allocation/deviceattribute) or model it.
	PCIeRoot string
	// NUMANode is the GPU's NUMA node; -1 when it has no NUMA affinity or is
	// unknown (then no numaNode attribute is published).
	NUMANode int
	// AddressingMode is "HMM", "ATS" or "None"; empty when unknown.
	AddressingMode string
	// MIGCapable tells whether the GPU supports MIG at all.
	MIGCapable bool
	// MIGEnabled is the current MIG mode. A GPU in MIG mode is published as
	// its MIG devices, not as a whole GPU.
	MIGEnabled bool
	// ComputeMode is the current compute mode.
	ComputeMode ComputeMode
	// TimeSlice is the current compute time-slice policy, TimeSliceUnknown
	// where the backend cannot read it.
	TimeSlice TimeSlice
	// MIGProfiles lists the GPU-instance profiles the GPU supports, with their
	// possible placements. Empty for GPUs without MIG.
	MIGProfiles []MIGProfile
	// MIGDevices lists the MIG devices that exist now, ordered by placement
	// start, then GPU-instance profile ID.
	MIGDevices []MIGDevice
}

// MIGProfile is one GPU-instance profile (with its full-size compute
// instance) that a GPU supports.
type MIGProfile struct {
	// Name is the nvidia-smi profile name, e.g. "1g.10gb" or "1g.10gb+me".
	Name string
	// GIProfileID is NVML's GPU-instance profile ID (e.g. 19 for 1g.10gb on H100).
	GIProfileID int
	// CIProfileID is the compute-instance profile ID that spans the whole GPU instance.
	CIProfileID int
	// SliceCount is NVML's GPU-instance slice count (compute slices);
	// the memory slices a placement occupies are Placement.Size.
	SliceCount int
	// Capacities of one instance of this profile.
	Multiprocessors int
	CopyEngines     int
	Decoders        int
	Encoders        int
	JPEGEngines     int
	OFAEngines      int
	MemoryBytes     uint64
	// Placements are the possible (start, size) slots on the GPU.
	Placements []Placement
}

// Placement is a slot of memory slices: [Start, Start+Size).
type Placement struct {
	Start int
	Size  int
}

// Overlaps tells whether two placements share a memory slice.
func (p Placement) Overlaps(o Placement) bool {
	return p.Start < o.Start+o.Size && o.Start < p.Start+p.Size
}

// MIGDevice is a MIG device that exists on a GPU: a GPU instance with one
// compute instance spanning it.
type MIGDevice struct {
	// UUID is "MIG-<uuid>".
	UUID string
	// Profile is the device's profile (capacities and name).
	Profile MIGProfile
	// Placement on the parent GPU.
	Placement Placement
	// GIID and CIID are the GPU-instance and compute-instance IDs.
	GIID int
	CIID int
	// Incomplete is a GPU instance without a compute instance: what a
	// process that died in the middle of CreateMIGDevice leaves. It has no
	// UUID and CIID is -1; nothing publishes or prepares it, and recovery
	// destroys it (MIGManager.DestroyMIGDevice with SlotOf).
	Incomplete bool
}

// FindGPU returns the GPU with the given UUID, or nil.
func (inv *Inventory) FindGPU(uuid string) *GPU {
	for i := range inv.GPUs {
		if inv.GPUs[i].UUID == uuid {
			return &inv.GPUs[i]
		}
	}
	return nil
}
