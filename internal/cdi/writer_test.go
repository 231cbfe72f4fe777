package cdi

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	oci "github.com/opencontainers/runtime-spec/specs-go"
	cdilib "tags.cncf.io/container-device-interface/pkg/cdi"
	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/gpudra/gpudra/internal/fsutil"
	"github.com/gpudra/gpudra/internal/gpu"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	gpuClaimUID = "0f4c1e4a-7d2b-4b51-9b3e-5a2d7c6e8f90"
	migClaimUID = "8b2e6f10-1c3d-4e5f-a6b7-c8d9e0f1a2b3"
)

// testClaim is the claim of a test spec.
func testClaim(uid string) ClaimRef {
	return ClaimRef{UID: uid, Namespace: "team-a", Name: "claim-" + uid[:min(8, len(uid))]}
}

func gpuDevice(minor int, uuid string) Device {
	return Device{Name: "gpu-" + strconv.Itoa(minor), Request: "gpus", Pool: "node-1", GPU: gpu.GPU{Minor: minor, UUID: uuid}}
}

func migDevice() Device {
	return Device{
		Name:    "gpu-1-mig-1g10gb-19-0",
		Request: "mig",
		Pool:    "node-1",
		GPU:     gpu.GPU{Minor: 1, UUID: "GPU-11111111-1111-1111-1111-111111111111", MIGEnabled: true},
		MIG: &gpu.MIGDevice{
			UUID:      "MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
			Profile:   gpu.MIGProfile{Name: "1g.10gb", GIProfileID: 19},
			Placement: gpu.Placement{Start: 0, Size: 1},
		},
	}
}

// The GPU claim lists gpu-3 before gpu-0 to show that spec and IDs keep the
// allocation's order.
func gpuClaimDevices() []Device {
	return []Device{
		gpuDevice(3, "GPU-33333333-3333-3333-3333-333333333333"),
		gpuDevice(0, "GPU-00000000-0000-0000-0000-000000000000"),
	}
}

