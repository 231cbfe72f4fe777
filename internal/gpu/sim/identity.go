package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// gpuUUID derives a GPU's UUID from the node name and its index, so a
// restarted plugin on the same node sees the same GPUs (checkpoints and CDI
// specs keep matching) while other nodes get different ones.
func gpuUUID(nodeName string, index int) string {
	return "GPU-" + hashUUID("gpu", nodeName, strconv.Itoa(index))
}

// migUUID derives a MIG device's UUID from what places it: recreating the
// same profile at the same placement yields the same UUID, as a checkpoint
// written before a restart expects.
func migUUID(nodeName string, parentIndex, giProfileID, placementStart int) string {
	return "MIG-" + hashUUID("mig", nodeName, strconv.Itoa(parentIndex), strconv.Itoa(giProfileID), strconv.Itoa(placementStart))
}

// hashUUID formats the first 16 bytes of a SHA-256 over the parts as
// xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx. The NUL separator keeps ("a","bc")
// and ("ab","c") apart.
func hashUUID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
