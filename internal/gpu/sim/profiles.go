package sim

import "slices"

// nodeProfile is a named node: the inventory it declares and where its GPUs
// sit on the PCIe tree.
type nodeProfile struct {
	config Config
	slots  []pciSlot
}

// DGX H100 and H200 share a chassis: eight GPUs, two per PCIe root complex,
// four per socket.
var dgxHopperSlots = slotLayout(
	[]int{0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb},
	[]int{0x15, 0x37, 0x97, 0xb7}, 2, 4)

var nodeProfiles = map[string]nodeProfile{
	"dgxa100": {
		config: Config{GPUs: []GPUConfig{{Model: "a100-sxm4-40gb", Count: ptr(8)}}},
		slots: slotLayout(
			[]int{0x07, 0x0f, 0x47, 0x4e, 0x87, 0x90, 0xb7, 0xbd},
			[]int{0x00, 0x40, 0x80, 0xa0}, 2, 4),
	},
	"dgxh100": {
		config: Config{GPUs: []GPUConfig{{Model: "h100-sxm5-80gb", Count: ptr(8)}}},
		slots:  dgxHopperSlots,
	},
	// dgxh100-mig is a DGX H100 with MIG mode on and nothing cut: the node
	// dynamic MIG cuts on demand.
	"dgxh100-mig": {
		config: Config{GPUs: []GPUConfig{{Model: "h100-sxm5-80gb", Count: ptr(8), MIGEnabled: true}}},
		slots:  dgxHopperSlots,
	},
	"dgxh200": {
		config: Config{GPUs: []GPUConfig{{Model: "h200-sxm5-141gb", Count: ptr(8)}}},
		slots:  dgxHopperSlots,
	},
	"dgxb200": {
		config: Config{GPUs: []GPUConfig{{Model: "b200-sxm5-180gb", Count: ptr(8)}}},
		slots: slotLayout(
			[]int{0x1b, 0x43, 0x52, 0x61, 0x9d, 0xc3, 0xd1, 0xdf},
			[]int{0x17, 0x4f, 0x97, 0xcf}, 2, 4),
	},
	// Four PCIe L4 cards, each on its own root port, two per socket.
	"l4x4": {
		config: Config{GPUs: []GPUConfig{{Model: "l4-pcie-24gb", Count: ptr(4)}}},
		slots: slotLayout(
			[]int{0x01, 0x41, 0x81, 0xc1},
			[]int{0x00, 0x40, 0x80, 0xc0}, 1, 2),
	},
	// mixed exercises every kind of device on one node: GPU 0 is in MIG mode
	// with 2g.20gb, 1g.10gb and 3g.40gb devices already cut (slice 3 free);
	// GPU 1 is in MIG mode with nothing cut (room for on-demand slices);
	// GPUs 2-3 are whole H100s on NUMA node 0; GPUs 4-5 are L4s on NUMA node 1.
	"mixed": {
		config: Config{GPUs: []GPUConfig{
			{Model: "h100-sxm5-80gb", MIGEnabled: true, MIGDevices: []MIGDeviceConfig{
				{Profile: "2g.20gb", Placement: ptr(0)},
				{Profile: "1g.10gb", Placement: ptr(2)},
				{Profile: "3g.40gb", Placement: ptr(4)},
			}},
			{Model: "h100-sxm5-80gb", MIGEnabled: true},
			{Model: "h100-sxm5-80gb", Count: ptr(2)},
			{Model: "l4-pcie-24gb", Count: ptr(2)},
		}},
		slots: slotLayout(
			[]int{0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab},
			[]int{0x15, 0x37, 0x97}, 2, 4),
	},
}

// Profiles lists the node profile names New accepts.
func Profiles() []string {
	names := make([]string, 0, len(nodeProfiles))
	for name := range nodeProfiles {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func ptr[T any](v T) *T { return &v }
