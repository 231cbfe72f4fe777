package plugin

import (
	"net/http"
	"os"
)

// HealthHandler serves the DaemonSet's probes:
//
//   - /healthz (liveness): once started, the kubelet's DRA socket still
//     exists. A plugin whose socket was removed (e.g. the plugin directory was
//     wiped) can never be called again and must be restarted. While it starts
//     (e.g. waiting for the API server), it is alive.
//   - /readyz (readiness): the node's devices are published and the kubelet
//     has accepted the plugin's registration. Until then a pod the scheduler
//     places here fails with "driver not registered", and the kubelet
//     retries it only at its next pod sync a minute later, so a rolling
//     update must not take down the old plugin before that.
func (d *Driver) HealthHandler(socketPath string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if _, err := os.Stat(socketPath); err != nil && d.published.Load() {
			http.Error(w, "DRA socket: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.published.Load() {
			http.Error(w, "devices not published yet", http.StatusServiceUnavailable)
			return
		}
		if registered := d.registered.Load(); registered == nil || !(*registered)() {
			http.Error(w, "not registered with the kubelet yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}
