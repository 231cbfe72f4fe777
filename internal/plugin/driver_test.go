package plugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/utils/ptr"

	"github.com/gpudra/gpudra/internal/cdi"
	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/devicemodel"
	"github.com/gpudra/gpudra/internal/fsutil"
	"github.com/gpudra/gpudra/internal/fsutil/fsfault"
	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

const (
	driverName = "gpu.nvidia.com"
	nodeName   = "node-a"
)

// env is a driver on a simulated node with real checkpoint and CDI files in
// a temporary directory. The API server is a fake clientset: this is a unit
// test of the plugin package; the e2e suite runs it against a real cluster.
type env struct {
	t       *testing.T
	dir     string
	cdiDir  string
	backend gpu.Backend
	client  *fake.Clientset
	store   *checkpoint.Store
	driver  *Driver
	// fsys, when set, is the file system of the checkpoint and the CDI
	// writer (fault injection); report is what the latest open found.
	fsys   fsutil.FS
	events *eventLog
	report checkpoint.OpenReport
	// lease and client override the defaults (none; the fake clientset).
	lease     nodeLease
	apiClient kubernetes.Interface
	// configure, when set, changes the driver's Config at every restart.
	configure func(*Config)
}

// eventLog records node events.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) NodeEvent(eventType, reason, message string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, eventType+" "+reason+": "+message)
}

