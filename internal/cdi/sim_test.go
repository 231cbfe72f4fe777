package cdi

import (
	"reflect"
	"strings"
	"testing"

	cdispec "tags.cncf.io/container-device-interface/specs-go"

	"github.com/gpudra/gpudra/internal/gpu"
)

func TestSimEditorClaimEdits(t *testing.T) {
	tests := []struct {
		name    string
		devs    []Device
		want    *cdispec.ContainerEdits
		wantErr string
	}{
		{
			name: "GPU and MIG device in allocation order",
			devs: []Device{migDevice(), gpuDevice(0, "GPU-0")},
			want: &cdispec.ContainerEdits{
				Env:         []string{"NVIDIA_VISIBLE_DEVICES=MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee,GPU-0"},
				DeviceNodes: []*cdispec.DeviceNode{{Path: "/dev/nvidiactl", HostPath: "/dev/null"}},
			},
		},
		{
			name:    "MIG device not created yet",
			devs:    []Device{{Name: "gpu-1-mig-1g10gb-19-0", GPU: gpu.GPU{UUID: "GPU-1"}, MIG: &gpu.MIGDevice{}}},
			wantErr: "device gpu-1-mig-1g10gb-19-0: no UUID",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SimEditor{}.ClaimEdits(tt.devs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ClaimEdits = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestSimEditorDeviceEdits(t *testing.T) {
	tests := []struct {
		name     string
		dev      Device
		wantNode string
		wantErr  string
	}{
		{name: "full GPU", dev: gpuDevice(7, "GPU-7"), wantNode: "/dev/nvidia7"},
		{name: "MIG device uses its parent's node", dev: migDevice(), wantNode: "/dev/nvidia1"},
		{name: "negative minor", dev: Device{Name: "gpu-x", GPU: gpu.GPU{Minor: -1}}, wantErr: "device gpu-x: negative minor number -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SimEditor{}.DeviceEdits(tt.dev)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			want := &cdispec.ContainerEdits{DeviceNodes: []*cdispec.DeviceNode{{Path: tt.wantNode, HostPath: "/dev/null"}}}
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("DeviceEdits = %+v, %v; want %+v", got, err, want)
			}
		})
	}
}
