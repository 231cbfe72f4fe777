package checkpoint

import (
	"fmt"
	"os"
	"strings"
)

// BootIDPath is where Linux publishes the current boot's random ID.
const BootIDPath = "/proc/sys/kernel/random/boot_id"

// ReadBootID returns the boot ID stored at path (normally BootIDPath).
func ReadBootID(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read boot ID: %w", err)
	}
	id := strings.TrimSpace(string(data))
	if id == "" {
		return "", fmt.Errorf("read boot ID: %s is empty", path)
	}
	return id, nil
}
