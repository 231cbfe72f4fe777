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
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/klog/v2"

	"github.com/gpudra/gpudra/internal/checkpoint"
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
	other := &env{t: e.t, dir: e.dir, cdiDir: e.cdiDir, backend: e.backend, client: e.client, events: &eventLog{}, lease: lease}
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
	base := &env{t: t, dir: t.TempDir(), backend: simBackend(t, "dgxh100"), client: fake.NewClientset(), events: &eventLog{}}
	base.cdiDir = filepath.Join(base.dir, "cdi")
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
