package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"

	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/fsutil"
	"github.com/gpudra/gpudra/internal/fsutil/fsfault"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// specPath is where the writer puts a claim's spec.
func (e *env) specPath(uid string) string {
	return filepath.Join(e.cdiDir, "k8s.gpu.nvidia.com-claim_"+uid+".json")
}

// diskRecord reads the claim's record from the checkpoint file as a
// restarted plugin would, not from the store's memory.
func (e *env) diskRecord(uid string) (checkpoint.Claim, bool) {
	e.t.Helper()
	s, _, err := checkpoint.Open(context.Background(), filepath.Join(e.dir, "checkpoint.json"), "boot-1")
	if err != nil {
		e.t.Fatal(err)
	}
	return s.Get(uid)
}

// tempFiles lists temp files of interrupted writes in the CDI and state
// directories.
func (e *env) tempFiles() []string {
	e.t.Helper()
	var out []string
	for _, dir := range []string{e.cdiDir, e.dir} {
		entries, _ := os.ReadDir(dir)
		for _, en := range entries {
			if strings.Contains(en.Name(), ".tmp-") {
				out = append(out, filepath.Join(dir, en.Name()))
			}
		}
	}
	return out
}

// checkPreparedOrAbsent asserts the invariant of every failure: claim uid
// is either prepared (record PrepareCompleted in memory and on disk, spec
// file naming cdiID, device held) or absent (none of them).
func (e *env) checkPreparedOrAbsent(uid, device, cdiID string) (prepared bool) {
	e.t.Helper()
	mem, inMem := e.store.Get(uid)
	disk, onDisk := e.diskRecord(uid)
	spec, specErr := os.ReadFile(e.specPath(uid))
	owner, held := e.driver.owners.owner(device)
	heldByClaim := held && owner.UID == uid
	switch {
	case inMem && onDisk && specErr == nil && heldByClaim:
		if mem.State != checkpoint.PrepareCompleted || disk.State != checkpoint.PrepareCompleted {
			e.t.Errorf("claim %s: record states %s (memory) and %s (disk), want %s", uid, mem.State, disk.State, checkpoint.PrepareCompleted)
		}
		if !strings.Contains(string(spec), strings.TrimPrefix(cdiID, "k8s.gpu.nvidia.com/claim=")) {
			e.t.Errorf("claim %s: spec lacks device %s: %s", uid, cdiID, spec)
		}
		return true
	case !inMem && !onDisk && errors.Is(specErr, os.ErrNotExist) && !held:
		return false
	default:
		e.t.Errorf("claim %s half prepared: record in memory %v, on disk %v, spec error %v, device %s held by %q",
			uid, inMem, onDisk, specErr, device, owner.UID)
		return false
	}
}

// Every file operation of a prepare, failed in turn: the claim ends
// prepared or absent, no temp file stays, and the kubelet's retry prepares
// it with a spec that exists.
func TestPrepareFailureAtEveryStep(t *testing.T) {
	record := fsfault.New(fsutil.OS)
	e := newEnvFS(t, record)
	c := e.claim("a", []alloc{{"gpu", "gpu-2", false}})
	record.Reset()
	if err := e.prepare(c)[c.UID].Err; err != nil {
		t.Fatal(err)
	}
	points := fsfault.Points(record.Calls())
	if len(points) < 8 {
		t.Fatalf("a prepare made only %d file operations: %v", len(points), record.Calls())
	}
	const cdiID = "k8s.gpu.nvidia.com/claim=uid-a-gpu-2"
	for _, p := range points {
		t.Run(p.String(), func(t *testing.T) {
			faults := fsfault.New(fsutil.OS)
			e := newEnvFS(t, faults)
			c := e.claim("a", []alloc{{"gpu", "gpu-2", false}})
			p.Arm(faults, fsfault.ErrInjected)
			err := e.prepare(c)[c.UID].Err
			if faults.Pending() {
				t.Fatalf("the step was not reached; calls %v", faults.Calls())
			}
			prepared := e.checkPreparedOrAbsent("uid-a", "gpu-2", cdiID)
			if prepared != (err == nil) {
				t.Errorf("prepare returned %v but the claim is prepared=%v", err, prepared)
			}
			if tmp := e.tempFiles(); len(tmp) > 0 {
				t.Errorf("temp files left: %v", tmp)
			}
			if !prepared {
				// No device handed to two claims: the device is free for
				// another claim at once.
				other := e.claim("other", []alloc{{"gpu", "gpu-2", false}})
				if err := e.prepare(other)[other.UID].Err; err != nil {
					t.Fatalf("device of a failed prepare not free: %v", err)
				}
				e.unprepare(other)
			}
			// The kubelet retries; so does a restarted plugin.
			e.restart("boot-1")
			res := e.prepare(c)[c.UID]
			if res.Err != nil || len(res.Devices) != 1 || res.Devices[0].CDIDeviceIDs[0] != cdiID {
				t.Fatalf("retry: %+v", res)
			}
			if !e.checkPreparedOrAbsent("uid-a", "gpu-2", cdiID) {
				t.Fatal("retry did not prepare the claim")
			}
		})
	}
}

