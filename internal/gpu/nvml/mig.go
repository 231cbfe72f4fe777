package nvml

import (
	"context"
	"fmt"
	"sort"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"

	"github.com/gpudra/gpudra/internal/gpu"
)

// fullComputeInstanceProfile maps a GPU-instance profile's slice count to the
// compute-instance profile index that spans the whole instance: gpudra's MIG
// devices are always one GPU instance with one such compute instance.
var fullComputeInstanceProfile = map[uint32]int{
	1: gonvml.COMPUTE_INSTANCE_PROFILE_1_SLICE,
	2: gonvml.COMPUTE_INSTANCE_PROFILE_2_SLICE,
	3: gonvml.COMPUTE_INSTANCE_PROFILE_3_SLICE,
	4: gonvml.COMPUTE_INSTANCE_PROFILE_4_SLICE,
	6: gonvml.COMPUTE_INSTANCE_PROFILE_6_SLICE,
	7: gonvml.COMPUTE_INSTANCE_PROFILE_7_SLICE,
	8: gonvml.COMPUTE_INSTANCE_PROFILE_8_SLICE,
}

// migProfileQuery keeps, next to a published profile, what NVML needs to find
// that profile's instances. giInfo comes from GetGpuInstanceProfileInfo(i),
// whose argument i is a profile index, not the profile ID in the answer; the
// two differ on real GPUs (index 0 is ID 19 on an H100).
type migProfileQuery struct {
	giInfo  gonvml.GpuInstanceProfileInfo
	ciIndex int
	profile gpu.MIGProfile
}

// readMIG fills the MIG profiles of a MIG-capable GPU and, when MIG is
// enabled, the MIG devices that exist on it.
func (b *Backend) readMIG(ctx context.Context, index int, dev gonvml.Device, g *gpu.GPU) error {
	queries, err := b.migProfiles(ctx, index, dev, g.MemoryBytes)
	if err != nil {
		return err
	}
	for _, q := range queries {
		g.MIGProfiles = append(g.MIGProfiles, q.profile)
	}
	if !g.MIGEnabled {
		return nil
	}
	g.MIGDevices, err = migDevices(dev, queries)
	return err
}

// migProfiles lists the GPU-instance profiles the GPU accepts, ordered by
// profile ID. A profile go-nvlib cannot name (one newer than this build) is
// left out with a log line: one unknown profile must not hide the GPU.
func (b *Backend) migProfiles(ctx context.Context, index int, dev gonvml.Device, gpuMemoryBytes uint64) ([]migProfileQuery, error) {
	logger := klog.FromContext(ctx)
	var queries []migProfileQuery
	for profileIndex := range gonvml.GPU_INSTANCE_PROFILE_COUNT {
		info, ret := dev.GetGpuInstanceProfileInfo(profileIndex)
		switch ret {
		case gonvml.SUCCESS:
		case gonvml.ERROR_NOT_SUPPORTED, gonvml.ERROR_INVALID_ARGUMENT:
			continue
		default:
			return nil, nvmlCall(fmt.Sprintf("nvmlDeviceGetGpuInstanceProfileInfo(%d)", profileIndex), ret)
		}

		ciIndex, ok := fullComputeInstanceProfile[info.SliceCount]
		if !ok {
			logger.V(2).Info("Skipping MIG profile with unexpected slice count", "gpu", index, "profileIndex", profileIndex, "sliceCount", info.SliceCount)
			continue
		}
		name, err := b.devices.NewMigProfile(profileIndex, ciIndex, gonvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED, info.MemorySizeMB, gpuMemoryBytes)
		if err != nil {
			logger.V(2).Info("Skipping MIG profile without a known name", "gpu", index, "profileIndex", profileIndex, "err", err)
			continue
		}

		nvmlPlacements, ret := dev.GetGpuInstancePossiblePlacements(&info)
		switch ret {
		case gonvml.SUCCESS:
		case gonvml.ERROR_NOT_SUPPORTED:
			logger.V(2).Info("Skipping MIG profile without placements", "gpu", index, "profile", name.String())
			continue
		default:
			return nil, nvmlCall(fmt.Sprintf("nvmlDeviceGetGpuInstancePossiblePlacements(%s)", name), ret)
		}
		placements := make([]gpu.Placement, 0, len(nvmlPlacements))
		for _, p := range nvmlPlacements {
			placements = append(placements, gpu.Placement{Start: int(p.Start), Size: int(p.Size)})
		}

		queries = append(queries, migProfileQuery{
			giInfo:  info,
			ciIndex: ciIndex,
			profile: gpu.MIGProfile{
				Name:            name.String(),
				GIProfileID:     int(info.Id),
				CIProfileID:     ciIndex,
				SliceCount:      int(info.SliceCount),
				Multiprocessors: int(info.MultiprocessorCount),
				CopyEngines:     int(info.CopyEngineCount),
				Decoders:        int(info.DecoderCount),
				Encoders:        int(info.EncoderCount),
				JPEGEngines:     int(info.JpegCount),
				OFAEngines:      int(info.OfaCount),
				MemoryBytes:     info.MemorySizeMB * 1024 * 1024,
				Placements:      placements,
			},
		})
	}
	sort.Slice(queries, func(i, j int) bool { return queries[i].profile.GIProfileID < queries[j].profile.GIProfileID })
	return queries, nil
}

// migInstanceKey names a MIG device by where it lives on its parent GPU.
type migInstanceKey struct {
	giID, ciID int
}

