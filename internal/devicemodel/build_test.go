package devicemodel

import (
	"fmt"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gpudra/gpudra/internal/gpu"
)

func testInventory() *gpu.Inventory {
	oneG := gpu.MIGProfile{Name: "1g.10gb", GIProfileID: 19, SliceCount: 1, Multiprocessors: 16, CopyEngines: 1, Decoders: 1, MemoryBytes: 10240 << 20}
	me := gpu.MIGProfile{Name: "1g.10gb+me", GIProfileID: 20, SliceCount: 1, Multiprocessors: 16, CopyEngines: 1, Decoders: 1, JPEGEngines: 1, OFAEngines: 1, MemoryBytes: 10240 << 20}
	return &gpu.Inventory{
		DriverVersion:     "535.104.05",
		CUDADriverVersion: gpu.Version{Major: 12, Minor: 2},
		GPUs: []gpu.GPU{
			{ // listed first but on a later bus: must sort after the other GPU
				Index: 1, Minor: 1, UUID: "GPU-bbbb", ProductName: "NVIDIA H100 80GB HBM3", Brand: "Nvidia",
				Architecture: "Hopper", CUDAComputeCapability: gpu.Version{Major: 9}, MemoryBytes: 81920 << 20,
				PCIBusID: "0000:2a:00.0", PCIeRoot: "pci0000:20", NUMANode: -1, MIGCapable: true, MIGEnabled: true,
				MIGDevices: []gpu.MIGDevice{
					{UUID: "MIG-2", Profile: oneG, Placement: gpu.Placement{Start: 1, Size: 1}},
					{UUID: "MIG-1", Profile: me, Placement: gpu.Placement{Start: 0, Size: 1}},
				},
			},
			{
				Index: 0, Minor: 0, UUID: "GPU-aaaa", ProductName: "NVIDIA H100 80GB HBM3", Brand: "Nvidia",
				Architecture: "Hopper", CUDAComputeCapability: gpu.Version{Major: 9}, MemoryBytes: 81920 << 20,
				PCIBusID: "0000:18:00.0", PCIeRoot: "pci0000:10", NUMANode: 0, AddressingMode: "HMM", MIGCapable: true,
			},
		},
	}
}

func TestBuildOrderNamesAndTypes(t *testing.T) {
	devices, err := Build(testInventory())
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, typ, uuid string }{
		{"gpu-0", TypeGPU, "GPU-aaaa"},
		{"gpu-1-mig-1g10gb-19-1", TypeMIG, "MIG-2"},
		{"gpu-1-mig-1g10gb-me-20-0", TypeMIG, "MIG-1"},
	}
	if len(devices) != len(want) {
		t.Fatalf("got %d devices, want %d", len(devices), len(want))
	}
	for i, w := range want {
		d := devices[i]
		if d.Name != w.name || *d.Attributes["type"].StringValue != w.typ || *d.Attributes["uuid"].StringValue != w.uuid {
			t.Errorf("device %d = %s/%s/%s, want %s/%s/%s", i, d.Name, *d.Attributes["type"].StringValue, *d.Attributes["uuid"].StringValue, w.name, w.typ, w.uuid)
		}
	}
}

