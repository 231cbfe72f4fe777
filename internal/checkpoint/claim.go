package checkpoint

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// State is how far preparation of a claim got.
type State string

const (
	// PrepareStarted is recorded before any device is touched, so a crash
	// mid-prepare leaves a record of what may need undoing.
	PrepareStarted State = "PrepareStarted"
	// PrepareCompleted is recorded once the claim's devices and CDI spec are
	// ready and the CDI device IDs have been handed to the kubelet.
	PrepareCompleted State = "PrepareCompleted"
)

func (s State) valid() bool { return s == PrepareStarted || s == PrepareCompleted }

// DeviceType is the kind of device a claim got.
type DeviceType string

// Device types, matching the driver's "type" device attribute.
const (
	DeviceTypeGPU DeviceType = "gpu"
	DeviceTypeMIG DeviceType = "mig"
)

// Claim is the record of one prepared ResourceClaim.
type Claim struct {
	UID       string
	Namespace string
	Name      string
	State     State
	// BootID is the node's boot ID when the claim was prepared. A claim from
	// another boot lost its MIG devices and sharing setup with the reboot.
	BootID     string
	PreparedAt time.Time
	Devices    []Device
	// Settings are the GPU-wide settings the claim holds (a time slice, a
	// compute mode), recorded before they are applied; see
	// internal/sharing.
	Settings []SettingHold
	// MPS are the MPS control daemons prepare starts for the claim,
	// recorded (ID, GPUs) before they start; PID and StartTime once they
	// run.
	MPS []MPSDaemon
}

// MPSDaemon is one MPS control daemon of a claim.
type MPSDaemon struct {
	// ID names the daemon's directory under the plugin's MPS directory.
	ID string
	// Devices are the UUIDs the daemon serves, in CUDA_VISIBLE_DEVICES order.
	Devices []string
	// PID and StartTime identify the process (never a PID alone).
	PID       int
	StartTime uint64
	// ActiveThreadPercentage and PinnedMemoryBytes (by device index) are
	// the limits it was given, to start it again with the same.
	ActiveThreadPercentage *int
	PinnedMemoryBytes      map[int]int64
}

// SettingHold is a claim's hold on one GPU-wide setting.
type SettingHold struct {
	// GPU is the full GPU's UUID.
	GPU string
	// Kind is "timeSlice" or "computeMode"; Value its value by name.
	Kind  string
	Value string
	// Previous is what the GPU had before the first claim holding the
	// setting changed it; "" when unknown (then the default is restored).
	Previous string
}

// Device is one device allocated to a claim and prepared for it.
type Device struct {
	// Request is the name of the claim's request the device was allocated for.
	Request string
	// Pool and Device identify the device in its ResourceSlice.
	Pool   string
	Device string
	// UUID is "GPU-..." or "MIG-..."; empty for a MIG device not created yet.
	UUID string
	Type DeviceType
	// ParentUUID is the physical GPU of a MIG device.
	ParentUUID   string
	CDIDeviceIDs []string
	AdminAccess  bool
	// MIG is set for a device that prepare cuts (dynamic MIG): the MIG
	// device it makes, recorded before it exists. UUID is set once it does.
	MIG *MIGSlot
}

// MIGSlot is where a MIG device that prepare makes goes.
type MIGSlot struct {
	// ParentUUID is the GPU cut.
	ParentUUID string
	// Profile is the profile's name (for people), GIProfileID its ID.
	Profile     string
	GIProfileID int
	// PlacementStart and PlacementSize are the memory slices it spans.
	PlacementStart int
	PlacementSize  int
}

// validate checks what the store relies on: records are keyed by UID, and
// the plugin's recovery logic branches on State.
func (c *Claim) validate() error {
	if c.UID == "" {
		return fmt.Errorf("claim %s/%s: empty UID", c.Namespace, c.Name)
	}
	if !c.State.valid() {
		return fmt.Errorf("claim %s: unknown state %q", c.UID, c.State)
	}
	// The format stores RFC 3339 timestamps, which cannot hold other years.
	if y := c.PreparedAt.UTC().Year(); y < 0 || y > 9999 {
		return fmt.Errorf("claim %s: preparedAt year %d out of range", c.UID, y)
	}
	return nil
}

// normalized returns a deep copy of c in the form the decoder produces, so
// that callers never share slices with the store and a claim read back from
// disk equals the one that was put.
func (c Claim) normalized() Claim {
	c.PreparedAt = c.PreparedAt.UTC()
	if len(c.Settings) == 0 {
		c.Settings = nil
	} else {
		c.Settings = slices.Clone(c.Settings)
	}
	if len(c.MPS) == 0 {
		c.MPS = nil
	} else {
		c.MPS = slices.Clone(c.MPS)
		for i := range c.MPS {
			m := &c.MPS[i]
			m.Devices = slices.Clone(m.Devices)
			if m.ActiveThreadPercentage != nil {
				v := *m.ActiveThreadPercentage
				m.ActiveThreadPercentage = &v
			}
			if len(m.PinnedMemoryBytes) == 0 {
				m.PinnedMemoryBytes = nil
			} else {
				m.PinnedMemoryBytes = maps.Clone(m.PinnedMemoryBytes)
			}
		}
	}
	if len(c.Devices) == 0 {
		c.Devices = nil
		return c
	}
	c.Devices = slices.Clone(c.Devices)
	for i := range c.Devices {
		if m := c.Devices[i].MIG; m != nil {
			copied := *m
			c.Devices[i].MIG = &copied
		}
		if len(c.Devices[i].CDIDeviceIDs) == 0 {
			c.Devices[i].CDIDeviceIDs = nil
		} else {
			c.Devices[i].CDIDeviceIDs = slices.Clone(c.Devices[i].CDIDeviceIDs)
		}
	}
	return c
}
