package sim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	sigsjson "sigs.k8s.io/json"
)

// The state directory is the simulated node's control surface: a file that
// says what is wrong with which GPU, outliving the plugin process as broken
// hardware does. Writers (gpudra sim, tests, the health work's XID
// injection) change it only through InjectFault and ClearFaults; a Backend
// whose Options.StateDir names it applies it on every Inventory.
//
// faults.json, version 1:
//
//	{
//	  "version": 1,
//	  "faults": [
//	    {"kind": "lost", "gpu": "GPU-1b7c...", "time": "2025-06-01T12:00:00Z"}
//	  ]
//	}
//
// Each entry is one fault on one GPU, named by UUID (the only name that
// stays right when GPUs are renumbered). New kinds of fault, such as an XID
// event with its own "xid" field, are new entries under the same version: a
// reader rejects a kind or field it does not know, naming the entry, rather
// than ignore a fault it was told about. A change to the meaning of an
// existing field bumps the version.
const (
	faultsFileName    = "faults.json"
	faultsLockName    = "faults.lock"
	faultsTempPrefix  = ".faults.json.tmp-"
	faultsFileVersion = 1
)

// FaultKind is what is wrong with a GPU.
type FaultKind string

// FaultLost is a GPU that fell off the bus: it still enumerates, but every
// call on it fails with GPU_IS_LOST. Inventory leaves it out of GPUs and
// reports it in Unavailable, and the backend's operations on it fail, until
// the fault is cleared; then it returns as it was (same UUID, same MIG
// devices).
const FaultLost FaultKind = "lost"

var faultKinds = []FaultKind{FaultLost}

// Fault is one entry of the faults file.
type Fault struct {
	// Kind of fault.
	Kind FaultKind `json:"kind"`
	// GPU is the UUID of the faulty GPU ("GPU-...").
	GPU string `json:"gpu"`
	// Time the fault was injected; InjectFault sets it when zero.
	Time time.Time `json:"time"`
}

// faultsFile is the schema of faults.json.
type faultsFile struct {
	Version int     `json:"version"`
	Faults  []Fault `json:"faults"`
}

// reason is the Unavailable reason of a GPU this fault made lost.
func (f Fault) reason() string {
	if f.Time.IsZero() {
		return "simulated: GPU_IS_LOST (injected by gpudra sim)"
	}
	return fmt.Sprintf("simulated: GPU_IS_LOST (injected by gpudra sim at %s)", f.Time.UTC().Format(time.RFC3339))
}

// validate returns the first problem of an entry, prefixed with its field.
func (f Fault) validate() error {
	if !slices.Contains(faultKinds, f.Kind) {
		return fmt.Errorf("kind: unknown fault kind %q (valid: %s)", f.Kind, joinKinds(faultKinds))
	}
	switch {
	case strings.HasPrefix(f.GPU, "MIG-"):
		return fmt.Errorf("gpu: %s is a MIG device; faults apply to whole GPUs", f.GPU)
	case !strings.HasPrefix(f.GPU, "GPU-"):
		return fmt.Errorf("gpu: %q is not a GPU UUID (GPU-...)", f.GPU)
	}
	return nil
}

// decodeFaults parses and validates faults.json. Errors name the field.
func decodeFaults(data []byte) ([]Fault, error) {
	var file faultsFile
	strictErrs, err := sigsjson.UnmarshalStrict(data, &file)
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if len(strictErrs) > 0 {
		return nil, errors.Join(strictErrs...)
	}
	if file.Version != faultsFileVersion {
		return nil, fmt.Errorf("version: %d is not supported (this gpudra reads version %d)", file.Version, faultsFileVersion)
	}
	for i, f := range file.Faults {
		if err := f.validate(); err != nil {
			return nil, fmt.Errorf("faults[%d].%w", i, err)
		}
	}
	return file.Faults, nil
}

// ReadFaults returns the faults recorded in stateDir, oldest first. No file
// (nothing injected yet) is no faults.
func ReadFaults(stateDir string) ([]Fault, error) {
	path := filepath.Join(stateDir, faultsFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sim faults: %w", err)
	}
	faults, err := decodeFaults(data)
	if err != nil {
		return nil, fmt.Errorf("sim faults file %s: %w", path, err)
	}
	return faults, nil
}

// InjectFault records f in stateDir (created if missing). Injecting a fault
// a GPU already has changes nothing, so the first injection's time stays.
// Backends reading stateDir see it at their next Inventory.
func InjectFault(stateDir string, f Fault) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("inject fault: %w", err)
	}
	if f.Time.IsZero() {
		f.Time = time.Now().UTC().Truncate(time.Second)
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return fmt.Errorf("inject %s fault on %s: %w", f.Kind, f.GPU, err)
	}
	err := faultsState.withLock(stateDir, func() error {
		faults, err := ReadFaults(stateDir)
		if err != nil {
			return fmt.Errorf("%w (fix the file, or reset it with gpudra sim clear --all)", err)
		}
		if slices.ContainsFunc(faults, func(o Fault) bool { return o.Kind == f.Kind && o.GPU == f.GPU }) {
			return nil
		}
		return writeFaults(stateDir, append(faults, f))
	})
	if err != nil {
		return fmt.Errorf("inject %s fault on %s: %w", f.Kind, f.GPU, err)
	}
	return nil
}

// ClearFaults removes every fault of the GPU with the given UUID, or every
// fault when gpuUUID is "". Clearing all does not read the file, so it also
// resets a file that cannot be read. A state directory that does not exist
// has nothing to clear.
func ClearFaults(stateDir string, gpuUUID string) error {
	what := "all faults"
	if gpuUUID != "" {
		what = "faults of " + gpuUUID
	}
	if _, err := os.Stat(stateDir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	err := faultsState.withLock(stateDir, func() error {
		if gpuUUID == "" {
			return writeFaults(stateDir, nil)
		}
		faults, err := ReadFaults(stateDir)
		if err != nil {
			return fmt.Errorf("%w (fix the file, or reset it with gpudra sim clear --all)", err)
		}
		kept := slices.DeleteFunc(slices.Clone(faults), func(f Fault) bool { return f.GPU == gpuUUID })
		if len(kept) == len(faults) {
			return nil
		}
		return writeFaults(stateDir, kept)
	})
	if err != nil {
		return fmt.Errorf("clear %s: %w", what, err)
	}
	return nil
}

func joinKinds(kinds []FaultKind) string {
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
