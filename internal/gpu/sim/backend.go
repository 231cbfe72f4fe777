package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/gpudra/gpudra/internal/gpu"
)

// Options selects the simulated node. Exactly one of Profile and ConfigFile
// is set.
type Options struct {
	// NodeName seeds the UUIDs; use the Kubernetes node name.
	NodeName string
	// Profile is one of Profiles().
	Profile string
	// ConfigFile is the path of an inventory file (see Config).
	ConfigFile string
}

// Backend is the simulated node. Its GPU set is fixed at construction; MIG
// mode, MIG devices and compute mode change through its methods.
type Backend struct {
	nodeName          string
	driverVersion     string
	cudaDriverVersion gpu.Version

	// mu guards everything below and inside gpus. Every operation is a few
	// map and slice updates, so one lock costs nothing and keeps each
	// operation atomic, as the driver does.
	mu     sync.Mutex
	closed bool
	gpus   []*simGPU // PCI bus ID order
}

// simGPU is one GPU's mutable state.
type simGPU struct {
	model *model
	// state is what Inventory reports; state.MIGDevices is kept sorted.
	state gpu.GPU
}

var _ gpu.Backend = (*Backend)(nil)

// New builds the node from a profile or an inventory file.
func New(opts Options) (*Backend, error) {
	switch {
	case opts.Profile != "" && opts.ConfigFile != "":
		return nil, errors.New("sim: set a profile or a config file, not both")
	case opts.Profile != "":
		b, err := NewFromConfig(opts.NodeName, &Config{Profile: opts.Profile})
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		return b, nil
	case opts.ConfigFile != "":
		data, err := os.ReadFile(opts.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("sim config: %w", err)
		}
		cfg, err := LoadConfig(data)
		if err != nil {
			return nil, fmt.Errorf("sim config %s: %w", opts.ConfigFile, err)
		}
		b, err := NewFromConfig(opts.NodeName, cfg)
		if err != nil {
			return nil, fmt.Errorf("sim config %s: %w", opts.ConfigFile, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("sim: a profile (one of %v) or a config file is required", Profiles())
}

// Name implements gpu.Backend.
func (b *Backend) Name() string { return "sim" }

// Close implements gpu.Backend. Later calls on the backend fail, as NVML
// calls do after nvml.Shutdown.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

// Inventory implements gpu.Backend. The result shares no memory with the
// backend.
func (b *Backend) Inventory(ctx context.Context) (*gpu.Inventory, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errBackendClosed
	}
	inv := &gpu.Inventory{
		DriverVersion:     b.driverVersion,
		CUDADriverVersion: b.cudaDriverVersion,
		GPUs:              make([]gpu.GPU, len(b.gpus)),
	}
	for i, g := range b.gpus {
		inv.GPUs[i] = copyGPU(g.state)
	}
	return inv, nil
}

// SetComputeMode sets a GPU's compute mode (MPS needs Exclusive_Process).
func (b *Backend) SetComputeMode(uuid string, mode gpu.ComputeMode) error {
	switch mode {
	case gpu.ComputeModeDefault, gpu.ComputeModeExclusiveProcess, gpu.ComputeModeProhibited:
	default:
		return fmt.Errorf("set compute mode of %s: unknown compute mode %q", uuid, mode)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	g, err := b.gpuByUUID(uuid)
	if err != nil {
		return fmt.Errorf("set compute mode of %s: %w", uuid, err)
	}
	g.state.ComputeMode = mode
	return nil
}

var errBackendClosed = errors.New("sim backend is closed")

// gpuByUUID finds a GPU; b.mu must be held. A MIG UUID gets its own error,
// since passing one where a GPU is expected is the likely mistake.
func (b *Backend) gpuByUUID(uuid string) (*simGPU, error) {
	if b.closed {
		return nil, errBackendClosed
	}
	for _, g := range b.gpus {
		if g.state.UUID == uuid {
			return g, nil
		}
	}
	if parent, _ := b.migByUUID(uuid); parent != nil {
		return nil, fmt.Errorf("%s is a MIG device of %s, not a GPU", uuid, parent.state.UUID)
	}
	return nil, fmt.Errorf("no GPU %s on this node", uuid)
}

// migByUUID finds a MIG device and its parent; b.mu must be held.
func (b *Backend) migByUUID(uuid string) (*simGPU, int) {
	for _, g := range b.gpus {
		for i, d := range g.state.MIGDevices {
			if d.UUID == uuid {
				return g, i
			}
		}
	}
	return nil, -1
}

func copyGPU(g gpu.GPU) gpu.GPU {
	out := g
	out.MIGProfiles = nil
	for _, p := range g.MIGProfiles {
		out.MIGProfiles = append(out.MIGProfiles, copyMIGProfile(p))
	}
	out.MIGDevices = nil
	for _, d := range g.MIGDevices {
		d.Profile = copyMIGProfile(d.Profile)
		out.MIGDevices = append(out.MIGDevices, d)
	}
	return out
}

func copyMIGProfile(p gpu.MIGProfile) gpu.MIGProfile {
	p.Placements = slices.Clone(p.Placements)
	return p
}
