package cdi

import (
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/gpudra/gpudra/internal/gpu"
)

// Device is one allocated device as the CDI layer needs to see it: the DRA
// device name and the hardware behind it.
type Device struct {
	// Name is the DRA device name, e.g. "gpu-0" or "gpu-0-mig-1g10gb-19-0".
	Name string
	// Request and Pool are the claim's request the device was allocated
	// for and the ResourceSlice pool it came from; the spec records them so
	// that a lost checkpoint can be rebuilt from it.
	Request string
	Pool    string
	// AdminAccess marks a device shared for monitoring; the spec records it
	// so that a rebuilt record does not make it exclusive.
	AdminAccess bool
	// GPU is the physical GPU (the parent, for a MIG device).
	GPU gpu.GPU
	// MIG is set when the device is a MIG device of GPU.
	MIG *gpu.MIGDevice
	// MPS is the MPS daemon serving the device; nil without MPS.
	MPS *MPS
}

// UUID is the UUID a container sees for the device (GPU-... or MIG-...).
func (d Device) UUID() string {
	if d.MIG != nil {
		return d.MIG.UUID
	}
	return d.GPU.UUID
}

// Editor produces the container edits that give a container access to
// devices. The sim backend and real NVML nodes have different editors; the
// spec layout around them (one spec per claim, names, atomic writes) is the
// same.
type Editor interface {
	// ClaimEdits are the edits a claim's spec carries once, applied whenever
	// any of its devices is injected: control device nodes, driver libraries,
	// hooks, and the NVIDIA_VISIBLE_DEVICES variable for the claim's devices.
	ClaimEdits(devs []Device) (*cdispec.ContainerEdits, error)
	// DeviceEdits are the edits for one device: its device nodes and the
	// nodes/capabilities it needs.
	DeviceEdits(dev Device) (*cdispec.ContainerEdits, error)
}
