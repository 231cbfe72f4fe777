package crash

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Options configure Run.
type Options struct {
	Cluster ClusterOptions
	// Binary is a gpudra-kubelet-plugin built with -tags failpoints.
	Binary string
	// Runs is how many crash runs to make; Seed the first run's seed (run i
	// uses Seed+i).
	Runs int
	Seed uint64
	// NodeName of the simulated node (a DGX H100).
	NodeName string
	// DynamicMIG runs the plugin in dynamic MIG mode: claims get MIG
	// devices (and whole GPUs) that prepare cuts, and the checks include
	// the simulated node's MIG devices.
	DynamicMIG bool
	// SimMPS, when set, runs in sharing mode: each claim is time-sliced
	// (a random interval) or gets an MPS daemon (this gpudra-sim-mps), and
	// the checks include the GPUs' settings and the daemons (checkSharing).
	SimMPS string
	// WorkDir holds the runs' directories; each is removed after its run.
	WorkDir string
	// FailedDir, when set, receives a copy of every violating run's
	// directory.
	FailedDir string
	// Break, for testing the harness, is called after the recovery of each
	// run with the run's directories, before the check; it may damage them.
	Break func(opts PluginOptions) `json:"-"`
	// Log receives one line per run and per violation; may be nil.
	Log func(format string, args ...any) `json:"-"`
}

// Violation is one invariant a run found broken.
type Violation struct {
	Run       int    `json:"run"`
	Seed      uint64 `json:"seed"`
	Failpoint string `json:"failpoint"`
	What      string `json:"what"`
}

// Result is what Run found.
type Result struct {
	Runs int `json:"runs"`
	// Crashes counts runs in which the plugin was killed at its failpoint.
	Crashes int `json:"crashes"`
	// Steps are the distinct failpoints at which a crash happened, with
	// how many runs crashed there.
	Steps map[string]int `json:"steps"`
	// Calibration is how often each failpoint was hit in the clean run.
	Calibration map[string]int `json:"calibration"`
	Violations  []Violation    `json:"violations"`
}

// Summary is the harness's last line.
func (r *Result) Summary() string {
	return fmt.Sprintf("runs=%d steps=%d violations=%d", r.Runs, len(r.Steps), len(r.Violations))
}

const (
	driverName = "gpu.nvidia.com"
	// claimsPerRun claim the node's 8 GPUs at most half, so that every
	// claim can be given another free GPU.
	claimsPerRun = 4
	gpus         = 8
	opsPerRun    = 10
)

// Run makes opts.Runs crash runs against one API server.
func Run(ctx context.Context, opts Options) (*Result, error) {
	logf := opts.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if opts.NodeName == "" {
		opts.NodeName = "crash-node"
	}
	if _, err := os.Stat(opts.Binary); err != nil {
		return nil, fmt.Errorf("plugin binary: %w", err)
	}
	work, err := os.MkdirTemp(opts.WorkDir, "gpudra-crash-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(work) }()
	cluster, err := StartCluster(ctx, ClusterOptions{Kubeconfig: opts.Cluster.Kubeconfig, Repo: opts.Cluster.Repo, Dir: work, Log: opts.Cluster.Log})
	if err != nil {
		return nil, err
	}
	defer cluster.Close()
	if err := cluster.EnsureNode(ctx, opts.NodeName); err != nil {
		return nil, err
	}
	ns, deleteNS, err := cluster.Namespace(ctx, "gpudra-crash-")
	if err != nil {
		return nil, err
	}
	defer deleteNS()
	h := &harness{opts: opts, cluster: cluster, ns: ns, work: work, logf: logf}

	res := &Result{Steps: map[string]int{}}
	res.Calibration, err = h.calibrate(ctx)
	if err != nil {
		return nil, fmt.Errorf("calibration run: %w", err)
	}
	if len(res.Calibration) == 0 {
		return nil, errors.New("calibration run hit no failpoint: is the plugin built with -tags failpoints?")
	}
	names := make([]string, 0, len(res.Calibration))
	for name := range res.Calibration {
		names = append(names, name)
	}
	sort.Strings(names)
	for i := range opts.Runs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		seed := opts.Seed + uint64(i)
		rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
		fp := names[rng.IntN(len(names))]
		nth := 1 + rng.IntN(res.Calibration[fp])
		crashedAt, violations, err := h.run(ctx, i, rng, fp, nth)
		if err != nil {
			return res, fmt.Errorf("run %d (seed %d, failpoint %s:%d): %w", i, seed, fp, nth, err)
		}
		res.Runs++
		if crashedAt != "" {
			res.Crashes++
			res.Steps[crashedAt]++
		}
		for _, what := range violations {
			res.Violations = append(res.Violations, Violation{Run: i, Seed: seed, Failpoint: fmt.Sprintf("%s:%d", fp, nth), What: what})
			logf("VIOLATION run=%d seed=%d failpoint=%s:%d: %s", i, seed, fp, nth, what)
		}
		logf("run %d seed=%d failpoint=%s:%d crashed=%q violations=%d", i, seed, fp, nth, crashedAt, len(violations))
	}
	return res, nil
}

