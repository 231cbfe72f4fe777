package devicemodel

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/dynamic-resource-allocation/resourceslice"

	"github.com/gpudra/gpudra/internal/gpu"
)

// MIGMode says how a node publishes its GPUs in MIG mode.
type MIGMode string

const (
	// MIGModeStatic publishes the MIG devices an admin cut (Build).
	MIGModeStatic MIGMode = "static"
	// MIGModeDynamic publishes MIG devices that prepare cuts on demand, as
	// partitionable devices with shared counters (BuildDynamic).
	MIGModeDynamic MIGMode = "dynamic"
)

// ParseMIGMode checks a --mig-mode value.
func ParseMIGMode(s string) (MIGMode, error) {
	switch m := MIGMode(s); m {
	case MIGModeStatic, MIGModeDynamic:
		return m, nil
	}
	return "", fmt.Errorf("MIG mode %q: want %s or %s", s, MIGModeStatic, MIGModeDynamic)
}

// DynamicOptions choose what a dynamic-MIG node publishes. The zero value is
// the default layout (see BuildDynamic).
type DynamicOptions struct {
	// Profiles are the MIG profiles published, by name. Empty: for each
	// slice count, the GPU's profile with the least memory and no extra
	// engines (H100 80GB: 1g.10gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb).
	Profiles []string
	// PerProfile is how many free placements of each profile a GPU
	// publishes, best fit first; 0 publishes every free placement.
	PerProfile int
	// OpenGPUs is how many untouched GPUs also publish MIG devices (the
	// others publish only themselves whole); 0 means 1, -1 means all.
	OpenGPUs int
	// Held are the names of devices that claims hold (allocated or
	// prepared). They stay published whatever else changes, so the
	// scheduler keeps counting what they consume, and their placements
	// count as taken.
	Held []string
	// Keep are names published recently that must stay published while
	// their placement is free: a claim may have been allocated one that
	// the node does not know of yet (see the plugin's republish window).
	Keep []string
}

// Published is what a node publishes: devices in publishing order and the
// counter sets their consumption is counted against.
type Published struct {
	Devices     []resourceapi.Device
	CounterSets []resourceapi.CounterSet
}

// MemorySliceCounterName is the counter of memory slice i in a GPU's
// counter set: each is 1, and every device consumes the slices it spans.
func MemorySliceCounterName(i int) string { return "memory-slice-" + strconv.Itoa(i) }

// DefaultDynamicProfiles returns the profiles BuildDynamic publishes for g
// when DynamicOptions.Profiles is empty.
func DefaultDynamicProfiles(g *gpu.GPU) []string {
	best := map[int]gpu.MIGProfile{}
	for _, p := range g.MIGProfiles {
		if p.JPEGEngines > 0 || p.OFAEngines > 0 || strings.Contains(p.Name, "+") {
			continue
		}
		if o, ok := best[p.SliceCount]; !ok || p.MemoryBytes < o.MemoryBytes || (p.MemoryBytes == o.MemoryBytes && p.Name < o.Name) {
			best[p.SliceCount] = p
		}
	}
	var out []gpu.MIGProfile
	for _, p := range best {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b gpu.MIGProfile) int { return a.SliceCount - b.SliceCount })
	names := make([]string, len(out))
	for i, p := range out {
		names[i] = p.Name
	}
	return names
}

// dynGPU is one GPU in MIG mode while a dynamic layout is built.
type dynGPU struct {
	g         *gpu.GPU
	attrs     map[resourceapi.QualifiedName]resourceapi.DeviceAttribute
	nSlices   int              // memory slices: the end of the last placement
	profiles  []gpu.MIGProfile // published, by slice count
	occupied  []gpu.Placement  // by instances and held devices
	held      []resourceapi.Device
	instances map[string]*gpu.MIGDevice // complete instances by device name
	fresh     bool                      // no instance, nothing held
	frontier  []resourceapi.Device
}

