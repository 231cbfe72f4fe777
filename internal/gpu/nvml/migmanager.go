package nvml

import (
	"context"
	"errors"
	"fmt"
	"slices"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/gpudra/gpudra/internal/gpu"
)

// The MIG manager side of the backend: the only calls in this package that
// change a GPU. The plugin makes them only for GPUs it runs in dynamic MIG
// mode; `gpudra discover` and Inventory never do.
var (
	_ gpu.MIGManager     = (*Backend)(nil)
	_ gpu.MIGModeEnabler = (*Backend)(nil)
)

// begin starts a call that changes a GPU: it keeps Close out until done is
// called, and refuses after Close or a cancelled ctx.
func (b *Backend) begin(ctx context.Context) (done func(), err error) {
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return nil, errClosed
	}
	if err := ctx.Err(); err != nil {
		b.mu.RUnlock()
		return nil, err
	}
	return b.mu.RUnlock, nil
}

// migTarget is a MIG-enabled GPU and the query of one of its profiles.
type migTarget struct {
	dev   gonvml.Device
	query migProfileQuery
}

// target opens the parent GPU of slot and finds slot's profile on it. A GPU
// not in MIG mode wraps gpu.ErrMIGDisabled, an unknown profile
// gpu.ErrMIGProfileUnsupported.
func (b *Backend) target(ctx context.Context, slot gpu.MIGSlot) (migTarget, error) {
	dev, ret := b.lib.DeviceGetHandleByUUID(slot.ParentUUID)
	if ret != gonvml.SUCCESS {
		return migTarget{}, nvmlCall("nvmlDeviceGetHandleByUUID", ret)
	}
	capable, enabled, err := b.migMode(dev)
	if err != nil {
		return migTarget{}, err
	}
	if !capable {
		return migTarget{}, fmt.Errorf("%w: the GPU does not support MIG", gpu.ErrMIGDisabled)
	}
	if !enabled {
		return migTarget{}, gpu.ErrMIGDisabled
	}
	index, ret := dev.GetIndex()
	if ret != gonvml.SUCCESS {
		return migTarget{}, nvmlCall("nvmlDeviceGetIndex", ret)
	}
	memory, err := b.totalMemory(dev)
	if err != nil {
		return migTarget{}, err
	}
	queries, err := b.migProfiles(ctx, index, dev, memory)
	if err != nil {
		return migTarget{}, err
	}
	i := slices.IndexFunc(queries, func(q migProfileQuery) bool { return q.profile.GIProfileID == slot.GIProfileID })
	if i < 0 {
		ids := make([]int, len(queries))
		for j, q := range queries {
			ids[j] = q.profile.GIProfileID
		}
		return migTarget{}, fmt.Errorf("%w: no GPU instance profile %d (valid: %v)", gpu.ErrMIGProfileUnsupported, slot.GIProfileID, ids)
	}
	return migTarget{dev: dev, query: queries[i]}, nil
}

// CreateMIGDevice implements gpu.MIGManager: a GPU instance at exactly the
// slot's placement, then one compute instance spanning it. A failed compute
// instance destroys the GPU instance again.
func (b *Backend) CreateMIGDevice(ctx context.Context, slot gpu.MIGSlot) (gpu.MIGDevice, error) {
	d, err := b.createMIGDevice(ctx, slot)
	if err != nil {
		return gpu.MIGDevice{}, fmt.Errorf("create MIG device %s: %w", slot, err)
	}
	return d, nil
}