type harness struct {
	opts    Options
	cluster *Cluster
	ns      string
	work    string
	logf    func(string, ...any)
}

// calibrate runs one fixed sequence without a crash and counts the
// failpoints it hits.
func (h *harness) calibrate(ctx context.Context) (map[string]int, error) {
	rng := rand.New(rand.NewPCG(0, 0))
	dir, err := os.MkdirTemp(h.work, "calibrate-")
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, pid := range runDaemons(dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = os.RemoveAll(dir)
	}()
	logPath := filepath.Join(dir, "failpoints.log")
	popts := h.pluginOptions(dir, rng, "GPUDRA_FAILPOINT_LOG="+logPath)
	k, err := h.newClaims(ctx, "cal", rng)
	if err != nil {
		return nil, err
	}
	defer h.deleteClaims(k)
	p, err := StartPlugin(ctx, popts)
	if err != nil {
		return nil, err
	}
	defer p.Kill()
	for range opsPerRun {
		if err := h.step(ctx, p, k, rng); err != nil {
			return nil, err
		}
	}
	if err := h.unprepareAll(ctx, p, k); err != nil {
		return nil, err
	}
	hits, _, err := readFailpointLog(logPath)
	return hits, err
}

// run is one crash run: start with the failpoint armed, replay random
// kubelet calls until the plugin dies (or the calls end), restart without
// it, retry what the kubelet owes, check, unprepare everything, check.
func (h *harness) run(ctx context.Context, i int, rng *rand.Rand, fp string, nth int) (crashedAt string, violations []string, err error) {
	dir, err := os.MkdirTemp(h.work, fmt.Sprintf("run-%04d-", i))
	if err != nil {
		return "", nil, err
	}
	defer func() {
		if len(violations) > 0 && h.opts.FailedDir != "" {
			_ = copyDir(dir, filepath.Join(h.opts.FailedDir, filepath.Base(dir)))
		}
		// Whatever daemon a violation left must not outlive the run.
		for _, pid := range runDaemons(dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = os.RemoveAll(dir)
	}()
	logPath := filepath.Join(dir, "failpoints.log")
	popts := h.pluginOptions(dir, rng, fmt.Sprintf("GPUDRA_FAILPOINT=%s:%d", fp, nth), "GPUDRA_FAILPOINT_LOG="+logPath)
	k, err := h.newClaims(ctx, fmt.Sprintf("r%d", i), rng)
	if err != nil {
		return "", nil, err
	}
	defer h.deleteClaims(k)

	p, err := StartPlugin(ctx, popts)
	if err != nil {
		return "", nil, err
	}
	for step := 0; step < opsPerRun && !p.Exited(); step++ {
		err := h.step(ctx, p, k, rng)
		var claimErr claimErrors
		switch {
		case err == nil:
		case errors.As(err, &claimErr):
			violations = append(violations, fmt.Sprintf("step %d: a claim failed: %v", step, err))
		default:
			p.Kill()
			return "", nil, fmt.Errorf("step %d: %w", step, err)
		}
	}
	if p.Exited() && !p.Killed() {
		return "", append(violations, fmt.Sprintf("plugin exited without a crash: %v\n%s", p.ExitError(), p.LogTail())), nil
	}
	if p.Killed() {
		_, crashes, err := readFailpointLog(logPath)
		if err != nil {
			return "", nil, err
		}
		if len(crashes) > 0 {
			crashedAt = crashes[0]
		}
	}
	p.Kill()

	// Sometimes the pod of a claim whose prepare died went while the plugin
	// was down: the kubelet then owes an unprepare instead (what the crash
	// left, a MIG device or a spec, must go with it).
	for _, c := range k.claims {
		if c.pending == "prepare" && rng.IntN(3) == 0 {
			c.pending = "unprepare"
		}
	}

	// The plugin comes back (the kubelet restarts the container) without
	// the failpoint, and the kubelet repeats what did not succeed.
	popts.Env = nil
	p, err = StartPlugin(ctx, popts)
	if err != nil {
		return crashedAt, nil, err
	}
	defer p.Kill()
	if p.Exited() {
		return crashedAt, append(violations, fmt.Sprintf("restarted plugin exited: %v\n%s", p.ExitError(), p.LogTail())), nil
	}
	if err := k.retryPending(ctx, p); err != nil {
		return crashedAt, append(violations, fmt.Sprintf("after the restart: %v", err)), nil
	}
	if h.opts.Break != nil {
		h.opts.Break(popts)
	}
	violations = append(violations, checkState(popts, k, false)...)
	// The pods go: the kubelet unprepares every claim it tried to prepare.
	if err := h.unprepareAll(ctx, p, k); err != nil {
		violations = append(violations, fmt.Sprintf("final unprepare: %v", err))
	}
	violations = append(violations, checkState(popts, k, true)...)
	if p.Exited() {
		violations = append(violations, fmt.Sprintf("plugin died after the restart: %v", p.ExitError()))
	}
	if err := p.Stop(); err != nil {
		violations = append(violations, fmt.Sprintf("graceful stop: %v", err))
	}
	return crashedAt, violations, nil
}

func (h *harness) pluginOptions(dir string, rng *rand.Rand, env ...string) PluginOptions {
	// Sometimes the cleanup loop runs while calls are in flight.
	cleanup := "1h"
	if rng.IntN(3) == 0 {
		cleanup = "100ms"
	}
	return PluginOptions{
		Binary: h.opts.Binary, NodeName: h.opts.NodeName, Kubeconfig: h.cluster.Kubeconfig, Dir: dir,
		Args: []string{"--cleanup-interval=" + cleanup}, Env: env, DynamicMIG: h.opts.DynamicMIG, SimMPS: h.opts.SimMPS,
	}
}

// newClaims creates claimsPerRun claims allocated on distinct random GPUs.
func (h *harness) newClaims(ctx context.Context, prefix string, rng *rand.Rand) (*kubelet, error) {
	k := &kubelet{client: h.cluster.Client, driver: driverName}
	devices := rng.Perm(gpus)
	for i := range claimsPerRun {
		c := &resourceapi.ResourceClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: fmt.Sprintf("%s-c%d", prefix, i)},
			Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{
				Name: "gpu", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: "gpu.nvidia.com"},
			}}}},
		}
		created, err := h.cluster.Client.ResourceV1().ResourceClaims(h.ns).Create(ctx, c, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		config := h.sharingConfig(rng)
		created.Status.Allocation = allocation(driverName, h.opts.NodeName, h.device(rng, devices[i]), config)
		allocated, err := h.cluster.Client.ResourceV1().ResourceClaims(h.ns).UpdateStatus(ctx, created, metav1.UpdateOptions{})
		if err != nil {
			return nil, err
		}
		k.claims = append(k.claims, &claimState{claim: allocated, config: config})
	}
	return k, nil
}

