package plugin

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"

	configapi "github.com/gpudra/gpudra/api/resource.nvidia.com/v1beta1"
	"github.com/gpudra/gpudra/internal/cdi"
	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/deviceconfig"
	"github.com/gpudra/gpudra/internal/failpoint"
	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/mps"
	"github.com/gpudra/gpudra/internal/sharing"
)

// Failpoints of an MPS claim's prepare.
const (
	// FailpointPrepareAfterMPSRecord: the record names the claim's MPS
	// daemon (PrepareStarted), which has not started.
	FailpointPrepareAfterMPSRecord = "plugin/prepare-after-mps-record"
	// FailpointPrepareAfterMPSStart: the daemon runs, and the record does
	// not have its PID yet.
	FailpointPrepareAfterMPSStart = "plugin/prepare-after-mps-start"
)

// The plugin's side of MPS (internal/mps runs the daemons): which of a
// claim's devices one daemon serves, with what limits, and when it starts
// and stops in prepare and unprepare.

// mpsPlan is a claim's MPS daemon as plan works it out.
type mpsPlan struct {
	// devices index rec.Devices (and cdiDevs): the devices the daemon
	// serves, in the order its limits number them.
	devices []int
	config  *configapi.MpsConfig
	// memory is each device's memory in bytes, for the limit checks.
	memory []uint64
}

// mpsConfigOf returns the MPS config of a resolved device's config, and
// whether the config asks for MPS at all.
func mpsConfigOf(cfg configapi.Config) (*configapi.MpsConfig, bool) {
	switch c := cfg.(type) {
	case *configapi.GpuConfig:
		if c.Sharing != nil && c.Sharing.Strategy == configapi.MpsStrategy {
			return c.Sharing.MpsConfig, true
		}
	case *configapi.MigDeviceConfig:
		if c.Sharing != nil && c.Sharing.Strategy == configapi.MpsStrategy {
			return c.Sharing.MpsConfig, true
		}
	}
	return nil, false
}

// addToMPSPlan puts device i (resolved r, with memory bytes) into the
// claim's MPS plan. A claim has one daemon, so its MPS devices must share
// one config entry.
func (d *Driver) addToMPSPlan(plan **mpsPlan, i int, r deviceconfig.Device, memory uint64) error {
	cfg, ok := mpsConfigOf(r.Config)
	if !ok {
		return nil
	}
	if d.cfg.MPS == nil {
		return fmt.Errorf("%s: sharing.strategy MPS needs an MPS control daemon, and this plugin has none configured (--mps-control)", r.Config.Kind())
	}
	if *plan == nil {
		*plan = &mpsPlan{config: cfg}
	} else if (*plan).config != cfg {
		return fmt.Errorf("%s: sharing.strategy MPS: the claim's devices are under more than one MPS config, and a claim gets one MPS daemon; put its MPS devices under one config", r.Config.Kind())
	}
	(*plan).devices = append((*plan).devices, i)
	(*plan).memory = append((*plan).memory, memory)
	return nil
}

// mpsLimits works out a daemon's limits from the config: the thread
// percentage, and each device's pinned memory limit (a per-device entry,
// by index within the daemon's devices or by UUID, over the default).
// Errors name the device and the field.
func mpsLimits(cfg *configapi.MpsConfig, names, uuids []string, memory []uint64) (mps.Limits, error) {
	var l mps.Limits
	if cfg == nil {
		return l, nil
	}
	const field = "sharing.mpsConfig"
	l.ActiveThreadPercentage = cfg.DefaultActiveThreadPercentage
	limit := func(i int, q resource.Quantity, path string) error {
		if v := q.Value(); v > int64(memory[i]) {
			return fmt.Errorf("device %s: %s.%s: %s is more than the device's %s of memory", names[i], field, path, q.String(), resource.NewQuantity(int64(memory[i]), resource.BinarySI).String())
		}
		if l.PinnedMemoryBytes == nil {
			l.PinnedMemoryBytes = map[int]int64{}
		}
		l.PinnedMemoryBytes[i] = q.Value()
		return nil
	}
	if q := cfg.DefaultPinnedDeviceMemoryLimit; q != nil {
		for i := range names {
			if err := limit(i, *q, "defaultPinnedDeviceMemoryLimit"); err != nil {
				return l, err
			}
		}
	}
	keys := make([]string, 0, len(cfg.DefaultPerDevicePinnedMemoryLimit))
	for k := range cfg.DefaultPerDevicePinnedMemoryLimit {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		i := slices.Index(uuids, k)
		if n, err := strconv.Atoi(k); err == nil {
			i = n
		}
		if i < 0 || i >= len(names) {
			return l, fmt.Errorf("%s.defaultPerDevicePinnedMemoryLimit[%q]: the claim's MPS devices are %v (indexes 0 to %d); no device has that index or UUID", field, k, names, len(names)-1)
		}
		if err := limit(i, cfg.DefaultPerDevicePinnedMemoryLimit[k], fmt.Sprintf("defaultPerDevicePinnedMemoryLimit[%q]", k)); err != nil {
			return l, err
		}
	}
	return l, nil
}

