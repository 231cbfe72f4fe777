package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	sigsjson "sigs.k8s.io/json"

	"github.com/gpudra/gpudra/internal/gpu"
)

// A GPU keeps its MIG mode and its MIG devices when the process that made
// them dies; so does the sim. With a state directory, the node's mutable
// hardware state lives in hardware.json there, and every Backend over that
// directory (a restarted plugin, `gpudra sim mig list`, a test) works on
// the same hardware:
//
//   - a change (MIG mode, compute mode, a MIG device made or destroyed) is a
//     read-modify-write of the file under hardware.lock, so two backends
//     never lose each other's change and a refused change writes nothing;
//   - Inventory re-reads the file when it changed (inode, size, mtime);
//   - the first Backend over an empty directory writes the state its
//     profile or config builds (the config's migDevices are the node as it
//     came from the factory); later ones take the file as the truth. A
//     Backend built from another profile or config (or node name) finds a
//     file that is not its node's — other GPUs were put in — and starts
//     over from its own config, as does one after hardware.json was removed
//     while no plugin ran.
//
// hardware.json, version 1:
//
//	{
//	  "version": 1,
//	  "config": "9f86d081884c7d65",
//	  "nextSerial": 3,
//	  "gpus": [
//	    {"uuid": "GPU-...", "index": 0, "minor": 0, "product": "NVIDIA H100 80GB HBM3",
//	     "migEnabled": true, "computeMode": "Default", "timeSlice": 0,
//	     "migDevices": [
//	       {"uuid": "MIG-...", "profile": "1g.10gb", "giProfileId": 19,
//	        "placementStart": 6, "placementSize": 1, "giId": 13, "ciId": 0}
//	     ]}
//	  ]
//	}
//
// nextSerial numbers the MIG devices made on the node; a device's UUID
// derives from its serial, so a re-created device never reuses a UUID, as
// on real hardware. A device with "incomplete": true is a GPU instance
// without a compute instance (no UUID, ciId -1).
const (
	hardwareFileName    = "hardware.json"
	hardwareLockName    = "hardware.lock"
	hardwareTempPrefix  = ".hardware.json.tmp-"
	hardwareFileVersion = 1
)

// HardwareState is the content of hardware.json: what `gpudra sim mig list`
// prints and tests assert on.
type HardwareState struct {
	Version int `json:"version"`
	// Config identifies the node configuration the state belongs to.
	Config     string        `json:"config"`
	NextSerial int           `json:"nextSerial"`
	GPUs       []HardwareGPU `json:"gpus"`
}

// HardwareGPU is one GPU's mutable state. Index, Minor and Product are
// written for people reading the file; a reader matches GPUs by UUID only.
type HardwareGPU struct {
	UUID        string          `json:"uuid"`
	Index       int             `json:"index"`
	Minor       int             `json:"minor"`
	Product     string          `json:"product"`
	MIGEnabled  bool            `json:"migEnabled"`
	ComputeMode gpu.ComputeMode `json:"computeMode"`
	// TimeSlice is the compute time slice, 0 (Default) to 3 (Long); a file
	// written before it existed has none, which reads as Default.
	TimeSlice gpu.TimeSlice `json:"timeSlice"`
	// FailNextComputeInstance makes the next compute-instance create on
	// this GPU fail (see ArmComputeInstanceFailure); it is used up by it.
	FailNextComputeInstance bool                `json:"failNextComputeInstance,omitempty"`
	MIGDevices              []HardwareMIGDevice `json:"migDevices"`
}

// HardwareMIGDevice is one GPU instance and its compute instance.
type HardwareMIGDevice struct {
	UUID           string `json:"uuid,omitempty"`
	Profile        string `json:"profile"`
	GIProfileID    int    `json:"giProfileId"`
	PlacementStart int    `json:"placementStart"`
	PlacementSize  int    `json:"placementSize"`
	GIID           int    `json:"giId"`
	CIID           int    `json:"ciId"`
	Incomplete     bool   `json:"incomplete,omitempty"`
}

// hardwareReader remembers which version of hardware.json the Backend
// applied; it is guarded by the Backend's lock.
type hardwareReader struct {
	stateDir string
	read     bool
	version  fileVersion
}

func (r *hardwareReader) path() string { return filepath.Join(r.stateDir, hardwareFileName) }

