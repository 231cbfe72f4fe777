package allocate

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/dynamic-resource-allocation/cel"
	"k8s.io/dynamic-resource-allocation/structured"
)

// allocatorFeatures is what a v1.37 scheduler with default feature gates
// hands the allocator (kube-scheduler's dynamicresources.AllocatorFeatures):
// the gates that are GA or beta-on in 1.37. They pick the allocator
// implementation, so benchmarking with fewer would measure other code.
var allocatorFeatures = structured.Features{
	AdminAccess:             true,
	PrioritizedList:         true,
	PartitionableDevices:    true,
	DeviceTaints:            true,
	DeviceBindingAndStatus:  true,
	ConsumableCapacity:      true,
	FractionalCapacityRange: true,
}

// celCacheSize is the scheduler's: it keeps the 10 most recent expressions.
const celCacheSize = 10

// Placement is where one claim went.
type Placement struct {
	Claim string
	Node  string
	// Devices are the allocated device names, in request order.
	Devices []string
	// NodesFiltered is how many nodes Allocate ran on for this claim.
	NodesFiltered int
}

// scheduler holds what the scheduler keeps between pods: the cluster, the
// compiled CEL expressions, the allocated devices and where the last node
// search stopped.
type scheduler struct {
	nodes          []*corev1.Node
	slices         []*resourceapi.ResourceSlice
	classes        ClassLister
	celCache       *cel.Cache
	allocated      sets.Set[structured.DeviceID]
	feasibleToFind int
	nextStart      int
}

func newScheduler(cl *Cluster, feasibleNodes int) *scheduler {
	if feasibleNodes <= 0 {
		feasibleNodes = numFeasibleNodesToFind(len(cl.Nodes))
	}
	return &scheduler{
		nodes:          cl.Nodes,
		slices:         cl.Slices,
		classes:        NewClassLister(DeviceClasses()),
		celCache:       cel.NewCache(celCacheSize, cel.Features{EnableConsumableCapacity: allocatorFeatures.ConsumableCapacity}),
		allocated:      sets.New[structured.DeviceID](),
		feasibleToFind: min(feasibleNodes, len(cl.Nodes)),
	}
}

// numFeasibleNodesToFind is kube-scheduler's rule with the default
// percentageOfNodesToScore (adaptive): all nodes below 100, otherwise
// (50 - nodes/125)% of them, at least 5% and at least 100 nodes.
func numFeasibleNodesToFind(nodes int) int {
	const minNodes, minPercent = 100, 5
	if nodes < minNodes {
		return nodes
	}
	percent := max(50-nodes/125, minPercent)
	return max(nodes*percent/100, minNodes)
}

// compile puts every class and claim expression into the CEL cache, as a
// scheduler that has been running a while has them, so the first claim's
// latency is not a compile; a broken expression fails here.
func (s *scheduler) compile(claim *resourceapi.ResourceClaim) error {
	var exprs []string
	classes, err := s.classes.List()
	if err != nil {
		return err
	}
	for _, c := range classes {
		for _, sel := range c.Spec.Selectors {
			exprs = append(exprs, sel.CEL.Expression)
		}
	}
	for _, r := range claim.Spec.Devices.Requests {
		if r.Exactly != nil {
			for _, sel := range r.Exactly.Selectors {
				exprs = append(exprs, sel.CEL.Expression)
			}
		}
	}
	for _, e := range exprs {
		if c := s.celCache.GetOrCompile(e); c.Error != nil {
			return fmt.Errorf("CEL expression %q: %w", e, c.Error)
		}
	}
	return nil
}

// schedule places one claim as the scheduler would place a pod with it
// (see the package comment), and records its devices as taken. It returns
// nil when no node fits the claim.
func (s *scheduler) schedule(ctx context.Context, claim *resourceapi.ResourceClaim) (*Placement, error) {
	// PreFilter: the plugin clones the allocated set for every pod.
	state := structured.AllocatedState{
		AllocatedDevices:         s.allocated.Clone(),
		AllocatedSharedDeviceIDs: sets.New[structured.SharedDeviceID](),
		AggregatedCapacity:       structured.NewConsumedCapacityCollection(),
	}
	allocator, err := structured.NewAllocator(ctx, allocatorFeatures, state, s.classes, s.slices, s.celCache)
	if err != nil {
		return nil, fmt.Errorf("claim %s: new allocator: %w", claim.Name, err)
	}

	// Filter, from where the last search stopped.
	var chosen *Placement
	var chosenResult resourceapi.AllocationResult
	feasible, processed := 0, 0
	claims := []*resourceapi.ResourceClaim{claim}
	for processed < len(s.nodes) && feasible < s.feasibleToFind {
		node := s.nodes[(s.nextStart+processed)%len(s.nodes)]
		processed++
		results, err := allocator.Allocate(ctx, node, claims)
		if errors.Is(err, structured.ErrFailedAllocationOnNode) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("claim %s: node %s: %w", claim.Name, node.Name, err)
		}
		if len(results) != len(claims) {
			continue
		}
		feasible++
		if chosen == nil {
			chosen, chosenResult = &Placement{Claim: claim.Name, Node: node.Name}, results[0]
		}
	}
	s.nextStart = (s.nextStart + processed) % len(s.nodes)
	if chosen == nil {
		return nil, nil
	}

	// Reserve.
	chosen.NodesFiltered = processed
	for _, r := range chosenResult.Devices.Results {
		s.allocated.Insert(structured.MakeDeviceID(r.Driver, r.Pool, r.Device))
		chosen.Devices = append(chosen.Devices, r.Device)
	}
	return chosen, nil
}