func newTestWriter(t *testing.T, editor Editor) (*Writer, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cdi")
	w, err := NewWriter(dir, DefaultVendor, DefaultClass, editor)
	if err != nil {
		t.Fatal(err)
	}
	return w, dir
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteClaimSpecMatchesGolden(t *testing.T) {
	tests := []struct {
		name     string
		claimUID string
		devs     []Device
		golden   string
		wantIDs  []string
	}{
		{
			name:     "two full GPUs",
			claimUID: gpuClaimUID,
			devs:     gpuClaimDevices(),
			golden:   "testdata/gpu-claim.golden.json",
			wantIDs: []string{
				"k8s.gpu.nvidia.com/claim=" + gpuClaimUID + "-gpu-3",
				"k8s.gpu.nvidia.com/claim=" + gpuClaimUID + "-gpu-0",
			},
		},
		{
			name:     "MIG device",
			claimUID: migClaimUID,
			devs:     []Device{migDevice()},
			golden:   "testdata/mig-claim.golden.json",
			wantIDs:  []string{"k8s.gpu.nvidia.com/claim=" + migClaimUID + "-gpu-1-mig-1g10gb-19-0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, dir := newTestWriter(t, SimEditor{})
			ids, err := w.WriteClaimSpec(context.Background(), testClaim(tt.claimUID), tt.devs)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids, tt.wantIDs) {
				t.Errorf("IDs = %q; want %q", ids, tt.wantIDs)
			}
			wantFile := "k8s.gpu.nvidia.com-claim_" + tt.claimUID + ".json"
			if got := dirEntries(t, dir); !reflect.DeepEqual(got, []string{wantFile}) {
				t.Fatalf("directory holds %q; want only %q", got, wantFile)
			}
			path := filepath.Join(dir, wantFile)
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(tt.golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(tt.golden)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("spec differs from %s:\n%s", tt.golden, got)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if mode := fi.Mode().Perm(); mode != 0o644 {
				t.Errorf("spec file mode = %o; want 644", mode)
			}
		})
	}
}

// TestSpecInjectsSimDevices reads the spec back the way a container runtime
// does and applies it to an OCI spec: the device nodes with only a hostPath
// must resolve to the host's /dev/null.
func TestSpecInjectsSimDevices(t *testing.T) {
	w, dir := newTestWriter(t, SimEditor{})
	ids, err := w.WriteClaimSpec(context.Background(), testClaim(gpuClaimUID), gpuClaimDevices())
	if err != nil {
		t.Fatal(err)
	}
	cache, err := cdilib.NewCache(cdilib.WithSpecDirs(dir), cdilib.WithAutoRefresh(false))
	if err != nil {
		t.Fatal(err)
	}
	if errs := cache.GetErrors(); len(errs) != 0 {
		t.Fatalf("CDI cache errors: %v", errs)
	}
	ociSpec := &oci.Spec{Process: &oci.Process{}, Linux: &oci.Linux{}}
	if unresolved, err := cache.InjectDevices(ociSpec, ids...); err != nil {
		t.Fatalf("inject %v: unresolved %v: %v", ids, unresolved, err)
	}
	wantEnv := "NVIDIA_VISIBLE_DEVICES=GPU-33333333-3333-3333-3333-333333333333,GPU-00000000-0000-0000-0000-000000000000"
	if !slices.Contains(ociSpec.Process.Env, wantEnv) {
		t.Errorf("env = %q; want it to contain %q", ociSpec.Process.Env, wantEnv)
	}
	var paths []string
	for _, d := range ociSpec.Linux.Devices {
		paths = append(paths, d.Path)
		if d.Type != "c" || d.Major != 1 || d.Minor != 3 {
			t.Errorf("device %s = %s %d:%d; want the host's /dev/null (c 1:3)", d.Path, d.Type, d.Major, d.Minor)
		}
	}
	slices.Sort(paths)
	if want := []string{"/dev/nvidia0", "/dev/nvidia3", "/dev/nvidiactl"}; !reflect.DeepEqual(paths, want) {
		t.Errorf("device nodes = %q; want %q", paths, want)
	}
}

func TestWriteClaimSpecIsIdempotent(t *testing.T) {
	w, dir := newTestWriter(t, SimEditor{})
	ctx := context.Background()
	path := filepath.Join(dir, "k8s.gpu.nvidia.com-claim_"+gpuClaimUID+".json")
	var first []byte
	for i := range 3 {
		if _, err := w.WriteClaimSpec(ctx, testClaim(gpuClaimUID), gpuClaimDevices()); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = data
		} else if string(data) != string(first) {
			t.Fatalf("write %d changed the file:\n%s\nwas\n%s", i, data, first)
		}
	}
	// A different allocation for the same claim replaces the spec.
	if _, err := w.WriteClaimSpec(ctx, testClaim(gpuClaimUID), gpuClaimDevices()[1:]); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "gpu-3") {
		t.Errorf("rewritten spec still has gpu-3:\n%s", data)
	}
	if got := dirEntries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %q; want one spec", got)
	}
}

// editorFunc lets a test replace one half of SimEditor.
type editorFunc struct {
	claim  func(devs []Device) (*cdispec.ContainerEdits, error)
	device func(dev Device) (*cdispec.ContainerEdits, error)
}

func (e editorFunc) ClaimEdits(devs []Device) (*cdispec.ContainerEdits, error) {
	if e.claim == nil {
		return SimEditor{}.ClaimEdits(devs)
	}
	return e.claim(devs)
}

func (e editorFunc) DeviceEdits(dev Device) (*cdispec.ContainerEdits, error) {
	if e.device == nil {
		return SimEditor{}.DeviceEdits(dev)
	}
	return e.device(dev)
}

// onDevice returns edits for the named device and the sim edits for others.
func onDevice(name string, edits *cdispec.ContainerEdits, err error) func(Device) (*cdispec.ContainerEdits, error) {
	return func(dev Device) (*cdispec.ContainerEdits, error) {
		if dev.Name == name {
			return edits, err
		}
		return SimEditor{}.DeviceEdits(dev)
	}
}

