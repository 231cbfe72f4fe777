package plugin

import (
	"context"
	"time"

	"k8s.io/klog/v2"
)

// RunCleanup removes what the kubelet will never ask us to remove, every
// CleanupInterval until ctx ends:
//
//   - claims whose ResourceClaim was deleted or replaced (same name, new
//     UID) while they were prepared — upstream kept those forever and then
//     refused their devices to new claims;
//   - CDI spec files that belong to no checkpointed claim (a crash between
//     writing the spec and the checkpoint, or state from an older install).
func (d *Driver) RunCleanup(ctx context.Context) {
	ticker := time.NewTicker(d.cfg.CleanupInterval)
	defer ticker.Stop()
	for {
		d.CleanupOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// CleanupOnce runs one cleanup pass and returns how many claims and spec
// files it removed.
func (d *Driver) CleanupOnce(ctx context.Context) (staleClaims, orphanSpecs int) {
	logger := klog.FromContext(ctx).WithName("cleanup")
	for _, rec := range d.cfg.Store.List() {
		ref := claimRef{UID: rec.UID, Namespace: rec.Namespace, Name: rec.Name}
		gone, err := d.claimGone(ctx, ref)
		if err != nil {
			logger.V(2).Info("Cannot check claim, will retry", "claim", ref.String(), "err", err)
			continue
		}
		if !gone {
			continue
		}
		// A claim being prepared or unprepared right now is left to that
		// operation; the next pass looks again.
		unlock, ok := d.locks.tryLock(ref.UID)
		if !ok {
			continue
		}
		err = d.unprepareLocked(ctx, ref.UID)
		unlock()
		if err != nil {
			logger.Error(err, "Unprepare stale claim", "claim", ref.String())
			continue
		}
		logger.Info("Unprepared claim whose ResourceClaim is gone", "claim", ref.String(), "claimUID", ref.UID)
		staleClaims++
	}

	uids, err := d.cfg.CDI.ListClaimSpecs()
	if err != nil {
		logger.Error(err, "List CDI specs")
		return staleClaims, orphanSpecs
	}
	for _, uid := range uids {
		if _, known := d.cfg.Store.Get(uid); known {
			continue
		}
		unlock, ok := d.locks.tryLock(uid)
		if !ok {
			continue
		}
		// Check again under the lock: a prepare may have just finished.
		if _, known := d.cfg.Store.Get(uid); !known {
			if err := d.cfg.CDI.DeleteClaimSpec(ctx, uid); err != nil {
				logger.Error(err, "Delete orphaned CDI spec", "claimUID", uid)
			} else {
				logger.Info("Deleted orphaned CDI spec", "claimUID", uid)
				orphanSpecs++
			}
		}
		unlock()
	}
	return staleClaims, orphanSpecs
}
