package plugin

import (
	"cmp"
	"slices"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/utils/ptr"

	"github.com/gpudra/gpudra/internal/checkpoint"
)

// allocatedDevice is one device of our driver in a claim's allocation, as
// far as preparing it depends on: which request it serves, where it is, and
// whether it is shared for monitoring (admin access).
type allocatedDevice struct {
	Request     string
	Pool        string
	Device      string
	AdminAccess bool
}

// claimAllocation lists the devices of driver in claim's allocation, sorted;
// nil when the claim is not allocated or has none of ours.
func claimAllocation(claim *resourceapi.ResourceClaim, driver string) []allocatedDevice {
	if claim.Status.Allocation == nil {
		return nil
	}
	var out []allocatedDevice
	for _, r := range claim.Status.Allocation.Devices.Results {
		if r.Driver != driver {
			continue
		}
		out = append(out, allocatedDevice{Request: r.Request, Pool: r.Pool, Device: r.Device, AdminAccess: ptr.Deref(r.AdminAccess, false)})
	}
	sortAllocation(out)
	return out
}

// recordAllocation lists the devices a checkpoint record was prepared for,
// sorted.
func recordAllocation(rec checkpoint.Claim) []allocatedDevice {
	out := make([]allocatedDevice, 0, len(rec.Devices))
	for _, d := range rec.Devices {
		out = append(out, allocatedDevice{Request: d.Request, Pool: d.Pool, Device: d.Device, AdminAccess: d.AdminAccess})
	}
	sortAllocation(out)
	return out
}

func sortAllocation(devs []allocatedDevice) {
	slices.SortFunc(devs, func(a, b allocatedDevice) int {
		return cmp.Or(cmp.Compare(a.Pool, b.Pool), cmp.Compare(a.Device, b.Device), cmp.Compare(a.Request, b.Request))
	})
}

// sameAllocation tells whether a record was prepared for exactly the
// allocation the claim has now. A claim that was deallocated and allocated
// again (same UID, other devices or requests) is not the same.
func sameAllocation(rec checkpoint.Claim, claim *resourceapi.ResourceClaim, driver string) bool {
	if rec.UID != string(claim.UID) {
		return false
	}
	want := claimAllocation(claim, driver)
	return len(want) > 0 && slices.Equal(recordAllocation(rec), want)
}
