package cdi

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	cdilib "tags.cncf.io/container-device-interface/pkg/cdi"
	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

func specFile(dir, uid string) string {
	return filepath.Join(dir, "k8s.gpu.nvidia.com-claim_"+uid+".json")
}

func TestReadClaimSpecReturnsWhatWasWritten(t *testing.T) {
	w, _ := newTestWriter(t, SimEditor{})
	claim := testClaim(gpuClaimUID)
	ids, err := w.WriteClaimSpec(context.Background(), claim, gpuClaimDevices())
	if err != nil {
		t.Fatal(err)
	}
	got, err := w.ReadClaimSpec(gpuClaimUID)
	if err != nil {
		t.Fatal(err)
	}
	want := ClaimSpec{
		Claim: claim,
		Devices: []SpecDevice{
			{Name: "gpu-3", Request: "gpus", Pool: "node-1", CDIDeviceID: ids[0]},
			{Name: "gpu-0", Request: "gpus", Pool: "node-1", CDIDeviceID: ids[1]},
		},
		Annotated: true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadClaimSpec:\n got %+v\nwant %+v", got, want)
	}
}

// Specs written before they carried annotations still tell the claim (from
// the file name) and the devices (from the CDI device names).
func TestReadClaimSpecOfAnOlderVersion(t *testing.T) {
	w, dir := newTestWriter(t, SimEditor{})
	legacy, err := os.ReadFile("testdata/legacy-gpu-claim.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(specFile(dir, gpuClaimUID), legacy, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := w.ReadClaimSpec(gpuClaimUID)
	if err != nil {
		t.Fatal(err)
	}
	want := ClaimSpec{
		Claim: ClaimRef{UID: gpuClaimUID},
		Devices: []SpecDevice{
			{Name: "gpu-3", CDIDeviceID: "k8s.gpu.nvidia.com/claim=" + gpuClaimUID + "-gpu-3"},
			{Name: "gpu-0", CDIDeviceID: "k8s.gpu.nvidia.com/claim=" + gpuClaimUID + "-gpu-0"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadClaimSpec:\n got %+v\nwant %+v", got, want)
	}
}

func TestReadClaimSpecErrors(t *testing.T) {
	w, dir := newTestWriter(t, SimEditor{})
	if _, err := w.ReadClaimSpec(gpuClaimUID); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing spec: error = %v; want fs.ErrNotExist", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, data, wantErr string
	}{
		{"truncated", `{"cdiVersion": "0.6.0", "kind": "k8s.gpu.nvidia.com/cla`, "CDI spec"},
		{"empty", ``, "EOF"},
		{"null", "null\n", "empty file"},
		{"other kind", `{"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu", "devices": []}`, `kind "nvidia.com/gpu"`},
		{"another claim's annotation", `{"cdiVersion": "0.6.0", "kind": "k8s.gpu.nvidia.com/claim", "annotations": {"gpudra.nvidia.com/claim-uid": "x"}}`, `annotation gpudra.nvidia.com/claim-uid is "x"`},
		{"device of another claim", `{"cdiVersion": "0.5.0", "kind": "k8s.gpu.nvidia.com/claim", "devices": [{"name": "x-gpu-0", "containerEdits": {"env": ["A=1"]}}]}`, `device "x-gpu-0" is not named <claim UID>-<device>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(specFile(dir, gpuClaimUID), []byte(tt.data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := w.ReadClaimSpec(gpuClaimUID)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), gpuClaimUID) {
				t.Errorf("error = %v; want one naming the claim and containing %q", err, tt.wantErr)
			}
		})
	}
	if _, err := w.ReadClaimSpec("../x"); err == nil {
		t.Error("ReadClaimSpec accepted a UID with a path separator")
	}
}

// The annotations need CDI 0.6.0; the version written is still the oldest
// one that carries what the spec uses, not a fixed one.
func TestSpecVersionIsTheMinimumForItsContents(t *testing.T) {
	withGIDs := editorFunc{device: func(dev Device) (*cdispec.ContainerEdits, error) {
		edits, err := SimEditor{}.DeviceEdits(dev)
		if edits != nil {
			edits.AdditionalGIDs = []uint32{44}
		}
		return edits, err
	}}
	tests := []struct {
		name   string
		editor Editor
		want   string
	}{
		{"annotations", SimEditor{}, "0.6.0"},
		{"annotations and additional GIDs", withGIDs, "0.7.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, dir := newTestWriter(t, tt.editor)
			if _, err := w.WriteClaimSpec(context.Background(), testClaim(gpuClaimUID), gpuClaimDevices()); err != nil {
				t.Fatal(err)
			}
			spec, err := cdilib.ReadSpec(specFile(dir, gpuClaimUID), 0)
			if err != nil {
				t.Fatal(err)
			}
			if spec.Version != tt.want {
				t.Errorf("cdiVersion = %s; want %s", spec.Version, tt.want)
			}
		})
	}
}