// mpsSettings are the GPU settings an MPS daemon needs: its full GPUs in
// Exclusive_Process, so that every CUDA process goes through it (a MIG
// device takes its parent's mode, which MPS on MIG does not need).
func mpsSettings(plan *mpsPlan, rec checkpoint.Claim) []sharing.Setting {
	var out []sharing.Setting
	for _, i := range plan.devices {
		if dev := rec.Devices[i]; dev.Type == checkpoint.DeviceTypeGPU && dev.MIG == nil {
			out = append(out, sharing.Setting{GPU: dev.UUID, Kind: sharing.ComputeMode, Value: string(gpu.ComputeModeExclusiveProcess)})
		}
	}
	return out
}

// mpsNames returns the plan's device names and UUIDs (empty for a MIG
// device not cut yet).
func mpsNames(plan *mpsPlan, rec checkpoint.Claim) (names, uuids []string) {
	for _, i := range plan.devices {
		names = append(names, rec.Devices[i].Device)
		uuids = append(uuids, rec.Devices[i].UUID)
	}
	return names, uuids
}

// startMPS records the claim's daemon, starts it with its limits, records
// its PID and start time, and points the CDI devices at it.
func (d *Driver) startMPS(ctx context.Context, ref claimRef, rec *checkpoint.Claim, plan *mpsPlan, cdiDevs []cdi.Device) error {
	names, uuids := mpsNames(plan, *rec)
	limits, err := mpsLimits(plan.config, names, uuids, plan.memory)
	if err != nil {
		return fmt.Errorf("claim %s: %w", ref, err)
	}
	id := mps.DaemonID(ref.UID)
	unlock, err := d.locks.lock(ctx, daemonLockKey(id))
	if err != nil {
		return fmt.Errorf("claim %s: %w", ref, err)
	}
	defer unlock()
	rec.State = checkpoint.PrepareStarted
	rec.MPS = []checkpoint.MPSDaemon{{ID: id, Devices: uuids, ActiveThreadPercentage: limits.ActiveThreadPercentage, PinnedMemoryBytes: limits.PinnedMemoryBytes}}
	if err := d.cfg.Store.Put(ctx, *rec); err != nil {
		return fmt.Errorf("claim %s: record the MPS daemon to start: %w", ref, err)
	}
	failpoint.Hit(FailpointPrepareAfterMPSRecord)
	daemon, err := d.cfg.MPS.Start(ctx, id, uuids, limits)
	if err != nil {
		return fmt.Errorf("claim %s: devices %v: %w", ref, names, err)
	}
	failpoint.Hit(FailpointPrepareAfterMPSStart)
	rec.MPS[0].PID, rec.MPS[0].StartTime = daemon.PID, daemon.StartTime
	if err := d.cfg.Store.Put(ctx, *rec); err != nil {
		return fmt.Errorf("claim %s: record MPS daemon pid %d: %w", ref, daemon.PID, err)
	}
	served := &cdi.MPS{PipeDir: d.cfg.MPS.PipeDir(id), LogDir: d.cfg.MPS.LogDir(id)}
	for _, i := range plan.devices {
		cdiDevs[i].MPS = served
	}
	return nil
}

