package gpu

import (
	"context"
	"errors"
	"fmt"
)

// TimeSlice is a GPU's compute time-slice policy, numbered as
// `nvidia-smi compute-policy --set-timeslice` takes it.
type TimeSlice int

// Time slices. TimeSliceUnknown is what a backend reports when it cannot
// read the policy (NVML has no call that reads it).
const (
	TimeSliceUnknown TimeSlice = -1
	TimeSliceDefault TimeSlice = 0
	TimeSliceShort   TimeSlice = 1
	TimeSliceMedium  TimeSlice = 2
	TimeSliceLong    TimeSlice = 3
)

// String names the time slice as the GpuConfig API does (Default, Short,
// Medium, Long).
func (t TimeSlice) String() string {
	switch t {
	case TimeSliceUnknown:
		return "Unknown"
	case TimeSliceDefault:
		return "Default"
	case TimeSliceShort:
		return "Short"
	case TimeSliceMedium:
		return "Medium"
	case TimeSliceLong:
		return "Long"
	}
	return fmt.Sprintf("TimeSlice(%d)", int(t))
}

// Valid tells whether t can be set (Default to Long).
func (t TimeSlice) Valid() bool { return t >= TimeSliceDefault && t <= TimeSliceLong }

// ValidComputeMode tells whether m is one of the modes a GPU can be set to.
func ValidComputeMode(m ComputeMode) bool {
	switch m {
	case ComputeModeDefault, ComputeModeExclusiveProcess, ComputeModeProhibited:
		return true
	}
	return false
}

// ErrNotAGPU is wrapped by settings calls given a UUID that is no full GPU
// of the node (an unknown UUID, or a MIG device's).
var ErrNotAGPU = errors.New("not a GPU of this node")

// SettingsManager changes the GPU-wide settings that sharing a GPU needs.
// Both apply to every process on the GPU, so the caller counts who relies
// on them (internal/sharing); a backend only applies them. Inventory
// reports the current values (GPU.ComputeMode, GPU.TimeSlice).
//
// Errors name the GPU and the setting, and wrap ErrNotAGPU for a UUID that
// is not a full GPU of the node. A refused call changes nothing.
type SettingsManager interface {
	// SetComputeMode sets the GPU's compute mode (an MPS daemon needs
	// Exclusive_Process while it runs).
	SetComputeMode(ctx context.Context, uuid string, mode ComputeMode) error
	// SetTimeSlice sets the GPU's compute time slice; t must be Valid.
	SetTimeSlice(ctx context.Context, uuid string, t TimeSlice) error
}
