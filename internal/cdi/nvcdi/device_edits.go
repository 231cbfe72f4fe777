package nvcdi

import (
	"fmt"
	"path/filepath"

	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/gpudra/gpudra/internal/cdi"
)

// migCapsDir holds the capability nodes that grant access to a MIG
// device's GPU instance and compute instance.
const migCapsDir = "/dev/nvidia-caps/"

// DeviceEdits returns the edits for one device: for a full GPU its device
// node /dev/nvidia<minor> (and DRM nodes, if any); for a MIG device the
// parent's node plus the capability nodes of its GPU and compute instance.
func (e *Editor) DeviceEdits(dev cdi.Device) (*cdispec.ContainerEdits, error) {
	uuid := dev.UUID()
	if uuid == "" {
		return nil, fmt.Errorf("device %s: no UUID to look it up by", dev.Name)
	}

	e.toolkitCallsMu.Lock()
	specs, err := e.toolkit.GetDeviceSpecsByID(uuid)
	e.toolkitCallsMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("device %s (%s): edits from the NVIDIA container toolkit: %w", dev.Name, uuid, err)
	}
	// The toolkit names each device once per configured namer; with the
	// default single namer a UUID yields exactly one spec.
	if len(specs) != 1 {
		return nil, fmt.Errorf("device %s (%s): the NVIDIA container toolkit returned %d device specs, want 1", dev.Name, uuid, len(specs))
	}
	edits := specs[0].ContainerEdits

	if err := e.checkDeviceNodes(dev, &edits); err != nil {
		return nil, fmt.Errorf("device %s (%s): %w", dev.Name, uuid, err)
	}
	if err := e.toHostPaths(&edits); err != nil {
		return nil, fmt.Errorf("device %s (%s): %w", dev.Name, uuid, err)
	}
	return &edits, nil
}

// checkDeviceNodes refuses edits without the nodes the device needs. The
// toolkit skips nodes it cannot find (after a reboot they may not exist
// yet); a spec without them would start the container without its GPU, or
// with another GPU's node if NVML and our inventory disagree on the minor.
func (e *Editor) checkDeviceNodes(dev cdi.Device, edits *cdispec.ContainerEdits) error {
	gpuNode := fmt.Sprintf("/dev/nvidia%d", dev.GPU.Minor)
	if !hasDeviceNode(edits, gpuNode) {
		return fmt.Errorf("device node %s not in the edits (missing under dev root %s, or NVML reports another minor; found %v)",
			gpuNode, e.devRoot, deviceNodePaths(edits))
	}
	if dev.MIG == nil {
		return nil
	}
	// The access nodes of this instance, not any two capability nodes: a
	// spec with another instance's nodes would start the container without
	// access to its own MIG device.
	giNode, ciNode, err := migCapNodes(e.migMinorsPath, dev.GPU.Minor, dev.MIG.GIID, dev.MIG.CIID)
	if err != nil {
		return fmt.Errorf("MIG capability nodes for GPU instance %d / compute instance %d: %w", dev.MIG.GIID, dev.MIG.CIID, err)
	}
	var missing []string
	for _, node := range []string{giNode, ciNode} {
		if !hasDeviceNode(edits, node) {
			missing = append(missing, node)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("MIG capability nodes %v for GPU instance %d / compute instance %d not in the edits (missing under %s; found %v)",
			missing, dev.MIG.GIID, dev.MIG.CIID, filepath.Join(e.devRoot, migCapsDir), deviceNodePaths(edits))
	}
	return nil
}

func deviceNodePaths(edits *cdispec.ContainerEdits) []string {
	var paths []string
	for _, n := range edits.DeviceNodes {
		if n != nil {
			paths = append(paths, n.Path)
		}
	}
	return paths
}
