package plugin

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

// The probes against real sockets and a real API server are in
// test/integration (TestProbesFollowSocketsAndRegistration); this covers
// the states before Start.
func TestHealthHandlerBeforeStart(t *testing.T) {
	e := newEnv(t, simBackend(t, "l4x4"))
	dir := t.TempDir()
	h := e.driver.HealthHandler(KubeletOptions{PluginDataDir: filepath.Join(dir, "plugin"), RegistrarDir: filepath.Join(dir, "registry")})
	get := func(path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	// Starting (waiting for the lease or the API server): alive, not ready.
	if got := get("/healthz"); got != http.StatusOK {
		t.Errorf("starting: /healthz = %d", got)
	}
	if got := get("/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("starting: /readyz = %d", got)
	}
	// Started, but the sockets are not there: dead.
	e.driver.started.Store(true)
	if got := get("/healthz"); got != http.StatusServiceUnavailable {
		t.Errorf("started without sockets: /healthz = %d", got)
	}
	// Published and registered, but the registration socket is gone: the
	// kubelet has deregistered the plugin.
	e.driver.published.Store(true)
	registered := func() bool { return true }
	e.driver.registered.Store(&registered)
	if got := get("/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("registration socket missing: /readyz = %d", got)
	}
}
