package nvcdi

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// DefaultMIGMinorsPath is the driver's table of MIG capability minors: one
// line per capability, "gpu<minor>/gi<id>/access <cap minor>" for a GPU
// instance and "gpu<minor>/gi<id>/ci<id>/access <cap minor>" for a compute
// instance, whose device node is /dev/nvidia-caps/nvidia-cap<cap minor>.
// It is the file the NVIDIA container toolkit reads (internal/nvcaps) to
// build a MIG device's edits; it lives in the host's /proc, not under the
// driver root.
const DefaultMIGMinorsPath = "/proc/driver/nvidia-caps/mig-minors"

// migCapNodes returns the device nodes of the GPU-instance and the
// compute-instance access capabilities of one MIG device, from the
// driver's mig-minors table at path.
func migCapNodes(path string, gpuMinor, giID, ciID int) (gi, ci string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("MIG capability minors: %w", err)
	}
	minors, err := parseMIGMinors(data)
	if err != nil {
		return "", "", fmt.Errorf("MIG capability minors %s: %w", path, err)
	}
	giCap := fmt.Sprintf("gpu%d/gi%d/access", gpuMinor, giID)
	ciCap := fmt.Sprintf("gpu%d/gi%d/ci%d/access", gpuMinor, giID, ciID)
	giMinor, okGI := minors[giCap]
	ciMinor, okCI := minors[ciCap]
	if !okGI || !okCI {
		return "", "", fmt.Errorf("MIG capability minors %s: no entry for %s and %s", path, giCap, ciCap)
	}
	return capNode(giMinor), capNode(ciMinor), nil
}

func capNode(minor int) string { return fmt.Sprintf("%snvidia-cap%d", migCapsDir, minor) }

// parseMIGMinors reads the mig-minors table into capability -> minor.
// Lines that are not "<capability> <minor>" are an error; capabilities
// other than MIG access ones ("config", "monitor") are kept as they are.
func parseMIGMinors(data []byte) (map[string]int, error) {
	out := map[string]int{}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; scanner.Scan(); line++ {
		text := strings.TrimSpace(scanner.Text())
		if text == "" {
			continue
		}
		capability, minorText, ok := strings.Cut(text, " ")
		minor, err := strconv.Atoi(strings.TrimSpace(minorText))
		if !ok || err != nil || minor < 0 {
			return nil, fmt.Errorf("line %d: %q is not \"<capability> <minor>\"", line, text)
		}
		out[capability] = minor
	}
	return out, scanner.Err()
}