// Every file operation of an unprepare, failed in turn: a prepare after the
// failure never returns IDs of a spec that is gone, and the retried
// unprepare leaves nothing.
func TestUnprepareFailureAtEveryStep(t *testing.T) {
	record := fsfault.New(fsutil.OS)
	e := newEnvFS(t, record)
	c := e.claim("a", []alloc{{"gpu", "gpu-4", false}})
	if err := e.prepare(c)[c.UID].Err; err != nil {
		t.Fatal(err)
	}
	record.Reset()
	if err := e.unprepare(c)[c.UID]; err != nil {
		t.Fatal(err)
	}
	points := fsfault.Points(record.Calls())
	if len(points) < 4 {
		t.Fatalf("an unprepare made only %d file operations: %v", len(points), record.Calls())
	}
	const cdiID = "k8s.gpu.nvidia.com/claim=uid-a-gpu-4"
	for _, p := range points {
		t.Run(p.String(), func(t *testing.T) {
			faults := fsfault.New(fsutil.OS)
			e := newEnvFS(t, faults)
			c := e.claim("a", []alloc{{"gpu", "gpu-4", false}})
			if err := e.prepare(c)[c.UID].Err; err != nil {
				t.Fatal(err)
			}
			p.Arm(faults, fsfault.ErrInjected)
			if err := e.unprepare(c)[c.UID]; err == nil {
				t.Errorf("unprepare hid the injected failure")
			}
			if faults.Pending() {
				t.Fatalf("the step was not reached")
			}
			// A container restart makes the kubelet prepare again: what it
			// gets must exist.
			res := e.prepare(c)[c.UID]
			if res.Err != nil {
				t.Fatalf("prepare after failed unprepare: %v", res.Err)
			}
			if !e.checkPreparedOrAbsent("uid-a", "gpu-4", cdiID) {
				t.Fatal("prepare after a failed unprepare returned IDs without a spec")
			}
			if err := e.unprepare(c)[c.UID]; err != nil {
				t.Fatal(err)
			}
			if e.checkPreparedOrAbsent("uid-a", "gpu-4", cdiID) {
				t.Fatal("still prepared after the retried unprepare")
			}
			if tmp := e.tempFiles(); len(tmp) > 0 {
				t.Errorf("temp files left: %v", tmp)
			}
		})
	}
}

func newEnvFS(t *testing.T, fsys fsutil.FS) *env {
	t.Helper()
	e := unstartedEnv(t, simBackend(t, "dgxh100"), fsys)
	e.restart("boot-1")
	return e
}

// hookFS calls hook before the fsync of any temp file whose path contains
// match.
type hookFS struct {
	fsutil.FS
	match string
	hook  func()
}

func (h hookFS) CreateTemp(dir, pattern string) (fsutil.File, error) {
	f, err := h.FS.CreateTemp(dir, pattern)
	if err != nil || !strings.Contains(f.Name(), h.match) {
		return f, err
	}
	return hookFile{File: f, hook: h.hook}, nil
}

