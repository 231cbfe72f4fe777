package sim

import (
	"fmt"
	"slices"

	"github.com/NVIDIA/go-nvlib/pkg/nvlib/device"
	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"

	"github.com/gpudra/gpudra/internal/gpu"
)

// hardwareGIProfileIDs maps NVML's GPU-instance profile enum (the argument of
// GetGpuInstanceProfileInfo) to the profile ID the hardware reports in
// GpuInstanceProfileInfo.Id and nvidia-smi shows ("MIG 1g.10gb  19"). The
// go-nvml mocks echo the enum as the ID; device names and CreateMIGDevice use
// the hardware ID, so the sim must report what a real A100, H100, H200 or
// B200 does (they share this numbering).
var hardwareGIProfileIDs = map[int]int{
	nvml.GPU_INSTANCE_PROFILE_7_SLICE:      0,
	nvml.GPU_INSTANCE_PROFILE_4_SLICE:      5,
	nvml.GPU_INSTANCE_PROFILE_3_SLICE:      9,
	nvml.GPU_INSTANCE_PROFILE_2_SLICE:      14,
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2: 15,
	nvml.GPU_INSTANCE_PROFILE_1_SLICE:      19,
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1: 20,
}

// memorySlicePlacements are the placements the hardware reports for each
// GPU-instance profile enum (`nvidia-smi mig -lgipp`) on every MIG GPU the
// catalog has (A100, H100, H200, B200: 7 compute and 8 memory slices). The
// go-nvml mocks of the H100, H200 and B200 give 3g and 7g instances 3 and 7
// memory slices and 1g.20gb-class instances one slice at any of 7 starts
// (their A100 mock has it right); a sim that took those would let seven
// 1g.20gb fit on one GPU and publish counters real nodes do not have.
var memorySlicePlacements = map[int][]gpu.Placement{
	nvml.GPU_INSTANCE_PROFILE_1_SLICE:      {{Start: 0, Size: 1}, {Start: 1, Size: 1}, {Start: 2, Size: 1}, {Start: 3, Size: 1}, {Start: 4, Size: 1}, {Start: 5, Size: 1}, {Start: 6, Size: 1}},
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV1: {{Start: 0, Size: 1}, {Start: 1, Size: 1}, {Start: 2, Size: 1}, {Start: 3, Size: 1}, {Start: 4, Size: 1}, {Start: 5, Size: 1}, {Start: 6, Size: 1}},
	nvml.GPU_INSTANCE_PROFILE_1_SLICE_REV2: {{Start: 0, Size: 2}, {Start: 2, Size: 2}, {Start: 4, Size: 2}, {Start: 6, Size: 2}},
	nvml.GPU_INSTANCE_PROFILE_2_SLICE:      {{Start: 0, Size: 2}, {Start: 2, Size: 2}, {Start: 4, Size: 2}},
	nvml.GPU_INSTANCE_PROFILE_3_SLICE:      {{Start: 0, Size: 4}, {Start: 4, Size: 4}},
	nvml.GPU_INSTANCE_PROFILE_4_SLICE:      {{Start: 0, Size: 4}},
	nvml.GPU_INSTANCE_PROFILE_7_SLICE:      {{Start: 0, Size: 8}},
}

// migProfilesFromMock turns a mock's GPU-instance profiles into gpu.MIGProfiles,
// each paired with the compute-instance profile that spans the whole GPU
// instance (the only shape gpudra creates).
func migProfilesFromMock(c gpus.MIGProfileConfig, deviceMemoryBytes uint64) ([]migProfileSpec, error) {
	namer := device.New(nil)
	var specs []migProfileSpec
	names := map[string]bool{}
	for giEnum, info := range c.GpuInstanceProfiles {
		memoryMB := migMemoryMB(info.MemorySizeMB, deviceMemoryBytes/mib)
		hwID, ok := hardwareGIProfileIDs[giEnum]
		if !ok {
			return nil, fmt.Errorf("GPU instance profile %d: no hardware profile ID known", giEnum)
		}
		ciEnum, err := fullComputeInstanceProfile(c.ComputeInstanceProfiles[giEnum], int(info.SliceCount))
		if err != nil {
			return nil, fmt.Errorf("GPU instance profile %d: %w", giEnum, err)
		}
		// go-nvlib names profiles from the enum, as it does on hardware.
		name, err := namer.NewMigProfile(giEnum, ciEnum, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED, memoryMB, deviceMemoryBytes)
		if err != nil {
			return nil, fmt.Errorf("GPU instance profile %d: name: %w", giEnum, err)
		}
		if names[name.String()] {
			return nil, fmt.Errorf("GPU instance profile %d: name %s is taken by another profile", giEnum, name)
		}
		names[name.String()] = true
		placements := slices.Clone(memorySlicePlacements[giEnum])
		if placements == nil {
			for _, p := range c.GpuInstancePlacements[giEnum] {
				placements = append(placements, gpu.Placement{Start: int(p.Start), Size: int(p.Size)})
			}
		}
		if len(placements) == 0 {
			return nil, fmt.Errorf("GPU instance profile %s: no placements", name)
		}
		slices.SortFunc(placements, func(a, b gpu.Placement) int { return a.Start - b.Start })
		specs = append(specs, migProfileSpec{
			profile: gpu.MIGProfile{
				Name:            name.String(),
				GIProfileID:     hwID,
				CIProfileID:     ciEnum,
				SliceCount:      int(info.SliceCount),
				Multiprocessors: int(info.MultiprocessorCount),
				CopyEngines:     int(info.CopyEngineCount),
				Decoders:        int(info.DecoderCount),
				Encoders:        int(info.EncoderCount),
				JPEGEngines:     int(info.JpegCount),
				OFAEngines:      int(info.OfaCount),
				MemoryBytes:     memoryMB * mib,
				Placements:      placements,
			},
			instanceCount: min(int(info.InstanceCount), len(placements)),
		})
	}
	slices.SortFunc(specs, func(a, b migProfileSpec) int { return a.profile.GIProfileID - b.profile.GIProfileID })
	return specs, nil
}

// fullComputeInstanceProfile returns the compute-instance profile whose slice
// count equals the GPU instance's. Compute-instance profile IDs equal their
// enum values on hardware, so no mapping is needed.
func fullComputeInstanceProfile(ciProfiles map[int]nvml.ComputeInstanceProfileInfo, giSlices int) (int, error) {
	for ciEnum, ci := range ciProfiles {
		if int(ci.SliceCount) == giSlices {
			return ciEnum, nil
		}
	}
	return 0, fmt.Errorf("no compute instance profile spans all %d slices", giSlices)
}

// migMemoryMB returns a profile's memory, at most its share of the GPU: a
// profile owns a whole number of the GPU's eight memory slices. The H200 and
// B200 mocks round profile sizes past that share (1g.18gb: 18432 MiB of
// 144384), which makes go-nvlib name it "1g.35gb"; clamping restores the
// names hardware reports and only trims a few hundred MiB.
func migMemoryMB(profileMB, deviceMB uint64) uint64 {
	eighths := (profileMB*memorySlicesPerGPU + deviceMB/2) / deviceMB // nearest whole number of slices
	return min(profileMB, eighths*deviceMB/memorySlicesPerGPU)
}
