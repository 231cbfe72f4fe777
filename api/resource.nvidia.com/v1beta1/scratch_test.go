package v1beta1

import ("testing";"time";"encoding/json")

func TestScratch(t *testing.T) {
	for _, q := range []string{`"1e999999999"`, `"1E18"`, `1e30`, `"9223372036854775807Ei"`} {
		start := time.Now()
		cfg, err := Parse([]byte(`{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS","mpsConfig":{"defaultPinnedDeviceMemoryLimit":` + q + `}}}`))
		var out []byte
		if err == nil { out, _ = json.Marshal(cfg) }
		t.Logf("%s: %v %d bytes %s", q, err, len(out), time.Since(start))
	}
}