type hookFile struct {
	fsutil.File
	hook func()
}

func (f hookFile) Sync() error {
	f.hook()
	return f.File.Sync()
}

// The kubelet's deadline ends the call while the checkpoint record is being
// written. Before the fix the record stayed "completed" while the rollback
// deleted the spec; the retry returned CDI IDs of a spec that did not
// exist, and the device was free for another claim.
func TestDeadlineDuringCheckpointWrite(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	e := newEnvFS(t, hookFS{FS: fsutil.OS, match: "checkpoint.json", hook: cancel})
	c := e.claim("a", []alloc{{"gpu", "gpu-1", false}})
	res, err := e.driver.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{c})
	if err != nil {
		t.Fatal(err)
	}
	const cdiID = "k8s.gpu.nvidia.com/claim=uid-a-gpu-1"
	prepared := e.checkPreparedOrAbsent("uid-a", "gpu-1", cdiID)
	if prepared != (res[c.UID].Err == nil) {
		t.Fatalf("prepare returned %v, claim prepared=%v", res[c.UID].Err, prepared)
	}
	retry := e.prepare(c)[c.UID]
	if retry.Err != nil {
		t.Fatal(retry.Err)
	}
	if !e.checkPreparedOrAbsent("uid-a", "gpu-1", cdiID) {
		t.Fatal("retry returned IDs without a spec")
	}
	other := e.claim("b", []alloc{{"gpu", "gpu-1", false}})
	if err := e.prepare(other)[other.UID].Err; err == nil {
		t.Fatal("the device of a prepared claim was given to another claim")
	}
}

