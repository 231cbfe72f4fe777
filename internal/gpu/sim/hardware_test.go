package sim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/contract"
)

// dynamicConfig: two H100s in MIG mode with nothing cut and one H100 not in
// MIG mode.
const dynamicConfig = `gpus:
- model: h100-sxm5-80gb
  count: 2
  migEnabled: true
- model: h100-sxm5-80gb
`

// openDir builds a backend over the state directory from the config file,
// as a (re)started plugin does.
func openDir(t *testing.T, configFile, dir string) *Backend {
	t.Helper()
	b, err := New(Options{NodeName: "node-a", ConfigFile: configFile, StateDir: dir})
	if err != nil {
		t.Fatalf("New over %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func writeNodeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMIGContract runs the MIG contract on the sim with its state directory:
// Reopen is a new backend over the same directory, as a restarted plugin.
func TestMIGContract(t *testing.T) {
	contract.RunMIG(t, func(t *testing.T) contract.MIGNode {
		cfg, dir := writeNodeConfig(t, dynamicConfig), filepath.Join(t.TempDir(), "sim")
		b := openDir(t, cfg, dir)
		return contract.MIGNode{
			Backend: b,
			Reopen:  func(t *testing.T) contract.MIGBackend { return openDir(t, cfg, dir) },
			FailNextComputeInstance: func(t *testing.T, parent string) {
				if err := ArmComputeInstanceFailure(dir, parent); err != nil {
					t.Fatal(err)
				}
			},
			LeaveIncomplete: func(t *testing.T, s gpu.MIGSlot) {
				if err := b.CreateIncompleteMIGDevice(s); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}

// TestMIGContractInMemory runs it without a state directory: the hardware
// then lives in one Backend, so Reopen returns that backend.
func TestMIGContractInMemory(t *testing.T) {
	contract.RunMIG(t, func(t *testing.T) contract.MIGNode {
		b := newFromConfig(t, &Config{GPUs: []GPUConfig{
			{Model: "h100-sxm5-80gb", Count: ptr(2), MIGEnabled: true},
			{Model: "h100-sxm5-80gb"},
		}})
		return contract.MIGNode{
			Backend: b,
			Reopen:  func(*testing.T) contract.MIGBackend { return b },
			FailNextComputeInstance: func(t *testing.T, parent string) {
				wantErr(t, b.FailNextComputeInstance(parent))
			},
			LeaveIncomplete: func(t *testing.T, s gpu.MIGSlot) { wantErr(t, b.CreateIncompleteMIGDevice(s)) },
		}
	})
}

// TestTwoBackendsShareTheHardware: a device one backend makes is in the
// other's inventory at once, and the other cannot cut over it.
func TestTwoBackendsShareTheHardware(t *testing.T) {
	cfg, dir := writeNodeConfig(t, dynamicConfig), filepath.Join(t.TempDir(), "sim")
	a, b := openDir(t, cfg, dir), openDir(t, cfg, dir)
	parent := inventory(t, a).GPUs[0].UUID
	d, err := create(a, parent, 9, 4)
	wantErr(t, err)
	if got := inventory(t, b).GPUs[0].MIGDevices; len(got) != 1 || got[0].UUID != d.UUID {
		t.Fatalf("the other backend sees %+v, want %s", got, d.UUID)
	}
	_, err = create(b, parent, 19, 5)
	if !errors.Is(err, gpu.ErrMIGSlotTaken) {
		t.Errorf("creating over the other backend's device: %v, want ErrMIGSlotTaken", err)
	}
	wantErr(t, b.SetMIGMode(inventory(t, b).GPUs[2].UUID, true))
	if !inventory(t, a).GPUs[2].MIGEnabled {
		t.Error("MIG mode set through one backend is not on in the other")
	}
}

// TestConcurrentCreatesAcrossBackends races overlapping creates through
// four backends over one directory: exactly one may win, and the file holds
// exactly it.
func TestConcurrentCreatesAcrossBackends(t *testing.T) {
	cfg, dir := writeNodeConfig(t, dynamicConfig), filepath.Join(t.TempDir(), "sim")
	var backends []*Backend
	for range 4 {
		backends = append(backends, openDir(t, cfg, dir))
	}
	parent := inventory(t, backends[0]).GPUs[1].UUID
	var wg sync.WaitGroup
	var mu sync.Mutex
	var won []string
	for i := range 16 {
		b := backends[i%len(backends)]
		wg.Go(func() {
			// 4g.40gb at 0 and 3g.40gb at 0 overlap, as do all 7g.
			profile := []int{5, 9, 0}[i%3]
			if d, err := create(b, parent, profile, 0); err == nil {
				mu.Lock()
				won = append(won, d.UUID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	st, err := ReadHardware(dir)
	wantErr(t, err)
	if len(won) != 1 || len(st.GPUs[1].MIGDevices) != 1 || st.GPUs[1].MIGDevices[0].UUID != won[0] {
		t.Errorf("%d creates won (%v); the file holds %+v", len(won), won, st.GPUs[1].MIGDevices)
	}
}

// TestConfigDevicesAreTheFirstBootOnly: the config's migDevices are cut when
// the state directory is new; after that the directory is the hardware, so
// a device destroyed stays destroyed across restarts.
func TestConfigDevicesAreTheFirstBootOnly(t *testing.T) {
	cfg, dir := filepath.Join("testdata", "mig-node.yaml"), filepath.Join(t.TempDir(), "sim")
	first := openDir(t, cfg, dir)
	g := inventory(t, first).GPUs[0]
	if len(g.MIGDevices) != 2 {
		t.Fatalf("first boot: %d devices, want the config's 2", len(g.MIGDevices))
	}
	wantErr(t, destroy(first, g.UUID, g.MIGDevices[0]))
	if got := inventory(t, openDir(t, cfg, dir)).GPUs[0].MIGDevices; len(got) != 1 || got[0].UUID != g.MIGDevices[1].UUID {
		t.Errorf("after a restart: %+v, want only %s", got, g.MIGDevices[1].UUID)
	}
	// Without the file, the node is as the config builds it, with the same
	// UUIDs as before.
	wantErr(t, os.Remove(filepath.Join(dir, hardwareFileName)))
	if got := inventory(t, openDir(t, cfg, dir)).GPUs[0].MIGDevices; !reflect.DeepEqual(got, g.MIGDevices) {
		t.Errorf("reset node: %+v, want %+v", got, g.MIGDevices)
	}
}

// TestBadHardwareFileFailsInventoryNamingTheField: the file is the
// hardware; guessing would publish devices that do not exist.
func TestBadHardwareFileFailsInventoryNamingTheField(t *testing.T) {
	tests := []struct {
		name string
		edit func(st *HardwareState)
		want []string
	}{
		{"overlap", func(st *HardwareState) {
			st.GPUs[0].MIGDevices = []HardwareMIGDevice{
				{UUID: "MIG-a", Profile: "3g.40gb", GIProfileID: 9, PlacementStart: 0, PlacementSize: 4, GIID: 1},
				{UUID: "MIG-b", Profile: "1g.10gb", GIProfileID: 19, PlacementStart: 2, PlacementSize: 1, GIID: 9},
			}
		}, []string{"gpus[0].migDevices[1].placementStart", "overlaps 3g.40gb"}},
		{"unknown profile", func(st *HardwareState) {
			st.GPUs[1].MIGDevices = []HardwareMIGDevice{{UUID: "MIG-a", GIProfileID: 3, PlacementStart: 0, PlacementSize: 1}}
		}, []string{"gpus[1].migDevices[0].giProfileId", "no GPU instance profile 3"}},
		{"bad placement", func(st *HardwareState) {
			st.GPUs[0].MIGDevices = []HardwareMIGDevice{{UUID: "MIG-a", GIProfileID: 9, PlacementStart: 2, PlacementSize: 4}}
		}, []string{"gpus[0].migDevices[0].placementStart", "2+4 is not a placement of 3g.40gb"}},
		{"devices without MIG mode", func(st *HardwareState) {
			st.GPUs[2].MIGDevices = []HardwareMIGDevice{{UUID: "MIG-a", GIProfileID: 19, PlacementStart: 0, PlacementSize: 1}}
		}, []string{"gpus[2].migEnabled"}},
		{"incomplete with a UUID", func(st *HardwareState) {
			st.GPUs[0].MIGDevices = []HardwareMIGDevice{{UUID: "MIG-a", GIProfileID: 19, PlacementStart: 0, PlacementSize: 1, Incomplete: true}}
		}, []string{"gpus[0].migDevices[0].uuid"}},
		{"compute mode", func(st *HardwareState) { st.GPUs[1].ComputeMode = "Shared" }, []string{"gpus[1].computeMode", `"Shared"`}},
		{"version", func(st *HardwareState) { st.Version = 2 }, []string{"version: 2 is not supported"}},
		{"another node's state", func(st *HardwareState) { st.Config = "0123" }, []string{`config: "0123" is the state of another node configuration`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, dir := writeNodeConfig(t, dynamicConfig), filepath.Join(t.TempDir(), "sim")
			b := openDir(t, cfg, dir)
			before := inventory(t, b)
			st, err := ReadHardware(dir)
			wantErr(t, err)
			config := st.Config
			tt.edit(st)
			writeHardwareFile(t, dir, st)
			_, err = b.Inventory(context.Background())
			wantErr(t, err, append([]string{hardwareFileName}, tt.want...)...)
			_, err = create(b, before.GPUs[0].UUID, 19, 6)
			wantErr(t, err, tt.want[0])
			// A fixed file is read again (one naming no GPU leaves each as
			// the backend has it).
			writeHardwareFile(t, dir, &HardwareState{Version: hardwareFileVersion, Config: config})
			if got := inventory(t, b); !reflect.DeepEqual(got, before) {
				t.Errorf("after the file was fixed:\n got  %+v\n want %+v", got, before)
			}
		})
	}
}

func writeHardwareFile(t *testing.T, dir string, st *HardwareState) {
	t.Helper()
	data, err := jsonIndent(st)
	wantErr(t, err)
	wantErr(t, hardwareState.withLock(dir, func() error { return hardwareState.write(dir, data) }))
}

// TestArmedFailureIsUsedOnce: ArmComputeInstanceFailure from another
// process fails exactly the next create on that GPU, and says so.
func TestArmedFailureIsUsedOnce(t *testing.T) {
	cfg, dir := writeNodeConfig(t, dynamicConfig), filepath.Join(t.TempDir(), "sim")
	b := openDir(t, cfg, dir)
	gpus := inventory(t, b).GPUs
	wantErr(t, ArmComputeInstanceFailure(dir, gpus[0].UUID))
	_, err := create(b, gpus[1].UUID, 19, 0)
	wantErr(t, err)
	_, err = create(b, gpus[0].UUID, 19, 0)
	wantErr(t, err, "create MIG device "+gpus[0].UUID, "create compute instance: simulated failure")
	_, err = create(b, gpus[0].UUID, 19, 0)
	wantErr(t, err)
	wantErr(t, ArmComputeInstanceFailure(dir, "GPU-nope"), "no GPU GPU-nope")
	wantErr(t, ArmComputeInstanceFailure(t.TempDir(), gpus[0].UUID), "start the plugin on it first")
}

func TestHardwareFileRecordsDevices(t *testing.T) {
	cfg, dir := writeNodeConfig(t, dynamicConfig), filepath.Join(t.TempDir(), "sim")
	b := openDir(t, cfg, dir)
	parent := inventory(t, b).GPUs[0].UUID
	d, err := create(b, parent, 14, 2)
	wantErr(t, err)
	wantErr(t, b.CreateIncompleteMIGDevice(slotAt(parent, 19, 6)))
	st, err := ReadHardware(dir)
	wantErr(t, err)
	want := []HardwareMIGDevice{
		{UUID: d.UUID, Profile: "2g.20gb", GIProfileID: 14, PlacementStart: 2, PlacementSize: 2, GIID: d.GIID, CIID: 0},
		{Profile: "1g.10gb", GIProfileID: 19, PlacementStart: 6, PlacementSize: 1, GIID: 13, CIID: -1, Incomplete: true},
	}
	if !reflect.DeepEqual(st.GPUs[0].MIGDevices, want) || st.NextSerial != 1 {
		t.Errorf("file holds %+v (next serial %d), want %+v (1)", st.GPUs[0].MIGDevices, st.NextSerial, want)
	}
	if strings.Contains(string(mustRead(t, filepath.Join(dir, hardwareFileName))), "\"uuid\": \"\"") {
		t.Error("an incomplete device is written with an empty uuid")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	wantErr(t, err)
	return data
}

// TestAnotherConfigStartsOver: a backend built from another config over the
// same directory (other GPUs put in) does not inherit the old MIG devices.
func TestAnotherConfigStartsOver(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sim")
	first := openDir(t, writeNodeConfig(t, dynamicConfig), dir)
	parent := inventory(t, first).GPUs[0].UUID
	_, err := create(first, parent, 19, 0)
	wantErr(t, err)
	other := openDir(t, filepath.Join("testdata", "mig-node.yaml"), dir)
	g := inventory(t, other).GPUs[0]
	if g.UUID != parent || len(g.MIGDevices) != 2 || g.MIGDevices[0].Profile.Name != "1g.10gb" || g.MIGDevices[0].Placement.Start != 0 {
		t.Fatalf("GPU 0 of the other config: %+v, want its own 2 devices", g.MIGDevices)
	}
	// The first backend now finds its directory taken over.
	_, err = first.Inventory(context.Background())
	wantErr(t, err, "another node configuration")
}