// stopMPS stops the record's daemons and removes their directories.
func (d *Driver) stopMPS(ctx context.Context, rec checkpoint.Claim) error {
	if d.cfg.MPS == nil {
		return nil
	}
	for _, m := range rec.MPS {
		unlock, err := d.locks.lock(ctx, daemonLockKey(m.ID))
		if err != nil {
			return err
		}
		err = d.cfg.MPS.Stop(ctx, mps.Daemon{ID: m.ID, PID: m.PID, StartTime: m.StartTime})
		unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// daemonLockKey is the lock of an MPS daemon's directory: held by the
// claim's prepare and unprepare (under the claim's lock) while they start
// or stop it, and by cleanup while it stops an orphan, so cleanup never
// stops a daemon a prepare is starting.
func daemonLockKey(id string) string { return "mps-daemon/" + id }

// mpsDaemonGone says why a completed record's daemon no longer serves it,
// or "".
func (d *Driver) mpsDaemonGone(rec checkpoint.Claim) string {
	if d.cfg.MPS == nil {
		return ""
	}
	for _, m := range rec.MPS {
		if !d.cfg.MPS.Alive(mps.Daemon{ID: m.ID, PID: m.PID, StartTime: m.StartTime}) {
			return fmt.Sprintf("its MPS control daemon %s (pid %d) is not running", m.ID, m.PID)
		}
	}
	return ""
}

// restartDeadMPS starts again, with the limits recorded, the daemon of a
// prepared claim that is not running (killed, or its launcher restarted):
// its pods' next CUDA processes find a daemon on the same pipe directory.
func (d *Driver) restartDeadMPS(ctx context.Context) int {
	if d.cfg.MPS == nil {
		return 0
	}
	logger := klog.FromContext(ctx)
	restarted := 0
	for _, rec := range d.cfg.Store.List() {
		if rec.State != checkpoint.PrepareCompleted || d.mpsDaemonGone(rec) == "" {
			continue
		}
		unlock, ok := d.locks.tryLock(rec.UID)
		if !ok {
			continue
		}
		if err := d.restartMPSLocked(ctx, rec.UID); err != nil {
			logger.Error(err, "Restart MPS daemon of a prepared claim", "claim", rec.Namespace+"/"+rec.Name)
		} else {
			restarted++
		}
		unlock()
	}
	return restarted
}

func (d *Driver) restartMPSLocked(ctx context.Context, uid string) error {
	rec, ok := d.cfg.Store.Get(uid)
	if !ok || rec.State != checkpoint.PrepareCompleted {
		return nil
	}
	for i, m := range rec.MPS {
		old := mps.Daemon{ID: m.ID, PID: m.PID, StartTime: m.StartTime}
		if d.cfg.MPS.Alive(old) {
			continue
		}
		daemon, err := d.restartDaemon(ctx, m)
		if err != nil {
			return err
		}
		rec.MPS[i].PID, rec.MPS[i].StartTime = daemon.PID, daemon.StartTime
		if err := d.cfg.Store.Put(ctx, rec); err != nil {
			return fmt.Errorf("record restarted MPS daemon pid %d: %w", daemon.PID, err)
		}
		klog.FromContext(ctx).Info("Restarted MPS daemon of a prepared claim", "claim", rec.Namespace+"/"+rec.Name, "pid", daemon.PID, "was", m.PID)
	}
	return nil
}

// restartDaemon stops whatever still answers on the daemon's pipe
// directory (a daemon of a plugin pod being replaced: one daemon per
// directory), then starts it again with its recorded limits.
func (d *Driver) restartDaemon(ctx context.Context, m checkpoint.MPSDaemon) (mps.Daemon, error) {
	unlock, err := d.locks.lock(ctx, daemonLockKey(m.ID))
	if err != nil {
		return mps.Daemon{}, err
	}
	defer unlock()
	if err := d.cfg.MPS.Stop(ctx, mps.Daemon{ID: m.ID}); err != nil {
		return mps.Daemon{}, err
	}
	return d.cfg.MPS.Start(ctx, m.ID, m.Devices, mps.Limits{ActiveThreadPercentage: m.ActiveThreadPercentage, PinnedMemoryBytes: m.PinnedMemoryBytes})
}

// stopOrphanMPS stops daemons whose directory no record names: what a
// crash between start and record, or a lost checkpoint, leaves. The
// directories are listed before the records are read, and read again under
// the daemon's lock: a prepare records its daemon before it makes the
// directory, under that lock.
func (d *Driver) stopOrphanMPS(ctx context.Context) int {
	if d.cfg.MPS == nil {
		return 0
	}
	ids, err := d.cfg.MPS.List()
	if err != nil {
		klog.FromContext(ctx).Error(err, "List MPS daemons")
		return 0
	}
	recorded := func(id string) bool {
		for _, rec := range d.cfg.Store.List() {
			for _, m := range rec.MPS {
				if m.ID == id {
					return true
				}
			}
		}
		return false
	}
	stopped := 0
	for _, id := range ids {
		if recorded(id) {
			continue
		}
		unlock, ok := d.locks.tryLock(daemonLockKey(id))
		if !ok {
			continue // a prepare or unprepare is at it; the next pass looks again
		}
		if recorded(id) {
			unlock()
			continue
		}
		err := d.cfg.MPS.Stop(ctx, mps.Daemon{ID: id})
		unlock()
		if err != nil {
			klog.FromContext(ctx).Error(err, "Stop MPS daemon no claim records", "id", id)
			continue
		}
		klog.FromContext(ctx).Info("Stopped MPS daemon no claim records", "id", id)
		stopped++
	}
	return stopped
}

// slotMemory is the memory of the MIG device a slot will hold; 0 if the
// inventory does not know the profile (plan fails on it elsewhere).
func slotMemory(inv *gpu.Inventory, slot checkpoint.MIGSlot) uint64 {
	g := inv.FindGPU(slot.ParentUUID)
	if g == nil {
		return 0
	}
	for _, p := range g.MIGProfiles {
		if p.GIProfileID == slot.GIProfileID {
			return p.MemoryBytes
		}
	}
	return 0
}
