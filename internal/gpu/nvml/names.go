package nvml

import (
	"fmt"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/gpudra/gpudra/internal/gpu"
)

// brandNames are the brand strings the upstream NVIDIA DRA driver publishes;
// users' CEL selectors compare against them, so they must not change.
var brandNames = map[gonvml.BrandType]string{
	gonvml.BRAND_UNKNOWN:             "Unknown",
	gonvml.BRAND_QUADRO:              "Quadro",
	gonvml.BRAND_TESLA:               "Tesla",
	gonvml.BRAND_NVS:                 "NVS",
	gonvml.BRAND_GRID:                "Grid",
	gonvml.BRAND_GEFORCE:             "GeForce",
	gonvml.BRAND_TITAN:               "Titan",
	gonvml.BRAND_NVIDIA_VAPPS:        "NvidiaVApps",
	gonvml.BRAND_NVIDIA_VPC:          "NvidiaVPC",
	gonvml.BRAND_NVIDIA_VCS:          "NvidiaVCS",
	gonvml.BRAND_NVIDIA_VWS:          "NvidiaVWS",
	gonvml.BRAND_NVIDIA_CLOUD_GAMING: "NvidiaCloudGaming",
	gonvml.BRAND_QUADRO_RTX:          "QuadroRTX",
	gonvml.BRAND_NVIDIA_RTX:          "NvidiaRTX",
	gonvml.BRAND_NVIDIA:              "Nvidia",
	gonvml.BRAND_GEFORCE_RTX:         "GeForceRTX",
	gonvml.BRAND_TITAN_RTX:           "TitanRTX",
}

// brandName maps brands a newer driver may add to "Unknown" rather than
// failing discovery over a cosmetic attribute.
func brandName(b gonvml.BrandType) string {
	if name, ok := brandNames[b]; ok {
		return name
	}
	return "Unknown"
}

// architectureNames are the upstream driver's architecture strings (see
// brandNames for why they are fixed).
var architectureNames = map[gonvml.DeviceArchitecture]string{
	gonvml.DEVICE_ARCH_KEPLER:    "Kepler",
	gonvml.DEVICE_ARCH_MAXWELL:   "Maxwell",
	gonvml.DEVICE_ARCH_PASCAL:    "Pascal",
	gonvml.DEVICE_ARCH_VOLTA:     "Volta",
	gonvml.DEVICE_ARCH_TURING:    "Turing",
	gonvml.DEVICE_ARCH_AMPERE:    "Ampere",
	gonvml.DEVICE_ARCH_ADA:       "Ada Lovelace",
	gonvml.DEVICE_ARCH_HOPPER:    "Hopper",
	gonvml.DEVICE_ARCH_BLACKWELL: "Blackwell",
	gonvml.DEVICE_ARCH_RUBIN:     "Rubin",
}

func architectureName(a gonvml.DeviceArchitecture) string {
	if name, ok := architectureNames[a]; ok {
		return name
	}
	return "Unknown"
}

// computeModeName returns nvidia-smi's name. Exclusive_Thread was removed from
// CUDA long ago but old drivers can still report it; it has no gpu constant.
func computeModeName(m gonvml.ComputeMode) gpu.ComputeMode {
	switch m {
	case gonvml.COMPUTEMODE_DEFAULT:
		return gpu.ComputeModeDefault
	case gonvml.COMPUTEMODE_EXCLUSIVE_PROCESS:
		return gpu.ComputeModeExclusiveProcess
	case gonvml.COMPUTEMODE_PROHIBITED:
		return gpu.ComputeModeProhibited
	case gonvml.COMPUTEMODE_EXCLUSIVE_THREAD:
		return "Exclusive_Thread"
	default:
		return "Unknown"
	}
}

