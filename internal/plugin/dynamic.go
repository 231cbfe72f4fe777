package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/gpudra/gpudra/internal/cdi"
	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/devicemodel"
	"github.com/gpudra/gpudra/internal/failpoint"
	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/migmanager"
)

// Failpoints of dynamic MIG (see internal/failpoint).
const (
	// FailpointPrepareAfterStarted: the record says PrepareStarted with the
	// slots to cut; nothing is cut yet.
	FailpointPrepareAfterStarted = "plugin/prepare-after-started"
	// FailpointPrepareAfterMIG: the MIG devices exist and the record knows
	// their UUIDs; no CDI spec yet.
	FailpointPrepareAfterMIG = "plugin/prepare-after-mig"
	// FailpointUnprepareAfterMIG: the MIG devices are destroyed; the record
	// is still there.
	FailpointUnprepareAfterMIG = "plugin/unprepare-after-mig"
)

// This file is the plugin's side of dynamic MIG: what to publish (the
// device model's dynamic layout, with held and recently offered devices),
// and where in prepare, unprepare, start and cleanup the MIG manager cuts
// and removes devices. The order keeps the state rules: the checkpoint
// records a slot before the device is cut and forgets it only after the
// device is gone, and reconciliation removes whatever a crash left.

// buildDynamic returns what the node publishes in dynamic mode; refreshMu
// is held. Devices a claim holds stay; devices offered within the keep
// window stay while their placement is free (see Config.KeepWindow).
func (d *Driver) buildDynamic(inv *gpu.Inventory) (*devicemodel.Published, error) {
	opts := d.cfg.Dynamic
	for name := range d.owners.held() {
		opts.Held = append(opts.Held, name)
	}
	slices.Sort(opts.Held)
	opts.Keep = nil
	offer, err := devicemodel.BuildDynamic(inv, opts)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for _, dev := range offer.Devices {
		if len(dev.ConsumesCounters) > 0 {
			d.offered[dev.Name] = now
		}
	}
	for name, at := range d.offered {
		if now.Sub(at) > d.cfg.KeepWindow {
			delete(d.offered, name)
			continue
		}
		opts.Keep = append(opts.Keep, name)
	}
	slices.Sort(opts.Keep)
	return devicemodel.BuildDynamic(inv, opts)
}

// dynamicSlot returns the MIG slot behind a device in dynamic mode: ok is
// false for a device on a GPU not in MIG mode (published whole, nothing to
// cut). An error is a device name no GPU in MIG mode can serve.
func (d *Driver) dynamicSlot(inv *gpu.Inventory, device string) (checkpoint.MIGSlot, bool, error) {
	if d.mig == nil {
		return checkpoint.MIGSlot{}, false, nil
	}
	minor, ok := devicemodel.ParentMinor(device)
	if !ok {
		return checkpoint.MIGSlot{}, false, nil
	}
	i := slices.IndexFunc(inv.GPUs, func(g gpu.GPU) bool { return g.Minor == minor })
	if i < 0 || !inv.GPUs[i].MIGEnabled {
		return checkpoint.MIGSlot{}, false, nil
	}
	slot, err := migmanager.SlotFor(inv, device)
	return slot, err == nil, err
}

// dynamicType is the type of a device name on a GPU in MIG mode, for
// config resolution; a name that no slot fits still gets one, so that
// planning reports what is wrong with it (dynamicSlot).
func (d *Driver) dynamicType(inv *gpu.Inventory, device string) (string, bool) {
	if d.mig == nil {
		return "", false
	}
	minor, ok := devicemodel.ParentMinor(device)
	if !ok {
		return "", false
	}
	i := slices.IndexFunc(inv.GPUs, func(g gpu.GPU) bool { return g.Minor == minor })
	if i < 0 || !inv.GPUs[i].MIGEnabled {
		return "", false
	}
	if device == devicemodel.GPUDeviceName(&inv.GPUs[i]) {
		return devicemodel.TypeGPU, true
	}
	return devicemodel.TypeMIG, true
}

