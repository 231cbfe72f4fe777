package plugin

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/klog/v2"

	"github.com/gpudra/gpudra/internal/cdi"
	"github.com/gpudra/gpudra/internal/checkpoint"
)

// specOutcome is what became of a CDI spec that no checkpoint record
// accounts for.
type specOutcome int

const (
	// specAdopted: its claim still has that allocation; the claim was
	// prepared again (same CDI IDs) and recorded.
	specAdopted specOutcome = iota
	// specDeleted: its claim is gone or no longer has that allocation.
	specDeleted
	// specKept: its claim could not be looked up (API server unreachable)
	// or is being worked on; the spec stays and its devices stay reserved
	// until a later pass decides.
	specKept
)

// RecoveryReport counts what recoverSpecs did.
type RecoveryReport struct {
	Adopted, Deleted, Kept int
}

func (r RecoveryReport) empty() bool { return r == RecoveryReport{} }

// recoverSpecs accounts for every CDI spec on disk that has no checkpoint
// record: after a crash between the spec and the record, a checkpoint that
// was lost or corrupt, or one written by another plugin instance. It runs
// before the driver serves (New) and whenever the node lease comes back
// (Resync), so the plugin never starts "empty" while pods hold devices.
func (d *Driver) recoverSpecs(ctx context.Context) RecoveryReport {
	logger := klog.FromContext(ctx).WithName("recover")
	var report RecoveryReport
	uids, err := d.cfg.CDI.ListClaimSpecs()
	if err != nil {
		logger.Error(err, "List CDI specs; specs without a record are left alone until the next cleanup pass")
		return report
	}
	for _, uid := range uids {
		if _, known := d.cfg.Store.Get(uid); known {
			continue
		}
		switch d.accountForSpec(klog.NewContext(ctx, logger), uid, true) {
		case specAdopted:
			report.Adopted++
		case specDeleted:
			report.Deleted++
		case specKept:
			report.Kept++
		}
	}
	if !report.empty() {
		logger.Info("Accounted for CDI specs without a checkpoint record", "adopted", report.Adopted, "deleted", report.Deleted, "kept", report.Kept)
	}
	return report
}

// accountForSpec decides the fate of the spec of claim uid, which has no
// record: adopt it when its claim still has exactly the allocation the
// spec was written for, delete it when the claim is gone or was allocated
// other devices, keep it (devices reserved) when that cannot be told now.
// wait says whether to wait for the claim's lock (start, lease handover) or
// skip a claim being worked on (cleanup).
func (d *Driver) accountForSpec(ctx context.Context, uid string, wait bool) specOutcome {
	logger := klog.FromContext(ctx).WithValues("claimUID", uid)
	var unlock func()
	if wait {
		var err error
		if unlock, err = d.locks.lock(ctx, uid); err != nil {
			return specKept
		}
	} else {
		var ok bool
		if unlock, ok = d.locks.tryLock(uid); !ok {
			return specKept
		}
	}
	defer unlock()
	if _, known := d.cfg.Store.Get(uid); known {
		return specKept // a prepare recorded it meanwhile
	}

	spec, readErr := d.cfg.CDI.ReadClaimSpec(uid)
	ref := claimRef{UID: uid, Namespace: spec.Claim.Namespace, Name: spec.Claim.Name}
	devs := specAllocation(spec)
	if readErr == nil && len(devs) > 0 {
		// Until decided, nothing else may get these devices.
		if conflicts := d.owners.reserve(ref, exclusiveSpecDevices(spec)); len(conflicts) > 0 {
			logger.Error(nil, "CDI spec without a record names a device another claim holds", "device", conflicts[0].Device, "otherClaim", conflicts[0].Owner.String())
		}
	}
	claim, err := d.lookupClaim(ctx, ref)
	if err != nil {
		logger.Info("Cannot look up the claim of a CDI spec without a record; keeping the spec and its devices", "err", err)
		return specKept
	}
	if claim != nil && (readErr != nil || !spec.Annotated || slices.Equal(claimAllocation(claim, d.cfg.DriverName), devs)) && len(claimAllocation(claim, d.cfg.DriverName)) > 0 {
		// The claim still needs it (or its spec is unreadable or from an
		// older version, and the claim's allocation is what counts):
		// prepare it again, which rewrites the spec with the same CDI IDs
		// and records it.
		d.owners.release(uid)
		if _, err := d.prepareLocked(ctx, claim); err != nil {
			logger.Error(err, "Could not adopt the CDI spec of a live claim; the kubelet's next prepare retries")
			return specKept
		}
		logger.Info("Adopted CDI spec of a claim the checkpoint did not record", "claim", claimRef{UID: uid, Namespace: claim.Namespace, Name: claim.Name}.String())
		return specAdopted
	}
	why := "its claim no longer exists"
	if claim != nil {
		why = fmt.Sprintf("its claim is now allocated %v, the spec was written for %v", claimAllocation(claim, d.cfg.DriverName), devs)
	}
	if err := d.cfg.CDI.DeleteClaimSpec(ctx, uid); err != nil {
		logger.Error(err, "Delete CDI spec without a record", "reason", why)
		return specKept
	}
	d.owners.release(uid)
	logger.Info("Deleted CDI spec without a record", "reason", why)
	return specDeleted
}