func TestWriteClaimSpecRejects(t *testing.T) {
	devs := gpuClaimDevices()
	tests := []struct {
		name     string
		claimUID string
		devs     []Device
		editor   editorFunc
		wantErr  string
	}{
		{
			name:    "environment variable without a value",
			editor:  editorFunc{device: onDevice("gpu-0", &cdispec.ContainerEdits{Env: []string{"CUDA_VISIBLE"}}, nil)},
			wantErr: "claim " + gpuClaimUID + " device gpu-0: invalid container edits: invalid environment variable \"CUDA_VISIBLE\"",
		},
		{
			name:    "device node without a path",
			editor:  editorFunc{device: onDevice("gpu-3", &cdispec.ContainerEdits{DeviceNodes: []*cdispec.DeviceNode{{HostPath: "/dev/null"}}}, nil)},
			wantErr: "claim " + gpuClaimUID + " device gpu-3: invalid (empty) device path",
		},
		{
			name:    "no edits for a device",
			editor:  editorFunc{device: onDevice("gpu-0", &cdispec.ContainerEdits{}, nil)},
			wantErr: "claim " + gpuClaimUID + " device gpu-0: container edits are empty",
		},
		{
			name:    "nil edits for a device",
			editor:  editorFunc{device: onDevice("gpu-0", nil, nil)},
			wantErr: "claim " + gpuClaimUID + " device gpu-0: container edits are empty",
		},
		{
			name:    "editor fails on a device",
			editor:  editorFunc{device: onDevice("gpu-3", nil, errors.New("GPU fell off the bus"))},
			wantErr: "claim " + gpuClaimUID + " device gpu-3: container edits: GPU fell off the bus",
		},
		{
			name: "invalid claim-wide hook",
			editor: editorFunc{claim: func([]Device) (*cdispec.ContainerEdits, error) {
				return &cdispec.ContainerEdits{Hooks: []*cdispec.Hook{{HookName: "preStart", Path: "/bin/true"}}}, nil
			}},
			wantErr: "claim " + gpuClaimUID + ": claim-wide container edits: invalid hook name",
		},
		{
			name:    "sim device without a UUID",
			devs:    []Device{{Name: "gpu-0"}},
			wantErr: "claim " + gpuClaimUID + ": claim-wide container edits: device gpu-0: no UUID",
		},
		{
			name:    "device listed twice",
			devs:    []Device{devs[0], devs[1], devs[0]},
			wantErr: "claim " + gpuClaimUID + " device gpu-3: listed twice",
		},
		{
			name:    "device name CDI cannot carry",
			devs:    []Device{{Name: "gpu 0", GPU: devs[0].GPU}},
			wantErr: "claim " + gpuClaimUID + ` device gpu 0: CDI device name: invalid character ' '`,
		},
		{
			name:    "no devices",
			devs:    []Device{},
			wantErr: "claim " + gpuClaimUID + ": no devices",
		},
		{
			name:     "claim UID with a path separator",
			claimUID: "../etc",
			wantErr:  `claim "../etc": not usable in a CDI spec`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, dir := newTestWriter(t, tt.editor)
			claimUID, devices := tt.claimUID, tt.devs
			if claimUID == "" {
				claimUID = gpuClaimUID
			}
			if devices == nil {
				devices = gpuClaimDevices()
			}
			ids, err := w.WriteClaimSpec(context.Background(), testClaim(claimUID), devices)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v; want one containing %q", err, tt.wantErr)
			}
			if ids != nil {
				t.Errorf("IDs = %q on error; want none", ids)
			}
			if got := dirEntries(t, dir); len(got) != 0 {
				t.Errorf("files written: %q", got)
			}
		})
	}
}

func TestFailedCheckKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	rejected := errors.New("rejected")
	err := writeFileAtomic(fsutil.OS, path, []byte("new"), func(string) error { return rejected })
	if !errors.Is(err, rejected) {
		t.Fatalf("error = %v; want %v", err, rejected)
	}
	if data, _ := os.ReadFile(path); string(data) != "old" {
		t.Errorf("file holds %q; want the old contents", data)
	}
	if got := dirEntries(t, dir); !reflect.DeepEqual(got, []string{"spec.json"}) {
		t.Errorf("directory holds %q; want only spec.json", got)
	}
}

