package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/klog/v2"

	configapi "github.com/gpudra/gpudra/api/resource.nvidia.com/v1beta1"
	"github.com/gpudra/gpudra/internal/cdi"
	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/deviceconfig"
)

// prepareClaim makes a claim's devices ready for its containers and returns
// their CDI device IDs. The order of steps is what makes crashes safe:
// reserve devices (memory) -> CDI spec -> checkpoint PrepareCompleted (one
// fsync) -> answer the kubelet. A crash before the checkpoint write leaves at
// most a CDI spec no claim owns, which cleanup removes (it runs at start);
// the kubelet, never told of success, prepares again. Preparations that will
// change hardware (creating MIG devices, starting MPS daemons) record
// PrepareStarted before touching it, so a crash leaves a record of what to
// undo; whole-GPU and existing-MIG claims change nothing on the GPU.
func (d *Driver) prepareClaim(ctx context.Context, claim *resourceapi.ResourceClaim) ([]kubeletplugin.Device, error) {
	start := time.Now()
	ref := claimRef{UID: string(claim.UID), Namespace: claim.Namespace, Name: claim.Name}
	logger := klog.FromContext(ctx).WithValues("claim", ref.String(), "claimUID", ref.UID)
	ctx = klog.NewContext(ctx, logger)

	unlock, err := d.locks.lock(ctx, ref.UID)
	if err != nil {
		return nil, fmt.Errorf("claim %s: waiting for another operation on the claim: %w", ref, err)
	}
	defer unlock()

	if rec, ok := d.cfg.Store.Get(ref.UID); ok && rec.State == checkpoint.PrepareCompleted && rec.BootID == d.cfg.Store.BootID() {
		logger.V(4).Info("Claim already prepared")
		return kubeletDevices(rec), nil
	}

	rec, cdiDevs, err := d.plan(ref, claim)
	if err != nil {
		return nil, err
	}
	if err := d.reserve(ctx, ref, rec.Devices); err != nil {
		return nil, err
	}

	// From here on, a failure must leave nothing behind.
	ok := false
	defer func() {
		if !ok {
			d.rollback(ctx, ref)
		}
	}()

	ids, err := d.cfg.CDI.WriteClaimSpec(ctx, ref.UID, cdiDevs)
	if err != nil {
		return nil, fmt.Errorf("claim %s: write CDI spec: %w", ref, err)
	}
	for i := range rec.Devices {
		rec.Devices[i].CDIDeviceIDs = []string{ids[i]}
	}
	rec.State = checkpoint.PrepareCompleted
	if err := d.cfg.Store.Put(ctx, rec); err != nil {
		return nil, fmt.Errorf("claim %s: record in checkpoint: %w", ref, err)
	}
	ok = true
	logger.V(2).Info("Prepared claim", "devices", len(rec.Devices), "duration", time.Since(start))
	return kubeletDevices(rec), nil
}

// plan works out, without side effects, what preparing the claim means: the
// checkpoint record to write and the devices for the CDI spec. Every error
// here is the user's or the allocation's and names claim, device and field.
func (d *Driver) plan(ref claimRef, claim *resourceapi.ResourceClaim) (checkpoint.Claim, []cdi.Device, error) {
	s := d.snapshot.Load()
	resolved, err := deviceconfig.Resolve(claim, d.cfg.DriverName, func(device string) (deviceconfig.DeviceType, bool) {
		loc, ok := s.index[device]
		if !ok {
			return "", false
		}
		return deviceconfig.DeviceType(loc.Type()), true
	})
	if err != nil {
		return checkpoint.Claim{}, nil, err
	}

	rec := checkpoint.Claim{
		UID: ref.UID, Namespace: ref.Namespace, Name: ref.Name,
		BootID: d.cfg.Store.BootID(), PreparedAt: time.Now(),
	}
	var cdiDevs []cdi.Device
	for _, r := range resolved {
		if r.Pool != d.cfg.NodeName {
			return checkpoint.Claim{}, nil, fmt.Errorf("claim %s: device %s (request %s) is in pool %q, but this node's pool is %q", ref, r.Device, r.Request, r.Pool, d.cfg.NodeName)
		}
		loc := s.index[r.Device] // Resolve checked that it exists
		if err := checkSupported(r.Config); err != nil {
			return checkpoint.Claim{}, nil, fmt.Errorf("claim %s: device %s (request %s): %w", ref, r.Device, r.Request, err)
		}
		dev := checkpoint.Device{
			Request: r.Request, Pool: r.Pool, Device: r.Device, UUID: loc.UUID(),
			Type: checkpoint.DeviceType(loc.Type()), AdminAccess: r.AdminAccess,
		}
		if loc.MIG != nil {
			dev.ParentUUID = loc.GPU.UUID
		}
		rec.Devices = append(rec.Devices, dev)
		cdiDevs = append(cdiDevs, cdi.Device{Name: r.Device, GPU: *loc.GPU, MIG: loc.MIG})
	}
	return rec, cdiDevs, nil
}