func (h *harness) deleteClaims(k *kubelet) {
	for _, c := range k.claims {
		_ = h.cluster.Client.ResourceV1().ResourceClaims(h.ns).Delete(context.Background(), c.claim.Name, metav1.DeleteOptions{})
	}
}

// step makes one random kubelet call (or API change). A call that fails
// because the plugin died returns no error: the run looks at the process.
func (h *harness) step(ctx context.Context, p *Plugin, k *kubelet, rng *rand.Rand) error {
	c := k.claims[rng.IntN(len(k.claims))]
	var err error
	switch {
	case !c.prepared && c.pending == "" && rng.IntN(4) == 0:
		// Deallocated and allocated elsewhere while no pod used it.
		if g := freeGPU(k, rng); g >= 0 {
			return k.reallocate(ctx, c, h.device(rng, g), h.opts.NodeName)
		}
		return nil
	case !c.prepared:
		batch := []*claimState{c}
		if other := k.claims[rng.IntN(len(k.claims))]; other != c && !other.prepared && rng.IntN(2) == 0 {
			batch = append(batch, other) // two claims of one pod
		}
		err = k.call(ctx, p, "prepare", batch)
	case rng.IntN(4) == 0:
		err = k.call(ctx, p, "prepare", []*claimState{c}) // a second pod, or a container restart
	default:
		err = k.call(ctx, p, "unprepare", []*claimState{c})
	}
	var claimErr claimErrors
	if err != nil && !errors.As(err, &claimErr) && p.WaitExit(2*time.Second) {
		return nil // the call died with the plugin
	}
	return err
}

