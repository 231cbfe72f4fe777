package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/contract"
)

// newStateNode opens a profile whose faults live in a fresh state directory.
func newStateNode(t *testing.T, profile string) (*Backend, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sim")
	b, err := New(Options{NodeName: "node-a", Profile: profile, StateDir: dir})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b, dir
}

func inject(t *testing.T, dir string, f Fault) {
	t.Helper()
	if err := InjectFault(dir, f); err != nil {
		t.Fatalf("InjectFault(%+v): %v", f, err)
	}
}

func clearFaults(t *testing.T, dir, uuid string) {
	t.Helper()
	if err := ClearFaults(dir, uuid); err != nil {
		t.Fatalf("ClearFaults(%q): %v", uuid, err)
	}
}

// TestBackendContract runs the gpu.Backend contract on a simulated DGX H100
// whose GPUs are lost and recovered through the state directory, as
// `gpudra sim` does it.
func TestBackendContract(t *testing.T) {
	contract.Run(t, func(t *testing.T) contract.Node {
		b, dir := newStateNode(t, "dgxh100")
		return contract.Node{
			Backend:    b,
			LoseGPU:    func(t *testing.T, g gpu.GPU) { inject(t, dir, Fault{Kind: FaultLost, GPU: g.UUID}) },
			RecoverGPU: func(t *testing.T, g gpu.GPU) { clearFaults(t, dir, g.UUID) },
		}
	})
}

func TestLostGPUIsUnavailableWithItsIdentityAndReason(t *testing.T) {
	b, dir := newStateNode(t, "dgxh100")
	victim := inventory(t, b).GPUs[3]
	inject(t, dir, Fault{Kind: FaultLost, GPU: victim.UUID, Time: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)})

	want := []gpu.UnavailableGPU{{
		Index: 3, Minor: 3, UUID: victim.UUID, PCIBusID: "0000:5d:00.0",
		Reason: "simulated: GPU_IS_LOST (injected by gpudra sim at 2025-06-01T12:00:00Z)",
	}}
	if got := inventory(t, b).Unavailable; !reflect.DeepEqual(got, want) {
		t.Errorf("Unavailable:\n got  %+v\n want %+v", got, want)
	}
}

func TestLostGPURefusesOperationsUntilCleared(t *testing.T) {
	b, dir := newStateNode(t, "mixed")
	inv := inventory(t, b)
	migGPU, wholeGPU, other := inv.GPUs[0], inv.GPUs[2], inv.GPUs[3]
	mig := migGPU.MIGDevices[0]
	inject(t, dir, Fault{Kind: FaultLost, GPU: migGPU.UUID})
	inject(t, dir, Fault{Kind: FaultLost, GPU: wholeGPU.UUID})

	_, err := create(b, migGPU.UUID, 19, 3)
	wantErr(t, err, "create MIG device "+migGPU.UUID, "is lost", "GPU_IS_LOST")
	wantErr(t, destroy(b, migGPU.UUID, mig), "destroy MIG device "+migGPU.UUID, "is lost")
	wantErr(t, b.SetMIGMode(wholeGPU.UUID, true), "is lost")
	wantErr(t, b.SetComputeMode(context.Background(), wholeGPU.UUID, gpu.ComputeModeExclusiveProcess), "is lost")
	wantErr(t, b.SetComputeMode(context.Background(), other.UUID, gpu.ComputeModeExclusiveProcess))

	clearFaults(t, dir, "")
	wantErr(t, destroy(b, migGPU.UUID, mig))
	wantErr(t, b.SetComputeMode(context.Background(), wholeGPU.UUID, gpu.ComputeModeExclusiveProcess))
	after := inventory(t, b)
	if len(after.Unavailable) != 0 || len(after.GPUs) != len(inv.GPUs) {
		t.Fatalf("after clearing: %d GPUs, %d unavailable; want %d and none", len(after.GPUs), len(after.Unavailable), len(inv.GPUs))
	}
	if got := len(after.GPUs[0].MIGDevices); got != len(migGPU.MIGDevices)-1 {
		t.Errorf("GPU 0 has %d MIG devices after one was destroyed, want %d", got, len(migGPU.MIGDevices)-1)
	}
}