// specAllocation lists the devices a claim's spec was written for, sorted
// as claimAllocation sorts them. A spec from before specs carried
// annotations has no request or pool, so it never equals an allocation.
func specAllocation(spec cdi.ClaimSpec) []allocatedDevice {
	out := make([]allocatedDevice, 0, len(spec.Devices))
	for _, dev := range spec.Devices {
		out = append(out, allocatedDevice{Request: dev.Request, Pool: dev.Pool, Device: dev.Name, AdminAccess: dev.AdminAccess})
	}
	sortAllocation(out)
	return out
}

func exclusiveSpecDevices(spec cdi.ClaimSpec) []string {
	var out []string
	for _, dev := range spec.Devices {
		if !dev.AdminAccess {
			out = append(out, dev.Name)
		}
	}
	return out
}

// equalRecords tells whether two records of a claim are the same
// preparation.
func equalRecords(a, b checkpoint.Claim) bool {
	return a.State == b.State && a.BootID == b.BootID && a.PreparedAt.Equal(b.PreparedAt) &&
		slices.Equal(recordAllocation(a), recordAllocation(b))
}

// Resync reloads the node state another plugin instance may have changed
// while it held the node lease: the checkpoint, device ownership, and the
// CDI specs without a record. The lease runs it on every acquisition
// before any work is admitted.
func (d *Driver) Resync(ctx context.Context) error {
	if err := d.removeStaleTempFiles(ctx); err != nil {
		return err
	}
	report, err := d.cfg.Store.Reload(ctx)
	if err != nil {
		return fmt.Errorf("node %s: %w", d.cfg.NodeName, err)
	}
	d.loadOwnership(ctx)
	recovered := d.recoverSpecs(ctx)
	d.reportCheckpoint(ctx, report, recovered)
	return nil
}

// reportCheckpoint says, in a log line and a Node event, that the
// checkpoint was corrupt and what was rebuilt from the CDI specs and the
// API server.
func (d *Driver) reportCheckpoint(ctx context.Context, report checkpoint.OpenReport, recovered RecoveryReport) {
	logger := klog.FromContext(ctx)
	if len(report.StaleTempFiles) > 0 {
		logger.Info("Removed checkpoint temp files of writes a crash interrupted", "files", report.StaleTempFiles)
	}
	if report.CorruptReason == nil {
		return
	}
	msg := fmt.Sprintf("gpudra checkpoint was corrupt (%v) and was moved to %s; rebuilt from CDI specs and the API server: %d claims adopted, %d stale specs deleted, %d kept until the API server answers",
		report.CorruptReason, report.CorruptMovedTo, recovered.Adopted, recovered.Deleted, recovered.Kept)
	logger.Error(report.CorruptReason, "Checkpoint was corrupt; rebuilt it", "movedTo", report.CorruptMovedTo,
		"adopted", recovered.Adopted, "deleted", recovered.Deleted, "kept", recovered.Kept)
	if d.cfg.Events != nil {
		d.cfg.Events.NodeEvent("Warning", "CheckpointRebuilt", msg)
	}
}

// removeStaleTempFiles deletes the temp files of CDI spec writes that a
// crash interrupted. It runs only where no write can be in flight: in New
// and Resync, inside the node lease before any work is admitted (a starting
// pod must not delete the temp file of a write the old pod is making).
func (d *Driver) removeStaleTempFiles(ctx context.Context) error {
	removed, err := d.cfg.CDI.RemoveStaleTempFiles()
	if err != nil {
		return fmt.Errorf("node %s: CDI: %w", d.cfg.NodeName, err)
	}
	if len(removed) > 0 {
		klog.FromContext(ctx).Info("Removed CDI temp files of writes a crash interrupted", "files", removed)
	}
	return nil
}
