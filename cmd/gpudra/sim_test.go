package main

import (
	"bytes"
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gpudra/gpudra/internal/backend"
	"github.com/gpudra/gpudra/internal/gpu"
)

// runSim runs `gpudra sim args...` and returns what it printed.
func runSim(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := simCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func mustRunSim(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runSim(t, args...)
	if err != nil {
		t.Fatalf("gpudra sim %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func simInventory(t *testing.T, b gpu.Backend) *gpu.Inventory {
	t.Helper()
	inv, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	return inv
}

// TestSimInjectLostGPULeavesInventoryAndClearBringsItBack drives the
// commands an operator types against a backend opened as the plugin opens
// it: gpu-3 leaves the inventory with its reason and returns, same UUID,
// once cleared, while another lost GPU stays lost until clear --all.
func TestSimInjectLostGPULeavesInventoryAndClearBringsItBack(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "sim")
	b, err := backend.Open(backend.Options{NodeName: "node-a", SimProfile: "dgxh100", SimStateDir: stateDir})
	if err != nil {
		t.Fatalf("backend.Open: %v", err)
	}
	defer func() { _ = b.Close() }()
	before := simInventory(t, b)
	gpu3 := before.GPUs[3]
	node := []string{"--state-dir", stateDir, "--sim-profile", "dgxh100", "--node-name", "node-a"}

	out := mustRunSim(t, append([]string{"inject", "lost", "gpu-3"}, node...)...)
	if want := "gpu-3 (" + gpu3.UUID + ") is lost\n"; out != want {
		t.Errorf("inject printed %q, want %q", out, want)
	}
	during := simInventory(t, b)
	if len(during.GPUs) != 7 || during.FindGPU(gpu3.UUID) != nil {
		t.Errorf("with gpu-3 lost: %d GPUs (gpu-3 listed: %v), want 7 without it", len(during.GPUs), during.FindGPU(gpu3.UUID) != nil)
	}
	if len(during.Unavailable) != 1 || during.Unavailable[0].UUID != gpu3.UUID ||
		!strings.HasPrefix(during.Unavailable[0].Reason, "simulated: GPU_IS_LOST (injected by gpudra sim at ") {
		t.Errorf("Unavailable = %+v, want gpu-3 with a simulated GPU_IS_LOST reason", during.Unavailable)
	}

	out = mustRunSim(t, "faults", "--state-dir", stateDir)
	if !strings.Contains(out, "lost  "+gpu3.UUID) {
		t.Errorf("faults printed %q, want gpu-3's UUID as lost", out)
	}

	// A second lost GPU, named by index, must outlive clearing gpu-3.
	mustRunSim(t, append([]string{"inject", "lost", "5"}, node...)...)
	out = mustRunSim(t, append([]string{"clear", "gpu-3"}, node...)...)
	if want := "cleared the faults of gpu-3 (" + gpu3.UUID + ")\n"; out != want {
		t.Errorf("clear printed %q, want %q", out, want)
	}
	if after := simInventory(t, b); len(after.GPUs) != 7 || after.FindGPU(gpu3.UUID) == nil ||
		len(after.Unavailable) != 1 || after.Unavailable[0].UUID != before.GPUs[5].UUID {
		t.Errorf("after clearing gpu-3: gpu-3 listed %v, unavailable %+v; want gpu-3 back and gpu-5 still lost", after.FindGPU(gpu3.UUID) != nil, after.Unavailable)
	}
	mustRunSim(t, "clear", "--all", "--state-dir", stateDir)
	if after := simInventory(t, b); !reflect.DeepEqual(after, before) {
		t.Errorf("after clear --all:\n got  %+v\n want %+v", after, before)
	}
	if out := mustRunSim(t, "faults", "--state-dir", stateDir); out != "no faults\n" {
		t.Errorf("faults printed %q after clear, want %q", out, "no faults\n")
	}
}

func TestSimCommandsByUUIDNeedNoInventory(t *testing.T) {
	stateDir := t.TempDir()
	uuid := "GPU-00000000-0000-0000-0000-000000000003"
	mustRunSim(t, "inject", "lost", uuid, "--state-dir", stateDir)
	out := mustRunSim(t, "faults", "-o", "json", "--state-dir", stateDir)
	if !strings.Contains(out, `"gpu": "`+uuid+`"`) || !strings.Contains(out, `"kind": "lost"`) {
		t.Errorf("faults -o json printed %s, want the lost fault of %s", out, uuid)
	}
	mustRunSim(t, "clear", "--all", "--state-dir", stateDir)
	if out := mustRunSim(t, "faults", "-o", "json", "--state-dir", stateDir); out != "[]\n" {
		t.Errorf("faults -o json printed %q after clear --all, want []", out)
	}
}

func TestSimCommandErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"inject", "lost", "gpu-3"}, `required flag(s) "state-dir" not set`},
		{[]string{"inject", "lost", "gpu-3", "--state-dir", dir}, `resolving "gpu-3" needs the node's inventory`},
		{[]string{"inject", "lost", "gpu-3", "--state-dir", dir, "--sim-profile", "dgxh100", "--node-name", ""}, "--node-name (or $NODE_NAME) is required"},
		{[]string{"inject", "lost", "gpu-9", "--state-dir", dir, "--sim-profile", "l4x4", "--node-name", "n"}, "GPU gpu-9: no GPU gpu-9 on this node (it has gpu-0, gpu-1, gpu-2, gpu-3)"},
		{[]string{"inject", "lost", "GPU-elsewhere", "--state-dir", dir, "--sim-profile", "l4x4", "--node-name", "n"}, "no GPU GPU-elsewhere on this node"},
		{[]string{"inject", "lost", "gpu-0", "--state-dir", dir, "--sim-profile", "dgx1", "--node-name", "n"}, `unknown profile "dgx1"`},
		{[]string{"clear", "--state-dir", dir}, "name one GPU or pass --all"},
		{[]string{"clear", "gpu-1", "--all", "--state-dir", dir}, "name one GPU or pass --all"},
		{[]string{"faults", "-o", "yaml", "--state-dir", dir}, `--output: "yaml" is not json or table`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := runSim(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestSimMIGListAndFailComputeInstance: `gpudra sim mig list` shows the MIG
// devices a backend over the state directory cut, and an armed
// compute-instance failure fails that backend's next cut on the GPU.
func TestSimMIGListAndFailComputeInstance(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "sim")
	b, err := backend.Open(backend.Options{NodeName: "node-a", SimProfile: "dgxh100-mig", SimStateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	mig := b.(gpu.MIGManager)
	inv := simInventory(t, b)
	g1 := inv.GPUs[1]
	d, err := mig.CreateMIGDevice(context.Background(), gpu.MIGSlot{ParentUUID: g1.UUID, GIProfileID: 9, Placement: gpu.Placement{Start: 4, Size: 4}})
	if err != nil {
		t.Fatal(err)
	}
	node := []string{"--state-dir", stateDir, "--sim-profile", "dgxh100-mig", "--node-name", "node-a"}
	out := mustRunSim(t, append([]string{"mig", "list"}, node...)...)
	if !strings.Contains(out, "3g.40gb") || !strings.Contains(out, d.UUID) || strings.Count(out, "\n") != 1+8 {
		t.Errorf("mig list:\n%s", out)
	}

	out = mustRunSim(t, append([]string{"inject", "fail-compute-instance", "gpu-1"}, node...)...)
	if !strings.Contains(out, g1.UUID) {
		t.Errorf("inject printed %q", out)
	}
	if _, err := mig.CreateMIGDevice(context.Background(), gpu.MIGSlot{ParentUUID: g1.UUID, GIProfileID: 19, Placement: gpu.Placement{Start: 0, Size: 1}}); err == nil || !strings.Contains(err.Error(), "compute instance") {
		t.Errorf("create after the armed failure: %v", err)
	}
	if out, err := runSim(t, "mig", "list", "--state-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no hardware state") {
		t.Errorf("mig list of an empty directory: %v\n%s", err, out)
	}
}

// `gpudra sim gpus` shows the settings a time-sliced or MPS claim changed,
// as the hardware holds them.
func TestSimGPUsShowsComputeModeAndTimeSlice(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "sim")
	b, err := backend.Open(backend.Options{NodeName: "node-a", SimProfile: "dgxh100", SimStateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	settings := b.(gpu.SettingsManager)
	g2 := simInventory(t, b).GPUs[2]
	if err := settings.SetTimeSlice(context.Background(), g2.UUID, gpu.TimeSliceLong); err != nil {
		t.Fatal(err)
	}
	if err := settings.SetComputeMode(context.Background(), g2.UUID, gpu.ComputeModeExclusiveProcess); err != nil {
		t.Fatal(err)
	}
	out := mustRunSim(t, "gpus", "--state-dir", stateDir)
	var line string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, g2.UUID) {
			line = l
		}
	}
	if f := strings.Fields(line); len(f) != 6 || f[3] != "Exclusive_Process" || f[4] != "Long" {
		t.Errorf("gpu 2's line %q, want Exclusive_Process and Long:\n%s", line, out)
	}
	if strings.Count(out, "Default") != 2*7 || strings.Count(out, "\n") != 1+8 {
		t.Errorf("the other GPUs should show Default twice each:\n%s", out)
	}
}
