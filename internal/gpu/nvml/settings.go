package nvml

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	gonvml "github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/gpudra/gpudra/internal/gpu"
)

// The settings side of the backend: compute mode through NVML, the compute
// time slice through nvidia-smi (NVML has no call for it; `nvidia-smi
// compute-policy --set-timeslice` is the documented way). Neither is read
// back for the time slice: Inventory reports it TimeSliceUnknown, and
// internal/sharing restores Default where it cannot know what was there.
var _ gpu.SettingsManager = (*Backend)(nil)

// nvidiaSMIDirs are where nvidia-smi is looked for under the driver root.
var nvidiaSMIDirs = []string{"usr/bin", "bin", "usr/local/bin", "usr/local/nvidia/bin"}

// SetComputeMode implements gpu.SettingsManager.
func (b *Backend) SetComputeMode(ctx context.Context, uuid string, mode gpu.ComputeMode) error {
	if err := b.setComputeMode(ctx, uuid, mode); err != nil {
		return fmt.Errorf("set compute mode of %s to %s: %w", uuid, mode, err)
	}
	return nil
}

func (b *Backend) setComputeMode(ctx context.Context, uuid string, mode gpu.ComputeMode) error {
	want, ok := nvmlComputeMode(mode)
	if !ok {
		return fmt.Errorf("unknown compute mode %q", mode)
	}
	done, err := b.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	dev, err := b.fullGPU(uuid)
	if err != nil {
		return err
	}
	if ret := dev.SetComputeMode(want); ret != gonvml.SUCCESS {
		return nvmlCall("nvmlDeviceSetComputeMode", ret)
	}
	return nil
}

// SetTimeSlice implements gpu.SettingsManager by running `nvidia-smi
// compute-policy -i <uuid> --set-timeslice=<n>` from the driver root.
func (b *Backend) SetTimeSlice(ctx context.Context, uuid string, t gpu.TimeSlice) error {
	if err := b.setTimeSlice(ctx, uuid, t); err != nil {
		return fmt.Errorf("set time slice of %s to %s: %w", uuid, t, err)
	}
	return nil
}

func (b *Backend) setTimeSlice(ctx context.Context, uuid string, t gpu.TimeSlice) error {
	if !t.Valid() {
		return fmt.Errorf("%d is not a time slice (0 Default to 3 Long)", int(t))
	}
	done, err := b.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	if _, err := b.fullGPU(uuid); err != nil {
		return err
	}
	smi, err := b.nvidiaSMI()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, smi, "compute-policy", "-i", uuid, fmt.Sprintf("--set-timeslice=%d", int(t)))
	if b.libraryPath != "" {
		// nvidia-smi from a mounted driver root finds the driver's NVML
		// only this way; the container's library path does not have it.
		cmd.Env = append(os.Environ(), "LD_PRELOAD="+b.libraryPath)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// fullGPU returns the handle of a full GPU by UUID; a MIG device's UUID or
// one NVML does not know wraps gpu.ErrNotAGPU.
func (b *Backend) fullGPU(uuid string) (gonvml.Device, error) {
	dev, ret := b.lib.DeviceGetHandleByUUID(uuid)
	switch {
	case ret == gonvml.ERROR_NOT_FOUND || ret == gonvml.ERROR_INVALID_ARGUMENT:
		return nil, fmt.Errorf("%w (%w)", gpu.ErrNotAGPU, nvmlCall("nvmlDeviceGetHandleByUUID", ret))
	case ret != gonvml.SUCCESS:
		return nil, nvmlCall("nvmlDeviceGetHandleByUUID", ret)
	}
	if isMIG, ret := dev.IsMigDeviceHandle(); ret == gonvml.SUCCESS && isMIG {
		return nil, fmt.Errorf("it is a MIG device: %w", gpu.ErrNotAGPU)
	}
	return dev, nil
}

// nvidiaSMI finds nvidia-smi: the configured path, else under the driver
// root.
func (b *Backend) nvidiaSMI() (string, error) {
	if b.nvidiaSMIPath != "" {
		return b.nvidiaSMIPath, nil
	}
	var tried []string
	for _, dir := range nvidiaSMIDirs {
		rel := filepath.Join(dir, "nvidia-smi")
		tried = append(tried, filepath.Join(b.driverRoot, rel))
		path, err := resolveInRoot(b.driverRoot, rel)
		if err != nil {
			continue
		}
		if info, err := os.Stat(path); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return path, nil
		}
	}
	return "", errors.New("nvidia-smi not found under driver root " + b.driverRoot + " (tried " + strings.Join(tried, ", ") + "); it sets the time slice, which NVML cannot")
}

func nvmlComputeMode(m gpu.ComputeMode) (gonvml.ComputeMode, bool) {
	switch m {
	case gpu.ComputeModeDefault:
		return gonvml.COMPUTEMODE_DEFAULT, true
	case gpu.ComputeModeExclusiveProcess:
		return gonvml.COMPUTEMODE_EXCLUSIVE_PROCESS, true
	case gpu.ComputeModeProhibited:
		return gonvml.COMPUTEMODE_PROHIBITED, true
	}
	return 0, false
}