// migDevices lists the GPU instances of the known profiles that hold a
// compute instance spanning the whole instance, ordered by placement start,
// then profile ID. Instances split into smaller compute instances are not
// gpudra's and are not reported.
func migDevices(dev gonvml.Device, queries []migProfileQuery) ([]gpu.MIGDevice, error) {
	uuids, err := migDeviceUUIDs(dev)
	if err != nil {
		return nil, err
	}

	var devices []gpu.MIGDevice
	for _, q := range queries {
		instances, ret := dev.GetGpuInstances(&q.giInfo)
		if ret != gonvml.SUCCESS {
			return nil, nvmlCall(fmt.Sprintf("nvmlDeviceGetGpuInstances(%s)", q.profile.Name), ret)
		}
		for _, gi := range instances {
			giInfo, ret := gi.GetInfo()
			if ret != gonvml.SUCCESS {
				return nil, nvmlCall(fmt.Sprintf("nvmlGpuInstanceGetInfo of a %s GPU instance", q.profile.Name), ret)
			}
			ciProfile, ret := gi.GetComputeInstanceProfileInfo(q.ciIndex, gonvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
			if ret == gonvml.ERROR_NOT_SUPPORTED {
				continue
			}
			if ret != gonvml.SUCCESS {
				return nil, nvmlCall(fmt.Sprintf("nvmlGpuInstanceGetComputeInstanceProfileInfo of GPU instance %d", giInfo.Id), ret)
			}
			spanning, ret := gi.GetComputeInstances(&ciProfile)
			if ret != gonvml.SUCCESS {
				return nil, nvmlCall(fmt.Sprintf("nvmlGpuInstanceGetComputeInstances of GPU instance %d", giInfo.Id), ret)
			}
			if len(spanning) == 0 {
				// A GPU instance with no compute instance at all is a
				// create that stopped half-way: reported Incomplete, so
				// its owner can remove it. One split into smaller compute
				// instances is someone else's and is left out.
				all, err := computeInstances(gi)
				if err != nil {
					return nil, fmt.Errorf("GPU instance %d: %w", giInfo.Id, err)
				}
				if len(all) == 0 {
					devices = append(devices, gpu.MIGDevice{
						Profile:    q.profile,
						Placement:  gpu.Placement{Start: int(giInfo.Placement.Start), Size: int(giInfo.Placement.Size)},
						GIID:       int(giInfo.Id),
						CIID:       -1,
						Incomplete: true,
					})
				}
				continue
			}
			for _, ci := range spanning {
				ciInfo, ret := ci.GetInfo()
				if ret != gonvml.SUCCESS {
					return nil, nvmlCall(fmt.Sprintf("nvmlComputeInstanceGetInfo of a compute instance of GPU instance %d", giInfo.Id), ret)
				}
				key := migInstanceKey{giID: int(giInfo.Id), ciID: int(ciInfo.Id)}
				uuid, ok := uuids[key]
				if !ok {
					return nil, fmt.Errorf("GPU instance %d compute instance %d has no MIG device handle", key.giID, key.ciID)
				}
				devices = append(devices, gpu.MIGDevice{
					UUID:      uuid,
					Profile:   q.profile,
					Placement: gpu.Placement{Start: int(giInfo.Placement.Start), Size: int(giInfo.Placement.Size)},
					GIID:      key.giID,
					CIID:      key.ciID,
				})
			}
		}
	}

	sort.Slice(devices, func(i, j int) bool {
		a, b := devices[i], devices[j]
		if a.Placement.Start != b.Placement.Start {
			return a.Placement.Start < b.Placement.Start
		}
		return a.Profile.GIProfileID < b.Profile.GIProfileID
	})
	return devices, nil
}

// migDeviceUUIDs walks the GPU's MIG device handles. NVML numbers them in
// slots up to GetMaxMigDeviceCount, and empty slots answer NOT_FOUND.
func migDeviceUUIDs(dev gonvml.Device) (map[migInstanceKey]string, error) {
	slots, ret := dev.GetMaxMigDeviceCount()
	if ret != gonvml.SUCCESS {
		return nil, nvmlCall("nvmlDeviceGetMaxMigDeviceCount", ret)
	}
	uuids := make(map[migInstanceKey]string)
	for slot := range slots {
		mig, ret := dev.GetMigDeviceHandleByIndex(slot)
		switch ret {
		case gonvml.SUCCESS:
		case gonvml.ERROR_NOT_FOUND, gonvml.ERROR_INVALID_ARGUMENT:
			continue
		default:
			return nil, nvmlCall(fmt.Sprintf("nvmlDeviceGetMigDeviceHandleByIndex(%d)", slot), ret)
		}
		giID, ret := mig.GetGpuInstanceId()
		if ret != gonvml.SUCCESS {
			return nil, nvmlCall(fmt.Sprintf("nvmlDeviceGetGpuInstanceId of MIG device %d", slot), ret)
		}
		ciID, ret := mig.GetComputeInstanceId()
		if ret != gonvml.SUCCESS {
			return nil, nvmlCall(fmt.Sprintf("nvmlDeviceGetComputeInstanceId of MIG device %d", slot), ret)
		}
		uuid, ret := mig.GetUUID()
		if ret != gonvml.SUCCESS {
			return nil, nvmlCall(fmt.Sprintf("nvmlDeviceGetUUID of MIG device %d", slot), ret)
		}
		uuids[migInstanceKey{giID: giID, ciID: ciID}] = uuid
	}
	return uuids, nil
}
