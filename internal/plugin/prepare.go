package plugin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/klog/v2"

	configapi "github.com/gpudra/gpudra/api/resource.nvidia.com/v1beta1"
	"github.com/gpudra/gpudra/internal/cdi"
	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/deviceconfig"
	"github.com/gpudra/gpudra/internal/failpoint"
	"github.com/gpudra/gpudra/internal/metrics"
	"github.com/gpudra/gpudra/internal/sharing"
)

// Failpoints of prepare (see internal/failpoint).
const (
	FailpointPrepareAfterReserve = "plugin/prepare-after-reserve"
	FailpointPrepareAfterSpec    = "plugin/prepare-after-spec"
	FailpointPrepareAfterRecord  = "plugin/prepare-after-record"
)

// rollbackTimeout bounds the undo of a failed prepare. The undo runs even
// when the kubelet's deadline cancelled the prepare: stopping half-way
// would leave a spec or a record behind that says more than is true.
const rollbackTimeout = 30 * time.Second

// prepareClaim makes a claim's devices ready for its containers and returns
// their CDI device IDs. The order of steps is what makes crashes safe:
// reserve devices (memory) -> CDI spec (durable) -> checkpoint
// PrepareCompleted (durable) -> answer the kubelet. A crash before the
// checkpoint write leaves a CDI spec without a record; the next start
// adopts it if the claim still has exactly that allocation (the kubelet
// then gets the same IDs on its retry) or deletes it otherwise (see
// recoverSpecs). Preparations that will change hardware (creating MIG
// devices, starting MPS daemons) must record PrepareStarted before touching
// it, so a crash leaves a record of what to undo; whole-GPU and
// existing-MIG claims change nothing on the GPU.
func (d *Driver) prepareClaim(ctx context.Context, claim *resourceapi.ResourceClaim) ([]kubeletplugin.Device, error) {
	ref := claimRef{UID: string(claim.UID), Namespace: claim.Namespace, Name: claim.Name}
	logger := klog.FromContext(ctx).WithValues("claim", ref.String(), "claimUID", ref.UID)
	ctx = klog.NewContext(ctx, logger)

	unlock, err := d.locks.lock(ctx, ref.UID)
	if err != nil {
		return nil, fmt.Errorf("claim %s: waiting for another operation on the claim: %w", ref, err)
	}
	defer unlock()
	return d.prepareLocked(ctx, claim)
}

// prepareLocked is prepareClaim with the claim's lock held.
func (d *Driver) prepareLocked(ctx context.Context, claim *resourceapi.ResourceClaim) ([]kubeletplugin.Device, error) {
	start := time.Now()
	ref := claimRef{UID: string(claim.UID), Namespace: claim.Namespace, Name: claim.Name}
	logger := klog.FromContext(ctx)
	if rec, ok := d.cfg.Store.Get(ref.UID); ok {
		why := d.whyNotPrepared(ctx, rec, claim)
		if why == "" {
			logger.V(4).Info("Claim already prepared")
			return kubeletDevices(rec), nil
		}
		// Whatever was prepared before does not serve the claim as it is
		// now: undo it, then prepare from scratch.
		logger.Info("Preparing claim again", "reason", why)
		if err := d.unprepareLocked(ctx, ref.UID); err != nil {
			return nil, fmt.Errorf("claim %s: undo earlier preparation (%s): %w", ref, why, err)
		}
	}

	prep, err := d.plan(ref, claim)
	if err != nil {
		return nil, metrics.WithReason(metrics.ReasonInvalid, err)
	}
	rec, cdiDevs := prep.rec, prep.cdiDevs
	if err := d.reserve(ctx, ref, rec.Devices); err != nil {
		return nil, metrics.WithReason(metrics.ReasonConflict, err)
	}
	failpoint.Hit(FailpointPrepareAfterReserve)
	if hasMIGSlots(rec) {
		// After the rollback below: the placements offered follow what is
		// cut, either way.
		defer d.republish(ctx)
	}

	// From here on, a failure must leave nothing behind.
	ok := false
	defer func() {
		if !ok {
			d.rollback(ctx, ref)
		}
	}()

	if hasMIGSlots(rec) {
		if err := d.createMIGDevices(ctx, ref, &rec, cdiDevs); err != nil {
			return nil, err
		}
	}
	wants := prep.wants
	if prep.mps != nil {
		wants = append(wants, mpsSettings(prep.mps, rec)...)
	}
	if len(wants) > 0 {
		if err := d.acquireSettings(ctx, ref, &rec, wants); err != nil {
			return nil, err
		}
	}
	if prep.mps != nil {
		if err := d.startMPS(ctx, ref, &rec, prep.mps, cdiDevs); err != nil {
			return nil, err
		}
	}

	ids, err := d.cfg.CDI.WriteClaimSpec(ctx, cdi.ClaimRef{UID: ref.UID, Namespace: ref.Namespace, Name: ref.Name}, cdiDevs)
	if err != nil {
		return nil, fmt.Errorf("claim %s: write CDI spec: %w", ref, err)
	}
	failpoint.Hit(FailpointPrepareAfterSpec)
	for i := range rec.Devices {
		rec.Devices[i].CDIDeviceIDs = []string{ids[i]}
	}
	rec.State = checkpoint.PrepareCompleted
	if err := d.cfg.Store.Put(ctx, rec); err != nil {
		return nil, fmt.Errorf("claim %s: record in checkpoint: %w", ref, err)
	}
	failpoint.Hit(FailpointPrepareAfterRecord)
	ok = true
	logger.V(2).Info("Prepared claim", "devices", len(rec.Devices), "duration", time.Since(start))
	return kubeletDevices(rec), nil
}

