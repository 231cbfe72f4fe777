package plugin

import (
	"context"
	"fmt"
	"time"

	"k8s.io/klog/v2"
)

// RunCleanup removes what the kubelet will never ask us to remove, every
// CleanupInterval until ctx ends:
//
//   - claims whose ResourceClaim was deleted or replaced (same name, new
//     UID), deallocated, or allocated other devices while they were
//     prepared — upstream kept those forever and then refused their devices
//     to new claims;
//   - CDI specs no record accounts for: adopted when their claim still has
//     that allocation, deleted otherwise (see accountForSpec).
//
// So nothing holds a device longer than one interval after its claim
// stopped needing it.
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

// cleanupLeaseWait bounds how long a cleanup pass waits for the node lease
// held by another instance.
const cleanupLeaseWait = 10 * time.Second

// CleanupReport counts what one cleanup pass did.
type CleanupReport struct {
	// StaleClaims were unprepared because their claim no longer needs them.
	StaleClaims int
	// OrphanSpecs were deleted; AdoptedSpecs recorded (see accountForSpec).
	OrphanSpecs, AdoptedSpecs int
	// OrphanMIGDevices were destroyed: no record held them (dynamic MIG).
	OrphanMIGDevices int
	// OrphanMPSDaemons were stopped: no record named them.
	OrphanMPSDaemons int
	// RestartedMPSDaemons were started again for prepared claims whose
	// daemon was not running.
	RestartedMPSDaemons int
	// Skipped is true when the node lease could not be had (this instance
	// is shutting down, or the holder did not hand it over in time).
	Skipped bool
}

// CleanupOnce runs one cleanup pass.
func (d *Driver) CleanupOnce(ctx context.Context) CleanupReport {
	var report CleanupReport
	logger := klog.FromContext(ctx).WithName("cleanup")
	ctx = klog.NewContext(ctx, logger)
	if d.cfg.Lease != nil {
		exit, ok := d.cfg.Lease.TryEnter()
		if !ok {
			// Another instance holds the lease. Ask for it: after a rolling
			// update the old pod may have held it last, and waiting for a
			// kubelet call to bring it here would let stale claims hold
			// their devices indefinitely on a quiet node.
			leaseCtx, cancel := context.WithTimeout(ctx, cleanupLeaseWait)
			var err error
			exit, err = d.cfg.Lease.Enter(leaseCtx)
			cancel()
			if err != nil {
				logger.V(2).Info("Skipping cleanup: no node lease", "err", err)
				report.Skipped = true
				return report
			}
		}
		defer exit()
	}

	for _, rec := range d.cfg.Store.List() {
		ref := claimRef{UID: rec.UID, Namespace: rec.Namespace, Name: rec.Name}
		needed, claim, err := d.stillNeeded(ctx, ref, recordAllocation(rec))
		if err != nil {
			logger.V(2).Info("Cannot check claim, will retry", "claim", ref.String(), "err", err)
			continue
		}
		if needed {
			continue
		}
		// A claim being prepared or unprepared right now is left to that
		// operation; the next pass looks again.
		unlock, ok := d.locks.tryLock(ref.UID)
		if !ok {
			continue
		}
		// Look again under the lock: a prepare may just have re-recorded
		// the claim for its new allocation.
		if cur, still := d.cfg.Store.Get(ref.UID); !still || !equalRecords(cur, rec) {
			unlock()
			continue
		}
		err = d.unprepareLocked(ctx, ref.UID)
		unlock()
		if err != nil {
			logger.Error(err, "Unprepare stale claim", "claim", ref.String())
			continue
		}
		why := "its ResourceClaim is gone"
		if claim != nil {
			why = fmt.Sprintf("it is now allocated %v, not %v", claimAllocation(claim, d.cfg.DriverName), recordAllocation(rec))
		}
		logger.Info("Unprepared claim that no longer needs its devices", "claim", ref.String(), "claimUID", ref.UID, "reason", why)
		report.StaleClaims++
	}

	if d.mig != nil {
		// MIG devices no record holds: orphans of a crash, half-made ones.
		if n := d.reconcileMIG(ctx, false); n > 0 {
			report.OrphanMIGDevices += n
			d.republish(ctx)
		}
	}

	// A GPU that lost a setting a prepared claim holds (a reset) gets it
	// back; a daemon no record names goes.
	d.reconcileSettings(ctx)
	report.OrphanMPSDaemons += d.stopOrphanMPS(ctx)
	report.RestartedMPSDaemons += d.restartDeadMPS(ctx)

	uids, err := d.cfg.CDI.ListClaimSpecs()
	if err != nil {
		logger.Error(err, "List CDI specs")
		return report
	}
	for _, uid := range uids {
		if _, known := d.cfg.Store.Get(uid); known {
			continue
		}
		switch d.accountForSpec(ctx, uid, false) {
		case specDeleted:
			report.OrphanSpecs++
		case specAdopted:
			report.AdoptedSpecs++
		case specKept:
		}
	}
	return report
}
