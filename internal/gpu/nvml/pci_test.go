package nvml

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
)

func TestNormalizePCIBusID(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "00000000:65:00.0", want: "0000:65:00.0"},
		{in: "00000000:CA:1F.7", want: "0000:ca:1f.7"},
		{in: "0000:65:00.0", want: "0000:65:00.0"},
		{in: "00000001:3B:00.0", want: "0001:3b:00.0"},
		// A 32-bit domain keeps its digits, as sysfs names it.
		{in: "00010000:01:00.0", want: "10000:01:00.0"},
		{in: " 00000000:65:00.0 ", want: "0000:65:00.0"},
		{in: "", wantErr: true},
		{in: "65:00.0", wantErr: true},
		{in: "00000000:65:00", wantErr: true},
		{in: "00000000:165:00.0", wantErr: true},
		{in: "00000000:65:20.0", wantErr: true},
		{in: "00000000:65:00.8", wantErr: true},
		{in: "100000000:65:00.0", wantErr: true},
		{in: "0x000000:65:00.0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := normalizePCIBusID(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Errorf("normalizePCIBusID(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("normalizePCIBusID(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("normalizePCIBusID(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// addSysfsPCIDevice lays out sysfs for one PCI device behind root port
// 0000:64:01.0 of root complex pci0000:64, with the given numa_node content.
func addSysfsPCIDevice(t *testing.T, sysfs, busID, numaNode string) {
	t.Helper()
	deviceDir := filepath.Join(sysfs, "devices", "pci0000:64", "0000:64:01.0", busID)
	if err := os.MkdirAll(deviceDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(deviceDir, "numa_node"), []byte(numaNode+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	busDir := filepath.Join(sysfs, "bus", "pci", "devices")
	if err := os.MkdirAll(busDir, 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join("..", "..", "..", "devices", "pci0000:64", "0000:64:01.0", busID)
	if err := os.Symlink(target, filepath.Join(busDir, busID)); err != nil {
		t.Fatal(err)
	}
}

func TestInventoryReadsTopologyFromSysfs(t *testing.T) {
	sysfs := t.TempDir()
	addSysfsPCIDevice(t, sysfs, "0000:65:00.0", "1")
	addSysfsPCIDevice(t, sysfs, "0000:66:00.0", "-1")
	// 0000:67:00.0 is missing from sysfs, as in a container without /sys.

	srv := dgxh100.NewWithGPUs(gpus.Multiple(3, gpus.H100_SXM5_80GB)...)
	fillMockGaps(t, srv, "0000:65:00.0", "0000:66:00.0", "0000:67:00.0")
	b, err := New(Options{Lib: srv, SysfsRoot: sysfs})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	inv, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatalf("Inventory: %v", err)
	}

	want := []struct {
		busID    string
		pcieRoot string
		numaNode int
	}{
		{"0000:65:00.0", "pci0000:64", 1},
		{"0000:66:00.0", "pci0000:64", -1},
		{"0000:67:00.0", "", -1},
	}
	if len(inv.GPUs) != len(want) {
		t.Fatalf("found %d GPUs, want %d", len(inv.GPUs), len(want))
	}
	for i, w := range want {
		g := inv.GPUs[i]
		if g.PCIBusID != w.busID || g.PCIeRoot != w.pcieRoot || g.NUMANode != w.numaNode {
			t.Errorf("GPU %d: bus %q root %q NUMA %d, want bus %q root %q NUMA %d",
				i, g.PCIBusID, g.PCIeRoot, g.NUMANode, w.busID, w.pcieRoot, w.numaNode)
		}
	}
}
