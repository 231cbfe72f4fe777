package prepare

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	dracel "k8s.io/dynamic-resource-allocation/cel"
	"k8s.io/dynamic-resource-allocation/structured"
)

// allocateDisjoint allocates claims one by one with the scheduler's own
// allocator, each seeing the devices of the claims before it as taken, the
// way the scheduler sees allocated claims. It returns how many claims got
// an allocation (the rest did not fit on the node).
func allocateDisjoint(ctx context.Context, node *corev1.Node, slices []*resourceapi.ResourceSlice, dc structured.DeviceClassLister, claims []*resourceapi.ResourceClaim) (int, error) {
	features := structured.Features{AdminAccess: true, DeviceTaints: true, PartitionableDevices: true, PrioritizedList: true}
	state := structured.AllocatedState{AllocatedDevices: sets.New[structured.DeviceID]()}
	cache := dracel.NewCache(10, dracel.Features{})
	for i, claim := range claims {
		alloc, err := structured.NewAllocator(ctx, features, state, dc, slices, cache)
		if err != nil {
			return i, err
		}
		results, err := alloc.Allocate(ctx, node, []*resourceapi.ResourceClaim{claim})
		if err != nil {
			return i, fmt.Errorf("allocate claim %s: %w", claim.Name, err)
		}
		if len(results) != 1 {
			return i, nil
		}
		claim.Status.Allocation = &results[0]
		for _, r := range results[0].Devices.Results {
			state.AllocatedDevices.Insert(structured.MakeDeviceID(r.Driver, r.Pool, r.Device))
		}
	}
	return len(claims), nil
}
