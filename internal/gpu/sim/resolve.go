package sim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gpudra/gpudra/internal/gpu"
)

// ResolveGPU turns what an operator types into the GPU UUID a fault is
// recorded under: "gpu-<minor>" (the device name gpudra publishes), an
// enumeration index ("3"), or a UUID. The GPU may be in inv.GPUs or in
// inv.Unavailable, so a lost GPU is cleared by the name it had. A nil
// inventory resolves UUIDs only, unchecked.
func ResolveGPU(inv *gpu.Inventory, ref string) (string, error) {
	if strings.HasPrefix(ref, "MIG-") {
		return "", fmt.Errorf("%s is a MIG device; faults apply to whole GPUs", ref)
	}
	isUUID := strings.HasPrefix(ref, "GPU-")
	if inv == nil {
		if isUUID {
			return ref, nil
		}
		return "", fmt.Errorf("resolving %q needs the node's inventory (a sim profile or config and the node name); a GPU UUID needs none", ref)
	}

	var match func(index, minor int, uuid string) bool
	minorText, byMinor := strings.CutPrefix(ref, "gpu-")
	switch {
	case isUUID:
		match = func(_, _ int, uuid string) bool { return uuid == ref }
	case byMinor:
		minor, err := strconv.Atoi(minorText)
		if err != nil || minor < 0 {
			return "", fmt.Errorf("%q is not a GPU name: want gpu-<minor>, e.g. gpu-3", ref)
		}
		match = func(_, m int, _ string) bool { return m == minor }
	default:
		index, err := strconv.Atoi(ref)
		if err != nil || index < 0 {
			return "", fmt.Errorf("%q is not a GPU: want gpu-<minor>, an index or a GPU UUID", ref)
		}
		match = func(i, _ int, _ string) bool { return i == index }
	}

	for _, g := range inv.GPUs {
		if match(g.Index, g.Minor, g.UUID) {
			return g.UUID, nil
		}
	}
	for _, u := range inv.Unavailable {
		if u.UUID != "" && match(u.Index, u.Minor, u.UUID) {
			return u.UUID, nil
		}
	}
	return "", fmt.Errorf("no GPU %s on this node (%s)", ref, gpuNames(inv))
}

// gpuNames lists the node's GPU names, for an error message.
func gpuNames(inv *gpu.Inventory) string {
	var minors []int
	for _, g := range inv.GPUs {
		minors = append(minors, g.Minor)
	}
	for _, u := range inv.Unavailable {
		if u.Minor >= 0 {
			minors = append(minors, u.Minor)
		}
	}
	if len(minors) == 0 {
		return "it has no GPUs"
	}
	slices.Sort(minors)
	names := make([]string, len(minors))
	for i, m := range minors {
		names[i] = fmt.Sprintf("gpu-%d", m)
	}
	return "it has " + strings.Join(names, ", ")
}
