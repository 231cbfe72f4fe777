// Package plugin is gpudra's kubelet plugin: it publishes the node's GPUs as
// ResourceSlices and prepares/unprepares claims when the kubelet asks.
//
// The Driver delegates: the device model decides what is published, config
// resolution decides how each device is used, the CDI writer and the
// checkpoint store do the I/O. What the Driver owns is the order of those
// steps and the invariants across them:
//
//   - one process at a time changes the node's state (nodelease): every
//     prepare, unprepare and cleanup runs inside the node lease, and the
//     in-memory view is reloaded from disk whenever the lease comes back
//     from another plugin instance;
//   - independent claims prepare in parallel; work on one claim is serialized;
//   - a device is never prepared for two live claims at once (admin access
//     aside);
//   - a claim's record says PrepareCompleted only once its CDI spec is
//     durable, and the fast path trusts a record only if it matches the
//     claim's current allocation and its spec exists;
//   - a CDI spec is deleted only once its claim is known not to need it
//     (checkpointed claims, or claims looked up in the API server): a lost
//     or corrupt checkpoint is rebuilt from the specs, never forgotten;
//   - a device that a claim holds stays published while the claim holds it;
//   - prepare and unprepare are idempotent.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	"github.com/gpudra/gpudra/internal/metrics"
	"github.com/gpudra/gpudra/internal/migmanager"
	"github.com/gpudra/gpudra/internal/mps"
	"github.com/gpudra/gpudra/internal/sharing"
)

// checkpointStore is what the driver needs of the checkpoint.
type checkpointStore interface {
	Get(uid string) (checkpoint.Claim, bool)
	List() []checkpoint.Claim
	Put(ctx context.Context, c checkpoint.Claim) error
	Delete(ctx context.Context, uid string) error
	BootID() string
	// Reload re-reads the file another plugin instance may have changed.
	Reload(ctx context.Context) (checkpoint.OpenReport, error)
}

// specWriter is what the driver needs of the CDI layer.
type specWriter interface {
	WriteClaimSpec(ctx context.Context, claim cdi.ClaimRef, devs []cdi.Device) ([]string, error)
	DeleteClaimSpec(ctx context.Context, claimUID string) error
	ListClaimSpecs() ([]string, error)
	ReadClaimSpec(claimUID string) (cdi.ClaimSpec, error)
	// RemoveStaleTempFiles deletes temp files of interrupted writes; safe
	// only while no write runs, i.e. inside the node lease before any work.
	RemoveStaleTempFiles() ([]string, error)
}

// nodeLease admits work that changes node state (see nodelease.Lease).
type nodeLease interface {
	Enter(ctx context.Context) (exit func(), err error)
	TryEnter() (exit func(), ok bool)
}

// EventRecorder reports node-level happenings (a corrupt checkpoint and its
// rebuild) as events on the Node.
type EventRecorder interface {
	NodeEvent(eventType, reason, message string)
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
	// InventoryInterval is how often the GPU inventory is read again (a GPU
	// that came back, an admin's MIG change); 0 means 30 seconds.
	InventoryInterval time.Duration
	// Lease makes this process the only writer of node state; nil when the
	// caller guarantees that (tests with one driver).
	Lease nodeLease
	// Events gets node events; nil drops them.
	Events EventRecorder
	// Checkpoint is what opening the store found; a corrupt file is reported
	// (log line and Node event) once New has rebuilt the records.
	Checkpoint checkpoint.OpenReport
	// OnFatal is called with an error the kubelet plugin helper cannot
	// recover from (the registrar or gRPC server died); the process must
	// exit. Nil: logged only.
	OnFatal func(error)
	// MIGMode says how GPUs in MIG mode are published; "" is static.
	MIGMode devicemodel.MIGMode
	// Dynamic chooses what dynamic MIG publishes (Held and Keep are the
	// driver's to fill).
	Dynamic devicemodel.DynamicOptions
	// KeepWindow is how long a dynamic-MIG device stays published after it
	// was last offered, while its placement is free; 0 means 15 minutes.
	// It must outlast the time from the scheduler's allocation to the
	// kubelet's prepare: until prepare, this node does not know a device
	// was allocated, and unpublishing it would make the scheduler forget
	// what it consumes.
	KeepWindow time.Duration
	// EnableMIG turns MIG mode on at start, in dynamic mode, for every
	// MIG-capable GPU that is not in MIG mode and that no claim holds.
	EnableMIG bool
	// MPS runs the MPS control daemons of claims that ask for MPS; nil
	// refuses them.
	MPS *mps.Control
}