func TestBuildGPUAttributes(t *testing.T) {
	devices, err := Build(testInventory())
	if err != nil {
		t.Fatal(err)
	}
	d := devices[0]
	strs := map[resourceapi.QualifiedName]string{
		"type": "gpu", "uuid": "GPU-aaaa", "productName": "NVIDIA H100 80GB HBM3", "brand": "Nvidia",
		"architecture": "Hopper", "addressingMode": "HMM",
		"resource.kubernetes.io/pciBusID": "0000:18:00.0", "resource.kubernetes.io/pcieRoot": "pci0000:10",
		"pcieBusID": "0000:18:00.0",
	}
	for k, v := range strs {
		if a, ok := d.Attributes[k]; !ok || a.StringValue == nil || *a.StringValue != v {
			t.Errorf("attribute %s = %+v, want string %q", k, a, v)
		}
	}
	versions := map[resourceapi.QualifiedName]string{
		"cudaComputeCapability": "9.0.0", "driverVersion": "535.104.5", "cudaDriverVersion": "12.2.0",
	}
	for k, v := range versions {
		if a, ok := d.Attributes[k]; !ok || a.VersionValue == nil || *a.VersionValue != v {
			t.Errorf("attribute %s = %+v, want version %q", k, a, v)
		}
	}
	if a := d.Attributes["resource.kubernetes.io/numaNode"]; a.IntValue == nil || *a.IntValue != 0 {
		t.Errorf("numaNode = %+v, want 0", a)
	}
	if got := d.Capacity["memory"].Value; got.Cmp(resource.MustParse("80Gi")) != 0 {
		t.Errorf("memory = %s, want 80Gi", got.String())
	}
	wantMinor := int64(testInventory().FindGPU("GPU-aaaa").Minor)
	if a := d.Attributes["minor"]; a.IntValue == nil || *a.IntValue != wantMinor {
		t.Errorf("minor = %+v, want %d", a, wantMinor)
	}
	if len(d.Attributes) != 14 || len(d.Capacity) != 1 {
		t.Errorf("got %d attributes and %d capacities, want 14 and 1", len(d.Attributes), len(d.Capacity))
	}
	if _, ok := d.Attributes["index"]; ok {
		t.Error("the NVML index is published; it shifts when a GPU drops off the bus")
	}
}