func (l *eventLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func newEnv(t *testing.T, b gpu.Backend) *env {
	t.Helper()
	e := unstartedEnv(t, b, nil)
	e.restart("boot-1")
	return e
}

// unstartedEnv is an env whose driver is not built yet; fsys nil is the OS.
func unstartedEnv(t *testing.T, b gpu.Backend, fsys fsutil.FS) *env {
	e := &env{t: t, dir: t.TempDir(), backend: b, client: fake.NewClientset(), events: &eventLog{}, fsys: fsys}
	e.cdiDir = filepath.Join(e.dir, "cdi")
	return e
}

// restart builds a new Driver over the same files, as after a plugin crash
// (same boot ID) or a node reboot (new boot ID, CDI dir wiped by the caller).
func (e *env) restart(bootID string) {
	e.t.Helper()
	ctx := context.Background()
	fsys := e.fsys
	if fsys == nil {
		fsys = fsutil.OS
	}
	store, report, err := checkpoint.Open(ctx, filepath.Join(e.dir, "checkpoint.json"), bootID, checkpoint.WithFS(fsys))
	if err != nil {
		e.t.Fatal(err)
	}
	writer, err := cdi.NewWriter(e.cdiDir, "k8s.gpu.nvidia.com", "claim", cdi.SimEditor{}, cdi.WithFS(fsys))
	if err != nil {
		e.t.Fatal(err)
	}
	var client kubernetes.Interface = e.client
	if e.apiClient != nil {
		client = e.apiClient
	}
	cfg := Config{
		DriverName: driverName, NodeName: nodeName, Backend: e.backend, Store: store, CDI: writer, Client: client,
		Events: e.events, Checkpoint: report, Lease: e.lease,
	}
	if e.configure != nil {
		e.configure(&cfg)
	}
	d, err := New(ctx, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.store, e.driver, e.report = store, d, report
}

type alloc struct {
	request, device string
	admin           bool
}

// claim builds an allocated claim and stores it in the fake API server.
func (e *env) claim(name string, devices []alloc, configs ...resourceapi.DeviceAllocationConfiguration) *resourceapi.ResourceClaim {
	c := &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name)},
		Status: resourceapi.ResourceClaimStatus{Allocation: &resourceapi.AllocationResult{
			Devices: resourceapi.DeviceAllocationResult{Config: configs},
		}},
	}
	for _, d := range devices {
		r := resourceapi.DeviceRequestAllocationResult{Request: d.request, Driver: driverName, Pool: nodeName, Device: d.device}
		if d.admin {
			r.AdminAccess = ptr.To(true)
		}
		c.Status.Allocation.Devices.Results = append(c.Status.Allocation.Devices.Results, r)
	}
	if _, err := e.client.ResourceV1().ResourceClaims("default").Create(context.Background(), c, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) deleteClaim(c *resourceapi.ResourceClaim) {
	if err := e.client.ResourceV1().ResourceClaims(c.Namespace).Delete(context.Background(), c.Name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) prepare(claims ...*resourceapi.ResourceClaim) map[types.UID]kubeletplugin.PrepareResult {
	e.t.Helper()
	res, err := e.driver.PrepareResourceClaims(context.Background(), claims)
	if err != nil {
		e.t.Fatal(err)
	}
	if len(res) != len(claims) {
		e.t.Fatalf("got %d results for %d claims", len(res), len(claims))
	}
	return res
}

func (e *env) unprepare(claims ...*resourceapi.ResourceClaim) map[types.UID]error {
	e.t.Helper()
	var objs []kubeletplugin.NamespacedObject
	for _, c := range claims {
		objs = append(objs, kubeletplugin.NamespacedObject{UID: c.UID, NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}})
	}
	res, err := e.driver.UnprepareResourceClaims(context.Background(), objs)
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

func (e *env) specFiles() []string {
	entries, err := os.ReadDir(e.cdiDir)
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	return names
}

func simBackend(t *testing.T, profile string) gpu.Backend {
	t.Helper()
	b, err := sim.New(sim.Options{NodeName: nodeName, Profile: profile})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func opaque(requests []string, source resourceapi.AllocationConfigSource, params string) resourceapi.DeviceAllocationConfiguration {
	return resourceapi.DeviceAllocationConfiguration{
		Source:   source,
		Requests: requests,
		DeviceConfiguration: resourceapi.DeviceConfiguration{
			Opaque: &resourceapi.OpaqueDeviceConfiguration{Driver: driverName, Parameters: runtime.RawExtension{Raw: []byte(params)}},
		},
	}
}

func TestPrepareWritesSpecAndCheckpoint(t *testing.T) {
	e := newEnv(t, simBackend(t, "dgxh100"))
	c := e.claim("a", []alloc{{"gpu", "gpu-0", false}, {"gpu", "gpu-3", false}})
	res := e.prepare(c)[c.UID]
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	want := []string{"k8s.gpu.nvidia.com/claim=uid-a-gpu-0", "k8s.gpu.nvidia.com/claim=uid-a-gpu-3"}
	if len(res.Devices) != 2 {
		t.Fatalf("got %d devices", len(res.Devices))
	}
	for i, d := range res.Devices {
		if d.PoolName != nodeName || d.Requests[0] != "gpu" || len(d.CDIDeviceIDs) != 1 || d.CDIDeviceIDs[0] != want[i] {
			t.Errorf("device %d = %+v, want CDI ID %s", i, d, want[i])
		}
	}
	rec, ok := e.store.Get("uid-a")
	if !ok || rec.State != checkpoint.PrepareCompleted || len(rec.Devices) != 2 || rec.Devices[1].UUID == "" {
		t.Fatalf("checkpoint record = %+v, %v", rec, ok)
	}
	files := e.specFiles()
	if len(files) != 1 {
		t.Fatalf("CDI dir holds %v, want one spec", files)
	}
	spec, err := os.ReadFile(filepath.Join(e.cdiDir, files[0]))
	if err != nil {
		t.Fatal(err)
	}
	inv, _ := e.backend.Inventory(context.Background())
	if !strings.Contains(string(spec), "NVIDIA_VISIBLE_DEVICES="+inv.GPUs[0].UUID+","+inv.GPUs[3].UUID) {
		t.Errorf("spec lacks the claim's UUIDs: %s", spec)
	}
}

func TestPrepareAndUnprepareAreIdempotent(t *testing.T) {
	e := newEnv(t, simBackend(t, "dgxh100"))
	c := e.claim("a", []alloc{{"gpu", "gpu-1", false}})
	first := e.prepare(c)[c.UID]
	second := e.prepare(c)[c.UID]
	if first.Err != nil || second.Err != nil {
		t.Fatal(first.Err, second.Err)
	}
	if fmt.Sprint(first.Devices) != fmt.Sprint(second.Devices) {
		t.Errorf("repeat prepare returned %v, first %v", second.Devices, first.Devices)
	}
	for range 2 {
		if err := e.unprepare(c)[c.UID]; err != nil {
			t.Fatal(err)
		}
	}
	if files := e.specFiles(); len(files) != 0 {
		t.Errorf("CDI specs left: %v", files)
	}
	if got := e.store.List(); len(got) != 0 {
		t.Errorf("checkpoint entries left: %v", got)
	}
	// The device is free again.
	c2 := e.claim("b", []alloc{{"gpu", "gpu-1", false}})
	if err := e.prepare(c2)[c2.UID].Err; err != nil {
		t.Fatal(err)
	}
}

func TestPrepareRefusesDeviceHeldByLiveClaim(t *testing.T) {
	e := newEnv(t, simBackend(t, "dgxh100"))
	a := e.claim("a", []alloc{{"gpu", "gpu-0", false}})
	b := e.claim("b", []alloc{{"gpu", "gpu-0", false}})
	if err := e.prepare(a)[a.UID].Err; err != nil {
		t.Fatal(err)
	}
	err := e.prepare(b)[b.UID].Err
	want := "claim default/b: device gpu-0 is already prepared for claim default/a (uid uid-a)"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
	if _, ok := e.store.Get("uid-b"); ok {
		t.Error("refused claim left a checkpoint entry")
	}
	if files := e.specFiles(); len(files) != 1 {
		t.Errorf("refused claim left CDI files: %v", files)
	}
	// The refusal also holds after a plugin restart (ownership from the checkpoint).
	e.restart("boot-1")
	if err := e.prepare(b)[b.UID].Err; err == nil || err.Error() != want {
		t.Fatalf("after restart: error = %v, want %q", err, want)
	}
}

func TestPrepareTakesOverDeviceFromDeletedClaim(t *testing.T) {
	e := newEnv(t, simBackend(t, "dgxh100"))
	a := e.claim("a", []alloc{{"gpu", "gpu-0", false}})
	if err := e.prepare(a)[a.UID].Err; err != nil {
		t.Fatal(err)
	}
	e.deleteClaim(a) // the kubelet never unprepared it
	b := e.claim("b", []alloc{{"gpu", "gpu-0", false}})
	if err := e.prepare(b)[b.UID].Err; err != nil {
		t.Fatalf("device of a deleted claim was not reclaimed: %v", err)
	}
	if _, ok := e.store.Get("uid-a"); ok {
		t.Error("stale claim still checkpointed")
	}
	if files := e.specFiles(); len(files) != 1 || !strings.Contains(files[0], "uid-b") {
		t.Errorf("CDI files = %v, want only claim b's", files)
	}
}

func TestAdminAccessSharesAHeldDevice(t *testing.T) {
	e := newEnv(t, simBackend(t, "dgxh100"))
	a := e.claim("a", []alloc{{"gpu", "gpu-2", false}})
	admin := e.claim("monitor", []alloc{{"gpu", "gpu-2", true}})
	res := e.prepare(a, admin)
	for uid, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v", uid, r.Err)
		}
	}
	// Releasing the admin claim must not free the device for a third claim.
	if err := e.unprepare(admin)[admin.UID]; err != nil {
		t.Fatal(err)
	}
	c := e.claim("c", []alloc{{"gpu", "gpu-2", false}})
	if err := e.prepare(c)[c.UID].Err; err == nil {
		t.Fatal("device still held by claim a was given to claim c")
	}
}