// BuildDynamic returns what a node in dynamic MIG mode publishes. A GPU not
// in MIG mode is published whole, as Build does. Each GPU in MIG mode gets
// a counter set of one counter per memory slice, and:
//
//   - untouched (no MIG instance, nothing held), it is published whole
//     (consuming every slice), so whole-GPU claims need no MIG device;
//   - the first OpenGPUs untouched GPUs, and every GPU already cut, also
//     publish their free placements of the chosen profiles (each consuming
//     the slices it spans), so the scheduler can never hand out a whole GPU
//     and a slice of it, or two overlapping slices;
//   - devices claims hold stay published, also whole GPUs (served by a
//     full-size instance) and MIG devices not yet cut; instances no claim
//     holds are not published and their slices count as taken.
//
// The scheduler takes the first device that fits, so the order packs:
// whole GPUs not in MIG mode, then GPUs already cut (the fullest first;
// within one, smaller profiles first, and of a profile the placement that
// blocks the fewest free placements of larger profiles), then the open
// GPUs' MIG devices, then untouched GPUs whole (the last GPU first, so the
// open GPU goes last), then held devices. MIG devices come before whole
// GPUs because the allocator evaluates the class selector of every device
// it passes, and most claims ask for small MIG devices: a 1g claim then
// stops at the first device of an empty node (see BENCHMARKS.md). MIG device names are the static
// names (gpu-<minor>-mig-<profile>-<profileID>-<start>), so prepare can read
// the placement from an allocation made from an older slice.
func BuildDynamic(inv *gpu.Inventory, opts DynamicOptions) (*Published, error) {
	gpus := make([]*gpu.GPU, 0, len(inv.GPUs))
	for i := range inv.GPUs {
		gpus = append(gpus, &inv.GPUs[i])
	}
	sort.SliceStable(gpus, func(i, j int) bool { return gpus[i].PCIBusID < gpus[j].PCIBusID })
	driverVersion, err := SemverFromDriverVersion(inv.DriverVersion)
	if err != nil {
		return nil, err
	}
	held, keep := nameSet(opts.Held), nameSet(opts.Keep)

	var plain []resourceapi.Device
	var dyn []*dynGPU
	used := map[string]bool{} // explicitly named profiles some GPU has
	for _, g := range gpus {
		attrs, err := gpuAttributes(inv, g, driverVersion)
		if err != nil {
			return nil, err
		}
		if !g.MIGEnabled {
			plain = append(plain, wholeGPUDevice(g, attrs))
			continue
		}
		d, err := newDynGPU(g, attrs, opts.Profiles, held, used)
		if err != nil {
			return nil, err
		}
		dyn = append(dyn, d)
	}
	for _, name := range opts.Profiles {
		if !used[name] && len(dyn) > 0 {
			return nil, fmt.Errorf("dynamic MIG profile %q: no GPU in MIG mode on this node has it", name)
		}
	}

	open := opts.OpenGPUs
	if open == 0 {
		open = 1
	}
	var fresh, openGPUs, cut []*dynGPU
	for _, d := range dyn {
		switch {
		case !d.fresh:
			cut = append(cut, d)
		case open < 0 || len(openGPUs) < open:
			openGPUs = append(openGPUs, d)
		default:
			fresh = append(fresh, d)
		}
	}
	for _, d := range append(slices.Clone(cut), openGPUs...) {
		d.frontier = d.frontierDevices(opts.PerProfile, keep)
	}
	for _, d := range fresh {
		// An untouched GPU that is not open publishes MIG devices only
		// where a recently published one must stay.
		d.frontier = d.frontierDevices(-1, keep)
	}

	out := &Published{}
	out.Devices = append(out.Devices, plain...)
	slices.SortStableFunc(cut, func(a, b *dynGPU) int { return cmp.Compare(b.occupiedSlices(), a.occupiedSlices()) })
	for _, d := range cut {
		out.Devices = append(out.Devices, d.frontier...)
	}
	for _, d := range openGPUs {
		out.Devices = append(out.Devices, d.frontier...)
	}
	for _, d := range fresh {
		out.Devices = append(out.Devices, d.frontier...)
	}
	for _, d := range slices.Backward(fresh) {
		out.Devices = append(out.Devices, d.fullDevice())
	}
	for _, d := range openGPUs {
		out.Devices = append(out.Devices, d.fullDevice())
	}
	for _, d := range dyn {
		out.Devices = append(out.Devices, d.held...)
		out.CounterSets = append(out.CounterSets, d.counterSet())
	}
	if err := checkLimits(out.Devices); err != nil {
		return nil, err
	}
	return out, nil
}

