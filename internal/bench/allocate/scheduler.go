package allocate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

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
	nodes  []*corev1.Node
	slices []*resourceapi.ResourceSlice
	// republish, when set, is the node's plugin: after a claim is placed it
	// republishes the chosen node's slices, given every device allocated
	// there (see Cluster.Republish). perNode holds each node's slices.
	republish RepublishFunc
	perNode   map[string][]*resourceapi.ResourceSlice
	held      map[string][]string
	classes   ClassLister
	celCache  *cel.Cache
	allocated sets.Set[structured.DeviceID]
	// shared and consumed are the shares of devices that allow several
	// allocations (consumable capacity): what each holds and how much of
	// the device's capacity all of them take.
	shared         sets.Set[structured.SharedDeviceID]
	consumed       structured.ConsumedCapacityCollection
	feasibleToFind int
	nextStart      int
	// workers > 1 filters nodes in parallel, as the scheduler does.
	workers int
}

func newScheduler(cl *Cluster, feasibleNodes int) *scheduler {
	if feasibleNodes <= 0 {
		feasibleNodes = numFeasibleNodesToFind(len(cl.Nodes))
	}
	s := &scheduler{
		nodes:          cl.Nodes,
		slices:         cl.Slices,
		republish:      cl.Republish,
		classes:        NewClassLister(DeviceClasses()),
		celCache:       cel.NewCache(celCacheSize, cel.Features{EnableConsumableCapacity: allocatorFeatures.ConsumableCapacity}),
		allocated:      sets.New[structured.DeviceID](),
		shared:         sets.New[structured.SharedDeviceID](),
		consumed:       structured.NewConsumedCapacityCollection(),
		feasibleToFind: min(feasibleNodes, len(cl.Nodes)),
	}
	if s.republish != nil {
		s.perNode, s.held = map[string][]*resourceapi.ResourceSlice{}, map[string][]string{}
		for _, sl := range cl.Slices {
			s.perNode[*sl.Spec.NodeName] = append(s.perNode[*sl.Spec.NodeName], sl)
		}
	}
	return s
}

// republished lets the node's plugin publish again after devices were
// allocated there. It runs outside the timed part of a claim: the plugin
// does it on its node, not the scheduler.
func (s *scheduler) republished(node string, devices []string) error {
	if s.republish == nil {
		return nil
	}
	s.held[node] = append(s.held[node], devices...)
	fresh, err := s.republish(node, s.held[node])
	if err != nil {
		return fmt.Errorf("republish node %s: %w", node, err)
	}
	s.perNode[node] = fresh
	s.slices = s.slices[:0]
	for _, n := range s.nodes {
		s.slices = append(s.slices, s.perNode[n.Name]...)
	}
	return nil
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
	// PreFilter: the plugin gathers the allocated state for every pod,
	// every share included.
	state := structured.AllocatedState{
		AllocatedDevices:         s.allocated.Clone(),
		AllocatedSharedDeviceIDs: s.shared.Clone(),
		AggregatedCapacity:       s.consumed.Clone(),
	}
	allocator, err := structured.NewAllocator(ctx, allocatorFeatures, state, s.classes, s.slices, s.celCache)
	if err != nil {
		return nil, fmt.Errorf("claim %s: new allocator: %w", claim.Name, err)
	}

	// Filter, from where the last search stopped.
	claims := []*resourceapi.ResourceClaim{claim}
	var chosen *Placement
	var chosenResult resourceapi.AllocationResult
	var processed int
	if s.workers > 1 {
		chosen, chosenResult, processed, err = s.filterParallel(ctx, allocator, claims)
	} else {
		chosen, chosenResult, processed, err = s.filter(ctx, allocator, claims)
	}
	if err != nil {
		return nil, err
	}
	s.nextStart = (s.nextStart + processed) % len(s.nodes)
	if chosen == nil {
		return nil, nil
	}

	// Reserve.
	chosen.NodesFiltered = processed
	for _, r := range chosenResult.Devices.Results {
		s.reserve(r)
		chosen.Devices = append(chosen.Devices, r.Device)
	}
	return chosen, nil
}

