package integration

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// probe returns the status code of one probe path.
func probe(h http.Handler, path string) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code
}

func waitProbe(t *testing.T, h http.Handler, path string, want int) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return probe(h, path) == want, nil
	})
	if err != nil {
		t.Fatalf("%s never answered %d (last %d)", path, want, probe(h, path))
	}
}

// The probes follow the real sockets: liveness makes a gRPC call over the
// DRA socket, readiness needs this process's publish, the kubelet's
// acceptance of the registration and the registration socket. Before the
// fix both answered 200 with the sockets gone.
func TestProbesFollowSocketsAndRegistration(t *testing.T) {
	n := startNode(t, "node-probes", "l4x4")
	h := n.driver.HealthHandler(n.opts)
	waitProbe(t, h, "/healthz", http.StatusOK)
	if got := probe(h, "/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before the kubelet accepted the registration = %d", got)
	}

	// Play the kubelet: accept the registration over the registration socket.
	conn, err := grpc.NewClient("unix://"+n.opts.RegistrarSocketPath(driverName), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := registerapi.NewRegistrationClient(conn).NotifyRegistrationStatus(context.Background(), &registerapi.RegistrationStatus{PluginRegistered: true}); err != nil {
		t.Fatal(err)
	}
	waitProbe(t, h, "/readyz", http.StatusOK)

	// The registration socket disappears: the kubelet deregisters the
	// plugin, which must stop being ready and alive.
	if err := os.Remove(n.opts.RegistrarSocketPath(driverName)); err != nil {
		t.Fatal(err)
	}
	if got := probe(h, "/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz without the registration socket = %d", got)
	}
	if got := probe(h, "/healthz"); got != http.StatusServiceUnavailable {
		t.Errorf("/healthz without the registration socket = %d", got)
	}
}

// The gRPC server dies (the helper stopped) while the socket file is left:
// liveness fails because the call fails, not because a file is missing.
func TestLivenessNeedsAnsweringGRPCServer(t *testing.T) {
	n := startNode(t, "node-probes-grpc", "l4x4")
	h := n.driver.HealthHandler(n.opts)
	waitProbe(t, h, "/healthz", http.StatusOK)
	n.helper.Stop()
	// Leave files where the sockets were, as a wedged server would.
	for _, p := range []string{n.opts.SocketPath(), n.opts.RegistrarSocketPath(driverName)} {
		if _, err := os.Stat(p); os.IsNotExist(err) {
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := probe(h, "/healthz"); got != http.StatusServiceUnavailable {
		t.Fatalf("/healthz with a dead gRPC server = %d", got)
	}
}

// A record without a claim name (from before names were kept) is
// collected once its claim is gone. A real API server answers a GET with
// an empty name "resource name may not be empty", not NotFound; the fake
// clientset hid that, and the record held its device forever.
func TestCleanupCollectsRecordWithoutClaimName(t *testing.T) {
	n := startNode(t, "node-noname", "dgxh100")
	ctx := context.Background()
	claim := allocatedClaim(t, "nameless", n.name, "gpu-6")
	resp, err := n.kubelet.NodePrepareResources(ctx, prepareRequest(claim))
	if err != nil || resp.Claims[string(claim.UID)].Error != "" {
		t.Fatalf("prepare: %v %+v", err, resp)
	}
	rec, ok := n.store.Get(string(claim.UID))
	if !ok {
		t.Fatal("not recorded")
	}
	rec.Name, rec.Namespace = "", ""
	if err := n.store.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	// Still live: kept.
	if r := n.driver.CleanupOnce(ctx); r.StaleClaims != 0 {
		t.Fatalf("cleanup removed a live nameless claim: %+v", r)
	}
	if err := kubeClient.ResourceV1().ResourceClaims("default").Delete(ctx, claim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := n.driver.CleanupOnce(ctx); r.StaleClaims != 1 {
		t.Fatalf("cleanup: %+v, want the nameless record collected", r)
	}
	if _, ok := n.store.Get(string(claim.UID)); ok {
		t.Fatal("nameless record still there")
	}
	if _, err := os.Stat(n.dir + "/cdi/" + "k8s.gpu.nvidia.com-claim_" + string(claim.UID) + ".json"); !os.IsNotExist(err) {
		t.Fatalf("spec of the collected claim: %v", err)
	}
}
