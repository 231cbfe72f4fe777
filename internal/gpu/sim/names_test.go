package sim

import (
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

func TestArchitectureName(t *testing.T) {
	tests := []struct {
		arch nvml.DeviceArchitecture
		want string
	}{
		{nvml.DEVICE_ARCH_AMPERE, "Ampere"},
		{nvml.DEVICE_ARCH_ADA, "Ada Lovelace"},
		{nvml.DEVICE_ARCH_HOPPER, "Hopper"},
		{nvml.DEVICE_ARCH_BLACKWELL, "Blackwell"},
		{nvml.DEVICE_ARCH_VOLTA, "Volta"},
		{nvml.DEVICE_ARCH_UNKNOWN, "Unknown"},
		{nvml.DeviceArchitecture(99), "Unknown"},
	}
	for _, tt := range tests {
		if got := ArchitectureName(tt.arch); got != tt.want {
			t.Errorf("ArchitectureName(%d) = %q, want %q", tt.arch, got, tt.want)
		}
	}
}

func TestBrandName(t *testing.T) {
	tests := []struct {
		brand nvml.BrandType
		want  string
	}{
		{nvml.BRAND_NVIDIA, "Nvidia"},
		{nvml.BRAND_TESLA, "Tesla"},
		{nvml.BRAND_GEFORCE_RTX, "GeForceRTX"},
		{nvml.BRAND_NVIDIA_RTX, "NvidiaRTX"},
		{nvml.BRAND_UNKNOWN, "Unknown"},
		{nvml.BrandType(99), "Unknown(99)"},
	}
	for _, tt := range tests {
		if got := BrandName(tt.brand); got != tt.want {
			t.Errorf("BrandName(%d) = %q, want %q", tt.brand, got, tt.want)
		}
	}
}
