package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	// StateDir, when set, is the node's control surface: every Inventory
	// applies the faults recorded there by InjectFault (re-reading the file
	// only when it changed). Empty: no faults can be injected.
	StateDir string
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
	// faults reads the state directory's faults file; nil without one.
	faults *faultsReader
	// hw keeps the GPUs' mutable state in the state directory's
	// hardware.json; nil without one (the state then lives only here).
	hw *hardwareReader
	// nextSerial numbers the next MIG device CreateMIGDevice makes.
	nextSerial int
	// configHash identifies the node's Config (see hardware.json).
	configHash string
}

// simGPU is one GPU's mutable state.
type simGPU struct {
	model *model
	// state is what Inventory reports; state.MIGDevices is kept sorted.
	state gpu.GPU
	// failNextComputeInstance fails the next compute-instance create.
	failNextComputeInstance bool
}

var _ gpu.Backend = (*Backend)(nil)

// New builds the node from a profile or an inventory file.
func New(opts Options) (*Backend, error) {
	b, err := newNode(opts)
	if err != nil {
		return nil, err
	}
	if opts.StateDir != "" {
		b.faults = &faultsReader{path: filepath.Join(opts.StateDir, faultsFileName)}
		if err := b.openHardware(opts.StateDir); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func newNode(opts Options) (*Backend, error) {
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
// backend. A GPU the state directory declares lost is reported in
// Unavailable instead of GPUs; a faults file that cannot be parsed fails the
// whole call (see lostGPUs).
func (b *Backend) Inventory(ctx context.Context) (*gpu.Inventory, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errBackendClosed
	}
	if _, err := b.syncHardware(); err != nil {
		return nil, err
	}
	lost, err := b.lostGPUs()
	if err != nil {
		return nil, err
	}
	inv := &gpu.Inventory{
		DriverVersion:     b.driverVersion,
		CUDADriverVersion: b.cudaDriverVersion,
	}
	for _, g := range b.gpus {
		if fault, ok := lost[g.state.UUID]; ok {
			inv.Unavailable = append(inv.Unavailable, gpu.UnavailableGPU{
				Index:    g.state.Index,
				Minor:    g.state.Minor,
				UUID:     g.state.UUID,
				PCIBusID: g.state.PCIBusID,
				Reason:   fault.reason(),
			})
			continue
		}
		inv.GPUs = append(inv.GPUs, copyGPU(g.state))
	}
	return inv, nil
}

// lostGPUs returns the GPUs the state directory declares lost, by UUID; b.mu
// must be held. Faults naming GPUs this node does not have (left from an
// earlier node name or profile) match nothing.
//
// A faults file that cannot be parsed is an error, not "no faults": it is
// the simulated hardware's state, and guessing would publish a GPU an
// operator declared lost (or hide healthy ones), which is what the error
// prevents; NVML failing as a whole is an error for the same reason. The
// error names the file and the field, and ClearFaults(dir, "") resets it.
func (b *Backend) lostGPUs() (map[string]Fault, error) {
	if b.faults == nil {
		return nil, nil
	}
	return b.faults.lostGPUs()
}

// SetComputeMode sets a GPU's compute mode (MPS needs Exclusive_Process).
// Like NVML, it refuses a lost GPU and a MIG device.
func (b *Backend) SetComputeMode(_ context.Context, uuid string, mode gpu.ComputeMode) error {
	if !gpu.ValidComputeMode(mode) {
		return fmt.Errorf("set compute mode of %s: unknown compute mode %q", uuid, mode)
	}
	err := b.mutateGPU(uuid, func(g *simGPU) { g.state.ComputeMode = mode })
	if err != nil {
		return fmt.Errorf("set compute mode of %s to %s: %w", uuid, mode, err)
	}
	return nil
}

// SetTimeSlice sets a GPU's compute time slice, as `nvidia-smi
// compute-policy --set-timeslice` does.
func (b *Backend) SetTimeSlice(_ context.Context, uuid string, t gpu.TimeSlice) error {
	if !t.Valid() {
		return fmt.Errorf("set time slice of %s: %d is not a time slice (0 Default to 3 Long)", uuid, int(t))
	}
	err := b.mutateGPU(uuid, func(g *simGPU) { g.state.TimeSlice = t })
	if err != nil {
		return fmt.Errorf("set time slice of %s to %s: %w", uuid, t, err)
	}
	return nil
}

// mutateGPU changes one full GPU's state as one hardware step.
func (b *Backend) mutateGPU(uuid string, fn func(g *simGPU)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mutateHardware(func() error {
		g, err := b.gpuByUUID(uuid)
		if err != nil {
			return err
		}
		fn(g)
		return nil
	})
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
			if err := b.refuseLost(g); err != nil {
				return nil, err
			}
			return g, nil
		}
	}
	if parent, _ := b.migByUUID(uuid); parent != nil {
		return nil, fmt.Errorf("%s is a MIG device of %s: %w", uuid, parent.state.UUID, gpu.ErrNotAGPU)
	}
	return nil, fmt.Errorf("%s: %w", uuid, gpu.ErrNotAGPU)
}

// refuseLost fails for a GPU the state directory declares lost, as NVML
// answers GPU_IS_LOST to every call on it; b.mu must be held.
func (b *Backend) refuseLost(g *simGPU) error {
	lost, err := b.lostGPUs()
	if err != nil {
		return err
	}
	if fault, ok := lost[g.state.UUID]; ok {
		return fmt.Errorf("GPU %s is lost: %s", g.state.UUID, fault.reason())
	}
	return nil
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
