// Package prepare is a load generator that speaks the kubelet's side of the
// DRA protocol: NodePrepareResources / NodeUnprepareResources on a plugin's
// socket, for ResourceClaims that exist in a real API server with an
// allocation computed by the scheduler's own allocator over the slices the
// plugin published. It measures what the kubelet would see, for any DRA
// kubelet plugin, not only gpudra's.
package prepare

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"

	"github.com/gpudra/gpudra/internal/bench/allocate"
	"github.com/gpudra/gpudra/internal/bench/stats"
)

// Options of one benchmark run.
type Options struct {
	DriverName      string `json:"driverName"`
	Socket          string `json:"socket"`
	NodeName        string `json:"nodeName"`
	DeviceClass     string `json:"deviceClass"`
	DevicesPerClaim int    `json:"devicesPerClaim"`
	Claims          int    `json:"claims"`
	// Concurrency is how many calls are in flight at once, as the kubelet
	// does for pods starting in parallel.
	Concurrency   int `json:"concurrency"`
	ClaimsPerCall int `json:"claimsPerCall"`
	// PluginPID, when set, is read for peak RSS and CPU time.
	PluginPID int `json:"pluginPID,omitempty"`
}

// Phase is the measurement of prepare or unprepare calls.
type Phase struct {
	// Latency of one gRPC call, as the kubelet sees it.
	Latency stats.Summary `json:"latency"`
	// ClaimsPerSecond over the wall time of the phase, summed over rounds.
	ClaimsPerSecond float64 `json:"claimsPerSecond"`
	Calls           int     `json:"calls"`
	wall            time.Duration
	samples         []time.Duration
}

// Result of a run.
type Result struct {
	Options   Options       `json:"options"`
	Rounds    int           `json:"rounds"`
	Prepare   Phase         `json:"prepare"`
	Unprepare Phase         `json:"unprepare"`
	Plugin    *ProcessUsage `json:"plugin,omitempty"`
}

// Run creates Claims claims in a fresh namespace in rounds of as many as the
// node's devices hold at once, prepares and unprepares each round, and
// deletes everything it created.
func Run(ctx context.Context, client kubernetes.Interface, opts Options) (*Result, error) {
	if opts.Claims < 1 || opts.Concurrency < 1 || opts.ClaimsPerCall < 1 || opts.DevicesPerClaim < 1 {
		return nil, errors.New("claims, concurrency, claims per call and devices per claim must be at least 1")
	}
	node, err := client.CoreV1().Nodes().Get(ctx, opts.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", opts.NodeName, err)
	}
	sliceList, err := client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{
		FieldSelector: "spec.driver=" + opts.DriverName + ",spec.nodeName=" + opts.NodeName,
	})
	if err != nil {
		return nil, err
	}
	if len(sliceList.Items) == 0 {
		return nil, fmt.Errorf("driver %s published no ResourceSlices for node %s", opts.DriverName, opts.NodeName)
	}
	slices := make([]*resourceapi.ResourceSlice, len(sliceList.Items))
	for i := range sliceList.Items {
		slices[i] = &sliceList.Items[i]
	}
	class, err := client.ResourceV1().DeviceClasses().Get(ctx, opts.DeviceClass, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("DeviceClass %s: %w", opts.DeviceClass, err)
	}

	conn, err := grpc.NewClient("unix://"+opts.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	kubelet := drapb.NewDRAPluginClient(conn)

	ns, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "gpudra-bench-"}}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = client.CoreV1().Namespaces().Delete(context.WithoutCancel(ctx), ns.Name, metav1.DeleteOptions{})
	}()

	b := &bench{opts: opts, client: client, kubelet: kubelet, ns: ns.Name, node: node, slices: slices, classes: allocate.NewClassLister([]*resourceapi.DeviceClass{class})}
	res := &Result{Options: opts}
	for done := 0; done < opts.Claims; res.Rounds++ {
		n, err := b.round(ctx, res, done, opts.Claims-done)
		if err != nil {
			return nil, err
		}
		done += n
	}
	for _, p := range []*Phase{&res.Prepare, &res.Unprepare} {
		p.Latency = stats.Summarize(p.samples)
		p.ClaimsPerSecond = float64(opts.Claims) / p.wall.Seconds()
	}
	if opts.PluginPID > 0 {
		u, err := readUsage(opts.PluginPID)
		if err != nil {
			return nil, fmt.Errorf("plugin process %d: %w", opts.PluginPID, err)
		}
		res.Plugin = &u
	}
	return res, nil
}

