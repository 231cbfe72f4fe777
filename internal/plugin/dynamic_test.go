package plugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	resourceapi "k8s.io/api/resource/v1"

	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/devicemodel"
	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// dynamicEnv is a driver in dynamic MIG mode on a simulated DGX H100 with
// MIG mode on and nothing cut. The backend outlives restarts, as a GPU's
// MIG devices outlive the plugin.
func dynamicEnv(t *testing.T) (*env, *sim.Backend) {
	t.Helper()
	return dynamicEnvOn(t, sim.Options{Profile: "dgxh100-mig"})
}

// dynamicEnvOn is a driver in dynamic MIG mode on the simulated node opts
// describe (NodeName is set here).
func dynamicEnvOn(t *testing.T, opts sim.Options) (*env, *sim.Backend) {
	t.Helper()
	opts.NodeName = nodeName
	b, err := sim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e := unstartedEnv(t, b, nil)
	e.configure = func(c *Config) { c.MIGMode = devicemodel.MIGModeDynamic }
	e.restart("boot-1")
	return e, b
}

func migDevicesOf(t *testing.T, b gpu.Backend, gpuIndex int) []gpu.MIGDevice {
	t.Helper()
	inv, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return inv.GPUs[gpuIndex].MIGDevices
}

func (e *env) spec(uid string) string {
	e.t.Helper()
	data, err := os.ReadFile(e.specPath(uid))
	if err != nil {
		e.t.Fatal(err)
	}
	return string(data)
}

func publishedNames(d *Driver) []string {
	var out []string
	for _, dev := range d.Devices() {
		out = append(out, dev.Name)
	}
	return out
}

// TestDynamicSevenSmallDevicesOnOneGPU: seven 1g.10gb claims on one GPU
// each get their own new MIG device, recorded with its slot and UUID and
// named in the claim's CDI spec; unpreparing them leaves the GPU empty.
func TestDynamicSevenSmallDevicesOnOneGPU(t *testing.T) {
	e, b := dynamicEnv(t)
	var claims []*resourceapi.ResourceClaim
	for i := range 7 {
		claims = append(claims, e.claim(fmt.Sprintf("small-%d", i), []alloc{{"mig", fmt.Sprintf("gpu-0-mig-1g10gb-19-%d", i), false}}))
	}
	for uid, r := range e.prepare(claims...) {
		if r.Err != nil {
			t.Fatalf("%s: %v", uid, r.Err)
		}
	}
	devs := migDevicesOf(t, b, 0)
	if len(devs) != 7 {
		t.Fatalf("GPU 0 has %d MIG devices, want 7", len(devs))
	}
	for i, c := range claims {
		rec, ok := e.store.Get(string(c.UID))
		if !ok || rec.State != checkpoint.PrepareCompleted || rec.Devices[0].MIG == nil || rec.Devices[0].MIG.PlacementStart != i {
			t.Fatalf("record of %s: %+v", c.Name, rec)
		}
		uuid := rec.Devices[0].UUID
		if !slices.ContainsFunc(devs, func(d gpu.MIGDevice) bool { return d.UUID == uuid && d.Placement.Start == i }) {
			t.Errorf("%s's record names %s, which is not the device at placement %d", c.Name, uuid, i)
		}
		if spec := e.spec(string(c.UID)); !strings.Contains(spec, "NVIDIA_VISIBLE_DEVICES="+uuid) {
			t.Errorf("%s's spec does not give its MIG device %s:\n%s", c.Name, uuid, spec)
		}
	}
	// Held devices stay published with their UUID; the GPU whole does not.
	if names := publishedNames(e.driver); slices.Contains(names, "gpu-0") || !slices.Contains(names, "gpu-0-mig-1g10gb-19-3") {
		t.Errorf("published %v", names)
	}
	for uid, err := range e.unprepare(claims...) {
		if err != nil {
			t.Fatalf("%s: %v", uid, err)
		}
	}
	if devs := migDevicesOf(t, b, 0); len(devs) != 0 {
		t.Errorf("after unprepare GPU 0 has %+v", devs)
	}
	if got := e.store.List(); len(got) != 0 {
		t.Errorf("records left: %+v", got)
	}
	if !slices.Contains(publishedNames(e.driver), "gpu-0") {
		t.Error("the emptied GPU is not offered whole again")
	}
}

