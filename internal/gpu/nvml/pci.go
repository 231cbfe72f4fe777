package nvml

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"k8s.io/dynamic-resource-allocation/deviceattribute"
	"k8s.io/klog/v2"
)

// normalizePCIBusID turns NVML's bus ID ("00000000:65:00.0", upper-case hex,
// 32-bit domain) into the extended BDF that sysfs and the DRA standard
// attributes use ("0000:65:00.0"). The domain is printed like the kernel does
// (at least four digits), so a domain above 0xffff keeps all its digits
// instead of being cut into a different device's name.
func normalizePCIBusID(nvmlBusID string) (string, error) {
	fields := strings.Split(strings.TrimSpace(nvmlBusID), ":")
	if len(fields) != 3 {
		return "", fmt.Errorf("PCI bus ID %q is not domain:bus:device.function", nvmlBusID)
	}
	devFn := strings.Split(fields[2], ".")
	if len(devFn) != 2 {
		return "", fmt.Errorf("PCI bus ID %q is not domain:bus:device.function", nvmlBusID)
	}
	parts := []struct {
		name string
		text string
		bits int
	}{
		{"domain", fields[0], 32},
		{"bus", fields[1], 8},
		{"device", devFn[0], 5},
		{"function", devFn[1], 3},
	}
	var values [4]uint64
	for i, part := range parts {
		v, err := strconv.ParseUint(part.text, 16, part.bits)
		if err != nil {
			return "", fmt.Errorf("PCI bus ID %q: %s %q: %w", nvmlBusID, part.name, part.text, err)
		}
		values[i] = v
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", values[0], values[1], values[2], values[3]), nil
}

// readTopology returns the GPU's PCIe root complex and NUMA node from sysfs.
// Both are optional placement hints: a VM or container without the sysfs
// entries still has usable GPUs, so a miss gives "" and -1 rather than an
// error.
func readTopology(ctx context.Context, sysfsRoot, busID string) (pcieRoot string, numaNode int) {
	logger := klog.FromContext(ctx)
	fromRoot := deviceattribute.WithFSFromRoot(sysfsRoot)

	if attr, err := deviceattribute.GetPCIeRootAttributeByPCIBusID(busID, fromRoot); err != nil {
		logger.V(2).Info("PCIe root of GPU unknown", "pciBusID", busID, "err", err)
	} else if attr.Value.StringValue != nil {
		pcieRoot = *attr.Value.StringValue
	}

	numaNode = -1
	if attr, err := deviceattribute.GetNUMANodeAttributeByPCIBusID(busID, deviceattribute.ScalarAttribute, fromRoot); err != nil {
		logger.V(2).Info("NUMA node of GPU unknown", "pciBusID", busID, "err", err)
	} else if attr.Value.IntValue != nil {
		numaNode = int(*attr.Value.IntValue)
	}
	return pcieRoot, numaNode
}
