package plugin

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/klog/v2"

	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/fsutil"
	"github.com/gpudra/gpudra/internal/nodelease"
)

// instance starts one more plugin instance on e's state directory, as the
// new pod of a rolling update does: it takes the node lease (the holder
// hands it over), builds its driver inside it, and serves handovers.
func (e *env) instance(ctx context.Context, id string) *env {
	e.t.Helper()
	lease, err := nodelease.New(nodelease.Options{Dir: filepath.Join(e.dir, "plugin"), ID: id, PollInterval: 5 * time.Millisecond, Logger: klog.Background()})
	if err != nil {
		e.t.Fatal(err)
	}
	exit, err := lease.Enter(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	other := &env{t: e.t, dir: e.dir, cdiDir: e.cdiDir, backend: e.backend, client: e.client, events: &eventLog{}, lease: lease, fsys: e.fsys}
	other.restart("boot-1")
	lease.SetOnAcquire(other.driver.Resync)
	exit()
	go lease.Run(ctx)
	e.t.Cleanup(func() { _ = lease.Close(context.Background()) })
	return other
}

// Two plugin processes on one node (old and new pod of a rolling update)
// prepare, unprepare and clean up interleaved, each on its own claims and
// on claims of the other (the kubelet may call either). Nothing one of
// them prepared is lost or deleted by the other, and the node state on
// disk ends exactly as the calls say.
func TestTwoInstancesShareOneNode(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := unstartedEnv(t, simBackend(t, "dgxh100"), nil)
	a := base.instance(ctx, "old")
	b := base.instance(ctx, "new")

	const perGPU = 2 // claims taking turns on each GPU
	claims := make([]*resourceapi.ResourceClaim, 8*perGPU)
	for i := range claims {
		claims[i] = base.claim(fmt.Sprintf("c%02d", i), []alloc{{"gpu", fmt.Sprintf("gpu-%d", i%8), false}})
	}
	// Each GPU has one worker, so the claims of one GPU never overlap; the
	// workers of different GPUs run at once, on random instances.
	var wg sync.WaitGroup
	var mu sync.Mutex
	prepared := map[string]bool{}
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for step := range 12 {
				c := claims[g+8*(step%perGPU)]
				inst := []*env{a, b}[r.IntN(2)]
				res, err := inst.driver.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{c})
				if err != nil || res[c.UID].Err != nil {
					t.Errorf("prepare %s: %v %v", c.Name, err, res[c.UID].Err)
					return
				}
				if r.IntN(3) == 0 {
					inst.driver.CleanupOnce(ctx)
				}
				if step == 11 && g%2 == 0 {
					mu.Lock()
					prepared[string(c.UID)] = true
					mu.Unlock()
					return // left prepared
				}
				inst = []*env{a, b}[r.IntN(2)]
				if errs, err := inst.driver.UnprepareResourceClaims(ctx, namespaced(c)); err != nil || errs[c.UID] != nil {
					t.Errorf("unprepare %s: %v %v", c.Name, err, errs[c.UID])
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	a.driver.CleanupOnce(ctx)
	b.driver.CleanupOnce(ctx)

	disk, _, err := checkpoint.Open(ctx, filepath.Join(base.dir, "checkpoint.json"), "boot-1")
	if err != nil {
		t.Fatal(err)
	}
	var recorded []string
	for _, rec := range disk.List() {
		recorded = append(recorded, rec.UID)
		if !prepared[rec.UID] {
			t.Errorf("record of unprepared claim %s on disk", rec.UID)
		}
		if _, err := os.Stat(base.specPath(rec.UID)); err != nil {
			t.Errorf("claim %s recorded without its spec: %v", rec.UID, err)
		}
	}
	if len(recorded) != len(prepared) {
		t.Errorf("disk records %v, want the %d claims left prepared: %v", recorded, len(prepared), prepared)
	}
	if files := base.specFiles(); len(files) != len(prepared) {
		t.Errorf("CDI dir holds %v, want %d specs", files, len(prepared))
	}
	// Both instances' views agree with the disk once they hold the lease.
	for _, inst := range []*env{a, b} {
		for uid := range prepared {
			c := claimByUID(claims, uid)
			res, err := inst.driver.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{c})
			if err != nil || res[c.UID].Err != nil {
				t.Errorf("repeat prepare of %s: %v %v", c.Name, err, res[c.UID].Err)
			}
		}
	}
	if tmp := base.tempFiles(); len(tmp) > 0 {
		t.Errorf("temp files left: %v", tmp)
	}
}

func claimByUID(claims []*resourceapi.ResourceClaim, uid string) *resourceapi.ResourceClaim {
	for _, c := range claims {
		if string(c.UID) == uid {
			return c
		}
	}
	return nil
}

func namespaced(claims ...*resourceapi.ResourceClaim) []kubeletplugin.NamespacedObject {
	var out []kubeletplugin.NamespacedObject
	for _, c := range claims {
		out = append(out, kubeletplugin.NamespacedObject{UID: c.UID, NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}})
	}
	return out
}