// openHardware makes the state directory the home of b's hardware state:
// it applies hardware.json if one exists and writes b's built state if not.
func (b *Backend) openHardware(stateDir string) error {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return fmt.Errorf("sim state directory: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hw = &hardwareReader{stateDir: stateDir}
	return hardwareState.withLock(stateDir, func() error {
		st, err := ReadHardware(stateDir)
		if err != nil {
			return err
		}
		if st == nil || st.Config != b.configHash {
			return b.writeHardware() // a new node, or other GPUs put in
		}
		_, err = b.syncHardware()
		return err
	})
}

// syncHardware applies hardware.json when it changed since b last applied
// it, and tells whether the file exists; b.mu must be held. Without a state
// directory it does nothing. A missing file (removed by hand) leaves b's
// own state, which its next change writes back.
func (b *Backend) syncHardware() (bool, error) {
	if b.hw == nil {
		return false, nil
	}
	f, err := os.Open(b.hw.path())
	if errors.Is(err, os.ErrNotExist) {
		b.hw.read = false
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("sim hardware: %w", err)
	}
	defer func() { _ = f.Close() }()
	info, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("sim hardware: stat %s: %w", b.hw.path(), err)
	}
	version := versionOf(info)
	if b.hw.read && version == b.hw.version {
		return true, nil
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return false, fmt.Errorf("sim hardware: read %s: %w", b.hw.path(), err)
	}
	st, err := decodeHardware(data)
	if err == nil && st.Config != b.configHash {
		err = fmt.Errorf("config: %q is the state of another node configuration (this one is %q); a plugin with another --sim-profile or --sim-config runs over this directory", st.Config, b.configHash)
	}
	if err == nil {
		err = b.applyHardware(st)
	}
	if err != nil {
		b.hw.read = false
		return false, fmt.Errorf("sim hardware file %s: %w (fix it, or remove it while no plugin runs to reset the node to its config)", b.hw.path(), err)
	}
	b.hw.read, b.hw.version = true, version
	return true, nil
}

// mutateHardware runs fn, which changes b's GPUs or returns an error having
// changed nothing, as one step of the node's hardware; b.mu must be held.
// With a state directory, fn runs on the file's latest state under its lock
// and a successful change is written before the lock is released.
func (b *Backend) mutateHardware(fn func() error) error {
	if b.closed {
		return errBackendClosed
	}
	if b.hw == nil {
		return fn()
	}
	return hardwareState.withLock(b.hw.stateDir, func() error {
		if _, err := b.syncHardware(); err != nil {
			return err
		}
		if err := fn(); err != nil {
			return err
		}
		if err := b.writeHardware(); err != nil {
			// The file still holds the state before fn: read it again
			// rather than keep a change the hardware does not have.
			b.hw.read = false
			_, _ = b.syncHardware()
			return err
		}
		return nil
	})
}

// writeHardware writes b's state to hardware.json and remembers its
// version; the caller holds the lock and b.mu.
func (b *Backend) writeHardware() error {
	data, err := json.MarshalIndent(b.hardwareSnapshot(), "", "  ")
	if err != nil {
		return fmt.Errorf("encode sim hardware: %w", err)
	}
	if err := hardwareState.write(b.hw.stateDir, append(data, '\n')); err != nil {
		return fmt.Errorf("write sim hardware: %w", err)
	}
	info, err := os.Stat(b.hw.path())
	if err != nil {
		return fmt.Errorf("write sim hardware: %w", err)
	}
	b.hw.read, b.hw.version = true, versionOf(info)
	return nil
}

// hardwareSnapshot is b's state as the file holds it; b.mu must be held.
func (b *Backend) hardwareSnapshot() HardwareState {
	st := HardwareState{Version: hardwareFileVersion, Config: b.configHash, NextSerial: b.nextSerial, GPUs: []HardwareGPU{}}
	for _, g := range b.gpus {
		hg := HardwareGPU{
			UUID:                    g.state.UUID,
			Index:                   g.state.Index,
			Minor:                   g.state.Minor,
			Product:                 g.state.ProductName,
			MIGEnabled:              g.state.MIGEnabled,
			ComputeMode:             g.state.ComputeMode,
			TimeSlice:               g.state.TimeSlice,
			FailNextComputeInstance: g.failNextComputeInstance,
			MIGDevices:              []HardwareMIGDevice{},
		}
		for _, d := range g.state.MIGDevices {
			hg.MIGDevices = append(hg.MIGDevices, HardwareMIGDevice{
				UUID:           d.UUID,
				Profile:        d.Profile.Name,
				GIProfileID:    d.Profile.GIProfileID,
				PlacementStart: d.Placement.Start,
				PlacementSize:  d.Placement.Size,
				GIID:           d.GIID,
				CIID:           d.CIID,
				Incomplete:     d.Incomplete,
			})
		}
		st.GPUs = append(st.GPUs, hg)
	}
	return st
}

