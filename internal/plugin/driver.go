// Package plugin is gpudra's kubelet plugin: it publishes the node's GPUs as
// ResourceSlices and prepares/unprepares claims when the kubelet asks.
//
// The Driver delegates: the device model decides what is published, config
// resolution decides how each device is used, the CDI writer and the
// checkpoint store do the I/O. What the Driver owns is the order of those
// steps and the invariants across them:
//
//   - independent claims prepare in parallel; work on one claim is serialized;
//   - a device is never prepared for two live claims at once (admin access
//     aside);
//   - every prepared claim is in the checkpoint before the kubelet hears of
//     it, and every CDI spec on disk belongs to a checkpointed claim;
//   - prepare and unprepare are idempotent.
package plugin

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/klog/v2"

	"github.com/gpudra/gpudra/internal/cdi"
	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/devicemodel"
	"github.com/gpudra/gpudra/internal/gpu"
)

// checkpointStore is what the driver needs of the checkpoint.
type checkpointStore interface {
	Get(uid string) (checkpoint.Claim, bool)
	List() []checkpoint.Claim
	Put(ctx context.Context, c checkpoint.Claim) error
	Delete(ctx context.Context, uid string) error
	BootID() string
}

// specWriter is what the driver needs of the CDI layer.
type specWriter interface {
	WriteClaimSpec(ctx context.Context, claimUID string, devs []cdi.Device) ([]string, error)
	DeleteClaimSpec(ctx context.Context, claimUID string) error
	ListClaimSpecs() ([]string, error)
}

// publisher publishes ResourceSlices (the kubeletplugin.Helper).
type publisher interface {
	PublishResources(ctx context.Context, resources resourceslice.DriverResources) error
}

// Config wires a Driver.
type Config struct {
	DriverName string
	NodeName   string
	Backend    gpu.Backend
	Store      checkpointStore
	CDI        specWriter
	// Client reads ResourceClaims for garbage collection and conflict checks.
	Client kubernetes.Interface
	// CleanupInterval is how often claims whose ResourceClaim is gone are
	// unprepared and orphaned CDI specs removed; 0 means one minute.
	CleanupInterval time.Duration
}

// Driver implements kubeletplugin.DRAPlugin.
type Driver struct {
	cfg       Config
	locks     *claimLocks
	owners    *ownership
	snapshot  atomic.Pointer[snapshot]
	published atomic.Bool
	// registered reports whether the kubelet accepted the plugin's
	// registration; set by Start.
	registered atomic.Pointer[func() bool]
}

// snapshot is one inventory with its published devices, swapped atomically
// so prepares never wait for a refresh.
type snapshot struct {
	inventory *gpu.Inventory
	devices   []resourceapi.Device
	index     map[string]devicemodel.Located
}

var _ kubeletplugin.DRAPlugin = (*Driver)(nil)

// New builds a Driver, reads the inventory and rebuilds device ownership from
// the checkpoint. It does not talk to the kubelet yet; see Start.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.CleanupInterval == 0 {
		cfg.CleanupInterval = time.Minute
	}
	d := &Driver{cfg: cfg, locks: newClaimLocks(), owners: newOwnership()}
	if err := d.refreshInventory(ctx); err != nil {
		return nil, err
	}
	for _, c := range cfg.Store.List() {
		ref := claimRef{UID: c.UID, Namespace: c.Namespace, Name: c.Name}
		var exclusive []string
		for _, dev := range c.Devices {
			if !dev.AdminAccess {
				exclusive = append(exclusive, dev.Device)
			}
		}
		if conflicts := d.owners.reserve(ref, exclusive); len(conflicts) > 0 {
			// Two checkpointed claims on one device: only possible after a
			// bug or hand-edited state. Keep serving; cleanup resolves it
			// once one of the claims is gone.
			klog.FromContext(ctx).Error(nil, "Checkpoint holds a device for two claims", "claim", ref.String(), "device", conflicts[0].Device, "otherClaim", conflicts[0].Owner.String())
		}
	}
	return d, nil
}

// refreshInventory reads the backend and swaps in a new snapshot.
func (d *Driver) refreshInventory(ctx context.Context) error {
	inv, err := d.cfg.Backend.Inventory(ctx)
	if err != nil {
		return fmt.Errorf("read GPU inventory: %w", err)
	}
	devices, err := devicemodel.Build(inv)
	if err != nil {
		return fmt.Errorf("build devices: %w", err)
	}
	d.snapshot.Store(&snapshot{inventory: inv, devices: devices, index: devicemodel.Index(inv)})
	return nil
}

// Publish hands the current devices to p (the kubelet plugin helper's
// ResourceSlice controller), which keeps them published.
func (d *Driver) Publish(ctx context.Context, p publisher) error {
	s := d.snapshot.Load()
	if err := p.PublishResources(ctx, *devicemodel.DriverResources(d.cfg.NodeName, s.devices)); err != nil {
		return err
	}
	d.published.Store(true)
	return nil
}

// Devices returns the devices the driver publishes.
func (d *Driver) Devices() []resourceapi.Device {
	return d.snapshot.Load().devices
}

// PrepareResourceClaims prepares each claim independently and in parallel;
// one claim's failure does not affect the others.
func (d *Driver) PrepareResourceClaims(ctx context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	results := make([]kubeletplugin.PrepareResult, len(claims))
	forEach(len(claims), func(i int) {
		devs, err := d.prepareClaim(ctx, claims[i])
		results[i] = kubeletplugin.PrepareResult{Devices: devs, Err: err}
	})
	out := make(map[types.UID]kubeletplugin.PrepareResult, len(claims))
	for i, c := range claims {
		out[c.UID] = results[i]
	}
	return out, nil
}

// UnprepareResourceClaims undoes PrepareResourceClaims, claim by claim in
// parallel. A claim that is not prepared is not an error.
func (d *Driver) UnprepareResourceClaims(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	errs := make([]error, len(claims))
	forEach(len(claims), func(i int) {
		errs[i] = d.unprepareClaim(ctx, string(claims[i].UID))
	})
	out := make(map[types.UID]error, len(claims))
	for i, c := range claims {
		out[c.UID] = errs[i]
	}
	return out, nil
}

// HandleError logs background errors (slice publishing). None of them is
// fatal for a node plugin: the controller retries, and exiting would only
// make the kubelet's view of the node worse.
func (d *Driver) HandleError(ctx context.Context, err error, msg string) {
	klog.FromContext(ctx).Error(err, msg)
}

// WatchHealthStatus is not supported yet; device health comes with the
// health work (XID events, GPU lost).
func (d *Driver) WatchHealthStatus(context.Context, chan<- kubeletplugin.DeviceHealthReport) error {
	return kubeletplugin.ErrHealthNotSupported
}

// forEach runs fn(0..n-1) concurrently and waits. One claim is the common
// case, so it runs inline.
func forEach(n int, fn func(i int)) {
	if n == 1 {
		fn(0)
		return
	}
	done := make(chan struct{}, n)
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			fn(i)
		}()
	}
	for range n {
		<-done
	}
}
