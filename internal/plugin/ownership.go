package plugin

import (
	"sync"
)

// claimRef names a claim in messages and in the checkpoint.
type claimRef struct {
	UID       string
	Namespace string
	Name      string
}

func (c claimRef) String() string { return c.Namespace + "/" + c.Name }

// ownership records which claim holds each device exclusively. It is the
// driver's last line of defence against giving one device to two unrelated
// workloads (the scheduler should never do that, but a stale claim left from
// a crash could). Claims with admin access observe a device without owning it.
type ownership struct {
	mu     sync.Mutex
	owners map[string]claimRef // device name -> owning claim
}

func newOwnership() *ownership {
	return &ownership{owners: make(map[string]claimRef)}
}

// conflict is a device held by another claim.
type conflict struct {
	Device string
	Owner  claimRef
}

// reserve gives the devices to claim, all or none. It returns the conflicts
// with other claims instead when there are any. Reserving devices the claim
// already holds is fine (a repeated prepare).
func (o *ownership) reserve(claim claimRef, devices []string) []conflict {
	o.mu.Lock()
	defer o.mu.Unlock()
	var conflicts []conflict
	for _, dev := range devices {
		if owner, held := o.owners[dev]; held && owner.UID != claim.UID {
			conflicts = append(conflicts, conflict{Device: dev, Owner: owner})
		}
	}
	if len(conflicts) > 0 {
		return conflicts
	}
	for _, dev := range devices {
		o.owners[dev] = claim
	}
	return nil
}

// release frees every device the claim holds.
func (o *ownership) release(claimUID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for dev, owner := range o.owners {
		if owner.UID == claimUID {
			delete(o.owners, dev)
		}
	}
}

// reset forgets every owner (before rebuilding from a reloaded checkpoint).
func (o *ownership) reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.owners = make(map[string]claimRef)
}

// owner returns the claim holding device, if any.
func (o *ownership) owner(device string) (claimRef, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	c, ok := o.owners[device]
	return c, ok
}

// held returns the names of the devices some claim holds.
func (o *ownership) held() map[string]bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]bool, len(o.owners))
	for dev := range o.owners {
		out[dev] = true
	}
	return out
}