func (h *harness) unprepareAll(ctx context.Context, p *Plugin, k *kubelet) error {
	var todo []*claimState
	for _, c := range k.claims {
		if c.touched {
			todo = append(todo, c)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	return k.call(ctx, p, "unprepare", todo)
}

// freeGPU returns a GPU no claim is allocated a device of, or -1.
func freeGPU(k *kubelet, rng *rand.Rand) int {
	used := map[int]bool{}
	for _, c := range k.claims {
		used[gpuOf(allocatedDevice(c.claim))] = true
	}
	var free []int
	for i := range gpus {
		if !used[i] {
			free = append(free, i)
		}
	}
	if len(free) == 0 {
		return -1
	}
	return free[rng.IntN(len(free))]
}

// gpuOf is the GPU of a device name (gpu-3, gpu-3-mig-...: 3).
func gpuOf(device string) int {
	n, _, _ := strings.Cut(strings.TrimPrefix(device, "gpu-"), "-")
	i, err := strconv.Atoi(n)
	if err != nil {
		return -1
	}
	return i
}

// dynamicDevices are the device names a claim may be allocated on one GPU
// of a dgxh100-mig node in dynamic mode: the GPU whole and MIG devices of
// every published profile at several placements.
var dynamicDevices = []string{
	"", "-mig-1g10gb-19-0", "-mig-1g10gb-19-6", "-mig-2g20gb-14-2", "-mig-3g40gb-9-4", "-mig-4g40gb-5-0", "-mig-7g80gb-0-0",
}

// sharingConfigs are what a claim asks for in sharing mode.
var sharingConfigs = []string{
	`{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"TimeSlicing","timeSlicingConfig":{"interval":"Short"}}}`,
	`{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"TimeSlicing","timeSlicingConfig":{"interval":"Long"}}}`,
	`{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS","mpsConfig":{"defaultActiveThreadPercentage":50,"defaultPinnedDeviceMemoryLimit":"20Gi"}}}`,
	`{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS"}}`,
}

// sharingConfig picks a claim's config: none outside sharing mode.
func (h *harness) sharingConfig(rng *rand.Rand) string {
	if h.opts.SimMPS == "" {
		return ""
	}
	return sharingConfigs[rng.IntN(len(sharingConfigs))]
}

// device picks what a claim on GPU g is allocated.
func (h *harness) device(rng *rand.Rand, g int) string {
	name := fmt.Sprintf("gpu-%d", g)
	if h.opts.DynamicMIG {
		name += dynamicDevices[rng.IntN(len(dynamicDevices))]
	}
	return name
}

// readFailpointLog counts the hits per failpoint and lists the crashes.
func readFailpointLog(path string) (map[string]int, []string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]int{}, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = f.Close() }()
	hits := map[string]int{}
	var crashes []string
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if name, ok := strings.CutPrefix(line, "crash "); ok {
			crashes = append(crashes, name)
		} else if line != "" {
			hits[line]++
		}
	}
	return hits, crashes, scanner.Err()
}

// copyDir copies a failed run's files for inspection (sockets skipped).
func copyDir(from, to string) error {
	return filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o750)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o600)
	})
}

// SortedSteps lists the failpoints crashed at, by name.
func (r *Result) SortedSteps() []string {
	out := make([]string, 0, len(r.Steps))
	for s := range r.Steps {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}