// whyNotPrepared returns "" when rec is a completed preparation of claim as
// it is allocated now, and otherwise why it is not.
func (d *Driver) whyNotPrepared(ctx context.Context, rec checkpoint.Claim, claim *resourceapi.ResourceClaim) string {
	switch {
	case rec.State != checkpoint.PrepareCompleted:
		return fmt.Sprintf("the record says %s", rec.State)
	case rec.BootID != d.cfg.Store.BootID():
		return "prepared before the node rebooted"
	case !sameAllocation(rec, claim, d.cfg.DriverName):
		return fmt.Sprintf("prepared for devices %v, but the claim is now allocated %v", recordAllocation(rec), claimAllocation(claim, d.cfg.DriverName))
	}
	if why := d.migDeviceGone(ctx, rec); why != "" {
		return why
	}
	if why := d.mpsDaemonGone(rec); why != "" {
		return why
	}
	spec, err := d.cfg.CDI.ReadClaimSpec(rec.UID)
	if err != nil {
		return fmt.Sprintf("its CDI spec cannot be read: %v", err)
	}
	have := map[string]bool{}
	for _, dev := range spec.Devices {
		have[dev.CDIDeviceID] = true
	}
	for _, dev := range rec.Devices {
		for _, id := range dev.CDIDeviceIDs {
			if !have[id] {
				return fmt.Sprintf("its CDI spec lacks device %s", id)
			}
		}
	}
	return ""
}

// preparation is what preparing a claim means, as plan works it out.
type preparation struct {
	// rec is the checkpoint record to write, cdiDevs the devices for the
	// CDI spec (in the same order).
	rec     checkpoint.Claim
	cdiDevs []cdi.Device
	// wants are the GPU settings a time-sliced claim holds.
	wants []sharing.Setting
	// mps is the claim's MPS daemon; nil without MPS.
	mps *mpsPlan
}

