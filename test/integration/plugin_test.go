package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"

	"github.com/gpudra/gpudra/internal/cdi"
	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/gpu/sim"
	"github.com/gpudra/gpudra/internal/plugin"
)

const driverName = "gpu.nvidia.com"

// node is one plugin instance with its own files, for one simulated node.
type node struct {
	name    string
	dir     string
	store   *checkpoint.Store
	driver  *plugin.Driver
	kubelet drapb.DRAPluginClient
	opts    plugin.KubeletOptions
	helper  interface{ Stop() }
	stop    func()
}

func startNode(t *testing.T, name, profile string) *node {
	t.Helper()
	return startNodeLogging(t, name, profile, klog.Background())
}

// startNodeLogging is startNode with the plugin (and the kubelet plugin
// helper's slice controller) logging to logger.
func startNodeLogging(t *testing.T, name, profile string, logger klog.Logger) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logger))
	n := &node{name: name, dir: t.TempDir()}
	if _, err := kubeClient.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := sim.New(sim.Options{NodeName: name, Profile: profile})
	if err != nil {
		t.Fatal(err)
	}
	n.store, _, err = checkpoint.Open(ctx, filepath.Join(n.dir, "checkpoint.json"), "boot-1")
	if err != nil {
		t.Fatal(err)
	}
	writer, err := cdi.NewWriter(filepath.Join(n.dir, "cdi"), cdi.DefaultVendor, cdi.DefaultClass, cdi.SimEditor{})
	if err != nil {
		t.Fatal(err)
	}
	n.driver, err = plugin.New(ctx, plugin.Config{DriverName: driverName, NodeName: name, Backend: b, Store: n.store, CDI: writer, Client: kubeClient, CleanupInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pluginDir := filepath.Join(n.dir, "plugin")
	n.opts = plugin.KubeletOptions{PluginDataDir: pluginDir, RegistrarDir: filepath.Join(n.dir, "registry")}
	helper, err := plugin.Start(ctx, n.driver, n.opts)
	if err != nil {
		t.Fatal(err)
	}
	n.helper = helper
	conn, err := grpc.NewClient("unix://"+filepath.Join(pluginDir, "dra.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	n.kubelet = drapb.NewDRAPluginClient(conn)
	n.stop = func() {
		_ = conn.Close()
		helper.Stop()
		cancel()
		_ = kubeClient.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
	}
	t.Cleanup(n.stop)
	return n
}

func (n *node) slices(t *testing.T) []resourceapi.ResourceSlice {
	t.Helper()
	list, err := kubeClient.ResourceV1().ResourceSlices().List(context.Background(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.name})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// allocatedClaim creates a claim and writes an allocation for device into its
// status, as the scheduler would.
func allocatedClaim(t *testing.T, name, nodeName, device string) *resourceapi.ResourceClaim {
	t.Helper()
	ctx := context.Background()
	claim := &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: []resourceapi.DeviceRequest{{
			Name: "gpu", Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: "gpu.nvidia.com"},
		}}}},
	}
	claim, err := kubeClient.ResourceV1().ResourceClaims("default").Create(ctx, claim, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	claim.Status.Allocation = &resourceapi.AllocationResult{Devices: resourceapi.DeviceAllocationResult{
		Results: []resourceapi.DeviceRequestAllocationResult{{Request: "gpu", Driver: driverName, Pool: nodeName, Device: device}},
	}}
	claim, err = kubeClient.ResourceV1().ResourceClaims("default").UpdateStatus(ctx, claim, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return claim
}

func prepareRequest(claims ...*resourceapi.ResourceClaim) *drapb.NodePrepareResourcesRequest {
	req := &drapb.NodePrepareResourcesRequest{}
	for _, c := range claims {
		req.Claims = append(req.Claims, &drapb.Claim{Namespace: c.Namespace, Name: c.Name, Uid: string(c.UID)})
	}
	return req
}

func TestPluginPublishesSlicesToAPIServer(t *testing.T) {
	logger := ktesting.NewLogger(ktesting.NopTL{}, ktesting.NewConfig(ktesting.Verbosity(5), ktesting.BufferLogs(true)))
	n := startNodeLogging(t, "node-slices", "dgxh100", logger)
	var slices []resourceapi.ResourceSlice
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		slices = n.slices(t)
		return len(slices) == 1, nil
	})
	if err != nil {
		t.Fatalf("no ResourceSlice for the node: %v", err)
	}
	s := slices[0]
	if s.Spec.Driver != driverName || s.Spec.Pool.Name != n.name || len(s.Spec.Devices) != 8 {
		t.Fatalf("slice: driver %s pool %s with %d devices", s.Spec.Driver, s.Spec.Pool.Name, len(s.Spec.Devices))
	}
	for i, d := range s.Spec.Devices {
		if want := n.driver.Devices()[i].Name; d.Name != want {
			t.Errorf("device %d is %s, want %s (order must be kept)", i, d.Name, want)
		}
		if !strings.Contains(*d.Attributes["productName"].StringValue, "H100") {
			t.Errorf("%s: productName %s", d.Name, *d.Attributes["productName"].StringValue)
		}
	}
	if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "Node" {
		t.Errorf("slice owner = %+v, want the Node", s.OwnerReferences)
	}

	// The plugin publishes ahead of the library's slice controller; once the
	// controller has synced (about a second later) it must adopt that slice
	// as it is: no second slice, no new generation, no rewrite. Its sync is
	// seen in its log: the comparison of the pool with what exists.
	buffer := logger.GetSink().(ktesting.Underlier).GetBuffer()
	err = wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return strings.Contains(buffer.String(), "Completed comparison"), nil
	})
	if err != nil {
		t.Fatalf("the slice controller never compared the pool: %v", err)
	}
	if log := buffer.String(); !strings.Contains(log, "numChangedMatchedSlices=0") || !strings.Contains(log, "numNewSlices=0") {
		t.Errorf("the slice controller wants to change the early slice:\n%s", log)
	}
	later := n.slices(t)
	if len(later) != 1 || later[0].Name != s.Name || later[0].Spec.Pool.Generation != s.Spec.Pool.Generation || later[0].ResourceVersion != s.ResourceVersion {
		t.Errorf("slice controller changed the early slice: before %s gen %d rv %s, after %d slices (first %s gen %d rv %s)",
			s.Name, s.Spec.Pool.Generation, s.ResourceVersion, len(later), later[0].Name, later[0].Spec.Pool.Generation, later[0].ResourceVersion)
	}
}