func TestLostGPUKeepsItsMIGDevicesWhenItReturns(t *testing.T) {
	b, dir := newStateNode(t, "mixed")
	before := inventory(t, b)
	inject(t, dir, Fault{Kind: FaultLost, GPU: before.GPUs[0].UUID})
	if inv := inventory(t, b); len(inv.GPUs) != len(before.GPUs)-1 || inv.GPUs[0].UUID == before.GPUs[0].UUID {
		t.Fatalf("lost GPU still listed: %d GPUs, first %s", len(inv.GPUs), inv.GPUs[0].UUID)
	}
	clearFaults(t, dir, before.GPUs[0].UUID)
	if after := inventory(t, b); !reflect.DeepEqual(after, before) {
		t.Errorf("after recovery:\n got  %+v\n want %+v", after, before)
	}
}

func TestFaultsForOtherNodesGPUsMatchNothing(t *testing.T) {
	b, dir := newStateNode(t, "l4x4")
	inject(t, dir, Fault{Kind: FaultLost, GPU: gpuUUID("node-b", 0)})
	if inv := inventory(t, b); len(inv.GPUs) != 4 || len(inv.Unavailable) != 0 {
		t.Errorf("%d GPUs, %d unavailable; want 4 and none", len(inv.GPUs), len(inv.Unavailable))
	}
}

func TestInjectAndClearFaults(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if faults, err := ReadFaults(dir); err != nil || faults != nil {
		t.Fatalf("ReadFaults of a missing directory = %v, %v; want none", faults, err)
	}
	wantErr(t, ClearFaults(dir, ""))
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("ClearFaults created %s: %v", dir, err)
	}

	first := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	a, b := gpuUUID("n", 0), gpuUUID("n", 1)
	inject(t, dir, Fault{Kind: FaultLost, GPU: a, Time: first})
	inject(t, dir, Fault{Kind: FaultLost, GPU: b, Time: first})
	inject(t, dir, Fault{Kind: FaultLost, GPU: a, Time: first.Add(time.Hour)}) // already lost: no change
	want := []Fault{{Kind: FaultLost, GPU: a, Time: first}, {Kind: FaultLost, GPU: b, Time: first}}
	if got, err := ReadFaults(dir); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadFaults = %+v, %v; want %+v", got, err, want)
	}

	clearFaults(t, dir, gpuUUID("n", 7)) // no faults: no change
	clearFaults(t, dir, a)
	if got, err := ReadFaults(dir); err != nil || !reflect.DeepEqual(got, want[1:]) {
		t.Fatalf("after clearing %s: ReadFaults = %+v, %v; want %+v", a, got, err, want[1:])
	}
	clearFaults(t, dir, "")
	if got, err := ReadFaults(dir); err != nil || len(got) != 0 {
		t.Fatalf("after clearing all: ReadFaults = %+v, %v; want none", got, err)
	}

	before := time.Now().UTC().Truncate(time.Second)
	inject(t, dir, Fault{Kind: FaultLost, GPU: a})
	got, err := ReadFaults(dir)
	if err != nil || len(got) != 1 || got[0].Time.Before(before) {
		t.Errorf("fault injected without a time: %+v, %v; want one stamped at or after %s", got, err, before)
	}
}

func TestInjectFaultRejectsBadFaults(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		fault Fault
		want  string
	}{
		{Fault{Kind: "xid", GPU: gpuUUID("n", 0)}, `inject fault: kind: unknown fault kind "xid" (valid: lost)`},
		{Fault{Kind: FaultLost, GPU: "gpu-3"}, `inject fault: gpu: "gpu-3" is not a GPU UUID`},
		{Fault{Kind: FaultLost, GPU: "MIG-abc"}, "inject fault: gpu: MIG-abc is a MIG device"},
	}
	for _, tt := range tests {
		wantErr(t, InjectFault(dir, tt.fault), tt.want)
	}
	if _, err := os.Stat(filepath.Join(dir, faultsFileName)); !os.IsNotExist(err) {
		t.Errorf("rejected faults wrote %s: %v", faultsFileName, err)
	}
}

