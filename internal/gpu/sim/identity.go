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

// migUUID derives the UUID of a MIG device a Config declares from what
// places it, so the same config builds the same node (and a plugin without
// a state directory sees the same devices after a restart).
func migUUID(nodeName string, parentIndex, giProfileID, placementStart int) string {
	return "MIG-" + hashUUID("mig", nodeName, strconv.Itoa(parentIndex), strconv.Itoa(giProfileID), strconv.Itoa(placementStart))
}

// createdMIGUUID is the UUID of the serial-th MIG device made on the node
// after it was built: every device made gets a new one, as on hardware.
func createdMIGUUID(nodeName string, serial int) string {
	return "MIG-" + hashUUID("mig-created", nodeName, strconv.Itoa(serial))
}

// hashUUID formats the first 16 bytes of a SHA-256 over the parts as
// xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx. The NUL separator keeps ("a","bc")
// and ("ab","c") apart.
func hashUUID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