// Driver implements kubeletplugin.DRAPlugin.
type Driver struct {
	cfg       Config
	locks     *claimLocks
	owners    *ownership
	snapshot  atomic.Pointer[snapshot]
	published atomic.Bool
	// started is set once Start has brought up the kubelet sockets.
	started atomic.Bool
	// registered reports whether the kubelet accepted the plugin's
	// registration; set by Start.
	registered atomic.Pointer[func() bool]
	// publisher republishes after inventory changes; set by Start.
	publisher atomic.Pointer[publisherBox]
	// refreshMu serializes inventory refreshes.
	refreshMu sync.Mutex
	// mig makes and removes dynamic-MIG devices; nil in static mode.
	mig *migmanager.Manager
	// sharing applies the GPU settings claims hold; nil when the backend
	// cannot change settings.
	sharing *sharing.Manager
	// metrics are served at /metrics next to the health endpoints.
	metrics *metrics.Metrics
	// offered is when each dynamic-MIG device was last offered (see
	// Config.KeepWindow); guarded by refreshMu.
	offered map[string]time.Time
}

type publisherBox struct{ p publisher }

// snapshot is one inventory with its published devices, swapped atomically
// so prepares never wait for a refresh.
type snapshot struct {
	inventory *gpu.Inventory
	devices   []resourceapi.Device
	// counterSets are the dynamic-MIG counter sets the devices consume.
	counterSets []resourceapi.CounterSet
	index       map[string]devicemodel.Located
	// retained are devices no longer in the inventory that stay published
	// because a claim holds them, with the reason they are unusable.
	retained map[string]string
	// unavailable lists the backend's unavailable GPUs as "uuid|reason", to
	// log each once.
	unavailable []string
}

var _ kubeletplugin.DRAPlugin = (*Driver)(nil)

// New builds a Driver, reads the inventory and rebuilds device ownership from
// the checkpoint. It does not talk to the kubelet yet; see Start.
//
// The caller holds the node lease (or is the only plugin process), and the
// store was just opened: New accounts for every CDI spec on disk before it
// returns (see recoverSpecs), so a lost or corrupt checkpoint never makes
// the plugin hand out a device a running pod holds.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if cfg.CleanupInterval == 0 {
		cfg.CleanupInterval = time.Minute
	}
	if cfg.InventoryInterval == 0 {
		cfg.InventoryInterval = 30 * time.Second
	}
	if cfg.KeepWindow == 0 {
		cfg.KeepWindow = 15 * time.Minute
	}
	d := &Driver{cfg: cfg, locks: newClaimLocks(), owners: newOwnership(), offered: map[string]time.Time{}}
	d.metrics = metrics.New(d.metricsState)
	switch cfg.MIGMode {
	case "", devicemodel.MIGModeStatic:
	case devicemodel.MIGModeDynamic:
		m, err := migmanager.New(cfg.Backend)
		if err != nil {
			return nil, err
		}
		d.mig = m
	default:
		return nil, fmt.Errorf("MIG mode %q: want %s or %s", cfg.MIGMode, devicemodel.MIGModeStatic, devicemodel.MIGModeDynamic)
	}
	if sb, ok := cfg.Backend.(sharing.Backend); ok {
		d.sharing = sharing.NewManager(sb)
	}
	if err := d.removeStaleTempFiles(ctx); err != nil {
		return nil, err
	}
	d.loadOwnership(ctx)
	if d.mig != nil {
		if err := d.startDynamicMIG(ctx); err != nil {
			return nil, err
		}
	}
	if _, err := d.refreshInventory(ctx); err != nil {
		return nil, err
	}
	recovered := d.recoverSpecs(ctx)
	d.reportCheckpoint(ctx, cfg.Checkpoint, recovered)
	d.reconcileSettings(ctx)
	d.stopOrphanMPS(ctx)
	d.restartDeadMPS(ctx)
	return d, nil
}