// TestBrokenFaultsFileFailsInventory: the file is the simulated hardware's
// state, so a file that cannot be parsed fails Inventory, naming the file
// and the field, and writers refuse to build on it, until clear --all
// resets it.
func TestBrokenFaultsFileFailsInventory(t *testing.T) {
	uuid := gpuUUID("node-a", 0)
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{name: "not JSON", content: `{"version": 1, "faults": [`, want: "decode"},
		{name: "unknown field", content: `{"version": 1, "faults": [{"kind": "lost", "gpu": "` + uuid + `", "xid": 79}]}`, want: `unknown field "faults[0].xid"`},
		{name: "newer version", content: `{"version": 2, "faults": []}`, want: "version: 2 is not supported (this gpudra reads version 1)"},
		{name: "no version", content: `{"faults": []}`, want: "version: 0 is not supported"},
		{name: "unknown kind", content: `{"version": 1, "faults": [{"kind": "lost", "gpu": "` + uuid + `"}, {"kind": "melted", "gpu": "` + uuid + `"}]}`, want: `faults[1].kind: unknown fault kind "melted"`},
		{name: "name instead of UUID", content: `{"version": 1, "faults": [{"kind": "lost", "gpu": "gpu-0"}]}`, want: `faults[0].gpu: "gpu-0" is not a GPU UUID`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, dir := newStateNode(t, "l4x4")
			inventory(t, b) // before the file exists
			path := filepath.Join(dir, faultsFileName)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
				t.Fatal(err)
			}

			_, err := b.Inventory(context.Background())
			wantErr(t, err, "sim faults file "+path+": ", tt.want)
			_, err = ReadFaults(dir)
			wantErr(t, err, path, tt.want)
			wantErr(t, InjectFault(dir, Fault{Kind: FaultLost, GPU: uuid}), tt.want, "gpudra sim clear --all")
			wantErr(t, ClearFaults(dir, uuid), tt.want, "gpudra sim clear --all")

			clearFaults(t, dir, "")
			if inv := inventory(t, b); len(inv.GPUs) != 4 {
				t.Errorf("after clear --all: %d GPUs, want 4", len(inv.GPUs))
			}
		})
	}
}

