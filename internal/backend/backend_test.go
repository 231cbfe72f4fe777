package backend

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"

	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// TestSimStateDirFlagReachesTheSimulator: --sim-state-dir is the directory
// whose faults the opened backend applies; unset, it is empty.
func TestSimStateDirFlagReachesTheSimulator(t *testing.T) {
	var unset Options
	unsetFlags := pflag.NewFlagSet("test", pflag.ContinueOnError)
	unset.AddFlags(unsetFlags)
	if err := unsetFlags.Parse(nil); err != nil || unset.SimStateDir != "" {
		t.Fatalf("default --sim-state-dir = %q (%v), want empty", unset.SimStateDir, err)
	}

	dir := filepath.Join(t.TempDir(), "sim")
	o := Options{NodeName: "node-a"}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse([]string{"--sim-profile=l4x4", "--sim-state-dir=" + dir}); err != nil {
		t.Fatal(err)
	}
	b, err := Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() { _ = b.Close() }()
	inv, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.InjectFault(dir, sim.Fault{Kind: sim.FaultLost, GPU: inv.GPUs[1].UUID}); err != nil {
		t.Fatal(err)
	}
	inv, err = b.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.GPUs) != 3 || len(inv.Unavailable) != 1 || inv.Unavailable[0].Minor != 1 {
		t.Errorf("with gpu-1 lost through %s: %d GPUs, unavailable %+v; want 3 and gpu-1", dir, len(inv.GPUs), inv.Unavailable)
	}
}
