package nvml

import (
	"testing"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/gpudra/gpudra/internal/gpu"
)

func TestBrandName(t *testing.T) {
	tests := []struct {
		brand gonvml.BrandType
		want  string
	}{
		{gonvml.BRAND_NVIDIA, "Nvidia"},
		{gonvml.BRAND_TESLA, "Tesla"},
		{gonvml.BRAND_QUADRO, "Quadro"},
		{gonvml.BRAND_QUADRO_RTX, "QuadroRTX"},
		{gonvml.BRAND_GEFORCE, "GeForce"},
		{gonvml.BRAND_GEFORCE_RTX, "GeForceRTX"},
		{gonvml.BRAND_TITAN_RTX, "TitanRTX"},
		{gonvml.BRAND_NVIDIA_RTX, "NvidiaRTX"},
		{gonvml.BRAND_NVIDIA_VWS, "NvidiaVWS"},
		{gonvml.BRAND_NVIDIA_CLOUD_GAMING, "NvidiaCloudGaming"},
		{gonvml.BRAND_UNKNOWN, "Unknown"},
		{gonvml.BRAND_NVIDIA_NPU, "Unknown"},
		{gonvml.BrandType(999), "Unknown"},
	}
	for _, tt := range tests {
		if got := brandName(tt.brand); got != tt.want {
			t.Errorf("brandName(%d) = %q, want %q", tt.brand, got, tt.want)
		}
	}
}

func TestArchitectureName(t *testing.T) {
	tests := []struct {
		arch gonvml.DeviceArchitecture
		want string
	}{
		{gonvml.DEVICE_ARCH_KEPLER, "Kepler"},
		{gonvml.DEVICE_ARCH_MAXWELL, "Maxwell"},
		{gonvml.DEVICE_ARCH_PASCAL, "Pascal"},
		{gonvml.DEVICE_ARCH_VOLTA, "Volta"},
		{gonvml.DEVICE_ARCH_TURING, "Turing"},
		{gonvml.DEVICE_ARCH_AMPERE, "Ampere"},
		{gonvml.DEVICE_ARCH_ADA, "Ada Lovelace"},
		{gonvml.DEVICE_ARCH_HOPPER, "Hopper"},
		{gonvml.DEVICE_ARCH_BLACKWELL, "Blackwell"},
		{gonvml.DEVICE_ARCH_RUBIN, "Rubin"},
		{gonvml.DEVICE_ARCH_UNKNOWN, "Unknown"},
		{gonvml.DEVICE_ARCH_DLA, "Unknown"},
		{gonvml.DeviceArchitecture(99), "Unknown"},
	}
	for _, tt := range tests {
		if got := architectureName(tt.arch); got != tt.want {
			t.Errorf("architectureName(%d) = %q, want %q", tt.arch, got, tt.want)
		}
	}
}

func TestComputeModeName(t *testing.T) {
	tests := []struct {
		mode gonvml.ComputeMode
		want gpu.ComputeMode
	}{
		{gonvml.COMPUTEMODE_DEFAULT, gpu.ComputeModeDefault},
		{gonvml.COMPUTEMODE_EXCLUSIVE_PROCESS, gpu.ComputeModeExclusiveProcess},
		{gonvml.COMPUTEMODE_PROHIBITED, gpu.ComputeModeProhibited},
		{gonvml.COMPUTEMODE_EXCLUSIVE_THREAD, "Exclusive_Thread"},
		{gonvml.ComputeMode(42), "Unknown"},
	}
	for _, tt := range tests {
		if got := computeModeName(tt.mode); got != tt.want {
			t.Errorf("computeModeName(%d) = %q, want %q", tt.mode, got, tt.want)
		}
	}
}

func TestAddressingModeName(t *testing.T) {
	tests := []struct {
		mode      gonvml.DeviceAddressingModeType
		want      string
		wantKnown bool
	}{
		{gonvml.DEVICE_ADDRESSING_MODE_NONE, "None", true},
		{gonvml.DEVICE_ADDRESSING_MODE_HMM, "HMM", true},
		{gonvml.DEVICE_ADDRESSING_MODE_ATS, "ATS", true},
		{gonvml.DeviceAddressingModeType(7), "", false},
	}
	for _, tt := range tests {
		got, known := addressingModeName(tt.mode)
		if got != tt.want || known != tt.wantKnown {
			t.Errorf("addressingModeName(%d) = %q, %v; want %q, %v", tt.mode, got, known, tt.want, tt.wantKnown)
		}
	}
}
