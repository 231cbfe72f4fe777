package sim

import "fmt"

// pciSlot is where a GPU sits in the node's PCIe tree.
type pciSlot struct {
	busID    string
	pcieRoot string
	numaNode int
}

// slotLayout places GPUs on the given bus numbers (domain 0), gpusPerRoot
// GPUs behind each root complex (named after the root's bus number) and
// gpusPerNUMA GPUs on each NUMA node, in order.
func slotLayout(buses, roots []int, gpusPerRoot, gpusPerNUMA int) []pciSlot {
	slots := make([]pciSlot, len(buses))
	for i, bus := range buses {
		slots[i] = pciSlot{
			busID:    fmt.Sprintf("0000:%02x:00.0", bus),
			pcieRoot: fmt.Sprintf("pci0000:%02x", roots[i/gpusPerRoot]),
			numaNode: i / gpusPerNUMA,
		}
	}
	return slots
}

// maxGeneratedGPUs bounds an inventory file: the generated layout spaces GPUs
// eight buses apart inside one PCI domain.
const maxGeneratedGPUs = 32

// generatedLayout places n GPUs of an inventory file: a root complex per GPU
// pair, and the first half of the GPUs on NUMA node 0, the rest on node 1,
// like a two-socket server.
func generatedLayout(n int) []pciSlot {
	buses := make([]int, n)
	roots := make([]int, (n+1)/2)
	for i := range buses {
		buses[i] = 0x04 + 8*i
	}
	for i := range roots {
		roots[i] = 0x01 + 16*i
	}
	perNUMA := max((n+1)/2, 1)
	return slotLayout(buses, roots, 2, perNUMA)
}