func newDynGPU(g *gpu.GPU, attrs map[resourceapi.QualifiedName]resourceapi.DeviceAttribute, names []string, held map[string]bool, used map[string]bool) (*dynGPU, error) {
	d := &dynGPU{g: g, attrs: attrs, instances: map[string]*gpu.MIGDevice{}}
	for _, p := range g.MIGProfiles {
		for _, pl := range p.Placements {
			d.nSlices = max(d.nSlices, pl.Start+pl.Size)
		}
	}
	if names == nil {
		names = DefaultDynamicProfiles(g)
	}
	for _, name := range names {
		i := slices.IndexFunc(g.MIGProfiles, func(p gpu.MIGProfile) bool { return p.Name == name })
		if i < 0 {
			continue
		}
		p := g.MIGProfiles[i]
		if p.JPEGEngines > 0 || p.OFAEngines > 0 {
			return nil, fmt.Errorf("dynamic MIG profile %q: it takes JPEG or OFA engines, which dynamic MIG does not count; use a profile without them", name)
		}
		used[name] = true
		d.profiles = append(d.profiles, p)
	}
	slices.SortStableFunc(d.profiles, func(a, b gpu.MIGProfile) int { return a.SliceCount - b.SliceCount })

	for j := range g.MIGDevices {
		m := &g.MIGDevices[j]
		d.occupied = append(d.occupied, m.Placement)
		if !m.Incomplete {
			d.instances[MIGDeviceName(g, m)] = m
		}
	}
	prefix := GPUDeviceName(g)
	for name := range held {
		if name != prefix && !strings.HasPrefix(name, prefix+"-mig-") {
			continue
		}
		t, err := locateOnGPU(g, name)
		if err != nil {
			return nil, fmt.Errorf("held device %s: %w", name, err)
		}
		if t.Profile == nil {
			d.occupied = append(d.occupied, gpu.Placement{Start: 0, Size: d.nSlices})
			d.held = append(d.held, d.fullDevice())
			continue
		}
		if _, ok := d.instances[name]; !ok {
			d.occupied = append(d.occupied, t.Placement)
		}
		d.held = append(d.held, d.migDevice(*t.Profile, t.Placement, name))
	}
	slices.SortFunc(d.held, func(a, b resourceapi.Device) int { return strings.Compare(a.Name, b.Name) })
	d.fresh = len(g.MIGDevices) == 0 && len(d.held) == 0
	return d, nil
}

// frontierDevices are the free placements the GPU offers: per profile the
// first perProfile in best-fit order (all when 0, none when -1), plus kept
// devices whose placement is still free.
func (d *dynGPU) frontierDevices(perProfile int, keep map[string]bool) []resourceapi.Device {
	type cand struct {
		p     gpu.MIGProfile
		pl    gpu.Placement
		score int
	}
	free := func(pl gpu.Placement) bool {
		return !slices.ContainsFunc(d.occupied, pl.Overlaps)
	}
	var out []resourceapi.Device
	published := map[string]bool{}
	for _, p := range d.profiles {
		var cands []cand
		for _, pl := range p.Placements {
			if !free(pl) {
				continue
			}
			// Best fit: the placement that blocks the fewest free
			// placements of larger profiles, so a 4g or a 7g still fits
			// when it could.
			score := 0
			for _, q := range d.profiles {
				if q.SliceCount <= p.SliceCount {
					continue
				}
				for _, qpl := range q.Placements {
					if free(qpl) && qpl.Overlaps(pl) {
						score++
					}
				}
			}
			cands = append(cands, cand{p, pl, score})
		}
		slices.SortStableFunc(cands, func(a, b cand) int {
			if a.score != b.score {
				return a.score - b.score
			}
			return b.pl.Start - a.pl.Start
		})
		n := len(cands)
		switch {
		case perProfile < 0:
			n = 0
		case perProfile > 0:
			n = min(n, perProfile)
		}
		for _, c := range cands[:n] {
			name := migName(d.g, c.p, c.pl)
			published[name] = true
			out = append(out, d.migDevice(c.p, c.pl, name))
		}
	}
	// Kept devices of this GPU whose placement is still free.
	var kept []resourceapi.Device
	for name := range keep {
		if published[name] || !strings.HasPrefix(name, GPUDeviceName(d.g)+"-mig-") {
			continue
		}
		t, err := locateOnGPU(d.g, name)
		if err != nil || t.Profile == nil || !free(t.Placement) {
			continue
		}
		kept = append(kept, d.migDevice(*t.Profile, t.Placement, name))
	}
	slices.SortFunc(kept, func(a, b resourceapi.Device) int { return strings.Compare(a.Name, b.Name) })
	return append(out, kept...)
}