// TestDynamicWholeGPUAndSharedGPU: a 3g and a 4g share one GPU; a whole GPU
// in MIG mode gets a MIG device spanning it.
func TestDynamicWholeGPUAndSharedGPU(t *testing.T) {
	e, b := dynamicEnv(t)
	three := e.claim("three", []alloc{{"mig", "gpu-2-mig-3g40gb-9-4", false}})
	four := e.claim("four", []alloc{{"mig", "gpu-2-mig-4g40gb-5-0", false}})
	whole := e.claim("whole", []alloc{{"gpu", "gpu-5", false}})
	for uid, r := range e.prepare(three, four, whole) {
		if r.Err != nil {
			t.Fatalf("%s: %v", uid, r.Err)
		}
	}
	if devs := migDevicesOf(t, b, 2); len(devs) != 2 {
		t.Errorf("GPU 2 has %d MIG devices, want the 4g and the 3g", len(devs))
	}
	devs := migDevicesOf(t, b, 5)
	if len(devs) != 1 || devs[0].Profile.Name != "7g.80gb" {
		t.Fatalf("the whole GPU 5 has %+v, want one 7g.80gb", devs)
	}
	if spec := e.spec("uid-whole"); !strings.Contains(spec, devs[0].UUID) {
		t.Errorf("whole-GPU spec lacks %s:\n%s", devs[0].UUID, spec)
	}
	if rec, _ := e.store.Get("uid-whole"); rec.Devices[0].Type != checkpoint.DeviceTypeGPU {
		t.Errorf("whole-GPU record type %q", rec.Devices[0].Type)
	}
}

// TestDynamicBadInputFailsOnlyThatClaim: a stale allocation that overlaps a
// device in use, an unknown profile, a placement that does not exist and a
// device of a GPU that is not in MIG mode each fail their claim with an
// error naming the claim, the device and the reason; nothing is left
// behind and the claim beside them is prepared.
func TestDynamicBadInputFailsOnlyThatClaim(t *testing.T) {
	e, b := dynamicEnvOn(t, sim.Options{Profile: "mixed"})

	good := e.claim("good", []alloc{{"mig", "gpu-1-mig-3g40gb-9-0", false}})
	tests := []struct {
		claim  *resourceapi.ResourceClaim
		device string
		want   []string
	}{
		{e.claim("overlap", []alloc{{"mig", "gpu-1-mig-1g10gb-19-2", false}}), "gpu-1-mig-1g10gb-19-2", []string{"placement 2", "overlaps"}},
		{e.claim("profile", []alloc{{"mig", "gpu-1-mig-1g10gb-77-2", false}}), "gpu-1-mig-1g10gb-77-2", []string{"no MIG profile with ID 77"}},
		{e.claim("placement", []alloc{{"mig", "gpu-1-mig-3g40gb-9-2", false}}), "gpu-1-mig-3g40gb-9-2", []string{"2 is not a placement of 3g.40gb"}},
		{e.claim("nomig", []alloc{{"mig", "gpu-2-mig-1g10gb-19-0", false}}), "gpu-2-mig-1g10gb-19-0", []string{"gpu-2-mig-1g10gb-19-0"}},
	}
	if r := e.prepare(good)[good.UID]; r.Err != nil {
		t.Fatal(r.Err)
	}
	before := migDevicesOf(t, b, 1)
	for _, tt := range tests {
		r := e.prepare(tt.claim)[tt.claim.UID]
		if r.Err == nil {
			t.Errorf("%s: prepared", tt.claim.Name)
			continue
		}
		for _, w := range append([]string{"default/" + tt.claim.Name, tt.device}, tt.want...) {
			if !strings.Contains(r.Err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tt.claim.Name, r.Err, w)
			}
		}
		if _, ok := e.store.Get(string(tt.claim.UID)); ok {
			t.Errorf("%s: a record is left", tt.claim.Name)
		}
	}
	if after := migDevicesOf(t, b, 1); len(after) != len(before) || after[0].UUID != before[0].UUID {
		t.Errorf("failed prepares changed GPU 1: %+v, was %+v", after, before)
	}
	if r := e.prepare(good)[good.UID]; r.Err != nil {
		t.Errorf("the good claim after the bad ones: %v", r.Err)
	}
	if len(e.specFiles()) != 1 {
		t.Errorf("CDI specs: %v, want the good claim's only", e.specFiles())
	}
}

// TestDynamicFailedComputeInstanceLeavesNothing: a create that fails after
// the GPU instance leaves no device and no record, and the retry works.
func TestDynamicFailedComputeInstanceLeavesNothing(t *testing.T) {
	e, b := dynamicEnv(t)
	inv, _ := b.Inventory(context.Background())
	if err := b.FailNextComputeInstance(inv.GPUs[3].UUID); err != nil {
		t.Fatal(err)
	}
	c := e.claim("c", []alloc{{"mig", "gpu-3-mig-2g20gb-14-2", false}})
	if r := e.prepare(c)[c.UID]; r.Err == nil || !strings.Contains(r.Err.Error(), "compute instance") {
		t.Fatalf("prepare: %v, want the compute-instance failure", r.Err)
	}
	if devs := migDevicesOf(t, b, 3); len(devs) != 0 {
		t.Errorf("left %+v", devs)
	}
	if _, ok := e.store.Get("uid-c"); ok || len(e.specFiles()) != 0 {
		t.Error("a record or spec is left")
	}
	if r := e.prepare(c)[c.UID]; r.Err != nil {
		t.Errorf("retry: %v", r.Err)
	}
}