func (b *Backend) createMIGDevice(ctx context.Context, slot gpu.MIGSlot) (gpu.MIGDevice, error) {
	done, err := b.begin(ctx)
	if err != nil {
		return gpu.MIGDevice{}, err
	}
	defer done()
	t, err := b.target(ctx, slot)
	if err != nil {
		return gpu.MIGDevice{}, err
	}
	p := t.query.profile
	if !slices.Contains(p.Placements, slot.Placement) {
		return gpu.MIGDevice{}, fmt.Errorf("%w: %s placements are %v, not %d+%d", gpu.ErrMIGPlacementInvalid, p.Name, p.Placements, slot.Placement.Start, slot.Placement.Size)
	}
	placement := gonvml.GpuInstancePlacement{Start: uint32(slot.Placement.Start), Size: uint32(slot.Placement.Size)}
	gi, ret := t.dev.CreateGpuInstanceWithPlacement(&t.query.giInfo, &placement)
	switch ret {
	case gonvml.SUCCESS:
	case gonvml.ERROR_INSUFFICIENT_RESOURCES, gonvml.ERROR_IN_USE:
		// NVML's answer for a placement that overlaps a GPU instance, or a
		// profile whose instance limit is reached.
		return gpu.MIGDevice{}, fmt.Errorf("%w: %w", gpu.ErrMIGSlotTaken, nvmlCall("nvmlDeviceCreateGpuInstanceWithPlacement", ret))
	default:
		return gpu.MIGDevice{}, nvmlCall("nvmlDeviceCreateGpuInstanceWithPlacement", ret)
	}
	giInfo, ret := gi.GetInfo()
	if ret != gonvml.SUCCESS {
		return gpu.MIGDevice{}, rollBack(gi, nvmlCall("nvmlGpuInstanceGetInfo of the new GPU instance", ret))
	}
	ciProfile, ret := gi.GetComputeInstanceProfileInfo(t.query.ciIndex, gonvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
	if ret != gonvml.SUCCESS {
		return gpu.MIGDevice{}, rollBack(gi, nvmlCall(fmt.Sprintf("nvmlGpuInstanceGetComputeInstanceProfileInfo(%d)", t.query.ciIndex), ret))
	}
	ci, ret := gi.CreateComputeInstance(&ciProfile)
	if ret != gonvml.SUCCESS {
		return gpu.MIGDevice{}, rollBack(gi, nvmlCall("nvmlGpuInstanceCreateComputeInstance", ret))
	}
	ciInfo, ret := ci.GetInfo()
	if ret != gonvml.SUCCESS {
		return gpu.MIGDevice{}, rollBack(gi, nvmlCall("nvmlComputeInstanceGetInfo of the new compute instance", ret), ci)
	}
	uuids, err := migDeviceUUIDs(t.dev)
	if err != nil {
		return gpu.MIGDevice{}, rollBack(gi, err, ci)
	}
	key := migInstanceKey{giID: int(giInfo.Id), ciID: int(ciInfo.Id)}
	uuid, ok := uuids[key]
	if !ok {
		return gpu.MIGDevice{}, rollBack(gi, fmt.Errorf("GPU instance %d compute instance %d has no MIG device handle", key.giID, key.ciID), ci)
	}
	return gpu.MIGDevice{
		UUID:      uuid,
		Profile:   p,
		Placement: gpu.Placement{Start: int(giInfo.Placement.Start), Size: int(giInfo.Placement.Size)},
		GIID:      key.giID,
		CIID:      key.ciID,
	}, nil
}

// rollBack undoes a create that failed after its GPU instance was made: the
// compute instances made, then the GPU instance. The error says whether the
// undo worked, since a failed one leaves an Incomplete device for the
// plugin's reconcile.
func rollBack(gi gonvml.GpuInstance, cause error, cis ...gonvml.ComputeInstance) error {
	var undo []error
	for _, ci := range cis {
		if ret := ci.Destroy(); ret != gonvml.SUCCESS {
			undo = append(undo, nvmlCall("nvmlComputeInstanceDestroy", ret))
		}
	}
	if ret := gi.Destroy(); ret != gonvml.SUCCESS {
		undo = append(undo, nvmlCall("nvmlGpuInstanceDestroy", ret))
	}
	if len(undo) > 0 {
		return fmt.Errorf("%w; rolling the GPU instance back failed too: %w", cause, errors.Join(undo...))
	}
	return fmt.Errorf("%w (the GPU instance was destroyed again)", cause)
}

// DestroyMIGDevice implements gpu.MIGManager: every compute instance of the
// GPU instance at slot, then the GPU instance.
func (b *Backend) DestroyMIGDevice(ctx context.Context, slot gpu.MIGSlot) error {
	if err := b.destroyMIGDevice(ctx, slot); err != nil {
		return fmt.Errorf("destroy MIG device %s: %w", slot, err)
	}
	return nil
}

func (b *Backend) destroyMIGDevice(ctx context.Context, slot gpu.MIGSlot) error {
	done, err := b.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	t, err := b.target(ctx, slot)
	switch {
	case errors.Is(err, gpu.ErrMIGProfileUnsupported):
		return fmt.Errorf("%w: %w", gpu.ErrMIGNotFound, err)
	case err != nil:
		return err
	}
	instances, ret := t.dev.GetGpuInstances(&t.query.giInfo)
	if ret != gonvml.SUCCESS {
		return nvmlCall(fmt.Sprintf("nvmlDeviceGetGpuInstances(%s)", t.query.profile.Name), ret)
	}
	var gi gonvml.GpuInstance
	for _, candidate := range instances {
		info, ret := candidate.GetInfo()
		if ret != gonvml.SUCCESS {
			return nvmlCall("nvmlGpuInstanceGetInfo", ret)
		}
		if int(info.Placement.Start) == slot.Placement.Start {
			gi = candidate
			break
		}
	}
	if gi == nil {
		return gpu.ErrMIGNotFound
	}
	cis, err := computeInstances(gi)
	if err != nil {
		return err
	}
	for _, ci := range cis {
		if ret := ci.Destroy(); ret != gonvml.SUCCESS {
			return inUse(nvmlCall("nvmlComputeInstanceDestroy", ret), ret)
		}
	}
	if ret := gi.Destroy(); ret != gonvml.SUCCESS {
		return inUse(nvmlCall("nvmlGpuInstanceDestroy", ret), ret)
	}
	return nil
}

// inUse adds what IN_USE means to err.
func inUse(err error, ret gonvml.Return) error {
	if ret == gonvml.ERROR_IN_USE {
		return fmt.Errorf("%w (processes still run on the MIG device)", err)
	}
	return err
}

// computeInstances lists every compute instance of gi, of any profile.
func computeInstances(gi gonvml.GpuInstance) ([]gonvml.ComputeInstance, error) {
	var all []gonvml.ComputeInstance
	for profile := range gonvml.COMPUTE_INSTANCE_PROFILE_COUNT {
		info, ret := gi.GetComputeInstanceProfileInfo(profile, gonvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
		switch ret {
		case gonvml.SUCCESS:
		case gonvml.ERROR_NOT_SUPPORTED, gonvml.ERROR_INVALID_ARGUMENT:
			continue
		default:
			return nil, nvmlCall(fmt.Sprintf("nvmlGpuInstanceGetComputeInstanceProfileInfo(%d)", profile), ret)
		}
		cis, ret := gi.GetComputeInstances(&info)
		if ret != gonvml.SUCCESS {
			return nil, nvmlCall(fmt.Sprintf("nvmlGpuInstanceGetComputeInstances(%d)", profile), ret)
		}
		all = append(all, cis...)
	}
	return all, nil
}

// EnableMIGMode implements gpu.MIGModeEnabler. NVML accepts the change but
// may leave it pending until the GPU is reset (or refuse it while processes
// run); both are errors that say so, and nothing here resets a GPU.
func (b *Backend) EnableMIGMode(ctx context.Context, uuid string) error {
	if err := b.enableMIGMode(ctx, uuid); err != nil {
		return fmt.Errorf("enable MIG mode of %s: %w", uuid, err)
	}
	return nil
}

func (b *Backend) enableMIGMode(ctx context.Context, uuid string) error {
	done, err := b.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	if !b.symbols.migMode {
		return fmt.Errorf("%w: the driver has no nvmlDeviceSetMigMode", gpu.ErrMIGDisabled)
	}
	dev, ret := b.lib.DeviceGetHandleByUUID(uuid)
	if ret != gonvml.SUCCESS {
		return nvmlCall("nvmlDeviceGetHandleByUUID", ret)
	}
	capable, enabled, err := b.migMode(dev)
	switch {
	case err != nil:
		return err
	case !capable:
		return fmt.Errorf("%w: the GPU does not support MIG", gpu.ErrMIGDisabled)
	case enabled:
		return nil
	}
	activation, ret := dev.SetMigMode(gonvml.DEVICE_MIG_ENABLE)
	if ret != gonvml.SUCCESS {
		if ret == gonvml.ERROR_IN_USE {
			return fmt.Errorf("%w (processes run on the GPU; stop them and restart the plugin)", nvmlCall("nvmlDeviceSetMigMode", ret))
		}
		return nvmlCall("nvmlDeviceSetMigMode", ret)
	}
	current, pending, ret := dev.GetMigMode()
	if ret != gonvml.SUCCESS {
		return nvmlCall("nvmlDeviceGetMigMode", ret)
	}
	if current != gonvml.DEVICE_MIG_ENABLE {
		return fmt.Errorf("MIG mode is pending (current %d, pending %d, activation %s): the GPU needs a reset (nvidia-smi -r) with no process on it", current, pending, returnCodeName(activation))
	}
	return nil
}
