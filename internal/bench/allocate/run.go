package allocate

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/gpudra/gpudra/internal/bench/stats"
)

// Options for one benchmark run.
type Options struct {
	// Case is what to claim and on which nodes.
	Case Case
	// Nodes is the number of simulated nodes Compare builds; Run takes
	// the cluster it is given.
	Nodes int
	// Claims stops the run after that many claims are placed; 0 runs until
	// the cluster is full.
	Claims int
	// FeasibleNodes is how many feasible nodes each claim's search looks
	// for before it picks the first of them; 0 is kube-scheduler's default
	// rule. With 1, claims go round the nodes, since each search starts
	// after the node where the last one stopped.
	FeasibleNodes int
}

// Result of one run over one layout.
type Result struct {
	Case   string
	Layout Layout
	Nodes  int
	// Devices published by all nodes.
	Devices int
	// Claims placed.
	Claims int
	// ClusterFull tells that the run stopped because no node fit the next claim.
	ClusterFull bool
	// FeasibleNodes is the number of feasible nodes each search looked for.
	FeasibleNodes int
	// NodesFilteredPerClaim is the mean number of Allocate calls per placed claim.
	NodesFilteredPerClaim float64
	// ClaimsPerSecond is placed claims over the summed per-claim latency.
	ClaimsPerSecond float64
	// Latency of one claim: clone of the allocated set, new allocator,
	// node search, recording the result.
	Latency stats.Summary
	// Placements in the order the claims were placed.
	Placements []Placement
}

// Run schedules claims of opts.Case onto a cluster built for it, one after
// another, until opts.Claims are placed or the cluster is full.
func Run(ctx context.Context, cl *Cluster, layout Layout, opts Options) (*Result, error) {
	r, err := newRun(cl, layout, opts)
	if err != nil {
		return nil, err
	}
	for !r.done {
		if err := r.step(ctx); err != nil {
			return nil, err
		}
	}
	return r.result(), nil
}

// run is one layout's scheduler and what has been measured so far.
type run struct {
	opts      Options
	layout    Layout
	sched     *scheduler
	res       *Result
	latencies []time.Duration
	total     time.Duration
	filtered  int
	done      bool
}

func newRun(cl *Cluster, layout Layout, opts Options) (*run, error) {
	if len(cl.Nodes) == 0 {
		return nil, fmt.Errorf("case %s: a cluster with no nodes", opts.Case.Name)
	}
	if opts.Claims < 0 {
		return nil, fmt.Errorf("case %s: claims %d: want 0 (fill the cluster) or more", opts.Case.Name, opts.Claims)
	}
	s := newScheduler(cl, opts.FeasibleNodes)
	if err := s.compile(opts.Case.Claim("compile")); err != nil {
		return nil, fmt.Errorf("case %s: %w", opts.Case.Name, err)
	}
	return &run{
		opts:   opts,
		layout: layout,
		sched:  s,
		res:    &Result{Case: opts.Case.Name, Layout: layout, Nodes: len(cl.Nodes), Devices: cl.Devices(), FeasibleNodes: s.feasibleToFind},
	}, nil
}

// step schedules the next claim; done is set once the run has placed its
// claims or a claim found no node.
func (r *run) step(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("case %s: %w", r.opts.Case.Name, err)
	}
	claim := r.opts.Case.Claim(fmt.Sprintf("%s-%d", r.opts.Case.Name, len(r.res.Placements)))
	start := time.Now()
	p, err := r.sched.schedule(ctx, claim)
	elapsed := time.Since(start)
	if err != nil {
		return fmt.Errorf("case %s, %s layout: %w", r.opts.Case.Name, r.layout, err)
	}
	if p == nil {
		r.res.ClusterFull, r.done = true, true
		return nil
	}
	if err := r.sched.republished(p.Node, p.Devices); err != nil {
		return fmt.Errorf("case %s, %s layout: %w", r.opts.Case.Name, r.layout, err)
	}
	r.latencies = append(r.latencies, elapsed)
	r.total += elapsed
	r.filtered += p.NodesFiltered
	r.res.Placements = append(r.res.Placements, *p)
	r.done = r.opts.Claims > 0 && len(r.res.Placements) >= r.opts.Claims
	return nil
}

func (r *run) result() *Result {
	res := r.res
	res.Claims = len(res.Placements)
	res.Latency = stats.Summarize(r.latencies)
	if res.Claims > 0 {
		res.NodesFilteredPerClaim = float64(r.filtered) / float64(res.Claims)
		res.ClaimsPerSecond = float64(res.Claims) / r.total.Seconds()
	}
	return res
}

// Comparison is one case at one cluster size in both layouts.
type Comparison struct {
	Case    string
	Nodes   int
	Gpudra  *Result
	Minimal *Result
	// MinimalAttributes are the attributes the minimal layout kept.
	MinimalAttributes []string
	// Ratio is gpudra's throughput over the minimal layout's: 1 means the
	// richer model costs the scheduler nothing; the target is at least 0.5.
	Ratio float64
}

// TargetRatio is the lowest acceptable Ratio: the device model within 2x
// of the minimal layout's throughput.
const TargetRatio = 0.5

// Compare builds one cluster for the case and schedules the same claims
// over the minimal layout and over gpudra's. The two runs take turns claim
// by claim, so that load from anything else on the machine falls on both
// alike and the ratio stays meaningful on a shared machine.
func Compare(ctx context.Context, opts Options) (*Comparison, error) {
	cl, err := BuildCluster(ctx, opts.Case, opts.Nodes)
	if err != nil {
		return nil, err
	}
	minimal, err := newRun(cl.Minimal(opts.Case.MinimalAttributes), LayoutMinimal, opts)
	if err != nil {
		return nil, err
	}
	gpudra, err := newRun(cl, LayoutGpudra, opts)
	if err != nil {
		return nil, err
	}
	runtime.GC()
	for turn := 0; !minimal.done || !gpudra.done; turn++ {
		// Swap who goes first, so neither always meets the caches the
		// other just filled.
		order := []*run{minimal, gpudra}
		if turn%2 == 1 {
			order[0], order[1] = gpudra, minimal
		}
		for _, r := range order {
			if r.done {
				continue
			}
			if err := r.step(ctx); err != nil {
				return nil, err
			}
		}
	}
	c := &Comparison{Case: opts.Case.Name, Nodes: opts.Nodes, Gpudra: gpudra.result(), Minimal: minimal.result()}
	for _, a := range opts.Case.MinimalAttributes {
		c.MinimalAttributes = append(c.MinimalAttributes, string(a))
	}
	if c.Minimal.ClaimsPerSecond > 0 {
		c.Ratio = c.Gpudra.ClaimsPerSecond / c.Minimal.ClaimsPerSecond
	}
	return c, nil
}
