package plugin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
)

// scrape GETs /metrics from the driver's health handler over HTTP.
func scrape(t *testing.T, e *env) string {
	t.Helper()
	srv := httptest.NewServer(e.driver.HealthHandler(KubeletOptions{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(body)
}

// The counts at /metrics are what the kubelet's calls did: two prepared
// claims (one then unprepared), one refused for its config, one for a
// device another claim holds.
func TestMetricsCountWhatTheCallsDid(t *testing.T) {
	e, _ := mpsEnv(t, "dgxh100")
	a := e.claim("a", []alloc{{"gpu", "gpu-0", false}})
	b := e.claim("b", []alloc{{"gpu", "gpu-1", false}}, mpsConfig(`{}`))
	bad := e.claim("bad", []alloc{{"gpu", "gpu-2", false}}, opaque([]string{"gpu"}, resourceapi.AllocationConfigSourceClaim, `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharin":{}}`))
	taken := e.claim("taken", []alloc{{"gpu", "gpu-0", false}})
	for _, c := range []*resourceapi.ResourceClaim{a, b} {
		if err := e.prepare(c)[c.UID].Err; err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []*resourceapi.ResourceClaim{bad, taken} {
		if err := e.prepare(c)[c.UID].Err; err == nil {
			t.Fatalf("claim %s prepared", c.Name)
		}
	}
	if err := e.unprepare(a)[a.UID]; err != nil {
		t.Fatal(err)
	}
	got := scrape(t, e)
	for _, want := range []string{
		`gpudra_prepare_duration_seconds_count{result="success"} 2`,
		`gpudra_prepare_duration_seconds_count{result="error"} 2`,
		`gpudra_prepare_duration_seconds_bucket{result="success",le="0.0001"}`,
		`gpudra_unprepare_duration_seconds_count{result="success"} 1`,
		`gpudra_errors_total{operation="prepare",reason="invalid"} 1`,
		`gpudra_errors_total{operation="prepare",reason="conflict"} 1`,
		"gpudra_prepared_claims 1",
		`gpudra_devices{state="prepared"} 1`,
		`gpudra_devices{state="free"} 7`,
		`gpudra_devices{state="unavailable"} 0`,
		"gpudra_mps_daemons 1",
		"gpudra_gpu_settings_held 1",
		"go_goroutines",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", got)
	}
}