func (d *dynGPU) occupiedSlices() int {
	taken := map[int]bool{}
	for _, pl := range d.occupied {
		for i := pl.Start; i < pl.Start+pl.Size; i++ {
			taken[i] = true
		}
	}
	return len(taken)
}

func (d *dynGPU) counterSet() resourceapi.CounterSet {
	counters := make(map[string]resourceapi.Counter, d.nSlices)
	for i := range d.nSlices {
		counters[MemorySliceCounterName(i)] = resourceapi.Counter{Value: *resource.NewQuantity(1, resource.DecimalSI)}
	}
	return resourceapi.CounterSet{Name: CounterSetName(d.g), Counters: counters}
}

func (d *dynGPU) consumes(pl gpu.Placement) []resourceapi.DeviceCounterConsumption {
	counters := make(map[string]resourceapi.Counter, pl.Size)
	for i := pl.Start; i < pl.Start+pl.Size; i++ {
		counters[MemorySliceCounterName(i)] = resourceapi.Counter{Value: *resource.NewQuantity(1, resource.DecimalSI)}
	}
	return []resourceapi.DeviceCounterConsumption{{CounterSet: CounterSetName(d.g), Counters: counters}}
}

// fullDevice is the GPU whole: it consumes every memory slice.
func (d *dynGPU) fullDevice() resourceapi.Device {
	dev := wholeGPUDevice(d.g, d.attrs)
	dev.ConsumesCounters = d.consumes(gpu.Placement{Start: 0, Size: d.nSlices})
	return dev
}

// migDevice is the MIG device of profile p at pl, with the UUID of the
// instance there if one exists.
func (d *dynGPU) migDevice(p gpu.MIGProfile, pl gpu.Placement, name string) resourceapi.Device {
	m := gpu.MIGDevice{Profile: p, Placement: pl}
	if inst, ok := d.instances[name]; ok {
		m.UUID = inst.UUID
	}
	dev := migDevice(d.g, &m, d.attrs)
	// The memory-slice counters say which slices the device spans; the
	// per-slice capacities static MIG publishes would only make every CEL
	// evaluation of the device dearer (the allocator copies each capacity
	// into a map per evaluation). Upstream's dynamic devices lack them too.
	for i := pl.Start; i < pl.Start+pl.Size; i++ {
		delete(dev.Capacity, MemorySliceCapacityName(i))
	}
	dev.ConsumesCounters = d.consumes(pl)
	return dev
}

func migName(g *gpu.GPU, p gpu.MIGProfile, pl gpu.Placement) string {
	return MIGDeviceName(g, &gpu.MIGDevice{Profile: p, Placement: pl})
}

func nameSet(names []string) map[string]bool {
	s := make(map[string]bool, len(names))
	for _, n := range names {
		s[n] = true
	}
	return s
}

// DriverResources wraps what a node publishes into its pool: the counter
// sets first, at most ResourceSliceMaxCounterSets to a slice, then the
// devices, at most ResourceSliceMaxDevicesWithAdvancedFeatures to a slice
// when they consume counters (ResourceSliceMaxDevices otherwise). Counter
// sets and devices never share a slice, as Kubernetes 1.35 and later
// require.
func (p *Published) DriverResources(nodeName string) *resourceslice.DriverResources {
	if len(p.CounterSets) == 0 {
		return DriverResources(nodeName, p.Devices)
	}
	var out []resourceslice.Slice
	for start := 0; start < len(p.CounterSets); start += resourceapi.ResourceSliceMaxCounterSets {
		end := min(start+resourceapi.ResourceSliceMaxCounterSets, len(p.CounterSets))
		out = append(out, resourceslice.Slice{SharedCounters: p.CounterSets[start:end]})
	}
	per := resourceapi.ResourceSliceMaxDevicesWithAdvancedFeatures
	for start := 0; start < len(p.Devices); start += per {
		end := min(start+per, len(p.Devices))
		out = append(out, resourceslice.Slice{Devices: p.Devices[start:end]})
	}
	return &resourceslice.DriverResources{Pools: map[string]resourceslice.Pool{nodeName: {Slices: out}}}
}

// Target is the hardware a dynamic-MIG device name stands for.
type Target struct {
	GPU *gpu.GPU
	// Profile is nil for the GPU whole.
	Profile   *gpu.MIGProfile
	Placement gpu.Placement
}

