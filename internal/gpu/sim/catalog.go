package sim

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"

	"github.com/gpudra/gpudra/internal/gpu"
)

const mib = 1 << 20

// Driver versions of go-nvml's mock DGX servers (mock/dgx*/New). They are
// not exported there, so they are copied here; a node built from a model
// defaults to the driver its DGX mock reports.
const (
	dgx550DriverVersion  = "550.54.15"
	dgx550CUDAVersion    = 12040
	dgxB200DriverVersion = "560.28.03"
	dgxB200CUDAVersion   = 12060
)

// model is one GPU product the sim can stand in for.
type model struct {
	key                  string
	productName          string
	architecture         string
	brand                string
	computeCapability    gpu.Version
	memoryBytes          uint64
	defaultDriverVersion string
	defaultCUDAVersion   gpu.Version
	migProfiles          []migProfileSpec // ordered by GIProfileID; empty without MIG
}

// migProfileSpec is a MIG profile plus the limit the sim enforces on it.
type migProfileSpec struct {
	profile gpu.MIGProfile
	// instanceCount is how many instances of the profile fit on one GPU.
	instanceCount int
}

func (m *model) migCapable() bool { return len(m.migProfiles) > 0 }

// migProfileByName finds a profile by its nvidia-smi name ("1g.10gb").
func (m *model) migProfileByName(name string) (migProfileSpec, bool) {
	for _, p := range m.migProfiles {
		if p.profile.Name == name {
			return p, true
		}
	}
	return migProfileSpec{}, false
}

// migProfileByID finds a profile by its GPU-instance profile ID.
func (m *model) migProfileByID(id int) (migProfileSpec, bool) {
	for _, p := range m.migProfiles {
		if p.profile.GIProfileID == id {
			return p, true
		}
	}
	return migProfileSpec{}, false
}

func (m *model) migProfileNames() []string {
	names := make([]string, 0, len(m.migProfiles))
	for _, p := range m.migProfiles {
		names = append(names, p.profile.Name)
	}
	return names
}

// catalog holds every model by key. It is built once from go-nvml's mock
// configs; building can only fail if a go-nvml upgrade changes them.
var catalog = sync.OnceValues(buildCatalog)

func buildCatalog() (map[string]*model, error) {
	fromMock := []struct {
		key     string
		config  gpus.Config
		driver  string
		cudaInt int
	}{
		{"a100-sxm4-40gb", gpus.A100_SXM4_40GB, dgx550DriverVersion, dgx550CUDAVersion},
		{"a100-sxm4-80gb", gpus.A100_SXM4_80GB, dgx550DriverVersion, dgx550CUDAVersion},
		{"h100-sxm5-80gb", gpus.H100_SXM5_80GB, dgx550DriverVersion, dgx550CUDAVersion},
		{"h200-sxm5-141gb", gpus.H200_SXM5_141GB, dgx550DriverVersion, dgx550CUDAVersion},
		{"b200-sxm5-180gb", gpus.B200_SXM5_180GB, dgxB200DriverVersion, dgxB200CUDAVersion},
	}
	models := map[string]*model{}
	for _, m := range fromMock {
		built, err := modelFromMock(m.key, m.config, m.driver, gpu.CUDAVersionFromInt(m.cudaInt))
		if err != nil {
			return nil, err
		}
		models[m.key] = built
	}
	// go-nvml has no mock for a non-MIG data-center card; the L4 is the common
	// one, so it is described here by hand.
	models["l4-pcie-24gb"] = &model{
		key:                  "l4-pcie-24gb",
		productName:          "NVIDIA L4",
		architecture:         ArchitectureName(nvml.DEVICE_ARCH_ADA),
		brand:                BrandName(nvml.BRAND_NVIDIA),
		computeCapability:    gpu.Version{Major: 8, Minor: 9},
		memoryBytes:          23034 * mib,
		defaultDriverVersion: dgx550DriverVersion,
		defaultCUDAVersion:   gpu.CUDAVersionFromInt(dgx550CUDAVersion),
	}
	return models, nil
}

func modelFromMock(key string, c gpus.Config, driver string, cuda gpu.Version) (*model, error) {
	memoryBytes := c.MemoryMB * mib
	profiles, err := migProfilesFromMock(c.MIGProfiles, memoryBytes)
	if err != nil {
		return nil, fmt.Errorf("catalog model %s: %w", key, err)
	}
	return &model{
		key: key,
		// The A100-SXM4-40GB mock marks its name as a mock; hardware reports
		// the name without that prefix, and users select on it.
		productName:          strings.TrimPrefix(c.Name, "Mock "),
		architecture:         ArchitectureName(c.Architecture),
		brand:                BrandName(c.Brand),
		computeCapability:    gpu.Version{Major: c.CudaMajor, Minor: c.CudaMinor},
		memoryBytes:          memoryBytes,
		defaultDriverVersion: driver,
		defaultCUDAVersion:   cuda,
		migProfiles:          profiles,
	}, nil
}

func modelKeys(models map[string]*model) []string {
	keys := make([]string, 0, len(models))
	for k := range models {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Models lists the GPU model keys an inventory file may name.
func Models() []string {
	models, err := catalog()
	if err != nil {
		return nil
	}
	return modelKeys(models)
}

func lookupModel(key string) (*model, error) {
	models, err := catalog()
	if err != nil {
		return nil, err
	}
	m, ok := models[key]
	if !ok {
		return nil, fmt.Errorf("unknown model %q (valid: %s)", key, strings.Join(modelKeys(models), ", "))
	}
	return m, nil
}
