// Package pack measures how much of a GPU node a request stream fills
// under each way of publishing its GPUs: whole GPUs only, static MIG mixes,
// and dynamic MIG.
//
// Contract:
//   - One simulated node of 8 × H100 80GB. Requests come in a seeded stream
//     (25% whole GPU, 35% ≤ 10 GiB, 25% ≤ 20 GiB, 15% ≤ 40 GiB); each is one
//     claim the scheduler's own allocator places (allocate.Scheduler), in
//     arrival order, until the first that does not fit.
//   - A memory request asks class mig.nvidia.com for a device with at least
//     that much memory, or else (a prioritized list) a whole GPU; a
//     whole-GPU request asks class gpu.nvidia.com. On the whole-GPU layout
//     every request takes a whole GPU (the device-plugin world).
//   - The bound is first-fit decreasing over MIG placements: the largest
//     prefix of the stream that FFD, knowing the whole prefix, places onto
//     the node's GPUs with each memory request as the smallest published
//     profile that fits. Placed ÷ bound is the utilisation of a layout.
//   - Deterministic: the same seeds give the same numbers.
package pack

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/gpudra/gpudra/internal/bench/allocate"
	"github.com/gpudra/gpudra/internal/devicemodel"
	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// Request is one request of the stream: a whole GPU (MemoryGiB 0) or a MIG
// device of at least MemoryGiB.
type Request struct {
	MemoryGiB int
}

func (r Request) String() string {
	if r.MemoryGiB == 0 {
		return "gpu"
	}
	return fmt.Sprintf("%dGi", r.MemoryGiB)
}

// Stream returns n requests drawn with the seed: 25% whole GPU, 35%
// ≤ 10 GiB, 25% ≤ 20 GiB, 15% ≤ 40 GiB.
func Stream(seed uint64, n int) []Request {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	out := make([]Request, n)
	for i := range out {
		switch x := rng.IntN(100); {
		case x < 25:
			out[i] = Request{}
		case x < 60:
			out[i] = Request{MemoryGiB: 10}
		case x < 85:
			out[i] = Request{MemoryGiB: 20}
		default:
			out[i] = Request{MemoryGiB: 40}
		}
	}
	return out
}

// Layout is one way to publish the node.
type Layout struct {
	Name        string
	Description string
	// Node is the simulated node.
	Node *sim.Config
	// Dynamic publishes with devicemodel.BuildDynamic, republished after
	// each placement; nil publishes with devicemodel.Build.
	Dynamic *devicemodel.DynamicOptions
	// WholeOnly: every request asks for a whole GPU.
	WholeOnly bool
	// Fixed: a Dynamic layout published once and never again, as a
	// driver that publishes every placement does (counters alone keep
	// overlapping placements apart).
	Fixed bool
}

// Layouts returns the layouts compared, in report order.
func Layouts() []Layout {
	h100 := "h100-sxm5-80gb"
	staticMix := func(devices []sim.MIGDeviceConfig) *sim.Config {
		return &sim.Config{GPUs: []sim.GPUConfig{
			{Model: h100, Count: ptr.To(4)},
			{Model: h100, Count: ptr.To(4), MIGEnabled: true, MIGDevices: devices},
		}}
	}
	sevenSmall := make([]sim.MIGDeviceConfig, 7)
	for i := range sevenSmall {
		sevenSmall[i] = sim.MIGDeviceConfig{Profile: "1g.10gb", Placement: ptr.To(i)}
	}
	every := allocate.EveryPlacement()
	return []Layout{
		{Name: "whole-gpus", Description: "MIG off: every request takes a whole GPU", Node: &sim.Config{Profile: "dgxh100"}, WholeOnly: true},
		{Name: "static-4+4x7", Description: "static MIG: 4 whole GPUs, 4 cut into 7 × 1g.10gb", Node: staticMix(sevenSmall)},
		{Name: "static-4+4x(3g,2g,1g,1g)", Description: "static MIG: 4 whole GPUs, 4 cut into 3g.40gb + 2g.20gb + 2 × 1g.10gb", Node: staticMix([]sim.MIGDeviceConfig{
			{Profile: "2g.20gb", Placement: ptr.To(0)}, {Profile: "1g.10gb", Placement: ptr.To(2)},
			{Profile: "1g.10gb", Placement: ptr.To(3)}, {Profile: "3g.40gb", Placement: ptr.To(4)},
		})},
		{Name: "dynamic-all", Description: "dynamic MIG, every free placement of 5 profiles on cut GPUs and one open GPU", Node: &sim.Config{Profile: "dgxh100-mig"}, Dynamic: &devicemodel.DynamicOptions{}},
		{Name: "dynamic-1", Description: "dynamic MIG, one best-fit placement per profile and GPU", Node: &sim.Config{Profile: "dgxh100-mig"}, Dynamic: &devicemodel.DynamicOptions{PerProfile: 1}},
		{Name: "dynamic-all+1g.20gb", Description: "dynamic-all with 1g.20gb offered too", Node: &sim.Config{Profile: "dgxh100-mig"}, Dynamic: &devicemodel.DynamicOptions{Profiles: []string{"1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"}}},
		{Name: "every-placement", Description: "upstream's layout: every profile at every placement of every GPU, published once (GPU by GPU)", Node: &sim.Config{Profile: "dgxh100-mig"}, Dynamic: &every, Fixed: true},
	}
}

