package sim

import (
	"context"
	"strings"
	"testing"

	"github.com/gpudra/gpudra/internal/gpu"
)

func newProfile(t *testing.T, nodeName, profile string) *Backend {
	t.Helper()
	b, err := New(Options{NodeName: nodeName, Profile: profile})
	if err != nil {
		t.Fatalf("New(%s, %s): %v", nodeName, profile, err)
	}
	return b
}

func newFromConfig(t *testing.T, cfg *Config) *Backend {
	t.Helper()
	b, err := NewFromConfig("node-a", cfg)
	if err != nil {
		t.Fatalf("NewFromConfig: %v", err)
	}
	return b
}

func inventory(t *testing.T, b *Backend) *gpu.Inventory {
	t.Helper()
	inv, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}
	return inv
}

// wantErr fails unless err is nil when want is empty, or contains every
// fragment of want otherwise.
func wantErr(t *testing.T, err error, want ...string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not contain %q", err, w)
		}
	}
}
