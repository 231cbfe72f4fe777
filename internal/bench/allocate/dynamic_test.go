package allocate

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// TestRunDynamicSmall runs every layout on a small cluster at two fills:
// each places claims, publishes the devices its options say, and the held
// fill is the one asked for.
func TestRunDynamicSmall(t *testing.T) {
	results, err := RunDynamic(context.Background(), DynamicOptions{
		Nodes: 6, Fills: []float64{0, 0.9}, Claims: 15, Layouts: DynamicLayouts(), Workers: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2*len(DynamicLayouts()) {
		t.Fatalf("%d results, want %d", len(results), 2*len(DynamicLayouts()))
	}
	wantEmpty := map[string]float64{"whole-gpus": 8, "every-placement": 8 * 19, "dynamic-all": 7 + 15, "dynamic-1": 7 + 6, "dynamic-all+1g.20gb": 7 + 19, "dynamic-all-open": 8 * 15}
	for _, r := range results {
		if math.Abs(r.HeldFill-r.Fill) > 0.02 {
			t.Errorf("%s: held fill %.3f, want %.2f", r.Layout, r.HeldFill, r.Fill)
		}
		if r.Attempts != 15 || r.Placed+r.Unschedulable != r.Attempts {
			t.Errorf("%s at %.0f%%: %d attempts, %d placed, %d unschedulable", r.Layout, r.Fill*100, r.Attempts, r.Placed, r.Unschedulable)
		}
		if r.Fill == 0 {
			if r.Placed != 15 {
				t.Errorf("%s on an empty cluster placed %d of 15", r.Layout, r.Placed)
			}
			if want := wantEmpty[r.Layout]; r.DevicesPerNode != want {
				t.Errorf("%s publishes %.1f devices per empty node, want %.0f", r.Layout, r.DevicesPerNode, want)
			}
		}
		if r.Placed > 0 && (r.PodsPerSecond <= 0 || r.Latency.P50 <= 0) {
			t.Errorf("%s: placed %d at %.1f pods/s", r.Layout, r.Placed, r.PodsPerSecond)
		}
	}
}

// TestDynamicRepublishKeepsCountersRight: with republishing, no two placed
// claims share a memory slice of a GPU, and a whole GPU shares with none.
func TestDynamicRepublishKeepsCountersRight(t *testing.T) {
	for _, name := range []string{"dynamic-1", "dynamic-all", "every-placement"} {
		layout, err := DynamicLayoutByName(name)
		if err != nil {
			t.Fatal(err)
		}
		cl, err := NodeCluster(context.Background(), "node-0", &sim.Config{Profile: "dgxh100-mig"}, &layout.Options)
		if err != nil {
			t.Fatal(err)
		}
		if !layout.Republish {
			cl.Republish = nil
		}
		s := NewScheduler(cl)
		taken := map[string]map[int]string{} // GPU -> slice -> device
		placed := 0
		for i := 0; i < 100; i++ {
			k := MixedMIGWorkload[i%len(MixedMIGWorkload)]
			p, err := s.Schedule(context.Background(), k.Claim(fmt.Sprintf("c-%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			if p == nil {
				continue
			}
			placed++
			dev := p.Devices[0]
			gpuName, slices := devicemodelSlices(t, dev)
			if taken[gpuName] == nil {
				taken[gpuName] = map[int]string{}
			}
			for _, sl := range slices {
				if other, ok := taken[gpuName][sl]; ok {
					t.Fatalf("%s: %s and %s both hold slice %d of %s", name, other, dev, sl, gpuName)
				}
				taken[gpuName][sl] = dev
			}
		}
		// 8 GPUs × 7 slices: the workload fills at least most of them.
		if placed < 12 {
			t.Errorf("%s: placed only %d claims on an empty node", name, placed)
		}
	}
}

// devicemodelSlices returns the GPU and memory slices a device name spans.
func devicemodelSlices(t *testing.T, name string) (string, []int) {
	t.Helper()
	gpuName, rest, isMIG := strings.Cut(name, "-mig-")
	if !isMIG {
		return name, []int{0, 1, 2, 3, 4, 5, 6}
	}
	parts := strings.Split(rest, "-")
	start, err := strconv.Atoi(parts[len(parts)-1])
	if err != nil {
		t.Fatalf("device %s: %v", name, err)
	}
	size := map[string]int{"1g10gb": 1, "1g20gb": 1, "2g20gb": 2, "3g40gb": 3, "4g40gb": 4, "7g80gb": 7}[parts[0]]
	var out []int
	for i := start; i < start+size; i++ {
		out = append(out, i)
	}
	return gpuName, out
}