// plan works out, without side effects, what preparing the claim means.
// Every error here is the user's or the allocation's and names claim,
// device and field.
func (d *Driver) plan(ref claimRef, claim *resourceapi.ResourceClaim) (preparation, error) {
	s := d.snapshot.Load()
	resolved, err := deviceconfig.Resolve(claim, d.cfg.DriverName, func(device string) (deviceconfig.DeviceType, bool) {
		if typ, ok := d.dynamicType(s.inventory, device); ok {
			return deviceconfig.DeviceType(typ), true
		}
		loc, ok := s.index[device]
		if !ok {
			return "", false
		}
		return deviceconfig.DeviceType(loc.Type()), true
	})
	if err != nil {
		return preparation{}, err
	}

	rec := checkpoint.Claim{
		UID: ref.UID, Namespace: ref.Namespace, Name: ref.Name,
		BootID: d.cfg.Store.BootID(), PreparedAt: time.Now(),
	}
	var cdiDevs []cdi.Device
	var wants []sharing.Setting
	var mpsPlan *mpsPlan
	for _, r := range resolved {
		if r.Pool != d.cfg.NodeName {
			return preparation{}, fmt.Errorf("claim %s: device %s (request %s) is in pool %q, but this node's pool is %q", ref, r.Device, r.Request, r.Pool, d.cfg.NodeName)
		}
		if err := d.checkSupported(r.Config); err != nil {
			return preparation{}, fmt.Errorf("claim %s: device %s (request %s): %w", ref, r.Device, r.Request, err)
		}
		slot, dynamic, err := d.dynamicSlot(s.inventory, r.Device)
		if err != nil {
			return preparation{}, fmt.Errorf("claim %s: device %s (request %s): %w", ref, r.Device, r.Request, err)
		}
		if dynamic {
			if parent := s.inventory.FindGPU(slot.ParentUUID); parent != nil {
				if _, err := d.settingsWanted(r, parent); err != nil {
					return preparation{}, fmt.Errorf("claim %s: device %s (request %s): %w", ref, r.Device, r.Request, err)
				}
			}
			// A MIG device prepare cuts (a whole GPU in MIG mode is one
			// spanning it); the CDI device gets it once it exists.
			typ, _ := d.dynamicType(s.inventory, r.Device)
			rec.Devices = append(rec.Devices, checkpoint.Device{
				Request: r.Request, Pool: r.Pool, Device: r.Device, Type: checkpoint.DeviceType(typ),
				ParentUUID: slot.ParentUUID, AdminAccess: r.AdminAccess, MIG: &slot,
			})
			cdiDevs = append(cdiDevs, cdi.Device{Name: r.Device, Request: r.Request, Pool: r.Pool, AdminAccess: r.AdminAccess})
			if err := d.addToMPSPlan(&mpsPlan, len(rec.Devices)-1, r, slotMemory(s.inventory, slot)); err != nil {
				return preparation{}, fmt.Errorf("claim %s: device %s (request %s): %w", ref, r.Device, r.Request, err)
			}
			continue
		}
		loc := s.index[r.Device] // Resolve checked that it exists
		dev := checkpoint.Device{
			Request: r.Request, Pool: r.Pool, Device: r.Device, UUID: loc.UUID(),
			Type: checkpoint.DeviceType(loc.Type()), AdminAccess: r.AdminAccess,
		}
		if loc.MIG != nil {
			dev.ParentUUID = loc.GPU.UUID
		}
		if reason, gone := s.retained[r.Device]; gone {
			return preparation{}, fmt.Errorf("claim %s: device %s (request %s) is unavailable: %s", ref, r.Device, r.Request, reason)
		}
		if loc.MIG == nil {
			w, err := d.settingsWanted(r, loc.GPU)
			if err != nil {
				return preparation{}, fmt.Errorf("claim %s: device %s (request %s): %w", ref, r.Device, r.Request, err)
			}
			wants = append(wants, w...)
		}
		rec.Devices = append(rec.Devices, dev)
		cdiDevs = append(cdiDevs, cdi.Device{Name: r.Device, Request: r.Request, Pool: r.Pool, AdminAccess: r.AdminAccess, GPU: *loc.GPU, MIG: loc.MIG})
		memory := loc.GPU.MemoryBytes
		if loc.MIG != nil {
			memory = loc.MIG.Profile.MemoryBytes
		}
		if err := d.addToMPSPlan(&mpsPlan, len(rec.Devices)-1, r, memory); err != nil {
			return preparation{}, fmt.Errorf("claim %s: device %s (request %s): %w", ref, r.Device, r.Request, err)
		}
	}
	if mpsPlan != nil {
		// Limits that cannot hold are the user's error, found before
		// anything changes (a device still to be cut is checked once it
		// has a UUID).
		names, uuids := mpsNames(mpsPlan, rec)
		if !slices.Contains(uuids, "") {
			if _, err := mpsLimits(mpsPlan.config, names, uuids, mpsPlan.memory); err != nil {
				return preparation{}, fmt.Errorf("claim %s: %w", ref, err)
			}
		}
	}
	return preparation{rec: rec, cdiDevs: cdiDevs, wants: wants, mps: mpsPlan}, nil
}

// checkSupported refuses what this plugin decodes and validates but cannot
// apply, instead of silently handing out an unshared device.
func (d *Driver) checkSupported(cfg configapi.Config) error {
	if _, isMPS := mpsConfigOf(cfg); isMPS && d.cfg.MPS == nil {
		return fmt.Errorf("%s: sharing strategy MPS (field sharing.strategy) needs an MPS control daemon, and this plugin has none (start it with --mps-control); use TimeSlicing, or remove the sharing block to get the device for exclusive use", cfg.Kind())
	}
	return nil
}