func hasMIGSlots(rec checkpoint.Claim) bool {
	return slices.ContainsFunc(rec.Devices, func(dev checkpoint.Device) bool { return dev.MIG != nil })
}

// createMIGDevices cuts the claim's MIG devices: it records the slots
// (PrepareStarted) before touching the hardware, then cuts each device and
// records its UUID before the next step, so that every device this claim
// made is one its record names. cdiDevs gets the devices made.
func (d *Driver) createMIGDevices(ctx context.Context, ref claimRef, rec *checkpoint.Claim, cdiDevs []cdi.Device) error {
	rec.State = checkpoint.PrepareStarted
	if err := d.cfg.Store.Put(ctx, *rec); err != nil {
		return fmt.Errorf("claim %s: record the MIG devices to create: %w", ref, err)
	}
	failpoint.Hit(FailpointPrepareAfterStarted)
	for i := range rec.Devices {
		dev := &rec.Devices[i]
		if dev.MIG == nil {
			continue
		}
		made, parent, err := d.mig.Create(ctx, *dev.MIG, !d.slotWantedByOther(ref.UID, *dev.MIG))
		if err != nil {
			return fmt.Errorf("claim %s: device %s (request %s): create MIG device %s at placement %d of GPU %s: %w",
				ref, dev.Device, dev.Request, dev.MIG.Profile, dev.MIG.PlacementStart, dev.MIG.ParentUUID, err)
		}
		dev.UUID = made.UUID
		cdiDevs[i].GPU, cdiDevs[i].MIG = *parent, &made
		if err := d.cfg.Store.Put(ctx, *rec); err != nil {
			return fmt.Errorf("claim %s: record MIG device %s: %w", ref, made.UUID, err)
		}
	}
	failpoint.Hit(FailpointPrepareAfterMIG)
	return nil
}

// destroyMIGDevices removes the MIG devices of a record: those whose UUID
// it knows, and those it never learned the UUID of (a crash right after the
// cut) when no other record wants the slot.
func (d *Driver) destroyMIGDevices(ctx context.Context, rec checkpoint.Claim) error {
	var errs []error
	for _, dev := range rec.Devices {
		if dev.MIG == nil || (dev.UUID == "" && d.slotWantedByOther(rec.UID, *dev.MIG)) {
			continue
		}
		if err := d.mig.Destroy(ctx, *dev.MIG, dev.UUID); err != nil {
			errs = append(errs, fmt.Errorf("device %s: destroy MIG device %s at placement %d of GPU %s: %w", dev.Device, dev.MIG.Profile, dev.MIG.PlacementStart, dev.MIG.ParentUUID, err))
		}
	}
	return errors.Join(errs...)
}

// slotWantedByOther tells whether a record other than uid's wants slot.
func (d *Driver) slotWantedByOther(uid string, slot checkpoint.MIGSlot) bool {
	for _, rec := range d.cfg.Store.List() {
		if rec.UID == uid {
			continue
		}
		for _, dev := range rec.Devices {
			if dev.MIG != nil && migmanager.Slot(*dev.MIG) == migmanager.Slot(slot) {
				return true
			}
		}
	}
	return false
}

// migDeviceGone says why a completed dynamic-MIG record's devices no
// longer serve it, or "".
func (d *Driver) migDeviceGone(ctx context.Context, rec checkpoint.Claim) string {
	if d.mig == nil || !hasMIGSlots(rec) {
		return ""
	}
	inv, err := d.cfg.Backend.Inventory(ctx)
	if err != nil {
		return fmt.Sprintf("the GPU inventory cannot be read: %v", err)
	}
	for _, dev := range rec.Devices {
		if dev.MIG == nil {
			continue
		}
		g := inv.FindGPU(dev.MIG.ParentUUID)
		if g == nil || !slices.ContainsFunc(g.MIGDevices, func(m gpu.MIGDevice) bool { return m.UUID == dev.UUID && !m.Incomplete }) {
			return fmt.Sprintf("its MIG device %s (%s) no longer exists", dev.UUID, dev.Device)
		}
	}
	return ""
}

