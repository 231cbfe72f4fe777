package cdi

import (
	"fmt"

	cdispec "tags.cncf.io/container-device-interface/specs-go"
)

// Where an MPS daemon's directories appear in a container, and the
// variables that tell CUDA so (the paths nvidia-cuda-mps-control uses by
// default, so images that hard-code them keep working).
const (
	MPSPipeMountPath = "/tmp/nvidia-mps"
	MPSLogMountPath  = "/var/log/nvidia-mps"
)

// MPS is the MPS daemon that serves a device: its directories on the host.
type MPS struct {
	PipeDir string
	LogDir  string
}

// mpsEdits are the claim-wide edits for the MPS daemon its devices use:
// both directories mounted, and CUDA_MPS_PIPE_DIRECTORY and
// CUDA_MPS_LOG_DIRECTORY pointing at them. A claim's devices share one
// daemon; two would give a container two values for one variable.
func mpsEdits(devs []Device) (*cdispec.ContainerEdits, error) {
	var daemon *MPS
	for _, d := range devs {
		switch {
		case d.MPS == nil:
		case daemon == nil:
			daemon = d.MPS
		case *daemon != *d.MPS:
			return nil, fmt.Errorf("device %s is served by MPS daemon %s, another device of the claim by %s; a claim has one", d.Name, d.MPS.PipeDir, daemon.PipeDir)
		}
	}
	if daemon == nil {
		return nil, nil
	}
	return &cdispec.ContainerEdits{
		Env: []string{"CUDA_MPS_PIPE_DIRECTORY=" + MPSPipeMountPath, "CUDA_MPS_LOG_DIRECTORY=" + MPSLogMountPath},
		Mounts: []*cdispec.Mount{
			{HostPath: daemon.PipeDir, ContainerPath: MPSPipeMountPath, Options: []string{"rbind", "rw"}},
			{HostPath: daemon.LogDir, ContainerPath: MPSLogMountPath, Options: []string{"rbind", "rw"}},
		},
	}, nil
}
