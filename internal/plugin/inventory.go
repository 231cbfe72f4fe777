package plugin

import (
	"context"
	"fmt"
	"slices"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/klog/v2"

	"github.com/gpudra/gpudra/internal/devicemodel"
	"github.com/gpudra/gpudra/internal/gpu"
)

// refreshInventory reads the backend, builds the devices to publish and
// swaps in a new snapshot. It reports whether the published devices
// changed.
//
// A GPU the backend reports unavailable is left out with a log line (one
// bad GPU is one bad GPU). A device that disappears while a claim holds it
// stays published, with its last known description, until the claim
// releases it: unpublishing it would let the scheduler count it as gone
// while a pod still runs on it, and prepare refuses it with the reason (see
// plan).
func (d *Driver) refreshInventory(ctx context.Context) (bool, error) {
	d.refreshMu.Lock()
	defer d.refreshMu.Unlock()
	logger := klog.FromContext(ctx)

	inv, err := d.cfg.Backend.Inventory(ctx)
	if err != nil {
		return false, fmt.Errorf("read GPU inventory: %w", err)
	}
	var devices []resourceapi.Device
	var counterSets []resourceapi.CounterSet
	if d.mig != nil {
		p, err := d.buildDynamic(inv)
		if err != nil {
			return false, fmt.Errorf("build dynamic-MIG devices: %w", err)
		}
		devices, counterSets = p.Devices, p.CounterSets
	} else if devices, err = devicemodel.Build(inv); err != nil {
		return false, fmt.Errorf("build devices: %w", err)
	}
	index := devicemodel.Index(inv)
	old := d.snapshot.Load()

	for _, u := range inv.Unavailable {
		if old == nil || !slices.Contains(old.unavailable, u.UUID+"|"+u.Reason) {
			logger.Error(nil, "GPU left out of the published devices", "index", u.Index, "minor", u.Minor, "uuid", u.UUID, "pciBusID", u.PCIBusID, "reason", u.Reason)
		}
	}

	next := &snapshot{inventory: inv, devices: devices, counterSets: counterSets, index: index, retained: map[string]string{}}
	for _, u := range inv.Unavailable {
		next.unavailable = append(next.unavailable, u.UUID+"|"+u.Reason)
	}
	if old != nil {
		held := d.owners.held()
		published := make(map[string]bool, len(devices))
		for _, dev := range devices {
			published[dev.Name] = true
		}
		for _, dev := range old.devices {
			if published[dev.Name] || !held[dev.Name] {
				continue
			}
			reason := unavailableReason(inv, old.index[dev.Name])
			next.devices = append(next.devices, dev)
			next.keepCounterSets(old, dev)
			next.index[dev.Name] = old.index[dev.Name]
			next.retained[dev.Name] = reason
			if _, before := old.retained[dev.Name]; !before {
				owner, _ := d.owners.owner(dev.Name)
				logger.Info("Device is gone from the inventory but stays published while a claim holds it", "device", dev.Name, "claim", owner.String(), "reason", reason)
			}
		}
	}
	d.snapshot.Store(next)
	return old == nil || !sameDevices(old.devices, next.devices) || !equality.Semantic.DeepEqual(old.counterSets, next.counterSets), nil
}

// keepCounterSets keeps publishing the counter sets a retained device
// consumes: a slice may not name a counter set the pool lacks.
func (s *snapshot) keepCounterSets(old *snapshot, dev resourceapi.Device) {
	for _, c := range dev.ConsumesCounters {
		if slices.ContainsFunc(s.counterSets, func(cs resourceapi.CounterSet) bool { return cs.Name == c.CounterSet }) {
			continue
		}
		if i := slices.IndexFunc(old.counterSets, func(cs resourceapi.CounterSet) bool { return cs.Name == c.CounterSet }); i >= 0 {
			s.counterSets = append(s.counterSets, old.counterSets[i])
		}
	}
}

// unavailableReason says why a device that was published is no longer in
// the inventory.
func unavailableReason(inv *gpu.Inventory, loc devicemodel.Located) string {
	if loc.GPU != nil {
		for _, u := range inv.Unavailable {
			if u.UUID == loc.GPU.UUID {
				return fmt.Sprintf("GPU %s is unavailable: %s", u.UUID, u.Reason)
			}
		}
		if loc.MIG != nil {
			return fmt.Sprintf("MIG device %s no longer exists on GPU %s", loc.MIG.UUID, loc.GPU.UUID)
		}
		return fmt.Sprintf("GPU %s is no longer in the inventory", loc.GPU.UUID)
	}
	return "no longer in the inventory"
}

func sameDevices(a, b []resourceapi.Device) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// RefreshInventory reads the inventory again and republishes the slices
// when the devices changed (SIGHUP, the periodic refresh, tests).
func (d *Driver) RefreshInventory(ctx context.Context) error {
	changed, err := d.refreshInventory(ctx)
	if err != nil {
		return err
	}
	if !changed {
		return nil
	}
	box := d.publisher.Load()
	if box == nil {
		return nil // not publishing yet; Publish takes the new snapshot
	}
	klog.FromContext(ctx).Info("Inventory changed, republishing", "devices", len(d.Devices()))
	return d.Publish(ctx, box.p)
}

// RunInventoryRefresh refreshes the inventory every InventoryInterval and
// whenever a value arrives on trigger (nil: only periodically), until ctx
// ends. Errors are logged; the last good snapshot stays in use.
func (d *Driver) RunInventoryRefresh(ctx context.Context, trigger <-chan struct{}) {
	logger := klog.FromContext(ctx).WithName("inventory")
	ticker := time.NewTicker(d.cfg.InventoryInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-trigger:
			logger.Info("Inventory refresh requested")
		}
		if err := d.RefreshInventory(ctx); err != nil {
			logger.Error(err, "Inventory refresh failed; keeping the devices published before")
		}
	}
}
