package plugin

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"
)

// probeTimeout bounds the liveness probe's gRPC call.
const probeTimeout = 3 * time.Second

// HealthHandler serves the DaemonSet's probes:
//
//   - /healthz (liveness): once Start has run, the DRA socket answers a real
//     NodePrepareResources call (with no claims, which changes nothing) and
//     the registration socket still exists. A plugin whose sockets were
//     removed (the plugin directory wiped) or whose gRPC server died can
//     never be called again and must be restarted. While it starts (e.g.
//     waiting for the node lease or the API server) it is alive.
//   - /readyz (readiness): this process published the node's devices (its
//     own publish reached the API server; slices left by an earlier pod do
//     not count), the kubelet accepted its registration, and the
//     registration socket is still there — the kubelet deregisters a
//     plugin whose socket disappears without telling it. Until then a pod
//     the scheduler places here fails with "driver not registered", so a
//     rolling update must not take down the old plugin before that.
func (d *Driver) HealthHandler(opts KubeletOptions) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", d.metrics.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !d.started.Load() {
			_, _ = w.Write([]byte("ok (starting)\n"))
			return
		}
		if err := probeSockets(r.Context(), opts, d.cfg.DriverName); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.published.Load() {
			http.Error(w, "devices not published by this process yet", http.StatusServiceUnavailable)
			return
		}
		if registered := d.registered.Load(); registered == nil || !(*registered)() {
			http.Error(w, "not registered with the kubelet", http.StatusServiceUnavailable)
			return
		}
		if _, err := os.Stat(opts.RegistrarSocketPath(d.cfg.DriverName)); err != nil {
			http.Error(w, "registration socket gone, the kubelet has deregistered the plugin: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// probeSockets checks that the registration socket exists and that the DRA
// socket answers a call the kubelet could make.
func probeSockets(ctx context.Context, opts KubeletOptions, driverName string) error {
	if _, err := os.Stat(opts.RegistrarSocketPath(driverName)); err != nil {
		return fmt.Errorf("registration socket: %w", err)
	}
	socket := opts.SocketPath()
	if _, err := os.Stat(socket); err != nil {
		return fmt.Errorf("DRA socket: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("DRA socket %s: %w", socket, err)
	}
	defer func() { _ = conn.Close() }()
	if _, err := drapb.NewDRAPluginClient(conn).NodePrepareResources(ctx, &drapb.NodePrepareResourcesRequest{}); err != nil {
		return fmt.Errorf("DRA socket %s: NodePrepareResources: %w", socket, err)
	}
	return nil
}