// startDynamicMIG runs before the first inventory is published: MIG mode
// on where asked, the devices offered by the previous process kept, and
// the node's MIG devices reconciled with the checkpoint (devices of
// prepared claims made again after a reboot).
func (d *Driver) startDynamicMIG(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithName("dynamic-mig")
	ctx = klog.NewContext(ctx, logger)
	if d.cfg.EnableMIG {
		d.enableMIG(ctx)
	}
	d.seedOffered(ctx)
	d.reconcileMIG(ctx, true)
	return nil
}

// enableMIG turns MIG mode on for MIG-capable GPUs no claim holds.
func (d *Driver) enableMIG(ctx context.Context) {
	logger := klog.FromContext(ctx)
	inv, err := d.cfg.Backend.Inventory(ctx)
	if err != nil {
		logger.Error(err, "Cannot read the inventory to enable MIG mode")
		return
	}
	enabler, ok := d.cfg.Backend.(gpu.MIGModeEnabler)
	held := d.owners.held()
	for _, g := range inv.GPUs {
		if !g.MIGCapable || g.MIGEnabled {
			continue
		}
		name := devicemodel.GPUDeviceName(&g)
		switch {
		case held[name]:
			logger.Info("Not enabling MIG mode: a claim holds the GPU; it stays whole until the claim ends and the plugin restarts", "gpu", g.UUID, "device", name)
		case !ok:
			logger.Error(nil, "Cannot enable MIG mode with this backend; the GPU stays whole", "gpu", g.UUID, "backend", d.cfg.Backend.Name())
		default:
			if err := enabler.EnableMIGMode(ctx, g.UUID); err != nil {
				logger.Error(err, "Enabling MIG mode failed; the GPU stays whole", "gpu", g.UUID, "device", name)
				continue
			}
			logger.Info("Enabled MIG mode", "gpu", g.UUID, "device", name)
		}
	}
}

// seedOffered keeps the devices the node's slices offer now (published by
// the previous plugin process) within the keep window: a claim may have
// been allocated one of them that this process has not been asked to
// prepare yet.
func (d *Driver) seedOffered(ctx context.Context) {
	if d.cfg.Client == nil {
		return
	}
	list, err := d.cfg.Client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{
		FieldSelector: "spec.driver=" + d.cfg.DriverName + ",spec.nodeName=" + d.cfg.NodeName,
	})
	if err != nil {
		klog.FromContext(ctx).Error(err, "Cannot list the published ResourceSlices; devices offered before this start are not kept")
		return
	}
	now := time.Now()
	d.refreshMu.Lock()
	defer d.refreshMu.Unlock()
	for _, s := range list.Items {
		for _, dev := range s.Spec.Devices {
			if len(dev.ConsumesCounters) > 0 {
				d.offered[dev.Name] = now
			}
		}
	}
}

// migWant is a reconcile want and the record device it came from.
type migWant struct {
	uid    string
	device int
}