func TestDeleteClaimSpecIsIdempotent(t *testing.T) {
	w, dir := newTestWriter(t, SimEditor{})
	ctx := context.Background()
	for _, uid := range []string{gpuClaimUID, migClaimUID} {
		if _, err := w.WriteClaimSpec(ctx, testClaim(uid), []Device{migDevice()}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := w.DeleteClaimSpec(ctx, gpuClaimUID); err != nil {
			t.Fatalf("DeleteClaimSpec: %v", err)
		}
	}
	if got, want := dirEntries(t, dir), []string{"k8s.gpu.nvidia.com-claim_" + migClaimUID + ".json"}; !reflect.DeepEqual(got, want) {
		t.Errorf("directory holds %q; want %q", got, want)
	}
	if err := w.DeleteClaimSpec(ctx, "a/b"); err == nil {
		t.Error("DeleteClaimSpec accepted a UID with a path separator")
	}
}

func TestListClaimSpecs(t *testing.T) {
	w, dir := newTestWriter(t, SimEditor{})
	if uids, err := w.ListClaimSpecs(); err != nil || len(uids) != 0 {
		t.Fatalf("missing directory: %q, %v; want nothing", uids, err)
	}
	ctx := context.Background()
	for _, uid := range []string{migClaimUID, gpuClaimUID} {
		if _, err := w.WriteClaimSpec(ctx, testClaim(uid), []Device{migDevice()}); err != nil {
			t.Fatal(err)
		}
	}
	for _, other := range []string{
		"nvidia.com-gpu.yaml",                                           // another driver's spec
		"k8s.gpu.nvidia.com-claim_x.yaml",                               // not our encoding
		"." + "k8s.gpu.nvidia.com-claim_" + gpuClaimUID + ".json.tmp-1", // an interrupted write
	} {
		if err := os.WriteFile(filepath.Join(dir, other), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "k8s.gpu.nvidia.com-claim_dir.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	uids, err := w.ListClaimSpecs()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{gpuClaimUID, migClaimUID}; !reflect.DeepEqual(uids, want) {
		t.Errorf("ListClaimSpecs = %q; want %q", uids, want)
	}
}

func TestRemoveStaleTempFiles(t *testing.T) {
	w, dir := newTestWriter(t, SimEditor{})
	if removed, err := w.RemoveStaleTempFiles(); err != nil || len(removed) != 0 {
		t.Fatalf("missing directory: %q, %v; want nothing", removed, err)
	}
	if _, err := w.WriteClaimSpec(context.Background(), testClaim(gpuClaimUID), gpuClaimDevices()); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, ".k8s.gpu.nvidia.com-claim_"+gpuClaimUID+".json.tmp-42")
	foreign := filepath.Join(dir, ".other-vendor.json.tmp-42")
	for _, p := range []string{stale, foreign} {
		if err := os.WriteFile(p, []byte("{"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := w.RemoveStaleTempFiles()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(removed, []string{stale}) {
		t.Errorf("removed %q; want %q", removed, stale)
	}
	want := []string{".other-vendor.json.tmp-42", "k8s.gpu.nvidia.com-claim_" + gpuClaimUID + ".json"}
	if got := dirEntries(t, dir); !reflect.DeepEqual(got, want) {
		t.Errorf("directory holds %q; want %q", got, want)
	}
}

func TestNewWriterRejects(t *testing.T) {
	tests := []struct {
		name, dir, vendor, class string
		editor                   Editor
	}{
		{"no directory", "", DefaultVendor, DefaultClass, SimEditor{}},
		{"vendor with a slash", "/tmp", "k8s.gpu/nvidia", DefaultClass, SimEditor{}},
		{"empty class", "/tmp", DefaultVendor, "", SimEditor{}},
		{"no editor", "/tmp", DefaultVendor, DefaultClass, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewWriter(tt.dir, tt.vendor, tt.class, tt.editor); err == nil {
				t.Error("NewWriter succeeded")
			}
		})
	}
}
