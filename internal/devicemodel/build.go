// Package devicemodel turns a GPU inventory into the DRA devices a node
// publishes. It is pure: the same inventory always gives the same devices,
// in the same order, with the same names. The scheduler takes the first
// device that fits, so a stable order is part of the contract.
//
// Names, attributes and capacities follow the upstream NVIDIA DRA driver so
// that existing DeviceClasses and CEL selectors keep working (see
// shared/notes/compat-surface.md). Beyond upstream's current set, devices
// also carry "pcieBusID" (the name upstream used before the standard
// resource.kubernetes.io/pciBusID), GPUs "minor" (upstream up to v25.3) and
// MIG devices "parentMinor"; the NVML
// index is never published, because it shifts when a GPU drops off the bus.
package devicemodel

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/dynamic-resource-allocation/deviceattribute"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/utils/ptr"

	"github.com/gpudra/gpudra/internal/gpu"
)

// Build returns the devices of an inventory in publishing order: GPUs by
// PCI bus ID, and within a GPU by device name. A GPU in MIG mode publishes
// its existing, complete MIG devices instead of itself.
func Build(inv *gpu.Inventory) ([]resourceapi.Device, error) {
	gpus := make([]*gpu.GPU, 0, len(inv.GPUs))
	for i := range inv.GPUs {
		gpus = append(gpus, &inv.GPUs[i])
	}
	sort.SliceStable(gpus, func(i, j int) bool { return gpus[i].PCIBusID < gpus[j].PCIBusID })

	// The driver version is node-wide: check it once, not per GPU.
	driverVersion, err := SemverFromDriverVersion(inv.DriverVersion)
	if err != nil {
		return nil, err
	}

	var devices []resourceapi.Device
	for _, g := range gpus {
		parentAttrs, err := gpuAttributes(inv, g, driverVersion)
		if err != nil {
			return nil, err
		}
		var own []resourceapi.Device
		if !g.MIGEnabled {
			own = append(own, wholeGPUDevice(g, parentAttrs))
		} else {
			for j := range g.MIGDevices {
				// A GPU instance without a compute instance (a create that
				// died half-way) cannot run anything; recovery removes it.
				if !g.MIGDevices[j].Incomplete {
					own = append(own, migDevice(g, &g.MIGDevices[j], parentAttrs))
				}
			}
		}
		sort.Slice(own, func(i, j int) bool { return own[i].Name < own[j].Name })
		devices = append(devices, own...)
	}
	if err := checkLimits(devices); err != nil {
		return nil, err
	}
	return devices, nil
}

// DriverResources wraps devices into the one pool of a node, named after the
// node, split into as many slices as the API's per-slice device limit needs.
// An empty device list still yields one empty slice: "no devices" is
// different from "driver not running".
func DriverResources(nodeName string, devices []resourceapi.Device) *resourceslice.DriverResources {
	var slices []resourceslice.Slice
	for start := 0; start < len(devices); start += resourceapi.ResourceSliceMaxDevices {
		end := min(start+resourceapi.ResourceSliceMaxDevices, len(devices))
		slices = append(slices, resourceslice.Slice{Devices: devices[start:end]})
	}
	if len(slices) == 0 {
		slices = []resourceslice.Slice{{}}
	}
	return &resourceslice.DriverResources{
		Pools: map[string]resourceslice.Pool{nodeName: {Slices: slices}},
	}
}

// checkLimits fails for a device with more attributes and capacities than
// the API takes.
func checkLimits(devices []resourceapi.Device) error {
	for i := range devices {
		if n := len(devices[i].Attributes) + len(devices[i].Capacity); n > resourceapi.ResourceSliceMaxAttributesAndCapacitiesPerDevice {
			return fmt.Errorf("device %s: %d attributes and capacities exceed the API limit of %d", devices[i].Name, n, resourceapi.ResourceSliceMaxAttributesAndCapacitiesPerDevice)
		}
	}
	return nil
}

// wholeGPUDevice is a GPU published whole.
func wholeGPUDevice(g *gpu.GPU, parentAttrs map[resourceapi.QualifiedName]resourceapi.DeviceAttribute) resourceapi.Device {
	attrs := withType(parentAttrs, TypeGPU, g.UUID)
	// Upstream published "minor" on GPUs up to v25.3; it is stable (the N
	// of /dev/nvidiaN), unlike the NVML index.
	attrs["minor"] = integer(g.Minor)
	return resourceapi.Device{
		Name:       GPUDeviceName(g),
		Attributes: attrs,
		Capacity: map[resourceapi.QualifiedName]resourceapi.DeviceCapacity{
			"memory": bytesCapacity(g.MemoryBytes),
		},
	}
}