func TestAllocatedClaimPreparesOverKubeletSocket(t *testing.T) {
	n := startNode(t, "node-prepare", "dgxh100")
	ctx := context.Background()
	claim := allocatedClaim(t, "prepare-me", n.name, "gpu-3")

	resp, err := n.kubelet.NodePrepareResources(ctx, prepareRequest(claim))
	if err != nil {
		t.Fatal(err)
	}
	got := resp.Claims[string(claim.UID)]
	if got == nil || got.Error != "" {
		t.Fatalf("prepare result %+v", got)
	}
	wantID := "k8s.gpu.nvidia.com/claim=" + string(claim.UID) + "-gpu-3"
	if len(got.Devices) != 1 || got.Devices[0].DeviceName != "gpu-3" || len(got.Devices[0].CdiDeviceIds) != 1 || got.Devices[0].CdiDeviceIds[0] != wantID {
		t.Fatalf("devices %+v, want gpu-3 with CDI ID %s", got.Devices, wantID)
	}
	if rec, ok := n.store.Get(string(claim.UID)); !ok || rec.State != checkpoint.PrepareCompleted {
		t.Fatalf("checkpoint: %+v %v", rec, ok)
	}
	specs, _ := os.ReadDir(filepath.Join(n.dir, "cdi"))
	if len(specs) != 1 {
		t.Fatalf("CDI dir holds %d files, want 1", len(specs))
	}

	// A second claim on the same device is refused, naming both claims.
	other := allocatedClaim(t, "same-device", n.name, "gpu-3")
	resp, err = n.kubelet.NodePrepareResources(ctx, prepareRequest(other))
	if err != nil {
		t.Fatal(err)
	}
	if e := resp.Claims[string(other.UID)].Error; !strings.Contains(e, "default/same-device") || !strings.Contains(e, "default/prepare-me") {
		t.Errorf("conflict error %q does not name both claims", e)
	}

	unresp, err := n.kubelet.NodeUnprepareResources(ctx, &drapb.NodeUnprepareResourcesRequest{Claims: prepareRequest(claim).Claims})
	if err != nil || unresp.Claims[string(claim.UID)].Error != "" {
		t.Fatalf("unprepare: %v %+v", err, unresp)
	}
	if specs, _ := os.ReadDir(filepath.Join(n.dir, "cdi")); len(specs) != 0 {
		t.Fatalf("CDI files left after unprepare: %d", len(specs))
	}
	if _, ok := n.store.Get(string(claim.UID)); ok {
		t.Fatal("checkpoint entry left after unprepare")
	}
}

func TestCleanupUnpreparesClaimDeletedFromAPIServer(t *testing.T) {
	n := startNode(t, "node-cleanup", "dgxh100")
	ctx := context.Background()
	claim := allocatedClaim(t, "deleted-while-prepared", n.name, "gpu-5")
	resp, err := n.kubelet.NodePrepareResources(ctx, prepareRequest(claim))
	if err != nil || resp.Claims[string(claim.UID)].Error != "" {
		t.Fatalf("prepare: %v %+v", err, resp)
	}
	if err := kubeClient.ResourceV1().ResourceClaims("default").Delete(ctx, claim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := n.driver.CleanupOnce(ctx); r.StaleClaims != 1 {
		t.Fatalf("cleanup unprepared %d claims, want 1", r.StaleClaims)
	}
	if _, ok := n.store.Get(string(claim.UID)); ok {
		t.Fatal("claim still checkpointed")
	}
	// The device can be prepared for a new claim right away.
	again := allocatedClaim(t, "after-cleanup", n.name, "gpu-5")
	resp, err = n.kubelet.NodePrepareResources(ctx, prepareRequest(again))
	if err != nil || resp.Claims[string(again.UID)].Error != "" {
		t.Fatalf("prepare after cleanup: %v %+v", err, resp)
	}
}