type bench struct {
	opts    Options
	client  kubernetes.Interface
	kubelet drapb.DRAPluginClient
	ns      string
	node    *corev1.Node
	slices  []*resourceapi.ResourceSlice
	classes allocate.ClassLister
}

// round allocates up to max claims that fit on the node at once, creates
// them with their allocation, prepares them all, unprepares them all, and
// deletes them. Only the gRPC calls are timed.
func (b *bench) round(ctx context.Context, res *Result, offset, maxClaims int) (int, error) {
	claims := make([]*resourceapi.ResourceClaim, maxClaims)
	for i := range claims {
		claims[i] = &resourceapi.ResourceClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, Name: fmt.Sprintf("claim-%05d", offset+i)},
			Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{
				Name: "req",
				Exactly: &resourceapi.ExactDeviceRequest{
					DeviceClassName: b.opts.DeviceClass, AllocationMode: resourceapi.DeviceAllocationModeExactCount, Count: int64(b.opts.DevicesPerClaim),
				},
			}}}},
		}
	}
	n, err := allocateDisjoint(ctx, b.node, b.slices, b.classes, claims)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("not even one claim of %d device(s) of class %s fits on node %s", b.opts.DevicesPerClaim, b.opts.DeviceClass, b.opts.NodeName)
	}
	claims = claims[:n]
	for i, c := range claims {
		alloc := c.Status.Allocation
		created, err := b.client.ResourceV1().ResourceClaims(b.ns).Create(ctx, c, metav1.CreateOptions{})
		if err != nil {
			return 0, err
		}
		created.Status.Allocation = alloc
		if claims[i], err = b.client.ResourceV1().ResourceClaims(b.ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return 0, err
		}
	}

	var calls [][]*drapb.Claim
	for start := 0; start < len(claims); start += b.opts.ClaimsPerCall {
		var call []*drapb.Claim
		for _, c := range claims[start:min(start+b.opts.ClaimsPerCall, len(claims))] {
			call = append(call, &drapb.Claim{Namespace: c.Namespace, Name: c.Name, Uid: string(c.UID)})
		}
		calls = append(calls, call)
	}
	if err := b.phase(ctx, &res.Prepare, calls, b.prepare); err != nil {
		return 0, err
	}
	if err := b.phase(ctx, &res.Unprepare, calls, b.unprepare); err != nil {
		return 0, err
	}
	err = b.client.ResourceV1().ResourceClaims(b.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	return n, err
}

// phase runs the calls with Concurrency workers and records each call's
// latency and the phase's wall time.
func (b *bench) phase(ctx context.Context, p *Phase, calls [][]*drapb.Claim, do func(context.Context, []*drapb.Claim) error) error {
	work := make(chan []*drapb.Claim)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for range min(b.opts.Concurrency, len(calls)) {
		wg.Go(func() {
			for call := range work {
				t0 := time.Now()
				err := do(ctx, call)
				d := time.Since(t0)
				mu.Lock()
				p.samples = append(p.samples, d)
				p.Calls++
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	for _, c := range calls {
		work <- c
	}
	close(work)
	wg.Wait()
	p.wall += time.Since(start)
	return firstErr
}

func (b *bench) prepare(ctx context.Context, claims []*drapb.Claim) error {
	resp, err := b.kubelet.NodePrepareResources(ctx, &drapb.NodePrepareResourcesRequest{Claims: claims})
	if err != nil {
		return fmt.Errorf("NodePrepareResources: %w", err)
	}
	for _, c := range claims {
		r, ok := resp.Claims[c.Uid]
		if !ok {
			return fmt.Errorf("NodePrepareResources: no result for claim %s/%s", c.Namespace, c.Name)
		}
		if r.Error != "" {
			return fmt.Errorf("NodePrepareResources: claim %s/%s: %s", c.Namespace, c.Name, r.Error)
		}
	}
	return nil
}

func (b *bench) unprepare(ctx context.Context, claims []*drapb.Claim) error {
	resp, err := b.kubelet.NodeUnprepareResources(ctx, &drapb.NodeUnprepareResourcesRequest{Claims: claims})
	if err != nil {
		return fmt.Errorf("NodeUnprepareResources: %w", err)
	}
	for _, c := range claims {
		if r, ok := resp.Claims[c.Uid]; !ok || r.Error != "" {
			return fmt.Errorf("NodeUnprepareResources: claim %s/%s: %v", c.Namespace, c.Name, r)
		}
	}
	return nil
}
