package sim

import (
	"regexp"
	"testing"
)

var (
	gpuUUIDPattern = regexp.MustCompile(`^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	migUUIDPattern = regexp.MustCompile(`^MIG-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// uuids lists every GPU and MIG UUID of a node built from the mixed profile.
func uuids(t *testing.T, nodeName string) []string {
	t.Helper()
	var out []string
	for _, g := range inventory(t, newProfile(t, nodeName, "mixed")).GPUs {
		out = append(out, g.UUID)
		for _, d := range g.MIGDevices {
			out = append(out, d.UUID)
		}
	}
	return out
}

func TestUUIDsAreDeterministicPerNode(t *testing.T) {
	first, again, other := uuids(t, "node-a"), uuids(t, "node-a"), uuids(t, "node-b")
	if len(first) != 9 {
		t.Fatalf("mixed profile has %d GPU and MIG UUIDs, want 9", len(first))
	}
	seen := map[string]bool{}
	for i, u := range first {
		if u != again[i] {
			t.Errorf("UUID %d differs between two starts of the same node: %s, %s", i, u, again[i])
		}
		if u == other[i] {
			t.Errorf("UUID %d is the same on two nodes: %s", i, u)
		}
		if seen[u] {
			t.Errorf("UUID %s appears twice on one node", u)
		}
		seen[u] = true
		if !gpuUUIDPattern.MatchString(u) && !migUUIDPattern.MatchString(u) {
			t.Errorf("UUID %q is not formatted like NVML's", u)
		}
	}
}

func TestMIGUUIDDependsOnPlacement(t *testing.T) {
	tests := []struct {
		name                   string
		node                   string
		parent, profile, start int
	}{
		{"other node", "node-b", 0, 19, 0},
		{"other parent", "node-a", 1, 19, 0},
		{"other profile", "node-a", 0, 20, 0},
		{"other placement", "node-a", 0, 19, 1},
	}
	base := migUUID("node-a", 0, 19, 0)
	if base != migUUID("node-a", 0, 19, 0) {
		t.Fatal("migUUID is not deterministic")
	}
	for _, tt := range tests {
		if migUUID(tt.node, tt.parent, tt.profile, tt.start) == base {
			t.Errorf("%s: same MIG UUID %s", tt.name, base)
		}
	}
}
