package allocate

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/dynamic-resource-allocation/structured"

	"github.com/gpudra/gpudra/internal/bench/stats"
	"github.com/gpudra/gpudra/internal/devicemodel"
	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// MIGKind is one kind of claim of the mixed MIG workload.
type MIGKind struct {
	// Profile is the MIG profile asked for; "" asks for a whole GPU.
	Profile string
	// Slices is how many of a GPU's 7 compute slices it takes.
	Slices int
}

// Name is the profile, or "gpu" for a whole GPU.
func (k MIGKind) Name() string {
	if k.Profile == "" {
		return "gpu"
	}
	return k.Profile
}

// MixedMIGWorkload is the claim stream of the dynamic-MIG benchmark, one
// cycle: every profile an H100 user asks for and whole GPUs, small ones
// most often.
var MixedMIGWorkload = []MIGKind{
	{"1g.10gb", 1}, {"2g.20gb", 2}, {"1g.10gb", 1}, {"3g.40gb", 3}, {"1g.10gb", 1},
	{"4g.40gb", 4}, {"2g.20gb", 2}, {"", 7}, {"1g.10gb", 1}, {"7g.80gb", 7},
}

// Claim builds the claim of a kind: a whole GPU from class gpu.nvidia.com,
// or one MIG device of the profile from class mig.nvidia.com.
func (k MIGKind) Claim(name string) *resourceapi.ResourceClaim {
	if k.Profile == "" {
		return newClaim(name, exactRequest("gpu", GPUClass, 1, ""), nil)
	}
	return newClaim(name, exactRequest("mig", MIGClass, 1, fmt.Sprintf("device.attributes['%s'].profile == '%s'", DriverName, k.Profile)), nil)
}

// DynamicLayout is one way a dynamic-MIG node publishes its GPUs.
type DynamicLayout struct {
	Name        string
	Description string
	Options     devicemodel.DynamicOptions
	// Republish: the node publishes again after each allocation on it
	// (given every device allocated there). Without, slices never change.
	Republish bool
	// WholeGPUs is the reference: the same nodes with MIG mode off, every
	// claim asking for a whole GPU, the fill in whole GPUs.
	WholeGPUs bool
}

// everyPlacementProfiles are the H100 profiles upstream publishes at every
// placement, less the +me profile (its engines are counters this layout
// does not model).
var everyPlacementProfiles = []string{"1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"}

// EveryPlacement is upstream's layout as BuildDynamic options: every
// profile at every placement of every GPU (published once, it stays so).
func EveryPlacement() devicemodel.DynamicOptions {
	return devicemodel.DynamicOptions{Profiles: everyPlacementProfiles, OpenGPUs: -1}
}

// DynamicLayouts returns the layouts the benchmark compares, in report
// order.
func DynamicLayouts() []DynamicLayout {
	return []DynamicLayout{
		{
			Name:        "whole-gpus",
			Description: "reference: MIG mode off, every claim one whole GPU (8 devices per node)",
			WholeGPUs:   true,
		},
		{
			Name:        "every-placement",
			Description: "upstream's layout: every profile at every placement of every GPU, plus the GPU whole, never republished (19 devices per GPU; upstream's +me profile left out)",
			Options:     EveryPlacement(),
		},
		{
			Name:        "dynamic-all",
			Description: "gpudra: free placements of 5 profiles on cut GPUs and one open GPU, untouched GPUs whole, republished",
			Options:     devicemodel.DynamicOptions{},
			Republish:   true,
		},
		{
			Name:        "dynamic-1",
			Description: "as dynamic-all, but one placement per profile and GPU (best fit)",
			Options:     devicemodel.DynamicOptions{PerProfile: 1},
			Republish:   true,
		},
		{
			Name:        "dynamic-all+1g.20gb",
			Description: "as dynamic-all, with 1g.20gb offered too (a <= 20 GiB request on one compute slice)",
			Options:     devicemodel.DynamicOptions{Profiles: []string{"1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"}},
			Republish:   true,
		},
		{
			Name:        "dynamic-all-open",
			Description: "as dynamic-all, but every untouched GPU also publishes its placements",
			Options:     devicemodel.DynamicOptions{OpenGPUs: -1},
			Republish:   true,
		},
	}
}

