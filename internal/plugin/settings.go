package plugin

import (
	"context"
	"fmt"

	"k8s.io/klog/v2"

	configapi "github.com/gpudra/gpudra/api/resource.nvidia.com/v1beta1"
	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/deviceconfig"
	"github.com/gpudra/gpudra/internal/failpoint"
	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/sharing"
)

// FailpointPrepareAfterSettingsRecord: the record holds the claim's GPU
// settings (PrepareStarted), none applied yet.
const FailpointPrepareAfterSettingsRecord = "plugin/prepare-after-settings-record"

// The plugin's side of GPU-wide settings (internal/sharing decides): what a
// claim's config asks of its GPUs, and the glue between the checkpoint's
// holds and the sharing manager.

// settingsWanted returns the GPU settings one resolved device's config
// asks for. A time-sliced full GPU holds its time slice and the Default
// compute mode (a GPU in Exclusive_Process would run one process at a
// time). A time-sliced MIG device asks for nothing: its processes take
// turns by default, and the time slice belongs to the parent GPU.
func (d *Driver) settingsWanted(r deviceconfig.Device, g *gpu.GPU) ([]sharing.Setting, error) {
	c, ok := r.Config.(*configapi.GpuConfig)
	if !ok || c.Sharing == nil || c.Sharing.Strategy != configapi.TimeSlicingStrategy {
		return nil, nil
	}
	if d.sharing == nil {
		return nil, fmt.Errorf("GpuConfig: sharing.strategy TimeSlicing needs a backend that can set a GPU's time slice, and the %s backend cannot", d.cfg.Backend.Name())
	}
	if g.MIGEnabled {
		return nil, fmt.Errorf("GpuConfig: sharing.timeSlicingConfig: GPU %s is in MIG mode, where its time slice cannot be set; use a MigDeviceConfig for MIG devices", g.UUID)
	}
	interval := configapi.DefaultTimeSlice
	if c.Sharing.TimeSlicingConfig != nil && c.Sharing.TimeSlicingConfig.Interval != "" {
		interval = c.Sharing.TimeSlicingConfig.Interval
	}
	n, err := interval.ComputePolicyValue()
	if err != nil {
		return nil, fmt.Errorf("GpuConfig: sharing.timeSlicingConfig.interval: %w", err)
	}
	return []sharing.Setting{
		{GPU: g.UUID, Kind: sharing.TimeSlice, Value: gpu.TimeSlice(n).String()},
		{GPU: g.UUID, Kind: sharing.ComputeMode, Value: string(gpu.ComputeModeDefault)},
	}, nil
}

// acquireSettings records the claim's holds (PrepareStarted) and applies
// them. On error the caller's rollback undoes what the record holds.
func (d *Driver) acquireSettings(ctx context.Context, ref claimRef, rec *checkpoint.Claim, wants []sharing.Setting) error {
	_, err := d.sharing.Acquire(ctx, ref.String(), ref.UID, wants, func() []sharing.Hold { return d.otherHolds(ref.UID) },
		func(holds []sharing.Hold) error {
			rec.State = checkpoint.PrepareStarted
			rec.Settings = toCheckpointHolds(holds)
			if err := d.cfg.Store.Put(ctx, *rec); err != nil {
				return err
			}
			failpoint.Hit(FailpointPrepareAfterSettingsRecord)
			return nil
		})
	return err
}

// releaseSettings undoes the record's holds where no other claim holds
// them, then runs forget under the same GPU locks.
func (d *Driver) releaseSettings(ctx context.Context, rec checkpoint.Claim, forget func() error) error {
	if len(rec.Settings) == 0 || d.sharing == nil {
		return forget()
	}
	name := fmt.Sprintf("%s/%s", rec.Namespace, rec.Name)
	return d.sharing.Release(ctx, name, fromCheckpointHolds(rec), func() []sharing.Hold { return d.otherHolds(rec.UID) }, forget)
}

// reconcileSettings re-applies what completed records hold: after a
// restart, or when a GPU lost its settings under a running claim.
func (d *Driver) reconcileSettings(ctx context.Context) {
	if d.sharing == nil {
		return
	}
	completed := func() []sharing.Hold {
		var holds []sharing.Hold
		for _, rec := range d.cfg.Store.List() {
			if rec.State == checkpoint.PrepareCompleted {
				holds = append(holds, fromCheckpointHolds(rec)...)
			}
		}
		return holds
	}
	if err := d.sharing.Reconcile(ctx, completed); err != nil {
		klog.FromContext(ctx).Error(err, "Re-apply GPU settings that prepared claims hold")
	}
}

// otherHolds is every hold of every record but uid's.
func (d *Driver) otherHolds(uid string) []sharing.Hold {
	var out []sharing.Hold
	for _, rec := range d.cfg.Store.List() {
		if rec.UID != uid {
			out = append(out, fromCheckpointHolds(rec)...)
		}
	}
	return out
}

func toCheckpointHolds(holds []sharing.Hold) []checkpoint.SettingHold {
	out := make([]checkpoint.SettingHold, 0, len(holds))
	for _, h := range holds {
		out = append(out, checkpoint.SettingHold{GPU: h.GPU, Kind: string(h.Kind), Value: h.Value, Previous: h.Previous})
	}
	return out
}

func fromCheckpointHolds(rec checkpoint.Claim) []sharing.Hold {
	out := make([]sharing.Hold, 0, len(rec.Settings))
	for _, h := range rec.Settings {
		out = append(out, sharing.Hold{
			Setting:  sharing.Setting{GPU: h.GPU, Kind: sharing.Kind(h.Kind), Value: h.Value},
			Claim:    fmt.Sprintf("%s/%s", rec.Namespace, rec.Name),
			ClaimUID: rec.UID,
			Previous: h.Previous,
		})
	}
	return out
}