// TestBuildMIGAttributes pins the whole attribute and capacity set of MIG
// devices: every name, its type and its value.
func TestBuildMIGAttributes(t *testing.T) {
	devices, err := Build(testInventory())
	if err != nil {
		t.Fatal(err)
	}
	parent := map[resourceapi.QualifiedName]any{
		"type": "mig", "parentUUID": "GPU-bbbb", "parentMinor": int64(1),
		"productName": "NVIDIA H100 80GB HBM3", "brand": "Nvidia", "architecture": "Hopper",
		"cudaComputeCapability": wantVersion("9.0.0"), "driverVersion": wantVersion("535.104.5"), "cudaDriverVersion": wantVersion("12.2.0"),
		"resource.kubernetes.io/pciBusID": "0000:2a:00.0", "pcieBusID": "0000:2a:00.0",
		"resource.kubernetes.io/pcieRoot": "pci0000:20",
		// No numaNode (the GPU has no NUMA affinity), no addressingMode
		// (unknown), never an index.
	}
	with := func(base map[resourceapi.QualifiedName]any, extra map[resourceapi.QualifiedName]any) map[resourceapi.QualifiedName]any {
		out := map[resourceapi.QualifiedName]any{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		device     string
		attributes map[resourceapi.QualifiedName]any
		capacity   map[resourceapi.QualifiedName]string
	}{
		{
			device:     "gpu-1-mig-1g10gb-19-1",
			attributes: with(parent, map[resourceapi.QualifiedName]any{"uuid": "MIG-2", "profile": "1g.10gb"}),
			capacity: map[resourceapi.QualifiedName]string{
				"multiprocessors": "16", "copyEngines": "1", "decoders": "1", "encoders": "0",
				"jpegEngines": "0", "ofaEngines": "0", "memory": "10Gi", "memorySlice1": "1",
			},
		},
		{
			device:     "gpu-1-mig-1g10gb-me-20-0",
			attributes: with(parent, map[resourceapi.QualifiedName]any{"uuid": "MIG-1", "profile": "1g.10gb+me"}),
			capacity: map[resourceapi.QualifiedName]string{
				"multiprocessors": "16", "copyEngines": "1", "decoders": "1", "encoders": "0",
				"jpegEngines": "1", "ofaEngines": "1", "memory": "10Gi", "memorySlice0": "1",
			},
		},
	}
	byName := map[string]resourceapi.Device{}
	for _, d := range devices {
		byName[d.Name] = d
	}
	for _, tc := range tests {
		t.Run(tc.device, func(t *testing.T) {
			d, ok := byName[tc.device]
			if !ok {
				t.Fatalf("no device %s", tc.device)
			}
			for name, want := range tc.attributes {
				a, ok := d.Attributes[name]
				if !ok {
					t.Errorf("attribute %s missing", name)
					continue
				}
				if got := attributeValue(a); got != want {
					t.Errorf("attribute %s = %#v, want %#v", name, got, want)
				}
			}
			for name := range d.Attributes {
				if _, ok := tc.attributes[name]; !ok {
					t.Errorf("unexpected attribute %s = %#v", name, attributeValue(d.Attributes[name]))
				}
			}
			for name, want := range tc.capacity {
				c, ok := d.Capacity[name]
				if !ok {
					t.Errorf("capacity %s missing", name)
					continue
				}
				if c.Value.Cmp(resource.MustParse(want)) != 0 {
					t.Errorf("capacity %s = %s, want %s", name, c.Value.String(), want)
				}
			}
			for name, c := range d.Capacity {
				if _, ok := tc.capacity[name]; !ok {
					t.Errorf("unexpected capacity %s = %s", name, c.Value.String())
				}
			}
		})
	}
}

// A placement over several memory slices publishes one capacity per slice.
func TestBuildMIGMemorySlices(t *testing.T) {
	inv := testInventory()
	seven := gpu.MIGProfile{Name: "7g.80gb", GIProfileID: 0, SliceCount: 7, Multiprocessors: 132, CopyEngines: 8, Decoders: 7, JPEGEngines: 7, OFAEngines: 1, MemoryBytes: 81920 << 20}
	inv.GPUs[0].MIGDevices = []gpu.MIGDevice{{UUID: "MIG-7", Profile: seven, Placement: gpu.Placement{Start: 0, Size: 8}}}
	devices, err := Build(inv)
	if err != nil {
		t.Fatal(err)
	}
	d := devices[len(devices)-1]
	if d.Name != "gpu-1-mig-7g80gb-0-0" {
		t.Fatalf("last device is %s, want the 7g.80gb MIG device", d.Name)
	}
	for i := range 8 {
		name := MemorySliceCapacityName(i)
		if c, ok := d.Capacity[name]; !ok || c.Value.Value() != 1 {
			t.Errorf("capacity %s = %+v, want 1", name, c)
		}
	}
	if _, ok := d.Capacity["memorySlice8"]; ok {
		t.Error("memorySlice8 published for a placement of slices 0-7")
	}
	if n := len(d.Attributes) + len(d.Capacity); n > resourceapi.ResourceSliceMaxAttributesAndCapacitiesPerDevice {
		t.Errorf("%d attributes and capacities exceed the API limit", n)
	}
}

// wantVersion marks an expected version attribute in attribute tables.
type wantVersion string

// attributeValue returns the one value an attribute holds, typed: string,
// int64, bool or wantVersion.
func attributeValue(a resourceapi.DeviceAttribute) any {
	switch {
	case a.StringValue != nil:
		return *a.StringValue
	case a.IntValue != nil:
		return *a.IntValue
	case a.BoolValue != nil:
		return *a.BoolValue
	case a.VersionValue != nil:
		return wantVersion(*a.VersionValue)
	}
	return nil
}

func TestBuildRejectsBadInput(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*gpu.Inventory)
		want   string
	}{
		{"bad bus id", func(inv *gpu.Inventory) { inv.GPUs[1].PCIBusID = "18:00.0" }, `GPU GPU-aaaa: PCI bus ID: `},
		{"bad driver version", func(inv *gpu.Inventory) { inv.DriverVersion = "r535" }, `driver version "r535": want major.minor[.patch]`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := testInventory()
			tc.mutate(inv)
			_, err := Build(inv)
			if err == nil || len(err.Error()) < len(tc.want) || err.Error()[:len(tc.want)] != tc.want {
				t.Fatalf("error = %v, want prefix %q", err, tc.want)
			}
		})
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	a, err := Build(testInventory())
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		b, _ := Build(testInventory())
		if !apiequality.Semantic.DeepEqual(a, b) {
			t.Fatal("two builds of the same inventory differ")
		}
	}
}

