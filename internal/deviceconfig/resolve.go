// Package deviceconfig decides which opaque config applies to each device
// allocated to one claim. It is pure: the claim, the driver name and a lookup
// of the node's device types go in; one resolved config per allocated device
// comes out, or an error a user can act on. The kubelet plugin calls it at
// prepare time and acts on the result; explain and simulation tools can call
// it with no node at all.
//
// The rules follow the upstream NVIDIA driver, so existing claims behave the
// same:
//
//   - Only allocation results and opaque configs for our driver count.
//   - DeviceClass configs rank below claim configs.
//   - Within one source, a config that names the device's request outranks
//     one that names no request, and otherwise the later config wins.
//     (Upstream lets a later unnamed claim config override an earlier named
//     one; the specific one winning is what users expect. Class configs are
//     always named by the allocator, so this cannot lift a class config over
//     a claim config.)
//   - A config naming "req" also names its subrequests "req/<sub>" (upstream
//     matches the exact name only).
//   - A config that names no request applies only to devices of its own type
//     (GpuConfig to full GPUs, MigDeviceConfig to MIG devices); one that
//     names the request but is of the other type is an error.
//   - A device that no config reaches gets exclusive use.
//
// Every config for our driver is decoded and validated, even one that ends up
// applying to nothing, so a typo is reported rather than silently ignored.
package deviceconfig

import (
	"fmt"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/gpudra/gpudra/api/resource.nvidia.com/v1beta1"
)

// DeviceType is the kind of an allocatable device, as published in its
// "type" attribute.
type DeviceType string

// Device types that opaque configs exist for.
const (
	GPU DeviceType = "gpu"
	MIG DeviceType = "mig"
)

// DeviceTypeFunc says what type of device a name from an allocation result
// is on this node, and false if the node has no such device.
type DeviceTypeFunc func(device string) (DeviceType, bool)

// Device is one allocated device of our driver with the config that applies
// to it.
type Device struct {
	Request     string
	Pool        string
	Device      string
	AdminAccess bool
	// Config is normalized and valid. Devices that got their config from the
	// same entry (or the same default) share one Config value, so callers
	// that set up sharing per config (one MPS daemon per config) can group
	// devices by it. It must not be modified.
	Config v1beta1.Config
}

// Resolve returns the devices of claim's allocation that belong to
// driverName, in allocation-result order, each with the config that applies
// to it. Errors name the claim and, where one is at fault, the config
// (its index in status.allocation.devices.config), its source and requests,
// the device and the field.
func Resolve(claim *resourceapi.ResourceClaim, driverName string, deviceType DeviceTypeFunc) ([]Device, error) {
	if claim.Status.Allocation == nil {
		return nil, fmt.Errorf("claim %s is not allocated", klog.KObj(claim))
	}
	candidates, err := decodeCandidates(claim, driverName)
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", klog.KObj(claim), err)
	}
	defaults := map[DeviceType]v1beta1.Config{
		GPU: v1beta1.DefaultGpuConfig(),
		MIG: v1beta1.DefaultMigDeviceConfig(),
	}

	var devices []Device
	for _, result := range claim.Status.Allocation.Devices.Results {
		if result.Driver != driverName {
			continue
		}
		typ, ok := deviceType(result.Device)
		if !ok {
			return nil, fmt.Errorf("claim %s: device %q of request %q (pool %q) is not a device of this node",
				klog.KObj(claim), result.Device, result.Request, result.Pool)
		}
		config, ok := defaults[typ]
		if !ok {
			return nil, fmt.Errorf("claim %s: device %q of request %q has type %q, which takes no config",
				klog.KObj(claim), result.Device, result.Request, typ)
		}
		if winner := bestCandidate(candidates, result.Request, typ); winner != nil {
			if want := configType(winner.config); want != typ {
				return nil, fmt.Errorf("claim %s: %s is a %s, which applies to %s devices, but device %q of request %q is a %s device",
					klog.KObj(claim), winner, winner.config.Kind(), want, result.Device, result.Request, typ)
			}
			config = winner.config
		}
		devices = append(devices, Device{
			Request:     result.Request,
			Pool:        result.Pool,
			Device:      result.Device,
			AdminAccess: ptr.Deref(result.AdminAccess, false),
			Config:      config,
		})
	}
	return devices, nil
}

// configType is the device type a config kind applies to.
func configType(config v1beta1.Config) DeviceType {
	switch config.(type) {
	case *v1beta1.MigDeviceConfig:
		return MIG
	default:
		return GPU
	}
}
