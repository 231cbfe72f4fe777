package sim

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"empty", ``, []string{"gpus: at least one GPU (or a profile) is required"}},
		{"unknown top-level field", "gpu:\n- model: l4-pcie-24gb\n", []string{`unknown field "gpu"`}},
		{"unknown GPU field", "gpus:\n- model: l4-pcie-24gb\n  modle: x\n", []string{`unknown field "gpus[0].modle"`}}, //nolint:misspell // the typo is the test
		{"unknown MIG device field", "gpus:\n- model: h100-sxm5-80gb\n  migEnabled: true\n  migDevices:\n  - profile: 1g.10gb\n    placment: 1\n",
			[]string{`unknown field "gpus[0].migDevices[0].placment"`}},
		{"duplicate field", "gpus:\n- model: l4-pcie-24gb\n  count: 1\n  count: 2\n", []string{`key "count" already set`}},
		{"wrong type", "gpus:\n- model: l4-pcie-24gb\n  count: two\n", []string{"gpus.count", "int"}},
		{"not YAML", "gpus: [\n", []string{"parse YAML"}},
		{"unknown model", "gpus:\n- model: l4-pcie-24gb\n- model: h100\n", []string{`gpus[1].model: unknown model "h100"`, "h100-sxm5-80gb"}},
		{"zero count", "gpus:\n- model: l4-pcie-24gb\n  count: 0\n", []string{"gpus[0].count: must be at least 1, got 0"}},
		{"MIG on a non-MIG model", "gpus:\n- model: l4-pcie-24gb\n  migEnabled: true\n", []string{"gpus[0].migEnabled: model l4-pcie-24gb does not support MIG"}},
		{"MIG devices without MIG mode", "gpus:\n- model: h100-sxm5-80gb\n  migDevices:\n  - profile: 1g.10gb\n",
			[]string{"gpus[0].migDevices: requires migEnabled: true"}},
		{"unknown MIG profile", "gpus:\n- model: h100-sxm5-80gb\n  migEnabled: true\n  migDevices:\n  - profile: 1g.5gb\n",
			[]string{`gpus[0].migDevices[0].profile: model h100-sxm5-80gb has no MIG profile "1g.5gb"`, "1g.10gb+me"}},
		{"bad placement", "gpus:\n- model: h100-sxm5-80gb\n  migEnabled: true\n  migDevices:\n  - profile: 3g.40gb\n    placement: 1\n",
			[]string{"gpus[0].migDevices[0].placement: 1 is not a placement of 3g.40gb (valid starts: 0, 4)"}},
		{"bad driver version", "driverVersion: latest\ngpus:\n- model: l4-pcie-24gb\n", []string{`driverVersion: "latest" is not a version`}},
		{"bad CUDA version", "cudaDriverVersion: \"12\"\ngpus:\n- model: l4-pcie-24gb\n", []string{`cudaDriverVersion: "12" is not a version`}},
		{"profile and GPUs", "profile: dgxh100\ngpus:\n- model: l4-pcie-24gb\n", []string{"profile: cannot be combined with gpus"}},
		{"unknown profile", "profile: dgx2\n", []string{`profile: unknown profile "dgx2"`}},
		{"too many GPUs", "gpus:\n- model: l4-pcie-24gb\n  count: 33\n", []string{"gpus: 33 GPUs exceed the limit of 32"}},
		{"minor out of range", "profile: l4x4\nminors: [0, 1, 2, 255]\n", []string{"minors[3]: 255 is not a device minor"}},
		{"minor twice", "profile: l4x4\nminors: [3, 1, 3, 0]\n", []string{"minors[2]: minor 3 is given twice"}},
		{"every entry error is reported", "gpus:\n- model: x\n- model: l4-pcie-24gb\n  count: -1\n",
			[]string{"gpus[0].model", "gpus[1].count"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig([]byte(tt.yaml))
			wantErr(t, err, tt.want...)
		})
	}
}

// TestStateErrorsNameTheEntry covers problems only visible while building:
// they come from the same checks as CreateMIGDevice.
func TestStateErrorsNameTheEntry(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"overlapping devices", "gpus:\n- model: l4-pcie-24gb\n- model: h100-sxm5-80gb\n  migEnabled: true\n  migDevices:\n  - profile: 4g.40gb\n  - profile: 2g.20gb\n    placement: 2\n",
			[]string{"gpus[1].migDevices[1]", "overlaps"}},
		{"instance limit", "gpus:\n- model: h100-sxm5-80gb\n  migEnabled: true\n  migDevices:\n  - profile: 1g.10gb+me\n  - profile: 1g.10gb+me\n",
			[]string{"gpus[0].migDevices[1]", "at most 1"}},
		{"no free placement", "gpus:\n- model: h100-sxm5-80gb\n  migEnabled: true\n  migDevices:\n  - profile: 7g.80gb\n  - profile: 1g.10gb\n",
			[]string{"gpus[0].migDevices[1]", "no free placement for 1g.10gb"}},
		{"minors not one per GPU", "profile: l4x4\nminors: [3, 2]\n", []string{"minors: 2 given for 4 GPUs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig([]byte(tt.yaml))
			wantErr(t, err)
			_, err = NewFromConfig("node-a", cfg)
			wantErr(t, err, tt.want...)
		})
	}
}