// TestDynamicRestartReconciles: after a crash, MIG devices no record holds
// (an orphan, a half-made one) are destroyed at start; a prepared claim's
// device is kept and its fast path still answers.
func TestDynamicRestartReconciles(t *testing.T) {
	e, b := dynamicEnv(t)
	c := e.claim("c", []alloc{{"mig", "gpu-0-mig-3g40gb-9-4", false}})
	first := e.prepare(c)[c.UID]
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	kept := migDevicesOf(t, b, 0)[0]
	inv, _ := b.Inventory(context.Background())
	orphanSlot := gpu.MIGSlot{ParentUUID: inv.GPUs[0].UUID, GIProfileID: 14, Placement: gpu.Placement{Start: 0, Size: 2}}
	if _, err := b.CreateMIGDevice(context.Background(), orphanSlot); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateIncompleteMIGDevice(gpu.MIGSlot{ParentUUID: inv.GPUs[6].UUID, GIProfileID: 19, Placement: gpu.Placement{Start: 1, Size: 1}}); err != nil {
		t.Fatal(err)
	}

	e.restart("boot-1")
	if devs := migDevicesOf(t, b, 0); len(devs) != 1 || devs[0].UUID != kept.UUID {
		t.Errorf("GPU 0 after restart: %+v, want only the claim's %s", devs, kept.UUID)
	}
	if devs := migDevicesOf(t, b, 6); len(devs) != 0 {
		t.Errorf("GPU 6 after restart: %+v, want the half-made device gone", devs)
	}
	again := e.prepare(c)[c.UID]
	if again.Err != nil || fmt.Sprint(again.Devices) != fmt.Sprint(first.Devices) {
		t.Errorf("prepare after restart: %v %v, want %v", again.Devices, again.Err, first.Devices)
	}
}