// DynamicLayoutByName returns the named layout.
func DynamicLayoutByName(name string) (DynamicLayout, error) {
	var names []string
	for _, l := range DynamicLayouts() {
		if l.Name == name {
			return l, nil
		}
		names = append(names, l.Name)
	}
	return DynamicLayout{}, fmt.Errorf("unknown dynamic-MIG layout %q (valid: %s)", name, strings.Join(names, ", "))
}

// DynamicOptions for one dynamic-MIG benchmark.
type DynamicOptions struct {
	// Nodes is the number of simulated DGX H100 nodes in MIG mode.
	Nodes int
	// Fills are the fractions of compute slices taken before the timed
	// claims (0.9: nine in ten slices of the cluster are held).
	Fills []float64
	// Claims is the number of claims timed at each fill, at most.
	Claims int
	// MaxTime stops a fill's timed claims early (0: no limit).
	MaxTime time.Duration
	// Layouts to run.
	Layouts []DynamicLayout
	// FeasibleNodes as in Options.
	FeasibleNodes int
	// Workers filter nodes in parallel (kube-scheduler runs 16; a 2-core
	// machine gets at most 2 of them); 0 or 1 filters one node at a time.
	Workers int
}

// DynamicResult is one layout at one fill.
type DynamicResult struct {
	Layout string  `json:"layout"`
	Nodes  int     `json:"nodes"`
	Fill   float64 `json:"fill"`
	// HeldFill is the fill the cluster had when the timed claims began.
	HeldFill float64 `json:"heldFill"`
	// DevicesPerNode is the mean number of devices a node published then.
	DevicesPerNode float64 `json:"devicesPerNode"`
	// Attempts timed; Placed found a node; Unschedulable did not.
	Attempts      int `json:"attempts"`
	Placed        int `json:"placed"`
	Unschedulable int `json:"unschedulable"`
	// PodsPerSecond is placed claims over the time of all attempts.
	PodsPerSecond float64 `json:"podsPerSecond"`
	// Latency of placed claims.
	Latency stats.Summary `json:"-"`
	// UnschedulableMean is the mean time of an attempt that found no node.
	UnschedulableMean time.Duration `json:"-"`
	NodesFiltered     float64       `json:"nodesFilteredPerClaim"`
}

// dynamicNode is one simulated node of the dynamic-MIG cluster.
type dynamicNode struct {
	name string
	inv  *gpu.Inventory
}

// simNodes are n simulated nodes of a profile, named node-0000 on.
func simNodes(ctx context.Context, n int, profile string) ([]dynamicNode, error) {
	nodes := make([]dynamicNode, n)
	for i := range nodes {
		name := fmt.Sprintf("node-%04d", i)
		b, err := sim.NewFromConfig(name, &sim.Config{Profile: profile})
		if err != nil {
			return nil, err
		}
		inv, err := b.Inventory(ctx)
		_ = b.Close()
		if err != nil {
			return nil, err
		}
		nodes[i] = dynamicNode{name: name, inv: inv}
	}
	return nodes, nil
}