// reserve takes the claim's exclusive devices. A device held by a claim
// that no longer needs it (its ResourceClaim was deleted, or deallocated, or
// allocated other devices, and the kubelet never unprepared it) is a
// leftover: that claim is unprepared first. A device held by a claim that
// still needs it is refused, naming both claims.
func (d *Driver) reserve(ctx context.Context, ref claimRef, devices []checkpoint.Device) error {
	exclusive := exclusiveDevices(devices)
	for attempt := 0; ; attempt++ {
		conflicts := d.owners.reserve(ref, exclusive)
		if len(conflicts) == 0 {
			return nil
		}
		if attempt > 0 {
			return conflictError(ref, conflicts)
		}
		for _, c := range conflicts {
			needed, err := d.ownerNeeds(ctx, c.Owner)
			if err != nil {
				return fmt.Errorf("claim %s: device %s is held by claim %s, whose state could not be checked: %w", ref, c.Device, c.Owner, err)
			}
			if needed {
				return conflictError(ref, conflicts)
			}
			klog.FromContext(ctx).Info("Unpreparing stale claim that holds a needed device", "staleClaim", c.Owner.String(), "device", c.Device)
			if err := d.unprepareClaim(ctx, c.Owner.UID); err != nil {
				return fmt.Errorf("claim %s: unprepare stale claim %s holding device %s: %w", ref, c.Owner, c.Device, err)
			}
		}
	}
}

// ownerNeeds tells whether the claim holding a device still needs what was
// prepared for it, judged by its record or, for a claim known only from its
// CDI spec, by the spec.
func (d *Driver) ownerNeeds(ctx context.Context, owner claimRef) (bool, error) {
	var devs []allocatedDevice
	if rec, ok := d.cfg.Store.Get(owner.UID); ok {
		devs = recordAllocation(rec)
	} else if spec, err := d.cfg.CDI.ReadClaimSpec(owner.UID); err == nil {
		devs = specAllocation(spec)
	} else {
		return false, nil // neither record nor spec: nothing is prepared
	}
	needed, _, err := d.stillNeeded(ctx, owner, devs)
	return needed, err
}

func conflictError(ref claimRef, conflicts []conflict) error {
	parts := make([]string, 0, len(conflicts))
	for _, c := range conflicts {
		parts = append(parts, fmt.Sprintf("device %s is already prepared for claim %s (uid %s)", c.Device, c.Owner, c.Owner.UID))
	}
	return fmt.Errorf("claim %s: %s", ref, strings.Join(parts, "; "))
}

// rollback undoes a failed prepare. Errors are logged, not returned: the
// prepare error is what the user needs to see, and cleanup retries the rest.
func (d *Driver) rollback(ctx context.Context, ref claimRef) {
	logger := klog.FromContext(ctx)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	if err := d.cfg.CDI.DeleteClaimSpec(ctx, ref.UID); err != nil {
		logger.Error(err, "Rollback: delete CDI spec")
	}
	if rec, ok := d.cfg.Store.Get(ref.UID); ok {
		if err := d.stopMPS(ctx, rec); err != nil {
			logger.Error(err, "Rollback: stop MPS daemon")
		}
	}
	if rec, ok := d.cfg.Store.Get(ref.UID); ok && d.mig != nil {
		// Only the devices this attempt made and recorded; a device that
		// cannot be removed now is an orphan the next reconcile removes.
		made := rec
		made.Devices = slices.DeleteFunc(slices.Clone(rec.Devices), func(dev checkpoint.Device) bool { return dev.UUID == "" })
		if err := d.destroyMIGDevices(ctx, made); err != nil {
			logger.Error(err, "Rollback: destroy MIG devices")
		}
	}
	forget := func() error { return d.cfg.Store.Delete(ctx, ref.UID) }
	if rec, ok := d.cfg.Store.Get(ref.UID); ok {
		if err := d.releaseSettings(ctx, rec, forget); err != nil {
			// The record stays, holding the settings: cleanup retries.
			logger.Error(err, "Rollback: restore GPU settings")
		}
	} else if err := forget(); err != nil {
		logger.Error(err, "Rollback: delete checkpoint entry")
	}
	d.owners.release(ref.UID)
}

func kubeletDevices(rec checkpoint.Claim) []kubeletplugin.Device {
	out := make([]kubeletplugin.Device, 0, len(rec.Devices))
	for _, dev := range rec.Devices {
		out = append(out, kubeletplugin.Device{
			Requests:     []string{dev.Request},
			PoolName:     dev.Pool,
			DeviceName:   dev.Device,
			CDIDeviceIDs: dev.CDIDeviceIDs,
		})
	}
	return out
}
