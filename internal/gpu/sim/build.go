package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gpudra/gpudra/internal/gpu"
)

// NewFromConfig builds a node from a Config (as LoadConfig returns, or built
// in code by tests). Errors name the offending field.
func NewFromConfig(nodeName string, cfg *Config) (*Backend, error) {
	if nodeName == "" {
		return nil, errors.New("node name is required: GPU UUIDs derive from it")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	entries, slots := cfg.GPUs, []pciSlot(nil)
	if cfg.Profile != "" {
		p := nodeProfiles[cfg.Profile]
		entries, slots = p.config.GPUs, p.slots
	}

	type placedGPU struct {
		entry int
		model *model
		slot  pciSlot
	}
	var placed []placedGPU
	for i, e := range entries {
		m, err := lookupModel(e.Model)
		if err != nil {
			return nil, fmt.Errorf("gpus[%d].model: %w", i, err)
		}
		for range e.count() {
			placed = append(placed, placedGPU{entry: i, model: m})
		}
	}
	if slots == nil {
		slots = generatedLayout(len(placed))
	}
	if len(slots) < len(placed) {
		return nil, fmt.Errorf("profile %s: %d GPUs but %d PCI slots", cfg.Profile, len(placed), len(slots))
	}
	for i := range placed {
		placed[i].slot = slots[i]
	}
	slices.SortStableFunc(placed, func(a, b placedGPU) int { return strings.Compare(a.slot.busID, b.slot.busID) })

	b := &Backend{nodeName: nodeName, configHash: configHash(nodeName, cfg)}
	models := make([]*model, len(placed))
	for i, p := range placed {
		models[i] = p.model
	}
	b.driverVersion, b.cudaDriverVersion = defaultVersions(models)
	if cfg.DriverVersion != "" {
		b.driverVersion = cfg.DriverVersion
	}
	if cfg.CUDADriverVersion != "" {
		b.cudaDriverVersion, _ = parseVersion(cfg.CUDADriverVersion) // validated above
	}

	if len(cfg.Minors) > 0 && len(cfg.Minors) != len(placed) {
		return nil, fmt.Errorf("minors: %d given for %d GPUs", len(cfg.Minors), len(placed))
	}
	for index, p := range placed {
		g := newSimGPU(nodeName, index, p.model, p.slot)
		if len(cfg.Minors) > 0 {
			g.state.Minor = cfg.Minors[index]
		}
		g.state.MIGEnabled = entries[p.entry].MIGEnabled
		b.gpus = append(b.gpus, g)
	}
	for _, g := range b.gpus {
		entry := placed[g.state.Index].entry
		for j, d := range entries[entry].MIGDevices {
			if err := g.createConfiguredMIG(nodeName, d); err != nil {
				return nil, fmt.Errorf("gpus[%d].migDevices[%d]: %w", entry, j, err)
			}
		}
	}
	return b, nil
}

// configHash identifies the node a Config builds, so that hardware state
// written for another one is not applied to it.
func configHash(nodeName string, cfg *Config) string {
	data, _ := json.Marshal(struct {
		Node   string
		Config *Config
	}{nodeName, cfg}) // a Config always encodes
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// defaultVersions picks the newest driver among the node's models: a node has
// one driver, and it must be new enough for its newest GPU.
func defaultVersions(models []*model) (string, gpu.Version) {
	newest := models[0]
	newestVersion, _ := parseVersion(newest.defaultDriverVersion)
	for _, m := range models[1:] {
		v, _ := parseVersion(m.defaultDriverVersion)
		if compareVersions(v, newestVersion) > 0 {
			newest, newestVersion = m, v
		}
	}
	return newest.defaultDriverVersion, newest.defaultCUDAVersion
}

func compareVersions(a, b gpu.Version) int {
	if a.Major != b.Major {
		return a.Major - b.Major
	}
	if a.Minor != b.Minor {
		return a.Minor - b.Minor
	}
	return a.Patch - b.Patch
}

func newSimGPU(nodeName string, index int, m *model, slot pciSlot) *simGPU {
	g := &simGPU{model: m, state: gpu.GPU{
		Index:                 index,
		Minor:                 index,
		UUID:                  gpuUUID(nodeName, index),
		ProductName:           m.productName,
		Brand:                 m.brand,
		Architecture:          m.architecture,
		CUDAComputeCapability: m.computeCapability,
		MemoryBytes:           m.memoryBytes,
		PCIBusID:              slot.busID,
		PCIeRoot:              slot.pcieRoot,
		NUMANode:              slot.numaNode,
		MIGCapable:            m.migCapable(),
		ComputeMode:           gpu.ComputeModeDefault,
	}}
	for _, spec := range m.migProfiles {
		g.state.MIGProfiles = append(g.state.MIGProfiles, copyMIGProfile(spec.profile))
	}
	return g
}
