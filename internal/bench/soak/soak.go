// Package soak runs the node plugin through many prepare/unprepare cycles
// against a real API server and reports whether its resident memory, open
// file descriptors and goroutines stay flat: what `gpudra bench soak` does.
package soak

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"

	"github.com/gpudra/gpudra/internal/bench/crash"
)

// Options configure Run.
type Options struct {
	Cluster crash.ClusterOptions
	// Binary is the gpudra-kubelet-plugin to soak.
	Binary   string
	NodeName string
	// Cycles of prepare + unprepare of one claim; Warmup cycles run before
	// the first sample.
	Cycles, Warmup int
	// Samples taken between the first and the last (evenly spaced).
	Samples int
	// WorkDir holds the plugin's directories (removed afterwards).
	WorkDir string
}

// Sample is the plugin process at one point.
type Sample struct {
	Cycle      int   `json:"cycle"`
	RSSBytes   int64 `json:"rssBytes"`
	FDs        int   `json:"fds"`
	Goroutines int   `json:"goroutines"`
}

// Result is a soak's samples and verdict.
type Result struct {
	Options Options  `json:"options"`
	Samples []Sample `json:"samples"`
	// Flat: each of RSS, fds and goroutines ends within Tolerance of its
	// value after the warm-up.
	Flat      bool    `json:"flat"`
	Tolerance float64 `json:"tolerance"`
	Seconds   float64 `json:"seconds"`
}

// Tolerance is how much a measure may grow from start to end and still be
// called flat.
const Tolerance = 0.10

const driverName = "gpu.nvidia.com"

// Run soaks the plugin.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.NodeName == "" {
		opts.NodeName = "soak-node"
	}
	if opts.Samples < 2 {
		opts.Samples = 2
	}
	work, err := os.MkdirTemp(opts.WorkDir, "gpudra-soak-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(work) }()
	cluster, err := crash.StartCluster(ctx, crash.ClusterOptions{Kubeconfig: opts.Cluster.Kubeconfig, Repo: opts.Cluster.Repo, Dir: work})
	if err != nil {
		return nil, err
	}
	defer cluster.Close()
	if err := cluster.EnsureNode(ctx, opts.NodeName); err != nil {
		return nil, err
	}
	ns, deleteNS, err := cluster.Namespace(ctx, "gpudra-soak-")
	if err != nil {
		return nil, err
	}
	defer deleteNS()

	pprofAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(work, "node-")
	if err != nil {
		return nil, err
	}
	p, err := crash.StartPlugin(ctx, crash.PluginOptions{
		Binary: opts.Binary, NodeName: opts.NodeName, Kubeconfig: cluster.Kubeconfig, Dir: dir,
		Args: []string{"--pprof-addr=" + pprofAddr, "--cleanup-interval=1m", "-v=0"},
	})
	if err != nil {
		return nil, err
	}
	defer p.Kill()
	if p.Exited() {
		return nil, fmt.Errorf("plugin exited at start: %w\n%s", p.ExitError(), p.LogTail())
	}

	claims, err := makeClaims(ctx, cluster, ns, opts.NodeName)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range claims {
			_ = cluster.Client.ResourceV1().ResourceClaims(ns).Delete(context.WithoutCancel(ctx), c.Name, metav1.DeleteOptions{})
		}
	}()

	res := &Result{Options: opts, Tolerance: Tolerance}
	sampleAt := map[int]bool{opts.Warmup: true, opts.Warmup + opts.Cycles: true}
	for i := 1; i < opts.Samples-1; i++ {
		sampleAt[opts.Warmup+i*opts.Cycles/(opts.Samples-1)] = true
	}
	start := time.Now()
	for cycle := 0; cycle <= opts.Warmup+opts.Cycles; cycle++ {
		if sampleAt[cycle] {
			s, err := sample(ctx, p.PID(), pprofAddr)
			if err != nil {
				return nil, err
			}
			s.Cycle = cycle - opts.Warmup
			res.Samples = append(res.Samples, s)
		}
		if cycle == opts.Warmup+opts.Cycles {
			break
		}
		if err := prepareUnprepare(ctx, p.Kubelet, claims[cycle%len(claims)]); err != nil {
			return nil, fmt.Errorf("cycle %d: %w\n%s", cycle, err, p.LogTail())
		}
	}
	res.Seconds = time.Since(start).Seconds()
	first, last := res.Samples[0], res.Samples[len(res.Samples)-1]
	res.Flat = within(first.RSSBytes, last.RSSBytes) && within(int64(first.FDs), int64(last.FDs)) && within(int64(first.Goroutines), int64(last.Goroutines))
	return res, nil
}

func within(start, end int64) bool {
	return float64(end) <= float64(start)*(1+Tolerance)
}

// makeClaims creates one claim per GPU of the simulated DGX H100.
func makeClaims(ctx context.Context, cluster *crash.Cluster, ns, node string) ([]*resourceapi.ResourceClaim, error) {
	var out []*resourceapi.ResourceClaim
	for i := range 8 {
		c := &resourceapi.ResourceClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("soak-%d", i)},
			Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{
				Name: "gpu", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: "gpu.nvidia.com"},
			}}}},
		}
		created, err := cluster.Client.ResourceV1().ResourceClaims(ns).Create(ctx, c, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		created.Status.Allocation = &resourceapi.AllocationResult{Devices: resourceapi.DeviceAllocationResult{
			Results: []resourceapi.DeviceRequestAllocationResult{{Request: "gpu", Driver: driverName, Pool: node, Device: fmt.Sprintf("gpu-%d", i)}},
		}}
		allocated, err := cluster.Client.ResourceV1().ResourceClaims(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{})
		if err != nil {
			return nil, err
		}
		out = append(out, allocated)
	}
	return out, nil
}

func prepareUnprepare(ctx context.Context, kubelet drapb.DRAPluginClient, c *resourceapi.ResourceClaim) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req := []*drapb.Claim{{Namespace: c.Namespace, Name: c.Name, Uid: string(c.UID)}}
	resp, err := kubelet.NodePrepareResources(ctx, &drapb.NodePrepareResourcesRequest{Claims: req})
	if err != nil {
		return err
	}
	if r := resp.Claims[string(c.UID)]; r == nil || r.Error != "" {
		return fmt.Errorf("prepare %s: %v", c.Name, r)
	}
	uresp, err := kubelet.NodeUnprepareResources(ctx, &drapb.NodeUnprepareResourcesRequest{Claims: req})
	if err != nil {
		return err
	}
	if r := uresp.Claims[string(c.UID)]; r == nil || r.Error != "" {
		return fmt.Errorf("unprepare %s: %v", c.Name, r)
	}
	return nil
}

// sample reads the process's resident memory and descriptors from /proc and
// its goroutines from its pprof endpoint.
func sample(ctx context.Context, pid int, pprofAddr string) (Sample, error) {
	var s Sample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return s, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			s.RSSBytes = kb * 1024
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.FDs = len(fds)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+pprofAddr+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return s, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, fmt.Errorf("goroutine profile: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	head, err := io.ReadAll(io.LimitReader(resp.Body, 200))
	if err != nil {
		return s, err
	}
	// "goroutine profile: total 42"
	first, _, _ := strings.Cut(string(head), "\n")
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(first, "goroutine profile: total")))
	if err != nil {
		return s, fmt.Errorf("goroutine profile header %q: %w", first, err)
	}
	s.Goroutines = n
	return s, nil
}

// freeLoopbackAddr picks a free port on 127.0.0.1.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}