// RunDynamic measures each layout at each fill on the same cluster: the
// same nodes, the same held devices at each fill (placed by fillPlan, not
// timed), and the same claims timed after them.
func RunDynamic(ctx context.Context, opts DynamicOptions) ([]*DynamicResult, error) {
	if opts.Nodes < 1 || opts.Claims < 1 {
		return nil, fmt.Errorf("dynamic MIG benchmark: %d nodes, %d claims: want at least one of each", opts.Nodes, opts.Claims)
	}
	nodes, err := simNodes(ctx, opts.Nodes, "dgxh100-mig")
	if err != nil {
		return nil, err
	}
	var out []*DynamicResult
	whole := make([]dynamicNode, len(nodes))
	for i, n := range nodes {
		inv := *n.inv
		inv.GPUs = slices.Clone(inv.GPUs)
		for j := range inv.GPUs {
			inv.GPUs[j].MIGEnabled, inv.GPUs[j].MIGDevices = false, nil
		}
		whole[i] = dynamicNode{name: n.name, inv: &inv}
	}
	for _, fill := range opts.Fills {
		plan, next, held := fillPlan(nodes, fill)
		for _, layout := range opts.Layouts {
			on, p := nodes, plan
			if layout.WholeGPUs {
				on, p = whole, wholePlan(whole, fill)
			}
			r, err := runDynamicLayout(ctx, on, layout, opts, p, next)
			if err != nil {
				return nil, fmt.Errorf("layout %s at fill %.0f%%: %w", layout.Name, fill*100, err)
			}
			r.Fill, r.HeldFill = fill, held
			out = append(out, r)
		}
	}
	return out, nil
}

func runDynamicLayout(ctx context.Context, nodes []dynamicNode, layout DynamicLayout, opts DynamicOptions, plan map[string][]string, next int) (*DynamicResult, error) {
	byName := make(map[string]*gpu.Inventory, len(nodes))
	cl := &Cluster{}
	devices := 0
	publish := func(node string, held []string) ([]*resourceapi.ResourceSlice, error) {
		if !layout.Republish {
			held = nil
		}
		return publishDynamic(byName[node], layout.Options, node, held)
	}
	for _, n := range nodes {
		byName[n.name] = n.inv
		sl, err := publish(n.name, plan[n.name])
		if err != nil {
			return nil, err
		}
		cl.Nodes = append(cl.Nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name}})
		cl.Slices = append(cl.Slices, sl...)
		for _, s := range sl {
			devices += len(s.Spec.Devices)
		}
	}
	if layout.Republish {
		cl.Republish = publish
	}
	s := newScheduler(cl, opts.FeasibleNodes)
	s.workers = opts.Workers
	for _, n := range nodes {
		for _, d := range plan[n.name] {
			s.allocated.Insert(structured.MakeDeviceID(DriverName, n.name, d))
		}
		if layout.Republish {
			s.held[n.name] = slices.Clone(plan[n.name])
		}
	}
	for _, k := range MixedMIGWorkload {
		if err := s.compile(k.Claim("compile")); err != nil {
			return nil, err
		}
	}

	r := &DynamicResult{Layout: layout.Name, Nodes: len(nodes), DevicesPerNode: float64(devices) / float64(len(nodes))}
	claimFor := func(i int) *resourceapi.ResourceClaim {
		k := MixedMIGWorkload[(next+i)%len(MixedMIGWorkload)]
		if layout.WholeGPUs {
			k = MIGKind{Slices: 7}
		}
		return k.Claim(fmt.Sprintf("timed-%d", i))
	}
	if err := timeClaims(ctx, s, r, opts.Claims, opts.MaxTime, claimFor); err != nil {
		return nil, err
	}
	return r, nil
}

