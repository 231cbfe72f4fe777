package nvcdi

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	cdiapi "tags.cncf.io/container-device-interface/pkg/cdi"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/gpudra/gpudra/internal/cdi"
)

// visibleDevicesVoid keeps a legacy nvidia-container-runtime hook, if one is
// installed, from injecting devices of its own: the claim's devices come
// from the CDI spec only.
const visibleDevicesVoid = "NVIDIA_VISIBLE_DEVICES=void"

// requiredControlNodes must be in the common edits before they are cached.
// Without them no CUDA program runs, and they may appear only after the
// plugin starts (nvidia-uvm is loaded on demand); caching edits without them
// would break every later claim.
var requiredControlNodes = []string{"/dev/nvidiactl", "/dev/nvidia-uvm"}

// ClaimEdits returns the edits every claim carries: control device nodes,
// driver libraries, binaries, IPC sockets, firmware, hooks, and
// NVIDIA_VISIBLE_DEVICES=void. They do not depend on the claim's devices.
//
// They are cached for the running driver version and computed again when
// it changes. When the version cannot be read they are computed for every
// claim and not cached: nothing would tell when the cache went stale, and a
// computation costs milliseconds, a stale one every later container.
func (e *Editor) ClaimEdits(_ []cdi.Device) (*cdispec.ContainerEdits, error) {
	version, err := e.driverVersion()
	if err != nil {
		e.commonEdits.forget()
		return e.computeCommonEdits("")
	}
	return e.commonEdits.get(version, func() (*cdispec.ContainerEdits, error) {
		return e.computeCommonEdits(version)
	})
}

// computeCommonEdits asks the toolkit for the edits of driver version. An
// empty version, one that could not be read, uses the current toolkit.
func (e *Editor) computeCommonEdits(version string) (*cdispec.ContainerEdits, error) {
	e.toolkitCallsMu.Lock()
	common, err := e.commonEditsFromToolkit(version)
	e.toolkitCallsMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("driver edits from the NVIDIA container toolkit: %w", err)
	}
	if common == nil || common.ContainerEdits == nil {
		return nil, fmt.Errorf("driver edits from the NVIDIA container toolkit: none returned")
	}
	edits := common.ContainerEdits
	for _, path := range requiredControlNodes {
		if !hasDeviceNode(edits, path) {
			return nil, fmt.Errorf("driver edits: control device node %s not found under dev root %s", path, e.devRoot)
		}
	}
	edits.Env = slices.DeleteFunc(edits.Env, func(env string) bool {
		return strings.HasPrefix(env, "NVIDIA_VISIBLE_DEVICES=")
	})
	edits.Env = append(edits.Env, visibleDevicesVoid)
	if err := e.toHostPaths(edits); err != nil {
		return nil, fmt.Errorf("driver edits: %w", err)
	}
	return edits, nil
}

// commonEditsFromToolkit sets up a new toolkit first when the current one
// was set up under another driver version. It must be called with
// toolkitCallsMu held.
func (e *Editor) commonEditsFromToolkit(version string) (*cdiapi.ContainerEdits, error) {
	if version != "" && version != e.toolkitVersion {
		toolkit, err := e.newToolkit()
		if err != nil {
			return nil, fmt.Errorf("driver %s: %w", version, err)
		}
		e.toolkit, e.toolkitVersion = toolkit, version
	}
	return e.toolkit.GetCommonEdits()
}

// commonEditsCache holds the claim-independent edits of one driver version
// once they have been computed successfully. Errors are not cached: the
// next claim retries.
type commonEditsCache struct {
	mu      sync.Mutex
	version string
	edits   *cdispec.ContainerEdits
}

// get returns a private copy of the edits cached for version, computing
// them first if there are none or they are of another version. Concurrent
// callers wait for one computation.
func (c *commonEditsCache) get(version string, compute func() (*cdispec.ContainerEdits, error)) (*cdispec.ContainerEdits, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.edits == nil || c.version != version {
		edits, err := compute()
		if err != nil {
			return nil, err
		}
		c.edits, c.version = edits, version
	}
	return cloneEdits(c.edits)
}

// forget drops the cached edits.
func (c *commonEditsCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.edits, c.version = nil, ""
}

func hasDeviceNode(edits *cdispec.ContainerEdits, containerPath string) bool {
	return slices.ContainsFunc(edits.DeviceNodes, func(n *cdispec.DeviceNode) bool {
		return n != nil && n.Path == containerPath
	})
}
