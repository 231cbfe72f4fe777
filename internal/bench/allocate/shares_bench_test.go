package allocate

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/dynamic-resource-allocation/cel"
	"k8s.io/dynamic-resource-allocation/structured"

	"github.com/gpudra/gpudra/internal/devicemodel"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// One Allocate of a 20 GiB share on one DGX H100 whose GPUs hold `held`
// shares of 20 GiB each (3 of 4 fit: 0, 1, 2, 3 leaves the first GPUs
// full). For profiles: go test ./internal/bench/allocate -run X -bench NodeShares -cpuprofile cpu.out
func benchmarkNodeShares(b *testing.B, held int, shared bool) {
	ctx := context.Background()
	be, err := sim.NewFromConfig("node-0", &sim.Config{Profile: "dgxh100"})
	if err != nil {
		b.Fatal(err)
	}
	inv, err := be.Inventory(ctx)
	if err != nil {
		b.Fatal(err)
	}
	devs, err := devicemodel.Build(inv)
	if err != nil {
		b.Fatal(err)
	}
	if shared {
		devicemodel.ShareMemory(devs)
	}
	list := devicemodel.ResourceSlices(DriverName, "node-0", devicemodel.DriverResources("node-0", devs))
	var slices []*resourceapi.ResourceSlice
	for i := range list.Items {
		slices = append(slices, &list.Items[i])
	}
	state := structured.AllocatedState{
		AllocatedDevices:         sets.New[structured.DeviceID](),
		AllocatedSharedDeviceIDs: sets.New[structured.SharedDeviceID](),
		AggregatedCapacity:       structured.NewConsumedCapacityCollection(),
	}
	for k := 0; k < held; k++ {
		// GPU by GPU: the first GPUs fill up (4 x 20 GiB), as first fit leaves them.
		id := structured.MakeDeviceID(DriverName, "node-0", devs[(k/4)%len(devs)].Name)
		share := types.UID(fmt.Sprintf("held-%d", k))
		state.AllocatedSharedDeviceIDs.Insert(structured.MakeSharedDeviceID(id, &share))
		state.AggregatedCapacity.Insert(structured.NewDeviceConsumedCapacity(id, map[resourceapi.QualifiedName]resource.Quantity{"memory": resource.MustParse("20Gi")}))
	}
	cache := cel.NewCache(celCacheSize, cel.Features{EnableConsumableCapacity: true})
	allocator, err := structured.NewAllocator(ctx, allocatorFeatures, state, NewClassLister(DeviceClasses()), slices, cache)
	if err != nil {
		b.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-0"}}
	claim := newClaim("c", exactRequest("gpu", GPUClass, 1, ""), nil)
	if shared {
		claim = ShareClaim("c", 20)
	}
	claims := []*resourceapi.ResourceClaim{claim}
	b.ResetTimer()
	for range b.N {
		if _, err := allocator.Allocate(ctx, node, claims); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNodeSharesWholeGPU(b *testing.B) { benchmarkNodeShares(b, 0, false) }

func BenchmarkNodeShares(b *testing.B) {
	for _, held := range []int{0, 14, 28} { // empty, half, 7 of 8 GPUs full
		b.Run(fmt.Sprintf("held-%d", held), func(b *testing.B) { benchmarkNodeShares(b, held, true) })
	}
}
