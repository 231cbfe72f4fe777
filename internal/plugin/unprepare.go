package plugin

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"

	"github.com/gpudra/gpudra/internal/failpoint"
)

// Failpoints of unprepare (see internal/failpoint).
const (
	FailpointUnprepareAfterSpec   = "plugin/unprepare-after-spec"
	FailpointUnprepareAfterRecord = "plugin/unprepare-after-record"
)

// unprepareClaim reverses prepareClaim in the opposite order: CDI spec,
// checkpoint entry, device ownership. A claim that is not prepared is fine:
// the kubelet repeats calls after restarts.
func (d *Driver) unprepareClaim(ctx context.Context, uid string) error {
	logger := klog.FromContext(ctx).WithValues("claimUID", uid)
	unlock, err := d.locks.lock(ctx, uid)
	if err != nil {
		return fmt.Errorf("claim %s: waiting for another operation on the claim: %w", uid, err)
	}
	defer unlock()
	return d.unprepareLocked(klog.NewContext(ctx, logger), uid)
}

func (d *Driver) unprepareLocked(ctx context.Context, uid string) error {
	rec, known := d.cfg.Store.Get(uid)
	name := uid
	if known {
		name = fmt.Sprintf("%s/%s", rec.Namespace, rec.Name)
	}
	// The spec goes first: once the checkpoint entry is gone nothing would
	// remember that the file belongs to us (cleanup would still find it).
	if err := d.cfg.CDI.DeleteClaimSpec(ctx, uid); err != nil {
		return fmt.Errorf("claim %s: delete CDI spec: %w", name, err)
	}
	failpoint.Hit(FailpointUnprepareAfterSpec)
	if known {
		// The daemon goes before the devices it serves and the compute
		// mode it needs.
		if err := d.stopMPS(ctx, rec); err != nil {
			return fmt.Errorf("claim %s: %w", name, err)
		}
	}
	if known && d.mig != nil && hasMIGSlots(rec) {
		// Destroy, then forget: a failure leaves the record, so the
		// kubelet's retry or cleanup destroys them later.
		if err := d.destroyMIGDevices(ctx, rec); err != nil {
			return fmt.Errorf("claim %s: %w", name, err)
		}
		failpoint.Hit(FailpointUnprepareAfterMIG)
		defer d.republish(ctx)
	}
	if known {
		// Restore what the claim held (where it held it last), then
		// forget; a failed restore leaves the record for the next try.
		forget := func() error {
			if err := d.cfg.Store.Delete(ctx, uid); err != nil {
				return fmt.Errorf("remove from checkpoint: %w", err)
			}
			return nil
		}
		if err := d.releaseSettings(ctx, rec, forget); err != nil {
			return fmt.Errorf("claim %s: %w", name, err)
		}
	}
	failpoint.Hit(FailpointUnprepareAfterRecord)
	d.owners.release(uid)
	if known {
		klog.FromContext(ctx).V(2).Info("Unprepared claim", "claim", name)
	}
	return nil
}
