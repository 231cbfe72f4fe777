package allocate

import (
	"context"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/dynamic-resource-allocation/structured"

	"github.com/gpudra/gpudra/internal/devicemodel"
	"github.com/gpudra/gpudra/internal/gpu"
)

// ShareWorkload is the memory (GiB) each claim of the shares benchmark asks
// of a GPU, one cycle: inference servers and notebooks of a few sizes.
var ShareWorkload = []int64{10, 20, 10, 40, 20, 10, 40, 20}

// ShareClaim asks for one GPU of class gpu.nvidia.com with gib of its
// memory (capacity.requests.memory).
func ShareClaim(name string, gib int64) *resourceapi.ResourceClaim {
	req := exactRequest("gpu", GPUClass, 1, "")
	req.Exactly.Capacity = &resourceapi.CapacityRequirements{Requests: map[resourceapi.QualifiedName]resource.Quantity{
		"memory": *resource.NewQuantity(gib<<30, resource.BinarySI),
	}}
	return newClaim(name, req, nil)
}

// SharesOptions for the memory-shares benchmark.
type SharesOptions struct {
	// Nodes are simulated DGX H100 nodes (8 x 80 GiB, MIG off).
	Nodes int
	// Fills are the fractions of the cluster's GPU memory held before the
	// timed claims.
	Fills []float64
	// Claims timed per layout and fill, at most; MaxTime stops them early.
	Claims  int
	MaxTime time.Duration
	// FeasibleNodes and Workers as in DynamicOptions.
	FeasibleNodes int
	Workers       int
}

// RunShares measures, at each fill, claims for a memory share of a GPU on
// nodes that publish their GPUs shareable (devicemodel.ShareMemory), against
// the same nodes with whole GPUs and claims for a whole GPU. The shares held
// before the timed claims are in the allocator's state as the scheduler
// gathers it for every pod.
func RunShares(ctx context.Context, opts SharesOptions) ([]*DynamicResult, error) {
	if opts.Nodes < 1 || opts.Claims < 1 {
		return nil, fmt.Errorf("shares benchmark: %d nodes, %d claims: want at least one of each", opts.Nodes, opts.Claims)
	}
	nodes, err := simNodes(ctx, opts.Nodes, "dgxh100")
	if err != nil {
		return nil, err
	}
	var out []*DynamicResult
	for _, fill := range opts.Fills {
		for _, shared := range []bool{false, true} {
			r, err := runShares(ctx, nodes, shared, fill, opts)
			if err != nil {
				return nil, fmt.Errorf("fill %.0f%%: %w", fill*100, err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func runShares(ctx context.Context, nodes []dynamicNode, shared bool, fill float64, opts SharesOptions) (*DynamicResult, error) {
	cl := &Cluster{}
	devices := 0
	for _, n := range nodes {
		devs, err := devicemodel.Build(n.inv)
		if err != nil {
			return nil, err
		}
		if shared {
			devicemodel.ShareMemory(devs)
		}
		list := devicemodel.ResourceSlices(DriverName, n.name, devicemodel.DriverResources(n.name, devs))
		for i := range list.Items {
			cl.Slices = append(cl.Slices, &list.Items[i])
		}
		cl.Nodes = append(cl.Nodes, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name}})
		devices += len(devs)
	}
	s := newScheduler(cl, opts.FeasibleNodes)
	s.workers = opts.Workers
	layout := "whole-gpus"
	if shared {
		layout = "memory-shares"
	}
	held, next := holdShares(s, nodes, shared, fill)
	claimFor := func(i int) *resourceapi.ResourceClaim {
		if !shared {
			return newClaim(fmt.Sprintf("timed-%d", i), exactRequest("gpu", GPUClass, 1, ""), nil)
		}
		return ShareClaim(fmt.Sprintf("timed-%d", i), ShareWorkload[(next+i)%len(ShareWorkload)])
	}
	if err := s.compile(claimFor(0)); err != nil {
		return nil, err
	}

	r := &DynamicResult{Layout: layout, Nodes: len(nodes), Fill: fill, HeldFill: held, DevicesPerNode: float64(devices) / float64(len(nodes))}
	if err := timeClaims(ctx, s, r, opts.Claims, opts.MaxTime, claimFor); err != nil {
		return nil, err
	}
	return r, nil
}

// holdShares puts fill of the cluster's GPU memory in the scheduler's
// state before the timed claims, going round the nodes as the scheduler's
// search does: shares of the workload to the first GPU of a node with the
// memory free, or (whole GPUs) fill of the GPUs. It returns the fill held
// and where the workload cycle goes on.
func holdShares(s *scheduler, nodes []dynamicNode, shared bool, fill float64) (float64, int) {
	if !shared {
		plan := wholePlan(nodes, fill)
		n := 0
		for node, devs := range plan {
			for _, d := range devs {
				s.allocated.Insert(structured.MakeDeviceID(DriverName, node, d))
				n++
			}
		}
		return float64(n) / float64(len(nodes)*len(nodes[0].inv.GPUs)), 0
	}
	free := make([][]int64, len(nodes))
	var capacity int64
	for i, n := range nodes {
		for _, g := range n.inv.GPUs {
			free[i] = append(free[i], int64(g.MemoryBytes>>30))
			capacity += int64(g.MemoryBytes >> 30)
		}
	}
	var taken int64
	k, node, misses := 0, 0, 0
	for float64(taken) < fill*float64(capacity) && misses < len(ShareWorkload) {
		gib := ShareWorkload[k%len(ShareWorkload)]
		placed := false
		for tries := 0; tries < len(nodes) && !placed; tries++ {
			i := (node + tries) % len(nodes)
			for j := range free[i] {
				if free[i][j] < gib {
					continue
				}
				free[i][j] -= gib
				g := &nodes[i].inv.GPUs[j]
				holdShare(s, nodes[i].name, g, gib, k)
				node, placed = i+1, true
				break
			}
		}
		k++
		if !placed {
			misses++
			continue
		}
		misses = 0
		taken += gib
	}
	return float64(taken) / float64(capacity), k % len(ShareWorkload)
}

// holdShare records one allocated share of gib on g as the scheduler
// would have it from an allocated claim.
func holdShare(s *scheduler, node string, g *gpu.GPU, gib int64, k int) {
	id := structured.MakeDeviceID(DriverName, node, devicemodel.GPUDeviceName(g))
	share := types.UID(fmt.Sprintf("held-%d", k))
	s.shared.Insert(structured.MakeSharedDeviceID(id, &share))
	s.consumed.Insert(structured.NewDeviceConsumedCapacity(id, map[resourceapi.QualifiedName]resource.Quantity{
		"memory": *resource.NewQuantity(gib<<30, resource.BinarySI),
	}))
}

// WriteSharesTable prints one row per layout and fill.
func WriteSharesTable(w io.Writer, results []*DynamicResult, opts SharesOptions) error {
	if err := writeResultRows(w, results, false); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, `
memory-shares: GPUs published shareable (allowMultipleAllocations, memory request policy in 1Gi steps);
claims ask for %v GiB in turn. whole-gpus: the same nodes unshared, every claim a whole GPU.
fill: share of the cluster's GPU memory (whole-gpus: of its GPUs) held before the timed claims.
pods/s: placed claims over the time of all attempts, %d filter worker(s). Target: >= 100 pods/s at 90%% fill.
`, ShareWorkload, max(opts.Workers, 1))
	return err
}
