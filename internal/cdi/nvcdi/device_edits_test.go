package nvcdi

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gpudra/gpudra/internal/cdi"
)

func TestDeviceEditsFullGPU(t *testing.T) {
	tests := []struct {
		name string
		// device returns the device to ask for, changing the node first
		// where the case needs it.
		device    func(t *testing.T, n *fakeNode) cdi.Device
		wantNodes []string
		wantErr   []string
	}{
		{
			name:      "first GPU",
			device:    func(t *testing.T, n *fakeNode) cdi.Device { return n.gpuDevice(0) },
			wantNodes: []string{"/dev/nvidia0"},
		},
		{
			name: "GPU whose minor is not its index",
			device: func(t *testing.T, n *fakeNode) cdi.Device {
				n.gpus[5].Minor = 9
				n.charDevice(t, "dev/nvidia9")
				return n.gpuDevice(5)
			},
			wantNodes: []string{"/dev/nvidia9"},
		},
		{
			name: "GPU NVML does not know",
			device: func(t *testing.T, n *fakeNode) cdi.Device {
				d := n.gpuDevice(1)
				d.GPU.UUID = "GPU-ffffffff-0000-0000-0000-000000000000"
				return d
			},
			wantErr: []string{"gpu-1", "GPU-ffffffff-0000-0000-0000-000000000000"},
		},
		{
			name: "device node missing from the dev root",
			device: func(t *testing.T, n *fakeNode) cdi.Device {
				if err := os.Remove(n.path("dev/nvidia2")); err != nil {
					t.Fatal(err)
				}
				return n.gpuDevice(2)
			},
			wantErr: []string{"gpu-2", "GPU-00000000-0000-0000-0000-000000000002", "/dev/nvidia2"},
		},
		{
			name: "inventory and NVML disagree on the minor",
			device: func(t *testing.T, n *fakeNode) cdi.Device {
				d := n.gpuDevice(3)
				d.GPU.Minor = 4
				return d
			},
			wantErr: []string{"gpu-3", "GPU-00000000-0000-0000-0000-000000000003", "/dev/nvidia4", "/dev/nvidia3"},
		},
		{
			name:    "device without a UUID",
			device:  func(t *testing.T, n *fakeNode) cdi.Device { return cdi.Device{Name: "gpu-9"} },
			wantErr: []string{"gpu-9", "no UUID"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(t)
			e, err := NewEditor(n.options(t))
			if err != nil {
				t.Fatal(err)
			}
			edits, err := e.DeviceEdits(tc.device(t, n))
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("DeviceEdits succeeded with device nodes %v, want an error", deviceNodePaths(edits))
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := deviceNodePaths(edits); !slices.Equal(got, tc.wantNodes) {
				t.Fatalf("device nodes %v, want %v", got, tc.wantNodes)
			}
			for _, node := range edits.DeviceNodes {
				if want := n.path(node.Path); node.HostPath != want {
					t.Errorf("device node %s: host path %q, want %q", node.Path, node.HostPath, want)
				}
			}
		})
	}
}

// TestDeviceEditsMIG runs in a private mount namespace: the toolkit maps a
// MIG device's GPU and compute instance to capability nodes through
// /proc/driver/nvidia-caps/mig-minors, which only a loaded driver provides.
func TestDeviceEditsMIG(t *testing.T) {
	if !inPrivateMountNamespace(t) {
		return
	}
	n := newFakeNode(t)
	mig := n.addMIGDevice(t, 2)
	giMinor, ciMinor := 100+mig.MIG.GIID, 200+mig.MIG.CIID
	fakeProcDriverFile(t, "nvidia-caps/mig-minors", fmt.Sprintf(
		"config 1\nmonitor 2\ngpu2/gi%d/access %d\ngpu2/gi%d/ci%d/access %d\n",
		mig.MIG.GIID, giMinor, mig.MIG.GIID, mig.MIG.CIID, ciMinor))
	giNode := fmt.Sprintf("/dev/nvidia-caps/nvidia-cap%d", giMinor)
	ciNode := fmt.Sprintf("/dev/nvidia-caps/nvidia-cap%d", ciMinor)

	tests := []struct {
		name          string
		missingNode   string
		wantNodes     []string
		wantErrSubstr []string
	}{
		{
			name:      "parent node and capability nodes",
			wantNodes: []string{"/dev/nvidia2", giNode, ciNode},
		},
		{
			name:          "compute instance capability node missing",
			missingNode:   ciNode,
			wantErrSubstr: []string{mig.Name, mig.MIG.UUID, "MIG capability nodes"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, node := range []string{giNode, ciNode} {
				if err := os.Remove(n.path(node)); err != nil && !os.IsNotExist(err) {
					t.Fatal(err)
				}
				if node != tc.missingNode {
					n.charDevice(t, node)
				}
			}
			e, err := NewEditor(n.options(t))
			if err != nil {
				t.Fatal(err)
			}
			edits, err := e.DeviceEdits(mig)
			if tc.wantErrSubstr != nil {
				if err == nil {
					t.Fatalf("DeviceEdits succeeded with device nodes %v, want an error", deviceNodePaths(edits))
				}
				for _, want := range tc.wantErrSubstr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := deviceNodePaths(edits)
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.wantNodes))
			if !slices.Equal(got, want) {
				t.Fatalf("device nodes %v, want %v", got, want)
			}
			for _, node := range edits.DeviceNodes {
				if want := n.path(node.Path); node.HostPath != want {
					t.Errorf("device node %s: host path %q, want %q", node.Path, node.HostPath, want)
				}
			}
		})
	}
}

// TestHostRoots covers a plugin that sees the driver somewhere other than
// where the container runtime on the host finds it.
func TestHostRoots(t *testing.T) {
	tests := []struct {
		name           string
		hostDriverRoot string
		hostDevRoot    string
		wantLibHost    string
		wantNodeHost   string
	}{
		{
			name:           "driver container's root",
			hostDriverRoot: "/run/nvidia/driver",
			wantLibHost:    "/run/nvidia/driver/" + libDir + "/libcuda.so." + driverVersion,
			wantNodeHost:   "/run/nvidia/driver/dev/nvidia0",
		},
		{
			name:           "driver on the host, devices in the host's /dev",
			hostDriverRoot: "/",
			hostDevRoot:    "/",
			wantLibHost:    "/" + libDir + "/libcuda.so." + driverVersion,
			wantNodeHost:   "/dev/nvidia0",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(t)
			opts := n.options(t)
			opts.HostDriverRoot = tc.hostDriverRoot
			opts.HostDevRoot = tc.hostDevRoot
			e, err := NewEditor(opts)
			if err != nil {
				t.Fatal(err)
			}
			claim, err := e.ClaimEdits(nil)
			if err != nil {
				t.Fatal(err)
			}
			lib := findMount(claim, "/"+libDir+"/libcuda.so."+driverVersion)
			if lib == nil || lib.HostPath != tc.wantLibHost {
				t.Errorf("libcuda mount %+v, want host path %s", lib, tc.wantLibHost)
			}
			device, err := e.DeviceEdits(n.gpuDevice(0))
			if err != nil {
				t.Fatal(err)
			}
			node := findDeviceNode(device, "/dev/nvidia0")
			if node == nil || hostPathOf(node.Path, node.HostPath) != tc.wantNodeHost {
				t.Errorf("device node %+v, want host path %s", node, tc.wantNodeHost)
			}
		})
	}
}

// hostPathOf applies the CDI rule that an empty host path means the
// container path.
func hostPathOf(path, hostPath string) string {
	if hostPath == "" {
		return path
	}
	return hostPath
}