func TestBadInputFailsOnlyThatClaim(t *testing.T) {
	faults := fsfault.New(fsutil.OS)
	e := unstartedEnv(t, simBackend(t, "mixed"), faults)
	e.restart("boot-1")
	inv, _ := e.backend.Inventory(context.Background())
	var migDevice, gpuDevice string
	for name, loc := range devicemodel.Index(inv) {
		if loc.Type() == devicemodel.TypeMIG && migDevice == "" {
			migDevice = name
		}
		if loc.Type() == devicemodel.TypeGPU && gpuDevice == "" && name != "gpu-5" {
			gpuDevice = name
		}
	}
	tests := []struct {
		name    string
		devices []alloc
		config  resourceapi.DeviceAllocationConfiguration
		// failSpec makes the bad claim's CDI spec rename fail: planning
		// passes, and the failure comes after files were written.
		failSpec bool
		want     []string // substrings the error must contain
	}{
		{
			name:     "spec write fails",
			devices:  []alloc{{"gpu", gpuDevice, false}},
			failSpec: true,
			want:     []string{"default/spec-write-fails", "write CDI spec", "injected"},
		},
		{
			name:    "unknown field",
			devices: []alloc{{"gpu", gpuDevice, false}},
			config:  opaque(nil, resourceapi.AllocationConfigSourceClaim, `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharin":{}}`),
			want:    []string{"default/unknown-field", "sharin"},
		},
		{
			name:    "GpuConfig on a MIG device",
			devices: []alloc{{"mig", migDevice, false}},
			config:  opaque([]string{"mig"}, resourceapi.AllocationConfigSourceClaim, `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig"}`),
			want:    []string{"default/gpuconfig-on-a-mig-device", migDevice, "GpuConfig"},
		},
		{
			name:    "MPS without a daemon",
			devices: []alloc{{"gpu", gpuDevice, false}},
			config:  opaque([]string{"gpu"}, resourceapi.AllocationConfigSourceClaim, `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS"}}`),
			want:    []string{"default/mps-without-a-daemon", gpuDevice, "sharing.strategy", "MPS", "--mps-control"},
		},
		{
			name:    "device not on this node",
			devices: []alloc{{"gpu", "gpu-99", false}},
			want:    []string{"default/device-not-on-this-node", "gpu-99", "not a device of this node"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(strings.ToLower(tc.name), " ", "-")
			var bad *resourceapi.ResourceClaim
			if tc.config.Opaque != nil {
				bad = e.claim(name, tc.devices, tc.config)
			} else {
				bad = e.claim(name, tc.devices)
			}
			good := e.claim(name+"-good", []alloc{{"gpu", "gpu-5", false}})
			defer e.unprepare(good)
			if tc.failSpec {
				faults.Fail(fsfault.Op{Kind: fsfault.Rename, PathContains: string(bad.UID) + ".json"}, 1, fsfault.ErrInjected)
			}
			res := e.prepare(bad, good)
			if faults.Pending() {
				t.Fatal("the injected failure was not reached")
			}
			err := res[bad.UID].Err
			if err == nil {
				t.Fatal("bad claim prepared")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if res[good.UID].Err != nil {
				t.Errorf("good claim in the same call failed: %v", res[good.UID].Err)
			}
			if _, ok := e.store.Get(string(bad.UID)); ok {
				t.Error("bad claim left a checkpoint entry")
			}
			if _, err := os.Stat(e.specPath(string(bad.UID))); !os.IsNotExist(err) {
				t.Errorf("bad claim left a CDI spec: %v", err)
			}
			if tmp := e.tempFiles(); len(tmp) > 0 {
				t.Errorf("temp files left: %v", tmp)
			}
			for _, d := range tc.devices {
				if owner, held := e.driver.owners.owner(d.device); held && owner.UID == string(bad.UID) {
					t.Errorf("bad claim holds %s", d.device)
				}
			}
			if _, err := os.Stat(e.specPath(string(good.UID))); err != nil {
				t.Errorf("good claim's spec: %v", err)
			}
			if rec, ok := e.store.Get(string(good.UID)); !ok || rec.State != checkpoint.PrepareCompleted {
				t.Errorf("good claim's record: %+v %v", rec, ok)
			}
		})
	}
}

func TestHundredConcurrentClaims(t *testing.T) {
	count := 15
	cfg := &sim.Config{GPUs: []sim.GPUConfig{{Model: "h100-sxm5-80gb", Count: &count, MIGEnabled: true}}}
	for range 7 {
		cfg.GPUs[0].MIGDevices = append(cfg.GPUs[0].MIGDevices, sim.MIGDeviceConfig{Profile: "1g.10gb"})
	}
	b, err := sim.NewFromConfig(nodeName, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, b)
	devices := e.driver.Devices()
	if len(devices) < 100 {
		t.Fatalf("only %d devices", len(devices))
	}
	claims := make([]*resourceapi.ResourceClaim, 100)
	for i := range claims {
		claims[i] = e.claim(fmt.Sprintf("c%03d", i), []alloc{{"mig", devices[i].Name, false}})
	}
	// As the kubelet does for 100 pods: one call per pod, all at once, each
	// prepared twice (two containers' pods sharing a claim race the same way).
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			c := claims[i%100]
			res, err := e.driver.PrepareResourceClaims(context.Background(), []*resourceapi.ResourceClaim{c})
			if err == nil {
				err = res[c.UID].Err
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.store.List()); n != 100 {
		t.Fatalf("%d claims checkpointed, want 100", n)
	}
	if n := len(e.specFiles()); n != 100 {
		t.Fatalf("%d CDI specs, want 100", n)
	}
	// Everything survives a restart, and unprepares concurrently.
	e.restart("boot-1")
	for i := range 100 {
		wg.Go(func() {
			if err := e.unprepare(claims[i])[claims[i].UID]; err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(e.store.List()); n != 0 {
		t.Fatalf("%d claims left in checkpoint", n)
	}
	if files := e.specFiles(); len(files) != 0 {
		t.Fatalf("%d CDI specs left", len(files))
	}
}

func TestRebootPreparesAgain(t *testing.T) {
	e := newEnv(t, simBackend(t, "dgxh100"))
	c := e.claim("a", []alloc{{"gpu", "gpu-0", false}})
	if err := e.prepare(c)[c.UID].Err; err != nil {
		t.Fatal(err)
	}
	// A reboot wipes /var/run/cdi (tmpfs) and changes the boot ID.
	if err := os.RemoveAll(e.cdiDir); err != nil {
		t.Fatal(err)
	}
	e.restart("boot-2")
	if err := e.prepare(c)[c.UID].Err; err != nil {
		t.Fatal(err)
	}
	if files := e.specFiles(); len(files) != 1 {
		t.Fatalf("spec not rewritten after reboot: %v", files)
	}
	rec, _ := e.store.Get("uid-a")
	if rec.BootID != "boot-2" {
		t.Errorf("record boot ID %q, want boot-2", rec.BootID)
	}
}

func TestCleanupRemovesStaleClaimsAndOrphanSpecs(t *testing.T) {
	e := newEnv(t, simBackend(t, "dgxh100"))
	live := e.claim("live", []alloc{{"gpu", "gpu-0", false}})
	gone := e.claim("gone", []alloc{{"gpu", "gpu-1", false}})
	replaced := e.claim("replaced", []alloc{{"gpu", "gpu-2", false}})
	for uid, r := range e.prepare(live, gone, replaced) {
		if r.Err != nil {
			t.Fatalf("%s: %v", uid, r.Err)
		}
	}
	e.deleteClaim(gone)
	e.deleteClaim(replaced)
	again := replaced.DeepCopy()
	again.UID = "uid-replaced-2"
	again.ResourceVersion = ""
	if _, err := e.client.ResourceV1().ResourceClaims("default").Create(context.Background(), again, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A spec file no checkpointed claim owns, as after a crash between the
	// spec write and the checkpoint.
	writer, _ := cdi.NewWriter(e.cdiDir, "k8s.gpu.nvidia.com", "claim", cdi.SimEditor{})
	inv, _ := e.backend.Inventory(context.Background())
	if _, err := writer.WriteClaimSpec(context.Background(), cdi.ClaimRef{UID: "uid-orphan", Namespace: "default", Name: "orphan"}, []cdi.Device{{Name: "gpu-7", Request: "gpu", Pool: nodeName, GPU: inv.GPUs[7]}}); err != nil {
		t.Fatal(err)
	}

	if r := e.driver.CleanupOnce(context.Background()); r.StaleClaims != 2 || r.OrphanSpecs != 1 || r.AdoptedSpecs != 0 {
		t.Fatalf("cleanup: %+v, want 2 stale claims and 1 orphan spec", r)
	}
	if got := e.store.List(); len(got) != 1 || got[0].UID != "uid-live" {
		t.Errorf("checkpoint after cleanup: %+v", got)
	}
	if files := e.specFiles(); len(files) != 1 || !strings.Contains(files[0], "uid-live") {
		t.Errorf("CDI files after cleanup: %v", files)
	}
	if r := e.driver.CleanupOnce(context.Background()); r != (CleanupReport{}) {
		t.Errorf("second pass: %+v", r)
	}
}

func TestPublishedDevicesFollowInventory(t *testing.T) {
	e := newEnv(t, simBackend(t, "dgxh100"))
	var got []resourceapi.Device
	p := publisherFunc(func(res []resourceapi.Device) { got = res })
	if err := e.driver.Publish(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if len(got) != 8 || got[0].Name != "gpu-0" || got[7].Name != "gpu-7" {
		t.Fatalf("published %d devices", len(got))
	}
}

type publisherFunc func([]resourceapi.Device)

func (f publisherFunc) PublishResources(_ context.Context, res resourceslice.DriverResources) error {
	var devs []resourceapi.Device
	for _, s := range res.Pools[nodeName].Slices {
		devs = append(devs, s.Devices...)
	}
	f(devs)
	return nil
}