func TestConfigFileErrorNamesTheFile(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
	}{
		{"decode error", "testdata/unknown-field.yaml", []string{"sim config testdata/unknown-field.yaml", `unknown field "gpus[0].migDevices[0].placment"`}},
		{"state error", writeConfig(t, "gpus:\n- model: h100-sxm5-80gb\n  migEnabled: true\n  migDevices:\n  - profile: 7g.80gb\n  - profile: 7g.80gb\n"),
			[]string{"sim config", "bad.yaml", "gpus[0].migDevices[1]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Options{NodeName: "node-a", ConfigFile: tt.file})
			wantErr(t, err, tt.want...)
		})
	}
}

func TestMIGNodeFile(t *testing.T) {
	b, err := New(Options{NodeName: "node-a", ConfigFile: "testdata/mig-node.yaml"})
	wantErr(t, err)
	inv := inventory(t, b)
	if len(inv.GPUs) != 3 || inv.DriverVersion != "550.54.15" || inv.CUDADriverVersion.String() != "12.4.0" {
		t.Fatalf("got %d GPUs, driver %s, CUDA %s", len(inv.GPUs), inv.DriverVersion, inv.CUDADriverVersion)
	}
	for i, g := range inv.GPUs[:2] {
		if !g.MIGEnabled || len(g.MIGDevices) != 2 {
			t.Fatalf("GPU %d: MIG %v with %d devices", i, g.MIGEnabled, len(g.MIGDevices))
		}
		small, big := g.MIGDevices[0], g.MIGDevices[1]
		if small.Profile.Name != "1g.10gb" || small.Placement.Start != 0 || big.Profile.Name != "3g.40gb" || big.Placement.Start != 4 {
			t.Errorf("GPU %d: %s at %d, %s at %d", i, small.Profile.Name, small.Placement.Start, big.Profile.Name, big.Placement.Start)
		}
	}
	if l4 := inv.GPUs[2]; l4.ProductName != "NVIDIA L4" || l4.MIGEnabled {
		t.Errorf("GPU 2: %s, MIG %v", l4.ProductName, l4.MIGEnabled)
	}
	// The generated layout: ascending buses, a root per pair, two NUMA nodes.
	wantSlots := []pciSlot{{"0000:04:00.0", "pci0000:01", 0}, {"0000:0c:00.0", "pci0000:01", 0}, {"0000:14:00.0", "pci0000:11", 1}}
	for i, w := range wantSlots {
		if g := inv.GPUs[i]; g.PCIBusID != w.busID || g.PCIeRoot != w.pcieRoot || g.NUMANode != w.numaNode {
			t.Errorf("GPU %d at %s/%s/%d, want %+v", i, g.PCIBusID, g.PCIeRoot, g.NUMANode, w)
		}
	}
}

func TestProfileFileOverridesVersions(t *testing.T) {
	b, err := New(Options{NodeName: "node-a", ConfigFile: "testdata/dgxh100-newer-driver.yaml"})
	wantErr(t, err)
	inv := inventory(t, b)
	if len(inv.GPUs) != 8 || inv.DriverVersion != "580.126.20" || inv.CUDADriverVersion.String() != "13.0.0" {
		t.Errorf("got %d GPUs, driver %s, CUDA %s", len(inv.GPUs), inv.DriverVersion, inv.CUDADriverVersion)
	}
	if inv.GPUs[0].PCIBusID != "0000:18:00.0" {
		t.Errorf("profile layout not kept: GPU 0 at %s", inv.GPUs[0].PCIBusID)
	}
}

func TestDefaultDriverIsTheNewestModelsDriver(t *testing.T) {
	inv := inventory(t, newFromConfig(t, &Config{GPUs: []GPUConfig{{Model: "h100-sxm5-80gb"}, {Model: "b200-sxm5-180gb"}}}))
	if inv.DriverVersion != "560.28.03" || inv.CUDADriverVersion.String() != "12.6.0" {
		t.Errorf("driver %s CUDA %s, want the B200 mock's 560.28.03 / 12.6.0", inv.DriverVersion, inv.CUDADriverVersion)
	}
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