// migDevice is a MIG device of g. One that does not exist yet (dynamic
// MIG: m.UUID is empty) has no uuid attribute, as upstream publishes it.
func migDevice(g *gpu.GPU, m *gpu.MIGDevice, parentAttrs map[resourceapi.QualifiedName]resourceapi.DeviceAttribute) resourceapi.Device {
	attrs := withType(parentAttrs, TypeMIG, m.UUID)
	if m.UUID == "" {
		delete(attrs, "uuid")
	}
	attrs["parentUUID"] = str(g.UUID)
	// The parent's minor, not its NVML index: the index shifts when a GPU
	// drops off the bus, and a selector pinned to it would silently move to
	// another GPU. Upstream published parentIndex up to v25.3 and removed it
	// for that reason; parentMinor matches the "gpu-<minor>" in the name.
	attrs["parentMinor"] = integer(g.Minor)
	attrs["profile"] = str(m.Profile.Name)
	p := m.Profile
	capacity := map[resourceapi.QualifiedName]resourceapi.DeviceCapacity{
		"multiprocessors": countCapacity(p.Multiprocessors),
		"copyEngines":     countCapacity(p.CopyEngines),
		"decoders":        countCapacity(p.Decoders),
		"encoders":        countCapacity(p.Encoders),
		"jpegEngines":     countCapacity(p.JPEGEngines),
		"ofaEngines":      countCapacity(p.OFAEngines),
		"memory":          bytesCapacity(p.MemoryBytes),
	}
	// One capacity of 1 per memory slice the placement occupies, as upstream
	// publishes for existing MIG devices: a selector can ask for a placement.
	for i := m.Placement.Start; i < m.Placement.Start+m.Placement.Size; i++ {
		capacity[MemorySliceCapacityName(i)] = countCapacity(1)
	}
	return resourceapi.Device{
		Name:       MIGDeviceName(g, m),
		Attributes: attrs,
		Capacity:   capacity,
	}
}

// MemorySliceCapacityName names the capacity a MIG device publishes for
// memory slice i of its parent ("memorySlice0"). Capacity names must be C
// identifiers; the dynamic-MIG counters use "memory-slice-<i>" instead.
func MemorySliceCapacityName(i int) resourceapi.QualifiedName {
	return resourceapi.QualifiedName(fmt.Sprintf("memorySlice%d", i))
}

// gpuAttributes are the attributes a GPU and each of its MIG devices share.
func gpuAttributes(inv *gpu.Inventory, g *gpu.GPU, driverVersion string) (map[resourceapi.QualifiedName]resourceapi.DeviceAttribute, error) {
	attrs := map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
		"productName":           str(g.ProductName),
		"brand":                 str(g.Brand),
		"architecture":          str(g.Architecture),
		"cudaComputeCapability": version(g.CUDAComputeCapability.String()),
		"cudaDriverVersion":     version(inv.CUDADriverVersion.String()),
		"driverVersion":         version(driverVersion),
	}
	if g.AddressingMode != "" {
		attrs["addressingMode"] = str(g.AddressingMode)
	}

	busID, err := deviceattribute.GetPCIBusIDAttribute(g.PCIBusID)
	if err != nil {
		return nil, fmt.Errorf("GPU %s: PCI bus ID: %w", g.UUID, err)
	}
	attrs[busID.Name] = busID.Value
	// The unqualified name upstream published before it moved to the
	// standard attribute (v25.3 to v25.8); selectors written then use it.
	attrs["pcieBusID"] = str(*busID.Value.StringValue)
	if g.PCIeRoot != "" {
		attrs[deviceattribute.StandardDeviceAttributePCIeRoot] = str(g.PCIeRoot)
	}
	if g.NUMANode >= 0 {
		numa, err := deviceattribute.GetNUMANodeAttribute(g.NUMANode, deviceattribute.ScalarAttribute)
		if err != nil {
			return nil, fmt.Errorf("GPU %s: NUMA node: %w", g.UUID, err)
		}
		attrs[numa.Name] = numa.Value
	}
	return attrs, nil
}

// withType copies the shared attributes and adds the per-device ones.
func withType(shared map[resourceapi.QualifiedName]resourceapi.DeviceAttribute, typ, uuid string) map[resourceapi.QualifiedName]resourceapi.DeviceAttribute {
	attrs := make(map[resourceapi.QualifiedName]resourceapi.DeviceAttribute, len(shared)+4)
	for k, v := range shared {
		attrs[k] = v
	}
	attrs["type"] = str(typ)
	attrs["uuid"] = str(uuid)
	return attrs
}

// SemverFromDriverVersion turns an NVIDIA driver version into the strict
// semantic version DRA version attributes need: "535.104.05" has a leading
// zero that semver forbids, and "470.82" lacks a patch number.
func SemverFromDriverVersion(v string) (string, error) {
	parts := strings.Split(strings.TrimSpace(v), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return "", fmt.Errorf("driver version %q: want major.minor[.patch]", v)
	}
	nums := [3]uint64{}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return "", fmt.Errorf("driver version %q: part %d (%q) is not a number", v, i+1, p)
		}
		nums[i] = n
	}
	return fmt.Sprintf("%d.%d.%d", nums[0], nums[1], nums[2]), nil
}

func str(s string) resourceapi.DeviceAttribute {
	return resourceapi.DeviceAttribute{StringValue: ptr.To(s)}
}

func integer(n int) resourceapi.DeviceAttribute {
	return resourceapi.DeviceAttribute{IntValue: ptr.To(int64(n))}
}

func version(s string) resourceapi.DeviceAttribute {
	return resourceapi.DeviceAttribute{VersionValue: ptr.To(s)}
}

func bytesCapacity(b uint64) resourceapi.DeviceCapacity {
	return resourceapi.DeviceCapacity{Value: *resource.NewQuantity(int64(b), resource.BinarySI)}
}

func countCapacity(n int) resourceapi.DeviceCapacity {
	return resourceapi.DeviceCapacity{Value: *resource.NewQuantity(int64(n), resource.DecimalSI)}
}