// checkSupported refuses what this version decodes and validates but cannot
// apply yet, instead of silently handing out an unshared device.
func checkSupported(cfg configapi.Config) error {
	var strategy configapi.SharingStrategy
	switch c := cfg.(type) {
	case *configapi.GpuConfig:
		if c.Sharing != nil {
			strategy = c.Sharing.Strategy
		}
	case *configapi.MigDeviceConfig:
		if c.Sharing != nil {
			strategy = c.Sharing.Strategy
		}
	}
	if strategy != "" {
		return fmt.Errorf("%s: sharing strategy %s (field sharing.strategy) is not supported by this version of gpudra yet; remove the sharing block to get the device for exclusive use", cfg.Kind(), strategy)
	}
	return nil
}

// reserve takes the claim's exclusive devices. A device held by a claim whose
// ResourceClaim no longer exists is a leftover (the kubelet never unprepared
// it): that claim is unprepared first. A device held by a live claim is
// refused, naming both claims.
func (d *Driver) reserve(ctx context.Context, ref claimRef, devices []checkpoint.Device) error {
	var exclusive []string
	for _, dev := range devices {
		if !dev.AdminAccess {
			exclusive = append(exclusive, dev.Device)
		}
	}
	for attempt := 0; ; attempt++ {
		conflicts := d.owners.reserve(ref, exclusive)
		if len(conflicts) == 0 {
			return nil
		}
		if attempt > 0 {
			return conflictError(ref, conflicts)
		}
		for _, c := range conflicts {
			gone, err := d.claimGone(ctx, c.Owner)
			if err != nil {
				return fmt.Errorf("claim %s: device %s is held by claim %s, whose state could not be checked: %w", ref, c.Device, c.Owner, err)
			}
			if !gone {
				return conflictError(ref, conflicts)
			}
			klog.FromContext(ctx).Info("Unpreparing stale claim that holds a needed device", "staleClaim", c.Owner.String(), "device", c.Device)
			if err := d.unprepareClaim(ctx, c.Owner.UID); err != nil {
				return fmt.Errorf("claim %s: unprepare stale claim %s holding device %s: %w", ref, c.Owner, c.Device, err)
			}
		}
	}
}

func conflictError(ref claimRef, conflicts []conflict) error {
	parts := make([]string, 0, len(conflicts))
	for _, c := range conflicts {
		parts = append(parts, fmt.Sprintf("device %s is already prepared for claim %s (uid %s)", c.Device, c.Owner, c.Owner.UID))
	}
	return fmt.Errorf("claim %s: %s", ref, strings.Join(parts, "; "))
}

// claimGone tells whether a claim's ResourceClaim was deleted (or replaced by
// one with the same name and a new UID).
func (d *Driver) claimGone(ctx context.Context, c claimRef) (bool, error) {
	if d.cfg.Client == nil {
		return false, errors.New("no API client")
	}
	obj, err := d.cfg.Client.ResourceV1().ResourceClaims(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return string(obj.UID) != c.UID, nil
}

// rollback undoes a failed prepare. Errors are logged, not returned: the
// prepare error is what the user needs to see, and cleanup retries the rest.
func (d *Driver) rollback(ctx context.Context, ref claimRef) {
	logger := klog.FromContext(ctx)
	if err := d.cfg.CDI.DeleteClaimSpec(ctx, ref.UID); err != nil {
		logger.Error(err, "Rollback: delete CDI spec")
	}
	if err := d.cfg.Store.Delete(ctx, ref.UID); err != nil {
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