// addressingModeName reports known=false for modes this build does not know,
// so the caller can log them instead of publishing a made-up name.
func addressingModeName(m gonvml.DeviceAddressingModeType) (name string, known bool) {
	switch m {
	case gonvml.DEVICE_ADDRESSING_MODE_NONE:
		return "None", true
	case gonvml.DEVICE_ADDRESSING_MODE_HMM:
		return "HMM", true
	case gonvml.DEVICE_ADDRESSING_MODE_ATS:
		return "ATS", true
	default:
		return "", false
	}
}

// returnCodeNames name NVML's return codes as nvml.h does, without the
// NVML_ERROR_ prefix. nvmlErrorString gives prose that varies by driver.
var returnCodeNames = map[gonvml.Return]string{
	gonvml.SUCCESS:                         "SUCCESS",
	gonvml.ERROR_UNINITIALIZED:             "UNINITIALIZED",
	gonvml.ERROR_INVALID_ARGUMENT:          "INVALID_ARGUMENT",
	gonvml.ERROR_NOT_SUPPORTED:             "NOT_SUPPORTED",
	gonvml.ERROR_NO_PERMISSION:             "NO_PERMISSION",
	gonvml.ERROR_ALREADY_INITIALIZED:       "ALREADY_INITIALIZED",
	gonvml.ERROR_NOT_FOUND:                 "NOT_FOUND",
	gonvml.ERROR_INSUFFICIENT_SIZE:         "INSUFFICIENT_SIZE",
	gonvml.ERROR_INSUFFICIENT_POWER:        "INSUFFICIENT_POWER",
	gonvml.ERROR_DRIVER_NOT_LOADED:         "DRIVER_NOT_LOADED",
	gonvml.ERROR_TIMEOUT:                   "TIMEOUT",
	gonvml.ERROR_IRQ_ISSUE:                 "IRQ_ISSUE",
	gonvml.ERROR_LIBRARY_NOT_FOUND:         "LIBRARY_NOT_FOUND",
	gonvml.ERROR_FUNCTION_NOT_FOUND:        "FUNCTION_NOT_FOUND",
	gonvml.ERROR_CORRUPTED_INFOROM:         "CORRUPTED_INFOROM",
	gonvml.ERROR_GPU_IS_LOST:               "GPU_IS_LOST",
	gonvml.ERROR_RESET_REQUIRED:            "RESET_REQUIRED",
	gonvml.ERROR_OPERATING_SYSTEM:          "OPERATING_SYSTEM",
	gonvml.ERROR_LIB_RM_VERSION_MISMATCH:   "LIB_RM_VERSION_MISMATCH",
	gonvml.ERROR_IN_USE:                    "IN_USE",
	gonvml.ERROR_MEMORY:                    "MEMORY",
	gonvml.ERROR_NO_DATA:                   "NO_DATA",
	gonvml.ERROR_VGPU_ECC_NOT_SUPPORTED:    "VGPU_ECC_NOT_SUPPORTED",
	gonvml.ERROR_INSUFFICIENT_RESOURCES:    "INSUFFICIENT_RESOURCES",
	gonvml.ERROR_FREQ_NOT_SUPPORTED:        "FREQ_NOT_SUPPORTED",
	gonvml.ERROR_ARGUMENT_VERSION_MISMATCH: "ARGUMENT_VERSION_MISMATCH",
	gonvml.ERROR_DEPRECATED:                "DEPRECATED",
	gonvml.ERROR_NOT_READY:                 "NOT_READY",
	gonvml.ERROR_GPU_NOT_FOUND:             "GPU_NOT_FOUND",
	gonvml.ERROR_INVALID_STATE:             "INVALID_STATE",
	gonvml.ERROR_RESET_TYPE_NOT_SUPPORTED:  "RESET_TYPE_NOT_SUPPORTED",
	gonvml.ERROR_UNKNOWN:                   "UNKNOWN",
}

// returnCodeName names a return code; one newer than this build keeps its
// number.
func returnCodeName(ret gonvml.Return) string {
	if name, ok := returnCodeNames[ret]; ok {
		return name
	}
	return fmt.Sprintf("return code %d", int32(ret))
}