func TestSemverFromDriverVersion(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"550.54.15", "550.54.15", ""},
		{"535.104.05", "535.104.5", ""},
		{"470.82", "470.82.0", ""},
		{" 580.126.20\n", "580.126.20", ""},
		{"580", "", `driver version "580": want major.minor[.patch]`},
		{"1.2.3.4", "", `driver version "1.2.3.4": want major.minor[.patch]`},
		{"550.x.1", "", `driver version "550.x.1": part 2 ("x") is not a number`},
	}
	for _, tc := range tests {
		got, err := SemverFromDriverVersion(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestProfileNameForDevice(t *testing.T) {
	for in, want := range map[string]string{
		"1g.10gb": "1g10gb", "1g.10gb+me": "1g10gb-me", "1c.2g.20gb": "1c2g20gb", "7g.80GB": "7g80gb",
	} {
		if got := profileNameForDevice(in); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
}

func TestDriverResourcesSplitsSlices(t *testing.T) {
	for _, tc := range []struct{ devices, slices int }{{0, 1}, {1, 1}, {128, 1}, {129, 2}, {300, 3}} {
		devs := make([]resourceapi.Device, tc.devices)
		for i := range devs {
			devs[i].Name = fmt.Sprintf("gpu-%d", i)
		}
		res := DriverResources("node-a", devs)
		pool, ok := res.Pools["node-a"]
		if !ok || len(pool.Slices) != tc.slices {
			t.Fatalf("%d devices: got %d slices, want %d", tc.devices, len(pool.Slices), tc.slices)
		}
		n := 0
		for _, s := range pool.Slices {
			if len(s.Devices) > resourceapi.ResourceSliceMaxDevices {
				t.Fatalf("slice has %d devices", len(s.Devices))
			}
			for _, d := range s.Devices {
				if d.Name != fmt.Sprintf("gpu-%d", n) {
					t.Fatalf("device %d is %s: order not kept", n, d.Name)
				}
				n++
			}
		}
		if n != tc.devices {
			t.Fatalf("got %d devices back, want %d", n, tc.devices)
		}
	}
}

func TestIndex(t *testing.T) {
	idx := Index(testInventory())
	if len(idx) != 3 {
		t.Fatalf("index has %d entries, want 3", len(idx))
	}
	if l := idx["gpu-0"]; l.Type() != TypeGPU || l.UUID() != "GPU-aaaa" {
		t.Errorf("gpu-0 -> %s %s", l.Type(), l.UUID())
	}
	if l := idx["gpu-1-mig-1g10gb-19-1"]; l.Type() != TypeMIG || l.UUID() != "MIG-2" || l.GPU.UUID != "GPU-bbbb" {
		t.Errorf("mig -> %s %s", l.Type(), l.UUID())
	}
	if _, ok := idx["gpu-1"]; ok {
		t.Error("a GPU in MIG mode must not be indexed as a whole GPU")
	}
}

// TestIncompleteMIGDevicesAreNotPublished: a GPU instance without a compute
// instance has no UUID and cannot run anything; neither Build nor Index
// offers it.
func TestIncompleteMIGDevicesAreNotPublished(t *testing.T) {
	inv := testInventory()
	g := &inv.GPUs[0]
	g.MIGDevices = append(g.MIGDevices, gpu.MIGDevice{Profile: g.MIGDevices[0].Profile, Placement: gpu.Placement{Start: 5, Size: 1}, GIID: 12, CIID: -1, Incomplete: true})
	devices, err := Build(inv)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devices {
		if d.Name == "gpu-1-mig-1g10gb-19-5" {
			t.Errorf("published the incomplete device %s", d.Name)
		}
	}
	if len(devices) != 3 {
		t.Errorf("published %d devices, want the 3 complete ones", len(devices))
	}
	if _, ok := Index(inv)["gpu-1-mig-1g10gb-19-5"]; ok {
		t.Error("indexed the incomplete device")
	}
}