// Slot is the MIG slot of a MIG target.
func (t Target) Slot() gpu.MIGSlot {
	return gpu.MIGSlot{ParentUUID: t.GPU.UUID, GIProfileID: t.Profile.GIProfileID, Placement: t.Placement}
}

// LocateDynamic reads a device name a dynamic-MIG node published, perhaps
// in an older slice, back into the GPU, profile and placement it stands
// for, checking them against the inventory. Errors say which part of the
// name is wrong.
func LocateDynamic(inv *gpu.Inventory, name string) (Target, error) {
	minor, rest, ok := splitGPUName(name)
	if !ok {
		return Target{}, fmt.Errorf("device %s: not a GPU (gpu-<minor>) or MIG device name (gpu-<minor>-mig-<profile>-<profileID>-<start>)", name)
	}
	i := slices.IndexFunc(inv.GPUs, func(g gpu.GPU) bool { return g.Minor == minor })
	if i < 0 {
		return Target{}, fmt.Errorf("device %s: no GPU with minor number %d on this node", name, minor)
	}
	g := &inv.GPUs[i]
	if rest == "" {
		if !g.MIGEnabled {
			return Target{}, fmt.Errorf("device %s: GPU %s is not in MIG mode, so it is not a dynamic-MIG device", name, g.UUID)
		}
		return Target{GPU: g}, nil
	}
	return locateOnGPU(g, name)
}

// locateOnGPU resolves a name of g (the whole GPU or one of its MIG
// devices).
func locateOnGPU(g *gpu.GPU, name string) (Target, error) {
	_, rest, ok := splitGPUName(name)
	if !ok {
		return Target{}, fmt.Errorf("device %s: not a device name of GPU %s", name, GPUDeviceName(g))
	}
	if rest == "" {
		return Target{GPU: g}, nil
	}
	if !g.MIGEnabled {
		return Target{}, fmt.Errorf("device %s: GPU %s is not in MIG mode", name, g.UUID)
	}
	// rest is "<profile>-<profileID>-<start>"; the profile part may hold
	// dashes of its own ("1g10gb-me").
	parts := strings.Split(rest, "-")
	if len(parts) < 3 {
		return Target{}, fmt.Errorf("device %s: want gpu-<minor>-mig-<profile>-<profileID>-<start>", name)
	}
	id, err1 := strconv.Atoi(parts[len(parts)-2])
	start, err2 := strconv.Atoi(parts[len(parts)-1])
	if err1 != nil || err2 != nil {
		return Target{}, fmt.Errorf("device %s: profile ID and placement start must be numbers", name)
	}
	pi := slices.IndexFunc(g.MIGProfiles, func(p gpu.MIGProfile) bool { return p.GIProfileID == id })
	if pi < 0 {
		return Target{}, fmt.Errorf("device %s: %s has no MIG profile with ID %d: %w", name, g.ProductName, id, gpu.ErrMIGProfileUnsupported)
	}
	p := &g.MIGProfiles[pi]
	if frag := strings.Join(parts[:len(parts)-2], "-"); frag != profileNameForDevice(p.Name) {
		return Target{}, fmt.Errorf("device %s: profile ID %d is %s on %s, not %q", name, id, p.Name, g.ProductName, frag)
	}
	pl := slices.IndexFunc(p.Placements, func(pl gpu.Placement) bool { return pl.Start == start })
	if pl < 0 {
		return Target{}, fmt.Errorf("device %s: %d is not a placement of %s: %w", name, start, p.Name, gpu.ErrMIGPlacementInvalid)
	}
	return Target{GPU: g, Profile: p, Placement: p.Placements[pl]}, nil
}

// ParentMinor returns the minor number of the GPU a device name of this
// model belongs to ("gpu-3", "gpu-3-mig-1g10gb-19-0": 3).
func ParentMinor(name string) (int, bool) {
	minor, _, ok := splitGPUName(name)
	return minor, ok
}

// splitGPUName splits "gpu-<minor>[-mig-<rest>]".
func splitGPUName(name string) (minor int, rest string, ok bool) {
	s, found := strings.CutPrefix(name, "gpu-")
	if !found {
		return 0, "", false
	}
	num, rest, isMIG := strings.Cut(s, "-mig-")
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || (isMIG && rest == "") {
		return 0, "", false
	}
	return n, rest, true
}