// The new pod of a rolling update starts while the old one is in the middle
// of writing a spec: the new one waits for the lease until the write is
// done, so its start-up (which removes temp files of interrupted writes)
// cannot delete the old one's temp file, and it sees the finished claim.
func TestNewInstanceWaitsForWriteInFlight(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	block := func() {
		once.Do(func() {
			close(reached)
			<-release
		})
	}
	base := unstartedEnv(t, simBackend(t, "dgxh100"), hookFS{FS: fsutil.OS, match: "claim_uid-a.json.tmp-", hook: block})
	a := base.instance(ctx, "old")
	c := base.claim("a", []alloc{{"gpu", "gpu-1", false}})

	prepared := make(chan kubeletplugin.PrepareResult, 1)
	go func() {
		res, err := a.driver.PrepareResourceClaims(ctx, []*resourceapi.ResourceClaim{c})
		if err != nil {
			res = map[types.UID]kubeletplugin.PrepareResult{c.UID: {Err: err}}
		}
		prepared <- res[c.UID]
	}()
	<-reached
	started := make(chan *env, 1)
	go func() { started <- base.instance(ctx, "new") }()
	// The new instance has asked for the lease...
	request := filepath.Join(base.dir, "plugin", "lease-want-new")
	if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, err := os.Stat(request)
		return err == nil, nil
	}); err != nil {
		t.Fatalf("the new instance never asked for the lease: %v", err)
	}
	// ...and must not be running while the old one writes.
	select {
	case <-started:
		t.Fatal("the new instance started while the old one was writing a spec")
	default:
	}
	tmp := base.tempFiles()
	if len(tmp) != 1 {
		t.Fatalf("temp files during the write: %v", tmp)
	}
	close(release)
	res := <-prepared
	if res.Err != nil {
		t.Fatalf("the old instance's prepare failed: %v", res.Err)
	}
	b := <-started
	if rec, ok := b.store.Get(string(c.UID)); !ok || rec.State != checkpoint.PrepareCompleted {
		t.Fatalf("the new instance does not see the claim: %+v %v", rec, ok)
	}
	again := b.prepare(c)[c.UID]
	if again.Err != nil || again.Devices[0].CDIDeviceIDs[0] != res.Devices[0].CDIDeviceIDs[0] {
		t.Fatalf("the new instance prepared again: %+v, first %+v", again, res)
	}
	if _, err := os.Stat(base.specPath(string(c.UID))); err != nil {
		t.Fatal(err)
	}
}

// Cleanup runs on whichever instance's timer fires, also when the other
// instance holds the lease: a quiet node after a rolling update still
// collects a deleted claim within one interval.
func TestCleanupTakesTheLeaseFromTheOtherInstance(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := unstartedEnv(t, simBackend(t, "dgxh100"), nil)
	a := base.instance(ctx, "old")
	b := base.instance(ctx, "new")
	c := base.claim("a", []alloc{{"gpu", "gpu-2", false}})
	if err := a.prepare(c)[c.UID].Err; err != nil { // the lease goes to a
		t.Fatal(err)
	}
	base.deleteClaim(c)
	if r := b.driver.CleanupOnce(ctx); r.Skipped || r.StaleClaims != 1 {
		t.Fatalf("cleanup on the instance without the lease: %+v", r)
	}
	if _, err := os.Stat(base.specPath(string(c.UID))); !os.IsNotExist(err) {
		t.Fatalf("spec of the deleted claim: %v", err)
	}
}
