package images

import (
	"context"
	"fmt"
	"os/exec"
)

// criNamespace is the containerd namespace the CRI plugin, and so the
// kubelet, looks for images in.
const criNamespace = "k8s.io"

// Import loads the image tar at tarPath into the containerd listening on
// containerdAddress (its socket path) with ctrBin, and unpacks it so the
// first container start does not pay for it. ctr imports only the first
// file it is given, hence one tar per call.
func Import(ctx context.Context, ctrBin, containerdAddress, tarPath string) error {
	cmd := exec.CommandContext(ctx, ctrBin,
		"--address", containerdAddress,
		"--namespace", criNamespace,
		"images", "import", "--no-unpack=false", tarPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("import image %s into containerd at %s: %w: %s", tarPath, containerdAddress, err, out)
	}
	return nil
}