// reserve records one allocated device: taken whole, or one share of it.
func (s *scheduler) reserve(r resourceapi.DeviceRequestAllocationResult) {
	id := structured.MakeDeviceID(r.Driver, r.Pool, r.Device)
	if r.ShareID == nil {
		s.allocated.Insert(id)
		return
	}
	s.shared.Insert(structured.MakeSharedDeviceID(id, r.ShareID))
	s.consumed.Insert(structured.NewDeviceConsumedCapacity(id, r.ConsumedCapacity))
}

// filter calls Allocate on one node after another until enough feasible
// nodes are found, and returns the first of them.
func (s *scheduler) filter(ctx context.Context, allocator structured.Allocator, claims []*resourceapi.ResourceClaim) (*Placement, resourceapi.AllocationResult, int, error) {
	var chosen *Placement
	var chosenResult resourceapi.AllocationResult
	feasible, processed := 0, 0
	for processed < len(s.nodes) && feasible < s.feasibleToFind {
		node := s.nodes[(s.nextStart+processed)%len(s.nodes)]
		processed++
		ok, result, err := allocateOn(ctx, allocator, node, claims)
		if err != nil {
			return nil, result, 0, err
		}
		if !ok {
			continue
		}
		feasible++
		if chosen == nil {
			chosen, chosenResult = &Placement{Claim: claims[0].Name, Node: node.Name}, result
		}
	}
	return chosen, chosenResult, processed, nil
}

// filterParallel is filter with s.workers goroutines taking nodes in
// order, as kube-scheduler's findNodesThatPassFilters does: it stops
// handing out nodes once enough are feasible, and of those found takes the
// first in search order (where the scheduler would score them).
func (s *scheduler) filterParallel(ctx context.Context, allocator structured.Allocator, claims []*resourceapi.ResourceClaim) (*Placement, resourceapi.AllocationResult, int, error) {
	var (
		next, feasible atomic.Int64
		mu             sync.Mutex
		best           = -1
		bestNode       string
		bestResult     resourceapi.AllocationResult
		firstErr       error
		wg             sync.WaitGroup
	)
	n := int64(len(s.nodes))
	for range s.workers {
		wg.Go(func() {
			for feasible.Load() < int64(s.feasibleToFind) {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				node := s.nodes[(int64(s.nextStart)+i)%n]
				ok, result, err := allocateOn(ctx, allocator, node, claims)
				mu.Lock()
				switch {
				case err != nil && firstErr == nil:
					firstErr = err
				case ok:
					feasible.Add(1)
					if best < 0 || int(i) < best {
						best, bestNode, bestResult = int(i), node.Name, result
					}
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	processed := int(min(next.Load(), n))
	if firstErr != nil {
		return nil, bestResult, 0, firstErr
	}
	if best < 0 {
		return nil, bestResult, processed, nil
	}
	return &Placement{Claim: claims[0].Name, Node: bestNode}, bestResult, processed, nil
}

// allocateOn runs Allocate for the claims on one node: ok is false when the
// node does not fit them.
func allocateOn(ctx context.Context, allocator structured.Allocator, node *corev1.Node, claims []*resourceapi.ResourceClaim) (bool, resourceapi.AllocationResult, error) {
	results, err := allocator.Allocate(ctx, node, claims)
	if errors.Is(err, structured.ErrFailedAllocationOnNode) {
		return false, resourceapi.AllocationResult{}, nil
	}
	if err != nil {
		return false, resourceapi.AllocationResult{}, fmt.Errorf("claim %s: node %s: %w", claims[0].Name, node.Name, err)
	}
	if len(results) != len(claims) {
		return false, resourceapi.AllocationResult{}, nil
	}
	return true, results[0], nil
}