// reallocate gives claim c (same UID) a new allocation in the API server,
// as after deallocation and a new scheduling decision.
func (e *env) reallocate(c *resourceapi.ResourceClaim, devices []alloc) *resourceapi.ResourceClaim {
	e.t.Helper()
	next := c.DeepCopy()
	next.Status.Allocation.Devices.Results = nil
	for _, d := range devices {
		next.Status.Allocation.Devices.Results = append(next.Status.Allocation.Devices.Results,
			resourceapi.DeviceRequestAllocationResult{Request: d.request, Driver: driverName, Pool: nodeName, Device: d.device})
	}
	got, err := e.client.ResourceV1().ResourceClaims(c.Namespace).Update(context.Background(), next, metav1.UpdateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

// A claim deallocated and allocated again with the same UID on another
// device gets the new device, not the old one's CDI ID, and the old device
// is free. A spec deleted behind the plugin's back is written again.
func TestFastPathChecksAllocationAndSpec(t *testing.T) {
	e := newEnv(t, simBackend(t, "dgxh100"))
	c := e.claim("a", []alloc{{"gpu", "gpu-0", false}})
	if err := e.prepare(c)[c.UID].Err; err != nil {
		t.Fatal(err)
	}
	moved := e.reallocate(c, []alloc{{"gpu", "gpu-6", false}})
	res := e.prepare(moved)[c.UID]
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(res.Devices) != 1 || res.Devices[0].DeviceName != "gpu-6" || res.Devices[0].CDIDeviceIDs[0] != "k8s.gpu.nvidia.com/claim=uid-a-gpu-6" {
		t.Fatalf("reallocated claim got %+v, want gpu-6", res.Devices)
	}
	if e.checkPreparedOrAbsent("uid-a", "gpu-6", "k8s.gpu.nvidia.com/claim=uid-a-gpu-6") == false {
		t.Fatal("not prepared on the new device")
	}
	if _, held := e.driver.owners.owner("gpu-0"); held {
		t.Error("old device still held")
	}
	spec, _ := os.ReadFile(e.specPath("uid-a"))
	if strings.Contains(string(spec), "uid-a-gpu-0") {
		t.Errorf("spec still names the old device: %s", spec)
	}

	// Same request renamed (a firstAvailable subrequest chosen): prepared
	// again, so the kubelet gets the request it asked for.
	renamed := e.reallocate(moved, []alloc{{"gpu/big", "gpu-6", false}})
	res = e.prepare(renamed)[c.UID]
	if res.Err != nil || res.Devices[0].Requests[0] != "gpu/big" {
		t.Fatalf("renamed request: %+v", res)
	}

	if err := os.Remove(e.specPath("uid-a")); err != nil {
		t.Fatal(err)
	}
	res = e.prepare(renamed)[c.UID]
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if _, err := os.Stat(e.specPath("uid-a")); err != nil {
		t.Fatalf("spec not rewritten: %v", err)
	}
}

// Cleanup compares the whole allocation: a claim that still exists but was
// allocated elsewhere (or deallocated) releases what it held within one
// pass.
func TestCleanupCollectsReallocatedAndDeallocatedClaims(t *testing.T) {
	e := newEnv(t, simBackend(t, "dgxh100"))
	moved := e.claim("moved", []alloc{{"gpu", "gpu-0", false}})
	dealloc := e.claim("dealloc", []alloc{{"gpu", "gpu-1", false}})
	kept := e.claim("kept", []alloc{{"gpu", "gpu-2", false}})
	for uid, r := range e.prepare(moved, dealloc, kept) {
		if r.Err != nil {
			t.Fatalf("%s: %v", uid, r.Err)
		}
	}
	e.reallocate(moved, []alloc{{"gpu", "gpu-5", false}})
	d := dealloc.DeepCopy()
	d.Status.Allocation = nil
	if _, err := e.client.ResourceV1().ResourceClaims("default").Update(context.Background(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := e.driver.CleanupOnce(context.Background()); r.StaleClaims != 2 {
		t.Fatalf("cleanup: %+v, want 2 stale claims", r)
	}
	if got := e.store.List(); len(got) != 1 || got[0].UID != "uid-kept" {
		t.Fatalf("records after cleanup: %+v", got)
	}
	for _, dev := range []string{"gpu-0", "gpu-1"} {
		if owner, held := e.driver.owners.owner(dev); held {
			t.Errorf("%s still held by %s", dev, owner)
		}
	}
	if files := e.specFiles(); len(files) != 1 || !strings.Contains(files[0], "uid-kept") {
		t.Errorf("specs after cleanup: %v", files)
	}
}

// A corrupt checkpoint: the file is kept aside, the live claim's record is
// rebuilt from its spec and the API server (its device stays taken), the
// deleted claim's spec goes, and a Node event says so.
func TestCorruptCheckpointIsRebuilt(t *testing.T) {
	e := newEnv(t, simBackend(t, "dgxh100"))
	live := e.claim("live", []alloc{{"gpu", "gpu-0", false}, {"gpu", "gpu-1", false}})
	gone := e.claim("gone", []alloc{{"gpu", "gpu-2", false}})
	for uid, r := range e.prepare(live, gone) {
		if r.Err != nil {
			t.Fatalf("%s: %v", uid, r.Err)
		}
	}
	e.deleteClaim(gone)
	path := filepath.Join(e.dir, "checkpoint.json")
	if err := os.WriteFile(path, []byte(`{"version": 99, "claims": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	e.restart("boot-1")

	if e.report.CorruptReason == nil || e.report.CorruptMovedTo == "" {
		t.Fatalf("open report: %+v", e.report)
	}
	if data, err := os.ReadFile(e.report.CorruptMovedTo); err != nil || !strings.Contains(string(data), `"version": 99`) {
		t.Errorf("corrupt file not kept: %v %q", err, data)
	}
	rec, ok := e.diskRecord("uid-live")
	if !ok || rec.State != checkpoint.PrepareCompleted || len(rec.Devices) != 2 || rec.Name != "live" {
		t.Fatalf("live claim not rebuilt: %+v %v", rec, ok)
	}
	if _, ok := e.store.Get("uid-gone"); ok {
		t.Error("deleted claim rebuilt")
	}
	if files := e.specFiles(); len(files) != 1 || !strings.Contains(files[0], "uid-live") {
		t.Errorf("specs after rebuild: %v", files)
	}
	intruder := e.claim("intruder", []alloc{{"gpu", "gpu-1", false}})
	if err := e.prepare(intruder)[intruder.UID].Err; err == nil || !strings.Contains(err.Error(), "default/live") {
		t.Errorf("a device of a running pod was handed out: %v", err)
	}
	events := e.events.all()
	if len(events) != 1 || !strings.Contains(events[0], "CheckpointRebuilt") || !strings.Contains(events[0], "1 claims adopted, 1 stale specs deleted") {
		t.Errorf("node events: %q", events)
	}
	// The fast path serves the rebuilt claim, and a later unprepare cleans up.
	if res := e.prepare(live)[live.UID]; res.Err != nil || len(res.Devices) != 2 {
		t.Fatalf("prepare of rebuilt claim: %+v", res)
	}
	if err := e.unprepare(live)[live.UID]; err != nil {
		t.Fatal(err)
	}
	if files := e.specFiles(); len(files) != 0 || len(e.store.List()) != 0 {
		t.Errorf("left after unprepare: specs %v, records %v", files, e.store.List())
	}
}

// While the API server cannot be asked, a spec without a record is kept and
// its devices are not handed out; once it answers, the spec is accounted
// for.
func TestSpecWithoutRecordKeptWhileAPIServerUnreachable(t *testing.T) {
	e := newEnv(t, simBackend(t, "dgxh100"))
	c := e.claim("a", []alloc{{"gpu", "gpu-3", false}})
	if err := e.prepare(c)[c.UID].Err; err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(e.dir, "checkpoint.json")); err != nil {
		t.Fatal(err)
	}
	down := fake.NewClientset()
	down.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	e.apiClient = down
	e.restart("boot-1")
	if _, err := os.Stat(e.specPath("uid-a")); err != nil {
		t.Fatalf("spec deleted while the API server was down: %v", err)
	}
	if owner, held := e.driver.owners.owner("gpu-3"); !held || owner.UID != "uid-a" {
		t.Fatalf("device of the unaccounted spec not reserved: %v %v", owner, held)
	}
	if r := e.driver.CleanupOnce(context.Background()); r.OrphanSpecs+r.AdoptedSpecs != 0 {
		t.Fatalf("cleanup decided without the API server: %+v", r)
	}
	e.apiClient = nil
	e.driver.cfg.Client = e.client
	if r := e.driver.CleanupOnce(context.Background()); r.AdoptedSpecs != 1 {
		t.Fatalf("cleanup with the API server back: %+v", r)
	}
	if !e.checkPreparedOrAbsent("uid-a", "gpu-3", "k8s.gpu.nvidia.com/claim=uid-a-gpu-3") {
		t.Fatal("claim not adopted")
	}
}

// One lost GPU: the others are published and served; a claim holding the
// lost GPU keeps it published until it is unprepared; the GPU comes back
// after a clear.
func TestLostGPUIsOneBadGPU(t *testing.T) {
	stateDir := t.TempDir()
	b, err := sim.New(sim.Options{NodeName: nodeName, Profile: "dgxh100", StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, b)
	inv, _ := b.Inventory(context.Background())
	lostUUID := inv.GPUs[3].UUID
	holder := e.claim("holder", []alloc{{"gpu", "gpu-3", false}})
	if err := e.prepare(holder)[holder.UID].Err; err != nil {
		t.Fatal(err)
	}
	var published []resourceapi.Device
	if err := e.driver.Publish(context.Background(), publisherFunc(func(d []resourceapi.Device) { published = d })); err != nil {
		t.Fatal(err)
	}
	if err := sim.InjectFault(stateDir, sim.Fault{GPU: lostUUID, Kind: sim.FaultLost}); err != nil {
		t.Fatal(err)
	}
	if err := e.driver.RefreshInventory(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !hasDevice(published, "gpu-3") || len(published) != 8 {
		t.Fatalf("held lost GPU unpublished: %d devices", len(published))
	}
	other := e.claim("other", []alloc{{"gpu", "gpu-3", false}})
	e.unprepare(holder)
	err = e.prepare(other)[other.UID].Err
	if err == nil || !strings.Contains(err.Error(), "gpu-3") || !strings.Contains(err.Error(), "GPU_IS_LOST") {
		t.Fatalf("prepare on a lost GPU: %v", err)
	}
	fine := e.claim("fine", []alloc{{"gpu", "gpu-4", false}})
	if err := e.prepare(fine)[fine.UID].Err; err != nil {
		t.Fatalf("healthy GPU not served: %v", err)
	}
	if err := e.driver.RefreshInventory(context.Background()); err != nil {
		t.Fatal(err)
	}
	if hasDevice(published, "gpu-3") || len(published) != 7 {
		t.Fatalf("released lost GPU still published (%d devices)", len(published))
	}
	// A plugin started while the GPU is lost publishes the other seven.
	e.restart("boot-1")
	if n := len(e.driver.Devices()); n != 7 {
		t.Fatalf("restart with a lost GPU: %d devices", n)
	}
	if err := sim.ClearFaults(stateDir, lostUUID); err != nil {
		t.Fatal(err)
	}
	if err := e.driver.RefreshInventory(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !hasDevice(e.driver.Devices(), "gpu-3") {
		t.Fatal("GPU back after clear not published")
	}
}

func hasDevice(devs []resourceapi.Device, name string) bool {
	for _, d := range devs {
		if d.Name == name {
			return true
		}
	}
	return false
}

func TestHelperErrors(t *testing.T) {
	var fatal []error
	e := newEnv(t, simBackend(t, "l4x4"))
	e.driver.cfg.OnFatal = func(err error) { fatal = append(fatal, err) }
	e.driver.HandleError(context.Background(), fmt.Errorf("slice update: %w", kubeletplugin.ErrRecoverable), "publish")
	if len(fatal) != 0 {
		t.Fatalf("recoverable error was fatal: %v", fatal)
	}
	e.driver.HandleError(context.Background(), errors.New("listener closed"), "registrar gRPC server failed")
	if len(fatal) != 1 || !strings.Contains(fatal[0].Error(), "registrar gRPC server failed: listener closed") {
		t.Fatalf("fatal errors: %v", fatal)
	}
}

// The loops, not just one pass: cleanup collects a deleted claim within an
// interval, and a refresh request republishes a changed inventory.
func TestBackgroundLoops(t *testing.T) {
	stateDir := t.TempDir()
	b, err := sim.New(sim.Options{NodeName: nodeName, Profile: "dgxh100", StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, b)
	e.driver.cfg.CleanupInterval = 20 * time.Millisecond
	e.driver.cfg.InventoryInterval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	c := e.claim("a", []alloc{{"gpu", "gpu-0", false}})
	if err := e.prepare(c)[c.UID].Err; err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var published []resourceapi.Device
	if err := e.driver.Publish(ctx, publisherFunc(func(d []resourceapi.Device) {
		mu.Lock()
		defer mu.Unlock()
		published = d
	})); err != nil {
		t.Fatal(err)
	}
	refresh := make(chan struct{})
	go e.driver.RunCleanup(ctx)
	go e.driver.RunInventoryRefresh(ctx, refresh)

	e.deleteClaim(c)
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return len(e.store.List()) == 0 && len(e.specFiles()) == 0, nil
	}); err != nil {
		t.Fatalf("cleanup loop did not collect the deleted claim: records %v, specs %v", e.store.List(), e.specFiles())
	}

	inv, _ := b.Inventory(ctx)
	if err := sim.InjectFault(stateDir, sim.Fault{GPU: inv.GPUs[5].UUID, Kind: sim.FaultLost}); err != nil {
		t.Fatal(err)
	}
	refresh <- struct{}{}
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(published) == 7 && !hasDevice(published, "gpu-5"), nil
	}); err != nil {
		t.Fatalf("refresh request did not republish without the lost GPU (%d devices)", len(published))
	}
}
