package cdi

import (
	"context"
	"reflect"
	"strings"
	"testing"

	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

// A claim served by an MPS daemon carries, once, the daemon's directories
// and the variables that point CUDA at them; the spec is one the runtime
// accepts.
func TestMPSClaimGetsTheDaemonsDirectoriesOnce(t *testing.T) {
	daemon := &MPS{PipeDir: "/var/lib/gpudra/mps/uid-1/pipe", LogDir: "/var/lib/gpudra/mps/uid-1/log"}
	a, b := gpuDevice(0, "GPU-0"), gpuDevice(1, "GPU-1")
	a.MPS, b.MPS = daemon, daemon
	w, err := NewWriter(t.TempDir(), "k8s.gpu.nvidia.com", "claim", SimEditor{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteClaimSpec(context.Background(), ClaimRef{UID: "uid-1"}, []Device{a, b}); err != nil {
		t.Fatal(err)
	}
	spec, _, err := buildSpec("k8s.gpu.nvidia.com", "claim", ClaimRef{UID: "uid-1"}, []Device{a, b}, SimEditor{})
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := []string{"NVIDIA_VISIBLE_DEVICES=GPU-0,GPU-1", "CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps", "CUDA_MPS_LOG_DIRECTORY=/var/log/nvidia-mps"}
	if !reflect.DeepEqual(spec.ContainerEdits.Env, wantEnv) {
		t.Errorf("env %v, want %v", spec.ContainerEdits.Env, wantEnv)
	}
	wantMounts := []*cdispec.Mount{
		{HostPath: daemon.PipeDir, ContainerPath: "/tmp/nvidia-mps", Options: []string{"rbind", "rw"}},
		{HostPath: daemon.LogDir, ContainerPath: "/var/log/nvidia-mps", Options: []string{"rbind", "rw"}},
	}
	if !reflect.DeepEqual(spec.ContainerEdits.Mounts, wantMounts) {
		t.Errorf("mounts %+v, want %+v", spec.ContainerEdits.Mounts, wantMounts)
	}
	for _, d := range spec.Devices {
		if len(d.ContainerEdits.Mounts) != 0 {
			t.Errorf("device %s carries mounts %+v; they belong to the claim", d.Name, d.ContainerEdits.Mounts)
		}
	}

	// No MPS: no mounts, no variables.
	plain, _, err := buildSpec("k8s.gpu.nvidia.com", "claim", ClaimRef{UID: "uid-2"}, []Device{gpuDevice(2, "GPU-2")}, SimEditor{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.ContainerEdits.Mounts) != 0 || strings.Contains(strings.Join(plain.ContainerEdits.Env, " "), "MPS") {
		t.Errorf("a claim without MPS got %+v", plain.ContainerEdits)
	}

	// Two daemons for one claim's devices is refused.
	b.MPS = &MPS{PipeDir: "/other/pipe", LogDir: "/other/log"}
	if _, _, err := buildSpec("k8s.gpu.nvidia.com", "claim", ClaimRef{UID: "uid-3"}, []Device{a, b}, SimEditor{}); err == nil || !strings.Contains(err.Error(), "a claim has one") {
		t.Errorf("two daemons: %v", err)
	}
}