// TestDynamicRebootRecreatesPreparedDevices: after a reboot (MIG devices
// gone, CDI directory wiped, new boot ID) the prepared claim's device is
// made again at its placement before anything else can take it, with a new
// UUID in a rewritten spec, and the kubelet's prepare gets the same IDs.
func TestDynamicRebootRecreatesPreparedDevices(t *testing.T) {
	e, b := dynamicEnv(t)
	c := e.claim("c", []alloc{{"mig", "gpu-4-mig-2g20gb-14-2", false}})
	first := e.prepare(c)[c.UID]
	if first.Err != nil {
		t.Fatal(first.Err)
	}
	old := migDevicesOf(t, b, 4)[0]
	if err := b.DestroyMIGDevice(context.Background(), gpu.SlotOf(old.UUID, old)); err == nil {
		t.Fatal("destroying by a MIG UUID as parent should fail")
	}
	inv, _ := b.Inventory(context.Background())
	if err := b.DestroyMIGDevice(context.Background(), gpu.SlotOf(inv.GPUs[4].UUID, old)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(e.cdiDir); err != nil {
		t.Fatal(err)
	}

	e.restart("boot-2")
	devs := migDevicesOf(t, b, 4)
	if len(devs) != 1 || devs[0].Placement.Start != 2 || devs[0].UUID == old.UUID {
		t.Fatalf("after reboot GPU 4 has %+v, want a new 2g.20gb at placement 2", devs)
	}
	rec, _ := e.store.Get("uid-c")
	if rec.Devices[0].UUID != devs[0].UUID || rec.BootID != "boot-2" {
		t.Errorf("record %+v, want UUID %s in boot-2", rec, devs[0].UUID)
	}
	if spec := e.spec("uid-c"); !strings.Contains(spec, devs[0].UUID) {
		t.Errorf("rewritten spec lacks %s", devs[0].UUID)
	}
	again := e.prepare(c)[c.UID]
	if again.Err != nil || fmt.Sprint(again.Devices) != fmt.Sprint(first.Devices) {
		t.Errorf("prepare after reboot: %v %v, want %v", again.Devices, again.Err, first.Devices)
	}
}

// TestDynamicCleanupDestroysDevicesOfGoneClaims: cleanup unprepares a
// claim whose ResourceClaim is gone, which destroys its MIG device, and
// removes an orphan device no record holds.
func TestDynamicCleanupDestroysDevicesOfGoneClaims(t *testing.T) {
	e, b := dynamicEnv(t)
	live := e.claim("live", []alloc{{"mig", "gpu-7-mig-1g10gb-19-0", false}})
	gone := e.claim("gone", []alloc{{"mig", "gpu-7-mig-1g10gb-19-1", false}})
	for uid, r := range e.prepare(live, gone) {
		if r.Err != nil {
			t.Fatalf("%s: %v", uid, r.Err)
		}
	}
	e.deleteClaim(gone)
	inv, _ := b.Inventory(context.Background())
	if _, err := b.CreateMIGDevice(context.Background(), gpu.MIGSlot{ParentUUID: inv.GPUs[7].UUID, GIProfileID: 14, Placement: gpu.Placement{Start: 4, Size: 2}}); err != nil {
		t.Fatal(err)
	}
	r := e.driver.CleanupOnce(context.Background())
	if r.StaleClaims != 1 || r.OrphanMIGDevices != 1 {
		t.Errorf("cleanup: %+v, want 1 stale claim and 1 orphan MIG device", r)
	}
	devs := migDevicesOf(t, b, 7)
	rec, _ := e.store.Get("uid-live")
	if len(devs) != 1 || devs[0].UUID != rec.Devices[0].UUID {
		t.Errorf("GPU 7 after cleanup: %+v, want only the live claim's device", devs)
	}
}

// TestDynamicEnableMIG: with EnableMIG, GPUs not in MIG mode are switched on
// at start, except one a claim holds.
func TestDynamicEnableMIG(t *testing.T) {
	b, err := sim.New(sim.Options{NodeName: nodeName, Profile: "dgxh100"})
	if err != nil {
		t.Fatal(err)
	}
	e := unstartedEnv(t, b, nil)
	e.restart("boot-1")
	c := e.claim("c", []alloc{{"gpu", "gpu-2", false}})
	if r := e.prepare(c)[c.UID]; r.Err != nil {
		t.Fatal(r.Err)
	}
	e.configure = func(c *Config) { c.MIGMode, c.EnableMIG = devicemodel.MIGModeDynamic, true }
	e.restart("boot-1")
	inv, _ := b.Inventory(context.Background())
	for i, g := range inv.GPUs {
		if g.MIGEnabled == (i == 2) {
			t.Errorf("GPU %d: MIG mode %v", i, g.MIGEnabled)
		}
	}
	if names := publishedNames(e.driver); !slices.Contains(names, "gpu-2") || !slices.Contains(names, "gpu-3") {
		t.Errorf("published %v", names)
	}
}

// TestDynamicMinorsAreNotIndexes: on a node whose device minors run the
// other way from NVML's indexes, a device named by minor is cut on the GPU
// with that minor, and its spec gives that GPU's device node.
func TestDynamicMinorsAreNotIndexes(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(cfg, []byte("profile: dgxh100-mig\nminors: [7, 6, 5, 4, 3, 2, 1, 0]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, b := dynamicEnvOn(t, sim.Options{ConfigFile: cfg})

	small := e.claim("small", []alloc{{"mig", "gpu-6-mig-2g20gb-14-2", false}})
	whole := e.claim("whole", []alloc{{"gpu", "gpu-0", false}})
	for uid, r := range e.prepare(small, whole) {
		if r.Err != nil {
			t.Fatalf("%s: %v", uid, r.Err)
		}
	}
	for _, tt := range []struct {
		uid            string
		index, minor   int
		profile, inode string
	}{
		{"uid-small", 1, 6, "2g.20gb", "/dev/nvidia6"},
		{"uid-whole", 7, 0, "7g.80gb", "/dev/nvidia0"},
	} {
		devs := migDevicesOf(t, b, tt.index)
		if len(devs) != 1 || devs[0].Profile.Name != tt.profile {
			t.Errorf("%s: GPU index %d (minor %d) has %+v, want one %s", tt.uid, tt.index, tt.minor, devs, tt.profile)
			continue
		}
		spec := e.spec(tt.uid)
		if !strings.Contains(spec, devs[0].UUID) || !strings.Contains(spec, `"`+tt.inode+`"`) {
			t.Errorf("%s: spec lacks %s or %s:\n%s", tt.uid, devs[0].UUID, tt.inode, spec)
		}
	}
	for i := range 8 {
		if i != 1 && i != 7 && len(migDevicesOf(t, b, i)) != 0 {
			t.Errorf("GPU index %d was cut too: %+v", i, migDevicesOf(t, b, i))
		}
	}
}
