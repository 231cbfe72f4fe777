package plugin

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestHealthHandler(t *testing.T) {
	e := newEnv(t, simBackend(t, "l4x4"))
	socket := filepath.Join(t.TempDir(), "dra.sock")
	h := e.driver.HealthHandler(socket)
	get := func(path string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
	registered := false
	isRegistered := func() bool { return registered }

	// Starting: alive, not ready.
	if got := get("/healthz"); got != http.StatusOK {
		t.Errorf("starting: /healthz = %d", got)
	}
	if got := get("/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("starting: /readyz = %d", got)
	}
	// Published but the kubelet has not accepted the registration: not ready.
	e.driver.published.Store(true)
	e.driver.registered.Store(&isRegistered)
	if got := get("/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("unregistered: /readyz = %d", got)
	}
	registered = true
	if got := get("/readyz"); got != http.StatusOK {
		t.Errorf("registered: /readyz = %d", got)
	}
	// Published but the socket is gone: dead.
	if got := get("/healthz"); got != http.StatusServiceUnavailable {
		t.Errorf("socket missing: /healthz = %d", got)
	}
	if err := os.WriteFile(socket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := get("/healthz"); got != http.StatusOK {
		t.Errorf("socket present: /healthz = %d", got)
	}
}
