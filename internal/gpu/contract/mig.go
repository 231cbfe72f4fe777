package contract

import (
	"testing"

	"github.com/gpudra/gpudra/internal/gpu"
)

// MIGBackend is a backend that can cut MIG devices.
type MIGBackend interface {
	gpu.Backend
	gpu.MIGManager
}

// MIGNode is a MIG-capable backend under test and the levers its MIG cases
// pull. When built, the node has at least two GPUs in MIG mode with no MIG
// devices, and none unavailable; the GPUs support the H100's profiles
// (1g.10gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb). Cases find profiles by name
// in the inventory, never by a hard-coded ID.
type MIGNode struct {
	Backend MIGBackend
	// Reopen returns a new backend over the same hardware, as a restarted
	// plugin sees it: MIG devices outlive the process that made them.
	Reopen func(t *testing.T) MIGBackend
	// FailNextComputeInstance makes the next compute-instance create on the
	// parent GPU fail (NVML: an error return from CreateComputeInstance).
	FailNextComputeInstance func(t *testing.T, parentUUID string)
	// LeaveIncomplete creates only the GPU instance at slot, as a process
	// that dies between the two steps of CreateMIGDevice leaves it.
	LeaveIncomplete func(t *testing.T, slot gpu.MIGSlot)
}

// RunMIG runs every MIG case, each on a node newNode builds.
func RunMIG(t *testing.T, newNode func(t *testing.T) MIGNode) {
	cases := []struct {
		name string
		test func(t *testing.T, n MIGNode)
	}{
		// Filled in with the MIG contract cases.
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.test(t, newNode(t)) })
	}
}
