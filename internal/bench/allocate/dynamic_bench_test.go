package allocate

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/dynamic-resource-allocation/cel"
	"k8s.io/dynamic-resource-allocation/structured"

	"github.com/gpudra/gpudra/internal/devicemodel"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// One Allocate call on one empty DGX H100 node, per claim kind: what a
// node costs the scheduler per pod, without the cluster around it. For
// profiles: go test ./internal/bench/allocate -run X -bench Node -cpuprofile cpu.out
func benchmarkNode(b *testing.B, migOff bool, opts devicemodel.DynamicOptions, kind MIGKind) {
	benchmarkNodeSlices(b, migOff, false, opts, kind)
}

// benchmarkNodeSlices with minimal set strips every device to what the
// claims select on (type, profile), its memory and its counters: what the
// allocator would cost if building a device's CEL variables were free.
func benchmarkNodeSlices(b *testing.B, migOff, minimal bool, opts devicemodel.DynamicOptions, kind MIGKind) {
	ctx := context.Background()
	be, err := sim.NewFromConfig("node-0", &sim.Config{Profile: "dgxh100-mig"})
	if err != nil {
		b.Fatal(err)
	}
	inv, err := be.Inventory(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if migOff {
		for i := range inv.GPUs {
			inv.GPUs[i].MIGEnabled = false
		}
	}
	slices, err := publishDynamic(inv, opts, "node-0", nil)
	if err != nil {
		b.Fatal(err)
	}
	if minimal {
		for _, s := range slices {
			for j, d := range s.Spec.Devices {
				m := minimalDevice(d, []resourceapi.QualifiedName{"type", "profile"})
				m.ConsumesCounters = d.ConsumesCounters
				s.Spec.Devices[j] = m
			}
		}
	}
	state := structured.AllocatedState{
		AllocatedDevices:         sets.New[structured.DeviceID](),
		AllocatedSharedDeviceIDs: sets.New[structured.SharedDeviceID](),
		AggregatedCapacity:       structured.NewConsumedCapacityCollection(),
	}
	cache := cel.NewCache(celCacheSize, cel.Features{EnableConsumableCapacity: true})
	allocator, err := structured.NewAllocator(ctx, allocatorFeatures, state, NewClassLister(DeviceClasses()), slices, cache)
	if err != nil {
		b.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-0"}}
	claims := []*resourceapi.ResourceClaim{kind.Claim("c")}
	b.ResetTimer()
	for range b.N {
		if _, err := allocator.Allocate(ctx, node, claims); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNodeWholeGPUsMIGOff(b *testing.B) {
	benchmarkNode(b, true, devicemodel.DynamicOptions{}, MIGKind{Slices: 7})
}

func BenchmarkNodeDynamic1(b *testing.B) {
	for _, k := range []MIGKind{{"1g.10gb", 1}, {"2g.20gb", 2}, {"4g.40gb", 4}, {"7g.80gb", 7}, {"", 7}} {
		b.Run(k.Name(), func(b *testing.B) { benchmarkNode(b, false, devicemodel.DynamicOptions{PerProfile: 1}, k) })
	}
}

// BenchmarkNodeDynamic1Minimal: as BenchmarkNodeDynamic1 with every device
// stripped to two attributes, its memory and its counters. The gap to
// BenchmarkNodeDynamic1 is the most a lazy attribute lookup in the
// allocator's CEL evaluation (upstream's TODO in cel.DeviceMatches) or
// fewer published attributes could gain.
func BenchmarkNodeDynamic1Minimal(b *testing.B) {
	for _, k := range []MIGKind{{"1g.10gb", 1}, {"2g.20gb", 2}, {"4g.40gb", 4}, {"7g.80gb", 7}, {"", 7}} {
		b.Run(k.Name(), func(b *testing.B) { benchmarkNodeSlices(b, false, true, devicemodel.DynamicOptions{PerProfile: 1}, k) })
	}
}