// Result is one layout on one seed's stream.
type Result struct {
	Layout string `json:"layout"`
	Seed   uint64 `json:"seed"`
	// Placed is how many requests, in arrival order, fit before the first
	// that did not.
	Placed int `json:"placed"`
	// Bound is the FFD bound of the stream on the node.
	Bound int `json:"bound"`
	// Ratio is Placed / Bound.
	Ratio float64 `json:"ratio"`
	// FirstMiss is the request that did not fit ("" if the stream ran out).
	FirstMiss string `json:"firstMiss"`
}

// Run places each seed's stream on each layout.
func Run(ctx context.Context, layouts []Layout, seeds []uint64, streamLen int) ([]Result, error) {
	var out []Result
	for _, seed := range seeds {
		stream := Stream(seed, streamLen)
		bound, err := ffdBound(ctx, stream)
		if err != nil {
			return nil, err
		}
		for _, l := range layouts {
			placed, miss, err := arrival(ctx, l, stream)
			if err != nil {
				return nil, fmt.Errorf("layout %s, seed %d: %w", l.Name, seed, err)
			}
			r := Result{Layout: l.Name, Seed: seed, Placed: placed, Bound: bound, FirstMiss: miss}
			if bound > 0 {
				r.Ratio = float64(placed) / float64(bound)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// arrival places the stream in order with the scheduler's allocator until
// the first request that does not fit.
func arrival(ctx context.Context, l Layout, stream []Request) (int, string, error) {
	cl, err := allocate.NodeCluster(ctx, "pack-node", l.Node, l.Dynamic)
	if err != nil {
		return 0, "", err
	}
	if l.Fixed {
		cl.Republish = nil
	}
	s := allocate.NewScheduler(cl)
	for i, r := range stream {
		if l.WholeOnly {
			r = Request{}
		}
		p, err := s.Schedule(ctx, claim(fmt.Sprintf("r-%d", i), r))
		if err != nil {
			return 0, "", err
		}
		if p == nil {
			return i, stream[i].String(), nil
		}
	}
	return len(stream), "", nil
}

// claim asks for a whole GPU, or for a MIG device with the memory and,
// failing that, a whole GPU (a prioritized list, GA since Kubernetes 1.36):
// what a user who needs the memory would write.
func claim(name string, r Request) *resourceapi.ResourceClaim {
	whole := resourceapi.DeviceSubRequest{
		Name:            "gpu",
		DeviceClassName: allocate.GPUClass,
		AllocationMode:  resourceapi.DeviceAllocationModeExactCount,
		Count:           1,
	}
	req := resourceapi.DeviceRequest{Name: "r"}
	if r.MemoryGiB == 0 {
		req.Exactly = &resourceapi.ExactDeviceRequest{DeviceClassName: whole.DeviceClassName, AllocationMode: whole.AllocationMode, Count: 1}
	} else {
		mig := whole
		mig.Name, mig.DeviceClassName = "mig", allocate.MIGClass
		mig.Selectors = []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{
			Expression: fmt.Sprintf("device.capacity['%s'].memory.compareTo(quantity('%dGi')) >= 0", allocate.DriverName, r.MemoryGiB),
		}}}
		req.FirstAvailable = []resourceapi.DeviceSubRequest{mig, whole}
	}
	return &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "pack", Name: name, UID: types.UID("pack-" + name)},
		Spec:       resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{req}}},
	}
}