// TestFaultsFileIsReadOnlyWhenReplaced shows the cache: a change made in
// place that keeps the inode, size and mtime is not seen, while every write
// through InjectFault and ClearFaults is, however fast they follow each
// other (each one writes a new inode with a later mtime).
func TestFaultsFileIsReadOnlyWhenReplaced(t *testing.T) {
	b, dir := newStateNode(t, "dgxh100")
	inv := inventory(t, b)
	inject(t, dir, Fault{Kind: FaultLost, GPU: inv.GPUs[0].UUID})
	if got := inventory(t, b).Unavailable; len(got) != 1 {
		t.Fatalf("Unavailable = %+v, want GPU 0", got)
	}

	path := filepath.Join(dir, faultsFileName)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inPlace := strings.Replace(string(data), inv.GPUs[0].UUID, inv.GPUs[1].UUID, 1)
	if err := os.WriteFile(path, []byte(inPlace), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	if got := inventory(t, b).Unavailable; len(got) != 1 || got[0].UUID != inv.GPUs[0].UUID {
		t.Errorf("an unchanged (inode, size, mtime) was re-read: Unavailable = %+v", got)
	}

	// Same-size files back to back: only the inode and mtime tell them apart.
	for i := range 20 {
		g := inv.GPUs[i%len(inv.GPUs)]
		clearFaults(t, dir, "")
		inject(t, dir, Fault{Kind: FaultLost, GPU: g.UUID, Time: time.Unix(0, 0).UTC()})
		if got := inventory(t, b).Unavailable; len(got) != 1 || got[0].UUID != g.UUID {
			t.Fatalf("write %d: Unavailable = %+v, want %s", i, got, g.UUID)
		}
	}
}

// TestWritesGetStrictlyLaterMtimes: a Backend tells files apart by inode,
// size and mtime, so a write must move the mtime forward even when the
// clock has not (coarse filesystem clocks, or a clock stepped back). The
// old file's mtime is put in the future to make that case certain. Writes
// also remove temp files a crashed writer left.
func TestWritesGetStrictlyLaterMtimes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, faultsFileName)
	inject(t, dir, Fault{Kind: FaultLost, GPU: gpuUUID("n", 0)})
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	// What a writer that crashed before its rename leaves behind.
	if err := os.WriteFile(filepath.Join(dir, faultsTempPrefix+"crashed"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	last := future
	for i := range 3 {
		clearFaults(t, dir, "")
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if !info.ModTime().After(last) {
			t.Fatalf("write %d: mtime %s is not after the previous %s", i, info.ModTime(), last)
		}
		last = info.ModTime()
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("state directory holds %d entries, want faults.json and faults.lock (no temp files): %v", len(entries), entries)
	}
}

// TestConcurrentWritersLoseNothing injects from many goroutines at once;
// the lock keeps every read-modify-write whole.
func TestConcurrentWritersLoseNothing(t *testing.T) {
	dir := t.TempDir()
	const writers = 16
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			if err := InjectFault(dir, Fault{Kind: FaultLost, GPU: gpuUUID("n", i)}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	faults, err := ReadFaults(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(faults) != writers {
		t.Errorf("%d faults recorded, want %d: %+v", len(faults), writers, faults)
	}
}

func TestResolveGPU(t *testing.T) {
	b, dir := newStateNode(t, "dgxh100")
	inv := inventory(t, b)
	inject(t, dir, Fault{Kind: FaultLost, GPU: inv.GPUs[5].UUID})
	withLost := inventory(t, b)

	tests := []struct {
		inv  *gpu.Inventory
		ref  string
		want string
		err  string
	}{
		{inv: inv, ref: "gpu-3", want: inv.GPUs[3].UUID},
		{inv: inv, ref: "3", want: inv.GPUs[3].UUID},
		{inv: inv, ref: inv.GPUs[7].UUID, want: inv.GPUs[7].UUID},
		{inv: withLost, ref: "gpu-5", want: inv.GPUs[5].UUID},
		{inv: withLost, ref: "5", want: inv.GPUs[5].UUID},
		{inv: withLost, ref: inv.GPUs[5].UUID, want: inv.GPUs[5].UUID},
		{inv: nil, ref: "GPU-anything", want: "GPU-anything"},
		{inv: nil, ref: "gpu-3", err: `resolving "gpu-3" needs the node's inventory`},
		{inv: inv, ref: "gpu-8", err: "no GPU gpu-8 on this node (it has gpu-0, gpu-1, gpu-2, gpu-3, gpu-4, gpu-5, gpu-6, gpu-7)"},
		{inv: withLost, ref: "gpu-9", err: "gpu-4, gpu-5, gpu-6"},
		{inv: inv, ref: "GPU-missing", err: "no GPU GPU-missing on this node"},
		{inv: inv, ref: "gpu-x", err: `"gpu-x" is not a GPU name`},
		{inv: inv, ref: "-1", err: `"-1" is not a GPU`},
		{inv: inv, ref: "node-a", err: `"node-a" is not a GPU`},
		{inv: inv, ref: "MIG-abc", err: "MIG-abc is a MIG device"},
		{inv: &gpu.Inventory{}, ref: "0", err: "it has no GPUs"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/inventory=%v", tt.ref, tt.inv != nil), func(t *testing.T) {
			got, err := ResolveGPU(tt.inv, tt.ref)
			if tt.err != "" {
				wantErr(t, err, tt.err)
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ResolveGPU(%q) = %q, %v; want %q", tt.ref, got, err, tt.want)
			}
		})
	}
}
