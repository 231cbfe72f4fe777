package sim

import (
	"slices"
	"strings"
	"testing"

	"github.com/gpudra/gpudra/internal/gpu"
)

func TestProfilesBuild(t *testing.T) {
	tests := []struct {
		profile      string
		products     []string // per GPU in PCI order
		memoryMiB    uint64   // of GPU 0
		architecture string   // of GPU 0
		driver       string
		cuda         gpu.Version
		numa         []int
	}{
		{"dgxa100", repeat("NVIDIA A100-SXM4-40GB", 8), 40960, "Ampere", "550.54.15", gpu.Version{Major: 12, Minor: 4}, []int{0, 0, 0, 0, 1, 1, 1, 1}},
		{"dgxh100", repeat("NVIDIA H100 80GB HBM3", 8), 81920, "Hopper", "550.54.15", gpu.Version{Major: 12, Minor: 4}, []int{0, 0, 0, 0, 1, 1, 1, 1}},
		{"dgxh100-mig", repeat("NVIDIA H100 80GB HBM3", 8), 81920, "Hopper", "550.54.15", gpu.Version{Major: 12, Minor: 4}, []int{0, 0, 0, 0, 1, 1, 1, 1}},
		{"dgxh200", repeat("NVIDIA H200 141GB HBM3e", 8), 144384, "Hopper", "550.54.15", gpu.Version{Major: 12, Minor: 4}, []int{0, 0, 0, 0, 1, 1, 1, 1}},
		{"dgxb200", repeat("NVIDIA B200 180GB HBM3e", 8), 184320, "Blackwell", "560.28.03", gpu.Version{Major: 12, Minor: 6}, []int{0, 0, 0, 0, 1, 1, 1, 1}},
		{"l4x4", repeat("NVIDIA L4", 4), 23034, "Ada Lovelace", "550.54.15", gpu.Version{Major: 12, Minor: 4}, []int{0, 0, 1, 1}},
		{"mixed", append(repeat("NVIDIA H100 80GB HBM3", 4), "NVIDIA L4", "NVIDIA L4"), 81920, "Hopper", "550.54.15", gpu.Version{Major: 12, Minor: 4}, []int{0, 0, 0, 0, 1, 1}},
	}
	if len(tests) != len(Profiles()) {
		t.Errorf("Profiles() = %v; the table covers %d", Profiles(), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			inv := inventory(t, newProfile(t, "node-a", tt.profile))
			if inv.DriverVersion != tt.driver || inv.CUDADriverVersion != tt.cuda {
				t.Errorf("driver %s CUDA %v, want %s %v", inv.DriverVersion, inv.CUDADriverVersion, tt.driver, tt.cuda)
			}
			var products []string
			var numa []int
			for i, g := range inv.GPUs {
				products = append(products, g.ProductName)
				numa = append(numa, g.NUMANode)
				if g.Index != i || g.Minor != i {
					t.Errorf("GPU %d: index %d minor %d", i, g.Index, g.Minor)
				}
				if !strings.HasPrefix(g.PCIeRoot, "pci0000:") || g.ComputeMode != gpu.ComputeModeDefault {
					t.Errorf("GPU %d: root %q compute mode %q", i, g.PCIeRoot, g.ComputeMode)
				}
				if g.MIGCapable != (g.ProductName != "NVIDIA L4") || g.MIGCapable != (len(g.MIGProfiles) > 0) {
					t.Errorf("GPU %d (%s): MIG capable %v with %d profiles", i, g.ProductName, g.MIGCapable, len(g.MIGProfiles))
				}
			}
			if !slices.Equal(products, tt.products) {
				t.Errorf("products %v, want %v", products, tt.products)
			}
			if !slices.Equal(numa, tt.numa) {
				t.Errorf("NUMA nodes %v, want %v", numa, tt.numa)
			}
			if g := inv.GPUs[0]; g.MemoryBytes != tt.memoryMiB*mib || g.Architecture != tt.architecture || g.Brand != "Nvidia" {
				t.Errorf("GPU 0: %d MiB %s %s", g.MemoryBytes/mib, g.Architecture, g.Brand)
			}
			busIDs := make([]string, len(inv.GPUs))
			for i, g := range inv.GPUs {
				busIDs[i] = g.PCIBusID
			}
			if !slices.IsSorted(busIDs) || len(slices.Compact(slices.Clone(busIDs))) != len(busIDs) {
				t.Errorf("bus IDs not strictly ascending: %v", busIDs)
			}
		})
	}
}

func TestDGXH100PCILayout(t *testing.T) {
	inv := inventory(t, newProfile(t, "node-a", "dgxh100"))
	want := []struct{ bus, root string }{
		{"0000:18:00.0", "pci0000:15"}, {"0000:2a:00.0", "pci0000:15"},
		{"0000:3a:00.0", "pci0000:37"}, {"0000:5d:00.0", "pci0000:37"},
		{"0000:9a:00.0", "pci0000:97"}, {"0000:ab:00.0", "pci0000:97"},
		{"0000:ba:00.0", "pci0000:b7"}, {"0000:db:00.0", "pci0000:b7"},
	}
	for i, w := range want {
		if g := inv.GPUs[i]; g.PCIBusID != w.bus || g.PCIeRoot != w.root {
			t.Errorf("GPU %d at %s under %s, want %s under %s", i, g.PCIBusID, g.PCIeRoot, w.bus, w.root)
		}
	}
}

func TestMixedProfileMIGState(t *testing.T) {
	inv := inventory(t, newProfile(t, "node-a", "mixed"))
	type migView struct {
		profile     string
		start, giID int
	}
	tests := []struct {
		gpu        int
		migEnabled bool
		devices    []migView
	}{
		{0, true, []migView{{"2g.20gb", 0, 3}, {"1g.10gb", 2, 9}, {"3g.40gb", 4, 2}}},
		{1, true, nil},
		{2, false, nil},
		{3, false, nil},
		{4, false, nil},
		{5, false, nil},
	}
	for _, tt := range tests {
		g := inv.GPUs[tt.gpu]
		var got []migView
		for _, d := range g.MIGDevices {
			got = append(got, migView{d.Profile.Name, d.Placement.Start, d.GIID})
		}
		if g.MIGEnabled != tt.migEnabled || !slices.Equal(got, tt.devices) {
			t.Errorf("GPU %d: MIG %v devices %v, want %v %v", tt.gpu, g.MIGEnabled, got, tt.migEnabled, tt.devices)
		}
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}