// ffdBound is the largest prefix of the stream that first-fit decreasing
// places whole onto an 8 × H100 node in MIG mode.
func ffdBound(ctx context.Context, stream []Request) (int, error) {
	b, err := sim.NewFromConfig("pack-node", &sim.Config{Profile: "dgxh100-mig"})
	if err != nil {
		return 0, err
	}
	inv, err := b.Inventory(ctx)
	_ = b.Close()
	if err != nil {
		return 0, err
	}
	g := inv.GPUs[0]
	published := devicemodel.DefaultDynamicProfiles(&g)
	var profiles []gpu.MIGProfile
	for _, p := range g.MIGProfiles {
		if slices.Contains(published, p.Name) {
			profiles = append(profiles, p)
		}
	}
	// The smallest profile (fewest slices, then least memory) that fits.
	profileFor := func(r Request) (gpu.MIGProfile, bool) {
		var best *gpu.MIGProfile
		for i, p := range profiles {
			if p.MemoryBytes < uint64(r.MemoryGiB)<<30 {
				continue
			}
			if best == nil || p.SliceCount < best.SliceCount || (p.SliceCount == best.SliceCount && p.MemoryBytes < best.MemoryBytes) {
				best = &profiles[i]
			}
		}
		if best == nil {
			return gpu.MIGProfile{}, false
		}
		return *best, true
	}
	fits := func(prefix []Request) bool {
		items := slices.Clone(prefix)
		size := func(r Request) int {
			if r.MemoryGiB == 0 {
				return 8000 // a whole GPU is the largest item
			}
			p, _ := profileFor(r)
			return p.SliceCount*1000 + r.MemoryGiB
		}
		slices.SortStableFunc(items, func(a, b Request) int { return size(b) - size(a) })
		used := make([][]gpu.Placement, len(inv.GPUs))
		whole := make([]bool, len(inv.GPUs))
		for _, r := range items {
			placed := false
			for i := range used {
				if whole[i] {
					continue
				}
				if r.MemoryGiB == 0 {
					if len(used[i]) == 0 {
						whole[i], placed = true, true
						break
					}
					continue
				}
				p, ok := profileFor(r)
				if !ok {
					return false
				}
				if pl, ok := bestFit(p, profiles, used[i]); ok {
					used[i] = append(used[i], pl)
					placed = true
					break
				}
			}
			if !placed {
				return false
			}
		}
		return true
	}
	n := 0
	for n < len(stream) && fits(stream[:n+1]) {
		n++
	}
	return n, nil
}

// bestFit is the free placement of p that blocks the fewest free
// placements of larger profiles (ties: the highest start), as dynamic MIG
// orders them.
func bestFit(p gpu.MIGProfile, profiles []gpu.MIGProfile, used []gpu.Placement) (gpu.Placement, bool) {
	free := func(pl gpu.Placement) bool { return !slices.ContainsFunc(used, pl.Overlaps) }
	best, bestScore, found := gpu.Placement{}, 0, false
	for _, pl := range p.Placements {
		if !free(pl) {
			continue
		}
		score := 0
		for _, q := range profiles {
			if q.SliceCount <= p.SliceCount {
				continue
			}
			for _, qpl := range q.Placements {
				if free(qpl) && qpl.Overlaps(pl) {
					score++
				}
			}
		}
		if !found || score < bestScore || (score == bestScore && pl.Start > best.Start) {
			best, bestScore, found = pl, score, true
		}
	}
	return best, found
}