// timeClaims schedules up to n claims (stopping after maxTime, if set) and
// fills in r's counts, rate and latencies. A placed claim's node is
// republished, untimed, as its plugin would.
func timeClaims(ctx context.Context, s *scheduler, r *DynamicResult, n int, maxTime time.Duration, claimFor func(i int) *resourceapi.ResourceClaim) error {
	var latencies []time.Duration
	var total, unschedulable time.Duration
	filtered := 0
	runtime.GC()
	began := time.Now()
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if maxTime > 0 && time.Since(began) > maxTime {
			break
		}
		claim := claimFor(i)
		start := time.Now()
		p, err := s.schedule(ctx, claim)
		elapsed := time.Since(start)
		if err != nil {
			return err
		}
		r.Attempts++
		total += elapsed
		if p == nil {
			r.Unschedulable++
			unschedulable += elapsed
			continue
		}
		r.Placed++
		latencies = append(latencies, elapsed)
		filtered += p.NodesFiltered
		if err := s.republished(p.Node, p.Devices); err != nil {
			return err
		}
	}
	r.Latency = stats.Summarize(latencies)
	if total > 0 {
		r.PodsPerSecond = float64(r.Placed) / total.Seconds()
	}
	if r.Unschedulable > 0 {
		r.UnschedulableMean = unschedulable / time.Duration(r.Unschedulable)
	}
	if r.Placed > 0 {
		r.NodesFiltered = float64(filtered) / float64(r.Placed)
	}
	return nil
}

// fillPlan places the workload, untimed, until fill of the cluster's
// compute slices is taken: claims go round the nodes as the scheduler's
// search does, each to the node's first GPU with a free placement of its
// profile (the lowest one), a whole GPU to the first untouched GPU. It
// returns the devices held per node, where the workload cycle goes on, and
// the fill reached.
func fillPlan(nodes []dynamicNode, fill float64) (map[string][]string, int, float64) {
	type gpuState struct {
		g    *gpu.GPU
		used []gpu.Placement
	}
	state := make([][]*gpuState, len(nodes))
	for i, n := range nodes {
		for j := range n.inv.GPUs {
			state[i] = append(state[i], &gpuState{g: &n.inv.GPUs[j]})
		}
	}
	capacity := float64(len(nodes) * len(state[0]) * 7)
	plan := map[string][]string{}
	taken, k, node, misses := 0, 0, 0, 0
	for float64(taken) < fill*capacity && misses < len(MixedMIGWorkload) {
		kind := MixedMIGWorkload[k%len(MixedMIGWorkload)]
		placed := false
		for tries := 0; tries < len(nodes) && !placed; tries++ {
			i := (node + tries) % len(nodes)
			for _, gs := range state[i] {
				if name, pl, ok := freeSlot(gs.g, gs.used, kind.Profile); ok {
					gs.used = append(gs.used, pl)
					plan[nodes[i].name] = append(plan[nodes[i].name], name)
					node, placed = i+1, true
					break
				}
			}
		}
		k++
		if !placed {
			misses++
			continue
		}
		misses = 0
		taken += kind.Slices
	}
	return plan, k % len(MixedMIGWorkload), float64(taken) / capacity
}

// wholePlan holds fill of the whole GPUs, going round the nodes.
func wholePlan(nodes []dynamicNode, fill float64) map[string][]string {
	plan := map[string][]string{}
	total := 0
	for _, n := range nodes {
		total += len(n.inv.GPUs)
	}
	want := int(fill*float64(total) + 0.5)
	for k := 0; k < want; k++ {
		n := nodes[k%len(nodes)]
		g := &n.inv.GPUs[(k/len(nodes))%len(n.inv.GPUs)]
		plan[n.name] = append(plan[n.name], devicemodel.GPUDeviceName(g))
	}
	return plan
}

// freeSlot is the lowest free placement of the profile on g ("" asks for
// the GPU whole, which must be untouched).
func freeSlot(g *gpu.GPU, used []gpu.Placement, profile string) (string, gpu.Placement, bool) {
	if profile == "" {
		if len(used) > 0 {
			return "", gpu.Placement{}, false
		}
		return devicemodel.GPUDeviceName(g), gpu.Placement{Start: 0, Size: 1 << 10}, true
	}
	for _, p := range g.MIGProfiles {
		if p.Name != profile {
			continue
		}
		for _, pl := range p.Placements {
			if !slices.ContainsFunc(used, pl.Overlaps) {
				return devicemodel.MIGDeviceName(g, &gpu.MIGDevice{Profile: p, Placement: pl}), pl, true
			}
		}
	}
	return "", gpu.Placement{}, false
}