// applyHardware replaces b's mutable state with st's, for the GPUs st names
// (others keep theirs). It checks everything before it changes anything;
// errors name the field. b.mu must be held.
func (b *Backend) applyHardware(st *HardwareState) error {
	type update struct {
		g   *simGPU
		hg  HardwareGPU
		mig []gpu.MIGDevice
	}
	var updates []update
	for i, hg := range st.GPUs {
		idx := slices.IndexFunc(b.gpus, func(g *simGPU) bool { return g.state.UUID == hg.UUID })
		if idx < 0 {
			continue // a GPU of another node name or profile
		}
		g := b.gpus[idx]
		u := update{g: g, hg: hg}
		for j, hd := range hg.MIGDevices {
			d, err := g.decodeMIGDevice(hd, u.mig)
			if err != nil {
				return fmt.Errorf("gpus[%d].migDevices[%d].%w", i, j, err)
			}
			u.mig = append(u.mig, d)
		}
		if len(u.mig) > 0 && !hg.MIGEnabled {
			return fmt.Errorf("gpus[%d].migEnabled: false, but the GPU has %d MIG devices", i, len(u.mig))
		}
		if !gpu.ValidComputeMode(hg.ComputeMode) {
			return fmt.Errorf("gpus[%d].computeMode: unknown compute mode %q", i, hg.ComputeMode)
		}
		if !hg.TimeSlice.Valid() {
			return fmt.Errorf("gpus[%d].timeSlice: %d is not a time slice (0 Default to 3 Long)", i, hg.TimeSlice)
		}
		updates = append(updates, u)
	}
	for _, u := range updates {
		u.g.state.MIGEnabled = u.hg.MIGEnabled
		u.g.state.ComputeMode = u.hg.ComputeMode
		u.g.state.TimeSlice = u.hg.TimeSlice
		u.g.failNextComputeInstance = u.hg.FailNextComputeInstance
		u.g.state.MIGDevices = nil
		for _, d := range u.mig {
			u.g.insertMIG(d)
		}
	}
	b.nextSerial = max(b.nextSerial, st.NextSerial)
	return nil
}

// decodeMIGDevice checks one device of the file against the GPU's profiles
// and the devices before it; errors start with the field name.
func (g *simGPU) decodeMIGDevice(hd HardwareMIGDevice, before []gpu.MIGDevice) (gpu.MIGDevice, error) {
	if !g.state.MIGCapable {
		return gpu.MIGDevice{}, fmt.Errorf("giProfileId: %s does not support MIG", g.state.ProductName)
	}
	spec, ok := g.model.migProfileByID(hd.GIProfileID)
	if !ok {
		return gpu.MIGDevice{}, fmt.Errorf("giProfileId: %s has no GPU instance profile %d", g.state.ProductName, hd.GIProfileID)
	}
	p := spec.profile
	pl := gpu.Placement{Start: hd.PlacementStart, Size: hd.PlacementSize}
	if !slices.Contains(p.Placements, pl) {
		return gpu.MIGDevice{}, fmt.Errorf("placementStart: %d+%d is not a placement of %s", pl.Start, pl.Size, p.Name)
	}
	for _, o := range before {
		if o.Placement.Overlaps(pl) {
			return gpu.MIGDevice{}, fmt.Errorf("placementStart: %s at %d overlaps %s at %d", p.Name, pl.Start, o.Profile.Name, o.Placement.Start)
		}
	}
	switch {
	case hd.Incomplete && hd.UUID != "":
		return gpu.MIGDevice{}, fmt.Errorf("uuid: an incomplete device has none, got %q", hd.UUID)
	case !hd.Incomplete && hd.UUID == "":
		return gpu.MIGDevice{}, errors.New("uuid: missing")
	}
	ciid := hd.CIID
	if hd.Incomplete {
		ciid = -1
	}
	return gpu.MIGDevice{
		UUID:       hd.UUID,
		Profile:    copyMIGProfile(p),
		Placement:  pl,
		GIID:       hd.GIID,
		CIID:       ciid,
		Incomplete: hd.Incomplete,
	}, nil
}

func decodeHardware(data []byte) (*HardwareState, error) {
	var st HardwareState
	strictErrs, err := sigsjson.UnmarshalStrict(data, &st)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if len(strictErrs) > 0 {
		return nil, errors.Join(strictErrs...)
	}
	if st.Version != hardwareFileVersion {
		return nil, fmt.Errorf("version: %d is not supported (this gpudra reads version %d)", st.Version, hardwareFileVersion)
	}
	return &st, nil
}

// ReadHardware returns the hardware state recorded in stateDir, or nil if
// no backend has run there yet.
func ReadHardware(stateDir string) (*HardwareState, error) {
	path := filepath.Join(stateDir, hardwareFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sim hardware: %w", err)
	}
	st, err := decodeHardware(data)
	if err != nil {
		return nil, fmt.Errorf("sim hardware file %s: %w", path, err)
	}
	return st, nil
}

// ArmComputeInstanceFailure makes the next compute-instance create on the
// GPU recorded in stateDir fail, as NVML's CreateComputeInstance can (the
// MIG device being made is then rolled back). Backends over stateDir see
// it at their next create.
func ArmComputeInstanceFailure(stateDir, gpuUUID string) error {
	err := hardwareState.withLock(stateDir, func() error {
		st, err := ReadHardware(stateDir)
		if err != nil {
			return err
		}
		if st == nil {
			return fmt.Errorf("no %s in %s yet: start the plugin on it first", hardwareFileName, stateDir)
		}
		i := slices.IndexFunc(st.GPUs, func(g HardwareGPU) bool { return g.UUID == gpuUUID })
		if i < 0 {
			return fmt.Errorf("no GPU %s in %s", gpuUUID, filepath.Join(stateDir, hardwareFileName))
		}
		st.GPUs[i].FailNextComputeInstance = true
		data, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return fmt.Errorf("encode sim hardware: %w", err)
		}
		return hardwareState.write(stateDir, append(data, '\n'))
	})
	if err != nil {
		return fmt.Errorf("arm a compute-instance failure on %s: %w", gpuUUID, err)
	}
	return nil
}
