package cdi

import (
	"fmt"
	"strings"

	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

// simHostNode backs every simulated device node. It exists on every host,
// and reads and writes on it are harmless.
const simHostNode = "/dev/null"

// SimEditor is the Editor for the sim backend: it gives a container on a
// machine without GPUs the signs of the GPUs it was allocated, the UUIDs in
// NVIDIA_VISIBLE_DEVICES and /dev/nvidia* nodes, so that tests and demos can
// check what the container got.
type SimEditor struct{}

var _ Editor = SimEditor{}

// ClaimEdits sets NVIDIA_VISIBLE_DEVICES to the devices' UUIDs, in order,
// and adds the control node /dev/nvidiactl.
func (SimEditor) ClaimEdits(devs []Device) (*cdispec.ContainerEdits, error) {
	uuids := make([]string, 0, len(devs))
	for _, dev := range devs {
		uuid := dev.UUID()
		if uuid == "" {
			return nil, fmt.Errorf("device %s: no UUID", dev.Name)
		}
		uuids = append(uuids, uuid)
	}
	return &cdispec.ContainerEdits{
		Env:         []string{"NVIDIA_VISIBLE_DEVICES=" + strings.Join(uuids, ",")},
		DeviceNodes: []*cdispec.DeviceNode{simNode("/dev/nvidiactl")},
	}, nil
}

// DeviceEdits adds /dev/nvidia<minor> for the device's GPU (the parent GPU
// for a MIG device, as on real hardware).
func (SimEditor) DeviceEdits(dev Device) (*cdispec.ContainerEdits, error) {
	if dev.GPU.Minor < 0 {
		return nil, fmt.Errorf("device %s: negative minor number %d", dev.Name, dev.GPU.Minor)
	}
	return &cdispec.ContainerEdits{
		DeviceNodes: []*cdispec.DeviceNode{simNode(fmt.Sprintf("/dev/nvidia%d", dev.GPU.Minor))},
	}, nil
}

// simNode leaves type and major/minor unset: the runtime takes them from
// the host node when it injects the device.
func simNode(path string) *cdispec.DeviceNode {
	return &cdispec.DeviceNode{Path: path, HostPath: simHostNode}
}
