// Package contract is the test suite every gpu.Backend passes. The same
// cases run against the sim backend and against the NVML backend over
// go-nvml's mock servers, so a behaviour is written once and checked twice.
//
// Contract:
//   - A backend's tests call Run with a function that builds a fresh Node:
//     the backend and the levers that break its hardware the way that
//     backend's hardware breaks (the sim's state directory, a mock device
//     that answers GPU_IS_LOST).
//   - Cases see backends only through gpu.Backend and gpu.Inventory, so
//     what they check is what the plugin relies on.
//   - A node has at least three GPUs and none unavailable when built.
package contract

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gpudra/gpudra/internal/gpu"
)

// Node is a backend under test and the levers the cases pull.
type Node struct {
	Backend gpu.Backend
	// LoseGPU makes a GPU fall off the bus: it still enumerates, but every
	// call on it fails with GPU_IS_LOST.
	LoseGPU func(t *testing.T, g gpu.GPU)
	// RecoverGPU undoes LoseGPU.
	RecoverGPU func(t *testing.T, g gpu.GPU)
}

// Run runs every case, each on a node newNode builds.
func Run(t *testing.T, newNode func(t *testing.T) Node) {
	cases := []struct {
		name string
		test func(t *testing.T, n Node)
	}{
		{"OneLostGPUIsLeftOutAndComesBack", testOneLostGPU},
		{"EveryGPULostIsStillAnInventory", testEveryGPULost},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.test(t, newNode(t)) })
	}
}

// testOneLostGPU: the other GPUs are reported exactly as before, the lost
// one is in Unavailable with a reason that says GPU_IS_LOST, and once it
// recovers the inventory is what it was (same UUID).
func testOneLostGPU(t *testing.T, n Node) {
	before := inventory(t, n.Backend)
	if len(before.GPUs) < 3 || len(before.Unavailable) != 0 {
		t.Fatalf("node has %d GPUs and %d unavailable, want at least 3 and none", len(before.GPUs), len(before.Unavailable))
	}
	// A GPU in the middle, so neighbours on both sides are checked.
	lost := before.GPUs[2]
	n.LoseGPU(t, lost)

	during := inventory(t, n.Backend)
	wantGPUs := slices.Delete(slices.Clone(before.GPUs), 2, 3)
	if !reflect.DeepEqual(during.GPUs, wantGPUs) {
		t.Errorf("with %s lost, the other GPUs changed:\n got  %+v\n want %+v", lost.UUID, during.GPUs, wantGPUs)
	}
	if during.DriverVersion != before.DriverVersion || during.CUDADriverVersion != before.CUDADriverVersion {
		t.Errorf("versions changed: %s/%v, want %s/%v", during.DriverVersion, during.CUDADriverVersion, before.DriverVersion, before.CUDADriverVersion)
	}
	if len(during.Unavailable) != 1 {
		t.Fatalf("Unavailable = %+v, want exactly %s", during.Unavailable, lost.UUID)
	}
	checkLost(t, during.Unavailable[0], lost)

	n.RecoverGPU(t, lost)
	if after := inventory(t, n.Backend); !reflect.DeepEqual(after, before) {
		t.Errorf("after %s recovered:\n got  %+v\n want %+v", lost.UUID, after, before)
	}
}

// testEveryGPULost: a node whose GPUs are all lost still answers, with no
// GPUs, rather than failing (which would crash-loop the plugin).
func testEveryGPULost(t *testing.T, n Node) {
	before := inventory(t, n.Backend)
	for _, g := range before.GPUs {
		n.LoseGPU(t, g)
	}
	during := inventory(t, n.Backend)
	if len(during.GPUs) != 0 {
		t.Errorf("found %d GPUs, want none", len(during.GPUs))
	}
	if len(during.Unavailable) != len(before.GPUs) {
		t.Fatalf("%d unavailable GPUs, want %d", len(during.Unavailable), len(before.GPUs))
	}
	byIndex := make(map[int]gpu.GPU, len(before.GPUs))
	for _, g := range before.GPUs {
		byIndex[g.Index] = g
	}
	for i, u := range during.Unavailable {
		if i > 0 && u.Index <= during.Unavailable[i-1].Index {
			t.Errorf("Unavailable not in index order: %d after %d", u.Index, during.Unavailable[i-1].Index)
		}
		checkLost(t, u, byIndex[u.Index])
	}
}

// checkLost compares an unavailable GPU with the GPU it was. A backend may
// not know every field of a lost GPU (NVML learns nothing from it but its
// index), but what it reports must be right.
func checkLost(t *testing.T, u gpu.UnavailableGPU, was gpu.GPU) {
	t.Helper()
	if u.Index != was.Index {
		t.Errorf("unavailable GPU has index %d, want %d", u.Index, was.Index)
	}
	if u.Minor != -1 && u.Minor != was.Minor {
		t.Errorf("unavailable GPU %d: minor %d, want %d or -1 (unknown)", u.Index, u.Minor, was.Minor)
	}
	if u.UUID != "" && u.UUID != was.UUID {
		t.Errorf("unavailable GPU %d: UUID %s, want %s or empty", u.Index, u.UUID, was.UUID)
	}
	if u.PCIBusID != "" && u.PCIBusID != was.PCIBusID {
		t.Errorf("unavailable GPU %d: PCI bus ID %s, want %s or empty", u.Index, u.PCIBusID, was.PCIBusID)
	}
	if !strings.Contains(u.Reason, "GPU_IS_LOST") {
		t.Errorf("unavailable GPU %d: reason %q does not say GPU_IS_LOST", u.Index, u.Reason)
	}
}

func inventory(t *testing.T, b gpu.Backend) *gpu.Inventory {
	t.Helper()
	inv, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	return inv
}
