package sim

import (
	"slices"
	"testing"

	"github.com/gpudra/gpudra/internal/gpu"
)

func TestCatalogModels(t *testing.T) {
	tests := []struct {
		key          string
		productName  string
		architecture string
		cc           gpu.Version
		memoryMiB    uint64
		driver       string
		// profiles in GIProfileID order (0, 5, 9, 14, 15, 19, 20)
		profiles []string
	}{
		{"a100-sxm4-40gb", "NVIDIA A100-SXM4-40GB", "Ampere", gpu.Version{Major: 8}, 40960, "550.54.15",
			[]string{"7g.40gb", "4g.20gb", "3g.20gb", "2g.10gb", "1g.10gb", "1g.5gb", "1g.5gb+me"}},
		{"a100-sxm4-80gb", "NVIDIA A100-SXM4-80GB", "Ampere", gpu.Version{Major: 8}, 81920, "550.54.15",
			[]string{"7g.80gb", "4g.40gb", "3g.40gb", "2g.20gb", "1g.20gb", "1g.10gb", "1g.10gb+me"}},
		{"h100-sxm5-80gb", "NVIDIA H100 80GB HBM3", "Hopper", gpu.Version{Major: 9}, 81920, "550.54.15",
			[]string{"7g.80gb", "4g.40gb", "3g.40gb", "2g.20gb", "1g.20gb", "1g.10gb", "1g.10gb+me"}},
		{"h200-sxm5-141gb", "NVIDIA H200 141GB HBM3e", "Hopper", gpu.Version{Major: 9}, 144384, "550.54.15",
			[]string{"7g.141gb", "4g.71gb", "3g.71gb", "2g.35gb", "1g.35gb", "1g.18gb", "1g.18gb+me"}},
		{"b200-sxm5-180gb", "NVIDIA B200 180GB HBM3e", "Blackwell", gpu.Version{Major: 10}, 184320, "560.28.03",
			[]string{"7g.180gb", "4g.90gb", "3g.90gb", "2g.45gb", "1g.45gb", "1g.23gb", "1g.23gb+me"}},
		{"l4-pcie-24gb", "NVIDIA L4", "Ada Lovelace", gpu.Version{Major: 8, Minor: 9}, 23034, "550.54.15", nil},
	}
	if got, want := len(Models()), len(tests); got != want {
		t.Errorf("Models() has %d entries %v, the table covers %d", got, Models(), want)
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			m, err := lookupModel(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if m.productName != tt.productName || m.architecture != tt.architecture || m.brand != "Nvidia" {
				t.Errorf("got %q/%q/%q, want %q/%q/Nvidia", m.productName, m.architecture, m.brand, tt.productName, tt.architecture)
			}
			if m.computeCapability != tt.cc {
				t.Errorf("compute capability %v, want %v", m.computeCapability, tt.cc)
			}
			if m.memoryBytes != tt.memoryMiB*mib {
				t.Errorf("memory %d MiB, want %d", m.memoryBytes/mib, tt.memoryMiB)
			}
			if m.defaultDriverVersion != tt.driver {
				t.Errorf("driver %s, want %s", m.defaultDriverVersion, tt.driver)
			}
			if got := m.migProfileNames(); !slices.Equal(got, tt.profiles) {
				t.Errorf("profiles %v, want %v", got, tt.profiles)
			}
			if m.migCapable() != (tt.profiles != nil) {
				t.Errorf("migCapable = %v", m.migCapable())
			}
			for _, spec := range m.migProfiles {
				p := spec.profile
				if p.MemoryBytes == 0 || p.MemoryBytes > m.memoryBytes {
					t.Errorf("%s: memory %d MiB of a %d MiB GPU", p.Name, p.MemoryBytes/mib, m.memoryBytes/mib)
				}
				if len(p.Placements) == 0 || spec.instanceCount < 1 || p.Multiprocessors == 0 {
					t.Errorf("%s: placements %v, instances %d, SMs %d", p.Name, p.Placements, spec.instanceCount, p.Multiprocessors)
				}
			}
		})
	}
}

func TestCatalogH100ProfileDetails(t *testing.T) {
	m, err := lookupModel("h100-sxm5-80gb")
	if err != nil {
		t.Fatal(err)
	}
	// Hardware IDs as nvidia-smi mig -lgip reports them, whole-GI compute
	// profiles (CI profile ID == slices-1 up to 4 slices, 4 for 7 slices).
	want := map[string]struct {
		giID, ciID, slices, sms, instances int
		starts                             []int
	}{
		"7g.80gb":    {0, 4, 7, 112, 1, []int{0}},
		"4g.40gb":    {5, 3, 4, 64, 1, []int{0}},
		"3g.40gb":    {9, 2, 3, 48, 2, []int{0, 4}},
		"2g.20gb":    {14, 1, 2, 32, 3, []int{0, 2, 4}},
		"1g.20gb":    {15, 0, 1, 16, 4, []int{0, 2, 4, 6}},
		"1g.10gb":    {19, 0, 1, 16, 7, []int{0, 1, 2, 3, 4, 5, 6}},
		"1g.10gb+me": {20, 0, 1, 16, 1, []int{0, 1, 2, 3, 4, 5, 6}},
	}
	for name, w := range want {
		spec, ok := m.migProfileByName(name)
		if !ok {
			t.Errorf("no profile %s", name)
			continue
		}
		p := spec.profile
		got := [5]int{p.GIProfileID, p.CIProfileID, p.SliceCount, p.Multiprocessors, spec.instanceCount}
		if got != [5]int{w.giID, w.ciID, w.slices, w.sms, w.instances} {
			t.Errorf("%s: (gi, ci, slices, sms, instances) = %v, want %v", name, got, w)
		}
		if starts := placementStarts(p); !slices.Equal(starts, w.starts) {
			t.Errorf("%s: placement starts %v, want %v", name, starts, w.starts)
		}
	}
	me, _ := m.migProfileByName("1g.10gb+me")
	if me.profile.JPEGEngines != 1 || me.profile.OFAEngines != 1 {
		t.Errorf("1g.10gb+me: jpeg %d ofa %d, want the media extensions", me.profile.JPEGEngines, me.profile.OFAEngines)
	}
}

func TestMIGMemoryMB(t *testing.T) {
	tests := []struct {
		name                string
		profileMB, deviceMB uint64
		want                uint64
	}{
		{"within its share is kept", 10240, 81920, 10240},
		{"below its share is kept", 4864, 40960, 4864},
		{"H200 1g rounded past its eighth", 18432, 144384, 18048},
		{"H200 3g rounded past its half", 72704, 144384, 72192},
		{"whole GPU", 184320, 184320, 184320},
	}
	for _, tt := range tests {
		if got := migMemoryMB(tt.profileMB, tt.deviceMB); got != tt.want {
			t.Errorf("%s: migMemoryMB(%d, %d) = %d, want %d", tt.name, tt.profileMB, tt.deviceMB, got, tt.want)
		}
	}
}

func TestLookupModelUnknownListsValidKeys(t *testing.T) {
	_, err := lookupModel("h100")
	wantErr(t, err, `unknown model "h100"`, "h100-sxm5-80gb", "l4-pcie-24gb")
}