// reconcileMIG makes the node's MIG devices those the records hold (see
// migmanager.Reconcile) and records what changed: a device made again
// after a reboot gets its new UUID and a new CDI spec, and its record
// belongs to this boot. It reports how many devices it destroyed.
func (d *Driver) reconcileMIG(ctx context.Context, recreate bool) int {
	logger := klog.FromContext(ctx)
	var from []migWant
	wants := func() []migmanager.Want {
		from = from[:0]
		var out []migmanager.Want
		for _, rec := range d.cfg.Store.List() {
			for i, dev := range rec.Devices {
				if dev.MIG != nil {
					out = append(out, migmanager.Want{Slot: *dev.MIG, UUID: dev.UUID, Completed: rec.State == checkpoint.PrepareCompleted})
					from = append(from, migWant{uid: rec.UID, device: i})
				}
			}
		}
		return out
	}
	report, err := d.mig.Reconcile(ctx, wants, recreate)
	if err != nil {
		logger.Error(err, "Reconcile MIG devices")
		return 0
	}
	for _, e := range report.Errors {
		logger.Error(e, "Reconcile MIG devices")
	}
	for _, what := range report.Destroyed {
		logger.Info("Destroyed a MIG device no prepared claim holds", "device", what)
	}
	changed := map[string]bool{}
	for _, m := range []map[int]gpu.MIGDevice{report.Adopted, report.Recreated} {
		for i, dev := range m {
			w := from[i]
			rec, ok := d.cfg.Store.Get(w.uid)
			if !ok || w.device >= len(rec.Devices) {
				continue
			}
			rec.Devices[w.device].UUID = dev.UUID
			if _, re := report.Recreated[i]; re {
				logger.Info("Made the MIG device of a prepared claim again", "claimUID", w.uid, "device", rec.Devices[w.device].Device, "uuid", dev.UUID)
			}
			if err := d.cfg.Store.Put(ctx, rec); err != nil {
				logger.Error(err, "Record a MIG device's UUID", "claimUID", w.uid)
				continue
			}
			changed[w.uid] = true
		}
	}
	for uid := range changed {
		d.rewriteSpec(ctx, uid)
	}
	return len(report.Destroyed)
}

// rewriteSpec writes a completed record's CDI spec again for the MIG
// devices it has now and marks it prepared in this boot.
func (d *Driver) rewriteSpec(ctx context.Context, uid string) {
	logger := klog.FromContext(ctx).WithValues("claimUID", uid)
	rec, ok := d.cfg.Store.Get(uid)
	if !ok || rec.State != checkpoint.PrepareCompleted {
		return
	}
	inv, err := d.cfg.Backend.Inventory(ctx)
	if err != nil {
		logger.Error(err, "Rewrite CDI spec: read inventory")
		return
	}
	var devs []cdi.Device
	for _, dev := range rec.Devices {
		parent := dev.ParentUUID
		if parent == "" {
			parent = dev.UUID
		}
		g := inv.FindGPU(parent)
		if g == nil {
			logger.Info("Cannot rewrite the CDI spec: its GPU is not in the inventory", "gpu", parent)
			return
		}
		cd := cdi.Device{Name: dev.Device, Request: dev.Request, Pool: dev.Pool, AdminAccess: dev.AdminAccess, GPU: *g}
		if dev.MIG != nil || dev.Type == checkpoint.DeviceTypeMIG {
			i := slices.IndexFunc(g.MIGDevices, func(m gpu.MIGDevice) bool { return m.UUID == dev.UUID })
			if i < 0 {
				logger.Info("Cannot rewrite the CDI spec: its MIG device is gone", "uuid", dev.UUID)
				return
			}
			cd.MIG = &g.MIGDevices[i]
		}
		devs = append(devs, cd)
	}
	ids, err := d.cfg.CDI.WriteClaimSpec(ctx, cdi.ClaimRef{UID: rec.UID, Namespace: rec.Namespace, Name: rec.Name}, devs)
	if err != nil {
		logger.Error(err, "Rewrite CDI spec")
		return
	}
	for i := range rec.Devices {
		rec.Devices[i].CDIDeviceIDs = []string{ids[i]}
	}
	rec.BootID = d.cfg.Store.BootID()
	if err := d.cfg.Store.Put(ctx, rec); err != nil {
		logger.Error(err, "Record the rewritten CDI spec")
	}
}

// republish refreshes the inventory after MIG devices changed, so the
// published placements follow. Errors are logged: the periodic refresh
// tries again.
func (d *Driver) republish(ctx context.Context) {
	if err := d.RefreshInventory(ctx); err != nil {
		klog.FromContext(ctx).Error(err, "Republish after a MIG change")
	}
}
