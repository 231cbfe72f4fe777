package v1beta1

import (
	"bytes"
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
)

// FuzzDecode checks that no input panics the decoder, that a rejected input
// always comes with a message, and that whatever Parse accepts survives a
// marshal/parse round trip unchanged, so the webhook and the plugin (which
// may see a re-serialized copy) agree on it. The seeds in
// testdata/fuzz/FuzzDecode run with every plain `go test`.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := Decode(raw)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("Decode(%q) failed with an empty message", raw)
			}
			return
		}
		cfg.Normalize()
		if err := cfg.Validate(); err != nil {
			if err.Error() == "" {
				t.Fatalf("Validate failed with an empty message for %q", raw)
			}
			return
		}

		encoded, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("accepted config does not marshal: %v", err)
		}
		again, err := Parse(encoded)
		if err != nil {
			t.Fatalf("re-encoded config %s is rejected: %v", encoded, err)
		}
		if !equality.Semantic.DeepEqual(cfg, again) {
			t.Fatalf("round trip changed the config:\n%#v\n%#v", cfg, again)
		}
		reencoded, err := json.Marshal(again)
		if err != nil {
			t.Fatalf("round-tripped config does not marshal: %v", err)
		}
		if !bytes.Equal(encoded, reencoded) {
			t.Fatalf("encoding is not stable:\n%s\n%s", encoded, reencoded)
		}
	})
}
