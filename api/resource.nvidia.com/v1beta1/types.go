package v1beta1

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Config is one decoded opaque config. Only *GpuConfig and *MigDeviceConfig
// implement it, so a type switch over the two is exhaustive.
type Config interface {
	// Kind is GpuConfigKind or MigDeviceConfigKind. It is a method rather
	// than the embedded TypeMeta field so that it cannot be wrong.
	Kind() string
	// Normalize fills in defaults in place; it is idempotent.
	Normalize()
	// Validate reports every invalid field of a normalized config, with its
	// path (sharing.mpsConfig.defaultActiveThreadPercentage).
	Validate() error

	isConfig()
}

// GpuConfig configures how a full GPU is used by the containers of a claim.
type GpuConfig struct {
	metav1.TypeMeta `json:",inline"`
	// Sharing is nil for exclusive use of the GPU.
	Sharing *GpuSharing `json:"sharing,omitempty"`
}

// MigDeviceConfig configures how a MIG device is used by the containers of a
// claim.
type MigDeviceConfig struct {
	metav1.TypeMeta `json:",inline"`
	// Sharing is nil for exclusive use of the MIG device.
	Sharing *MigDeviceSharing `json:"sharing,omitempty"`
}

// SharingStrategy says how the containers of a claim share a device.
type SharingStrategy string

// Sharing strategies.
const (
	// TimeSlicingStrategy lets processes take turns on the device.
	TimeSlicingStrategy SharingStrategy = "TimeSlicing"
	// MpsStrategy runs one MPS control daemon for the claim's devices so
	// that processes run concurrently with bounded threads and memory.
	MpsStrategy SharingStrategy = "MPS"
)

var acceptedStrategies = []SharingStrategy{TimeSlicingStrategy, MpsStrategy}

// GpuSharing is the sharing block of a GpuConfig.
type GpuSharing struct {
	Strategy SharingStrategy `json:"strategy"`
	// TimeSlicingConfig is only allowed with TimeSlicingStrategy.
	TimeSlicingConfig *TimeSlicingConfig `json:"timeSlicingConfig,omitempty"`
	// MpsConfig is only allowed with MpsStrategy.
	MpsConfig *MpsConfig `json:"mpsConfig,omitempty"`
}

// MigDeviceSharing is the sharing block of a MigDeviceConfig. It has no
// timeSlicingConfig: the time-slice policy belongs to the parent GPU and
// cannot be set per MIG device, so writing one is an unknown-field error.
type MigDeviceSharing struct {
	Strategy SharingStrategy `json:"strategy"`
	// MpsConfig is only allowed with MpsStrategy.
	MpsConfig *MpsConfig `json:"mpsConfig,omitempty"`
}

// TimeSlicingConfig tunes time-slicing of a full GPU.
type TimeSlicingConfig struct {
	// Interval is empty or Default after Normalize.
	Interval TimeSliceInterval `json:"interval,omitempty"`
}

// TimeSliceInterval is the length of a GPU time slice.
type TimeSliceInterval string

// Time-slice intervals, as nvidia-smi names them.
const (
	DefaultTimeSlice TimeSliceInterval = "Default"
	ShortTimeSlice   TimeSliceInterval = "Short"
	MediumTimeSlice  TimeSliceInterval = "Medium"
	LongTimeSlice    TimeSliceInterval = "Long"
)

var acceptedIntervals = []TimeSliceInterval{DefaultTimeSlice, ShortTimeSlice, MediumTimeSlice, LongTimeSlice}

// ComputePolicyValue is the value `nvidia-smi compute-policy --set-timeslice`
// takes for the interval: 0 (Default) to 3 (Long). An empty interval means
// Default.
func (i TimeSliceInterval) ComputePolicyValue() (int, error) {
	switch i {
	case DefaultTimeSlice, "":
		return 0, nil
	case ShortTimeSlice:
		return 1, nil
	case MediumTimeSlice:
		return 2, nil
	case LongTimeSlice:
		return 3, nil
	}
	return 0, fmt.Errorf("time-slice interval %q is not one of %q", string(i), acceptedIntervals)
}

// MpsConfig tunes the MPS control daemon of a claim. Nil fields leave the
// daemon's own defaults in place.
type MpsConfig struct {
	// DefaultActiveThreadPercentage limits the share of a device's
	// multiprocessors a client may use (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE).
	DefaultActiveThreadPercentage *int `json:"defaultActiveThreadPercentage,omitempty"`
	// DefaultPinnedDeviceMemoryLimit applies to every device of the claim.
	DefaultPinnedDeviceMemoryLimit *resource.Quantity `json:"defaultPinnedDeviceMemoryLimit,omitempty"`
	// DefaultPerDevicePinnedMemoryLimit overrides the default for single
	// devices. A key is the device's index within the claim ("0") or its
	// UUID (GPU-... for a GpuConfig, MIG-... for a MigDeviceConfig).
	DefaultPerDevicePinnedMemoryLimit map[string]resource.Quantity `json:"defaultPerDevicePinnedMemoryLimit,omitempty"`
}

// Kind implements Config.
func (*GpuConfig) Kind() string { return GpuConfigKind }

// Kind implements Config.
func (*MigDeviceConfig) Kind() string { return MigDeviceConfigKind }

func (*GpuConfig) isConfig()       {}
func (*MigDeviceConfig) isConfig() {}

// DefaultGpuConfig is the config of a full GPU that no config names:
// exclusive use.
func DefaultGpuConfig() *GpuConfig {
	c := &GpuConfig{}
	c.Normalize()
	return c
}

// DefaultMigDeviceConfig is the config of a MIG device that no config names:
// exclusive use.
func DefaultMigDeviceConfig() *MigDeviceConfig {
	c := &MigDeviceConfig{}
	c.Normalize()
	return c
}