// loadOwnership rebuilds device ownership from the checkpoint.
func (d *Driver) loadOwnership(ctx context.Context) {
	d.owners.reset()
	for _, c := range d.cfg.Store.List() {
		ref := claimRef{UID: c.UID, Namespace: c.Namespace, Name: c.Name}
		if conflicts := d.owners.reserve(ref, exclusiveDevices(c.Devices)); len(conflicts) > 0 {
			// Two checkpointed claims on one device: only possible after a
			// bug or hand-edited state. Keep serving; cleanup resolves it
			// once one of the claims is gone.
			klog.FromContext(ctx).Error(nil, "Checkpoint holds a device for two claims", "claim", ref.String(), "device", conflicts[0].Device, "otherClaim", conflicts[0].Owner.String())
		}
	}
}

func exclusiveDevices(devices []checkpoint.Device) []string {
	var exclusive []string
	for _, dev := range devices {
		if !dev.AdminAccess {
			exclusive = append(exclusive, dev.Device)
		}
	}
	return exclusive
}

// Publish hands the current devices to p (the kubelet plugin helper's
// ResourceSlice controller), which keeps them published, and remembers p
// for republishing after inventory changes.
func (d *Driver) Publish(ctx context.Context, p publisher) error {
	d.publisher.Store(&publisherBox{p: p})
	d.metrics.Published()
	return p.PublishResources(ctx, *d.driverResources())
}

// driverResources is what the current snapshot publishes.
func (d *Driver) driverResources() *resourceslice.DriverResources {
	s := d.snapshot.Load()
	if len(s.counterSets) > 0 {
		return (&devicemodel.Published{Devices: s.devices, CounterSets: s.counterSets}).DriverResources(d.cfg.NodeName)
	}
	return devicemodel.DriverResources(d.cfg.NodeName, s.devices)
}

// Devices returns the devices the driver publishes.
func (d *Driver) Devices() []resourceapi.Device {
	return d.snapshot.Load().devices
}

// PrepareResourceClaims prepares each claim independently and in parallel;
// one claim's failure does not affect the others.
func (d *Driver) PrepareResourceClaims(ctx context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	if len(claims) == 0 {
		// The liveness probe's call: answer without touching state.
		return map[types.UID]kubeletplugin.PrepareResult{}, nil
	}
	exit, err := d.enterLease(ctx)
	if err != nil {
		return nil, err
	}
	defer exit()
	results := make([]kubeletplugin.PrepareResult, len(claims))
	forEach(len(claims), func(i int) {
		start := time.Now()
		devs, err := d.prepareClaim(ctx, claims[i])
		d.metrics.ObservePrepare(time.Since(start), err)
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
	if len(claims) == 0 {
		return map[types.UID]error{}, nil
	}
	exit, err := d.enterLease(ctx)
	if err != nil {
		return nil, err
	}
	defer exit()
	errs := make([]error, len(claims))
	forEach(len(claims), func(i int) {
		start := time.Now()
		errs[i] = d.unprepareClaim(ctx, string(claims[i].UID))
		d.metrics.ObserveUnprepare(time.Since(start), errs[i])
	})
	out := make(map[types.UID]error, len(claims))
	for i, c := range claims {
		out[c.UID] = errs[i]
	}
	return out, nil
}

// enterLease admits one kubelet call into the node lease.
func (d *Driver) enterLease(ctx context.Context) (func(), error) {
	if d.cfg.Lease == nil {
		return func() {}, nil
	}
	exit, err := d.cfg.Lease.Enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", d.cfg.NodeName, err)
	}
	return exit, nil
}

// HandleError is called by the kubelet plugin helper for errors in the
// background. Recoverable ones (slice publishing, which the controller
// retries) are logged. Any other one means a part of the helper died — the
// registrar or the DRA gRPC server — and the kubelet will deregister or
// can no longer reach this process, which would then sit there looking
// healthy: it is handed to OnFatal, which ends the process so that the
// DaemonSet starts a working one.
func (d *Driver) HandleError(ctx context.Context, err error, msg string) {
	logger := klog.FromContext(ctx)
	if errors.Is(err, kubeletplugin.ErrRecoverable) {
		logger.Error(err, msg)
		return
	}
	logger.Error(err, "Fatal error in the kubelet plugin, exiting", "what", msg)
	if d.cfg.OnFatal != nil {
		d.cfg.OnFatal(fmt.Errorf("%s: %w", msg, err))
	}
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
