package sim

import (
	"context"
	"encoding/json"
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

// slotAt is the slot of a profile at a placement start; Create checks the
// size only when one is given.
func slotAt(parent string, giProfileID, start int) gpu.MIGSlot {
	return gpu.MIGSlot{ParentUUID: parent, GIProfileID: giProfileID, Placement: gpu.Placement{Start: start}}
}

func create(b *Backend, parent string, giProfileID, start int) (gpu.MIGDevice, error) {
	return b.CreateMIGDevice(context.Background(), slotAt(parent, giProfileID, start))
}

func destroy(b *Backend, parent string, d gpu.MIGDevice) error {
	return b.DestroyMIGDevice(context.Background(), gpu.SlotOf(parent, d))
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

func jsonIndent(v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	return append(data, '\n'), err
}
