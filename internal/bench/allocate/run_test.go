package allocate

import (
	"context"
	"fmt"
	"strings"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gpudra/gpudra/internal/gpu/sim"
)

func TestRunWholeGPUsAreDistinctUntilFull(t *testing.T) {
	c := mustCase(t, "gpu")
	cl := buildCluster(t, c, 3)
	res, err := Run(context.Background(), cl, LayoutGpudra, Options{Case: c, Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !res.ClusterFull || res.Claims != 24 {
		t.Fatalf("placed %d claims, full=%v; want all 24 GPUs and a full cluster", res.Claims, res.ClusterFull)
	}
	devices := devicesByNode(cl)
	seen := map[string]string{}
	for _, p := range res.Placements {
		if len(p.Devices) != 1 {
			t.Fatalf("claim %s got %d devices, want 1", p.Claim, len(p.Devices))
		}
		key := p.Node + "/" + p.Devices[0]
		if other, ok := seen[key]; ok {
			t.Fatalf("device %s allocated to claims %s and %s", key, other, p.Claim)
		}
		seen[key] = p.Claim
		if d := devices[p.Node][p.Devices[0]]; d == nil || stringAttr(d, "type") != "gpu" {
			t.Fatalf("claim %s got %s, which is not a whole GPU of its node", p.Claim, key)
		}
	}
}

func TestRunCELGetsOnlyH100With80Gi(t *testing.T) {
	c := mustCase(t, "cel")
	// Each node has GPUs that fail the selector on the name (A100 80GB,
	// H200), and after the change below one H100 that fails it on memory.
	c.Node = func(int) *sim.Config {
		return &sim.Config{GPUs: []sim.GPUConfig{
			{Model: "a100-sxm4-80gb"}, {Model: "h100-sxm5-80gb", Count: ptrTo(3)}, {Model: "h200-sxm5-141gb"},
		}}
	}
	cl := buildCluster(t, c, 3)
	shrunk := 0
	for _, s := range cl.Slices {
		for i := range s.Spec.Devices {
			d := &s.Spec.Devices[i]
			if strings.Contains(stringAttr(d, "productName"), "H100") && shrunk < 3 && d.Name == "gpu-1" {
				d.Capacity["memory"] = resourceapi.DeviceCapacity{Value: resource.MustParse("40Gi")}
				shrunk++
			}
		}
	}
	if shrunk != 3 {
		t.Fatalf("shrank %d H100s, want one per node", shrunk)
	}

	res, err := Run(context.Background(), cl, LayoutGpudra, Options{Case: c, Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !res.ClusterFull || res.Claims != 6 {
		t.Fatalf("placed %d claims, full=%v; want the 6 H100s with 80Gi", res.Claims, res.ClusterFull)
	}
	devices := devicesByNode(cl)
	eighty := resource.MustParse("80Gi")
	for _, p := range res.Placements {
		d := devices[p.Node][p.Devices[0]]
		mem := d.Capacity["memory"].Value
		if !strings.Contains(stringAttr(d, "productName"), "H100") || mem.Cmp(eighty) < 0 {
			t.Errorf("claim %s got %s/%s: %s with %s", p.Claim, p.Node, d.Name, stringAttr(d, "productName"), mem.String())
		}
	}
}

func TestRunMIGPairsShareAParent(t *testing.T) {
	c := mustCase(t, "mig")
	cl := buildCluster(t, c, 3)
	res, err := Run(context.Background(), cl, LayoutGpudra, Options{Case: c, Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	// 3 nodes x 8 GPUs x 4 1g.10gb devices, two per claim.
	if !res.ClusterFull || res.Claims != 48 {
		t.Fatalf("placed %d claims, full=%v; want 48 and a full cluster", res.Claims, res.ClusterFull)
	}
	devices := devicesByNode(cl)
	seen := map[string]bool{}
	for _, p := range res.Placements {
		if len(p.Devices) != 2 {
			t.Fatalf("claim %s got %d devices, want 2", p.Claim, len(p.Devices))
		}
		var parents []string
		for _, name := range p.Devices {
			d := devices[p.Node][name]
			if d == nil || stringAttr(d, "type") != "mig" || stringAttr(d, "profile") != MIGProfile {
				t.Fatalf("claim %s got %s/%s, not a %s MIG device", p.Claim, p.Node, name, MIGProfile)
			}
			if seen[p.Node+"/"+name] {
				t.Fatalf("device %s/%s allocated twice", p.Node, name)
			}
			seen[p.Node+"/"+name] = true
			parents = append(parents, stringAttr(d, "parentUUID"))
		}
		if parents[0] == "" || parents[0] != parents[1] {
			t.Errorf("claim %s: devices %v have parents %v", p.Claim, p.Devices, parents)
		}
	}
}

func TestRunStops(t *testing.T) {
	c := mustCase(t, "gpu")
	cl := buildCluster(t, c, 2)
	tests := []struct {
		claims     int
		wantClaims int
		wantFull   bool
	}{
		{claims: 5, wantClaims: 5},
		{claims: 16, wantClaims: 16},
		{claims: 17, wantClaims: 16, wantFull: true},
		{claims: 0, wantClaims: 16, wantFull: true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.claims), func(t *testing.T) {
			res, err := Run(context.Background(), cl, LayoutGpudra, Options{Case: c, Nodes: 2, Claims: tc.claims})
			if err != nil {
				t.Fatal(err)
			}
			if res.Claims != tc.wantClaims || res.ClusterFull != tc.wantFull || res.Latency.Count != tc.wantClaims {
				t.Fatalf("claims=%d full=%v samples=%d, want claims=%d full=%v", res.Claims, res.ClusterFull, res.Latency.Count, tc.wantClaims, tc.wantFull)
			}
			if res.ClaimsPerSecond <= 0 {
				t.Fatalf("claims/s = %v", res.ClaimsPerSecond)
			}
		})
	}
}

func TestRunNodeSearch(t *testing.T) {
	c := mustCase(t, "gpu")
	cl := buildCluster(t, c, 3)
	tests := []struct {
		name          string
		feasibleNodes int
		wantFiltered  float64
		wantNode      func(claim int) string
	}{
		// Below 100 nodes the scheduler filters every node for every pod,
		// so every search starts at the first node and fills it first.
		{"scheduler default", 0, 3, func(i int) string { return fmt.Sprintf("node-%04d", i/8) }},
		// One feasible node: each search starts after the node where the
		// last one stopped, so claims go round the nodes.
		{"first feasible", 1, 1, func(i int) string { return fmt.Sprintf("node-%04d", i%3) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Run(context.Background(), cl, LayoutGpudra, Options{Case: c, Nodes: 3, FeasibleNodes: tc.feasibleNodes})
			if err != nil {
				t.Fatal(err)
			}
			if res.Claims != 24 || res.NodesFilteredPerClaim != tc.wantFiltered {
				t.Errorf("%d claims, nodes filtered per claim = %v; want 24 and %v", res.Claims, res.NodesFilteredPerClaim, tc.wantFiltered)
			}
			for i, p := range res.Placements {
				if p.Node != tc.wantNode(i) {
					t.Fatalf("claim %d went to %s, want %s", i, p.Node, tc.wantNode(i))
				}
			}
		})
	}
}

func TestNumFeasibleNodesToFind(t *testing.T) {
	for nodes, want := range map[int]int{1: 1, 99: 99, 100: 100, 250: 120, 1000: 420, 5000: 500, 20000: 1000} {
		if got := numFeasibleNodesToFind(nodes); got != want {
			t.Errorf("%d nodes: %d, want %d", nodes, got, want)
		}
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	gpuCase := mustCase(t, "gpu")
	cl := buildCluster(t, gpuCase, 1)
	broken := gpuCase
	broken.Claim = func(name string) *resourceapi.ResourceClaim {
		return newClaim(name, exactRequest("gpu", GPUClass, 1, "device.attributes['gpu.nvidia.com'].productName.("), nil)
	}
	tests := []struct {
		name    string
		cluster *Cluster
		opts    Options
		want    string
	}{
		{"no nodes", &Cluster{}, Options{Case: gpuCase}, "case gpu: a cluster with no nodes"},
		{"negative claims", cl, Options{Case: gpuCase, Claims: -1}, "case gpu: claims -1: want 0 (fill the cluster) or more"},
		{"broken selector", cl, Options{Case: broken}, `case gpu: CEL expression "device.attributes['gpu.nvidia.com'].productName.(": `},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.cluster, LayoutGpudra, tc.opts)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error = %v, want prefix %q", err, tc.want)
			}
		})
	}
}

func TestCompareLayoutsPlaceTheSameClaimsAlike(t *testing.T) {
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			cmp, err := Compare(context.Background(), Options{Case: c, Nodes: 2})
			if err != nil {
				t.Fatal(err)
			}
			g, m := cmp.Gpudra, cmp.Minimal
			if !g.ClusterFull || !m.ClusterFull || g.Claims == 0 || g.Claims != m.Claims {
				t.Fatalf("gpudra placed %d (full=%v), minimal %d (full=%v)", g.Claims, g.ClusterFull, m.Claims, m.ClusterFull)
			}
			for i := range g.Placements {
				gp, mp := g.Placements[i], m.Placements[i]
				if gp.Node != mp.Node || strings.Join(gp.Devices, ",") != strings.Join(mp.Devices, ",") {
					t.Fatalf("claim %d: gpudra %s %v, minimal %s %v", i, gp.Node, gp.Devices, mp.Node, mp.Devices)
				}
			}
			if cmp.Ratio <= 0 || len(cmp.MinimalAttributes) == 0 {
				t.Fatalf("ratio %v, minimal attributes %v", cmp.Ratio, cmp.MinimalAttributes)
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }
