package devicemodel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	resourceapi "k8s.io/api/resource/v1"

	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// simInventory is the inventory of a simulated node, with MIG devices cut
// at the given (GPU index, profile name, start) slots.
func simInventory(t *testing.T, profile string, cuts ...string) *gpu.Inventory {
	t.Helper()
	b, err := sim.New(sim.Options{NodeName: "node-a", Profile: profile})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cuts {
		var gi, start int
		var name string
		if _, err := fmt.Sscanf(strings.ReplaceAll(c, "@", " "), "%d %s %d", &gi, &name, &start); err != nil {
			t.Fatalf("cut %q: %v", c, err)
		}
		g := inv.GPUs[gi]
		p := g.MIGProfiles[slices.IndexFunc(g.MIGProfiles, func(p gpu.MIGProfile) bool { return p.Name == name })]
		pl := p.Placements[slices.IndexFunc(p.Placements, func(pl gpu.Placement) bool { return pl.Start == start })]
		if _, err := b.CreateMIGDevice(context.Background(), gpu.MIGSlot{ParentUUID: g.UUID, GIProfileID: p.GIProfileID, Placement: pl}); err != nil {
			t.Fatal(err)
		}
	}
	inv, err = b.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func names(devices []resourceapi.Device) []string {
	out := make([]string, len(devices))
	for i, d := range devices {
		out[i] = d.Name
	}
	return out
}

func buildDynamic(t *testing.T, inv *gpu.Inventory, opts DynamicOptions) *Published {
	t.Helper()
	p, err := BuildDynamic(inv, opts)
	if err != nil {
		t.Fatalf("BuildDynamic: %v", err)
	}
	return p
}

// gpu0All is every placement of the default profiles on an empty H100, in
// publishing order (smaller profiles first, best fit first).
var gpu0All = []string{
	"gpu-0-mig-1g10gb-19-6", "gpu-0-mig-1g10gb-19-5", "gpu-0-mig-1g10gb-19-4", "gpu-0-mig-1g10gb-19-3",
	"gpu-0-mig-1g10gb-19-2", "gpu-0-mig-1g10gb-19-1", "gpu-0-mig-1g10gb-19-0",
	"gpu-0-mig-2g20gb-14-4", "gpu-0-mig-2g20gb-14-2", "gpu-0-mig-2g20gb-14-0",
	"gpu-0-mig-3g40gb-9-4", "gpu-0-mig-3g40gb-9-0",
	"gpu-0-mig-4g40gb-5-0", "gpu-0-mig-7g80gb-0-0",
}

func TestBuildDynamicLayouts(t *testing.T) {
	wholeRest := []string{"gpu-7", "gpu-6", "gpu-5", "gpu-4", "gpu-3", "gpu-2", "gpu-1"}
	tests := []struct {
		name string
		cuts []string
		opts DynamicOptions
		want []string
	}{
		{
			name: "empty node: GPU 0 open, then the others whole (the last GPU first), GPU 0 whole last",
			want: concat(gpu0All, wholeRest, []string{"gpu-0"}),
		},
		{
			name: "one per profile",
			opts: DynamicOptions{PerProfile: 1},
			want: concat([]string{"gpu-0-mig-1g10gb-19-6", "gpu-0-mig-2g20gb-14-4", "gpu-0-mig-3g40gb-9-4", "gpu-0-mig-4g40gb-5-0", "gpu-0-mig-7g80gb-0-0"}, wholeRest, []string{"gpu-0"}),
		},
		{
			name: "a held 1g cuts GPU 0: free placements only, best fit next to it; GPU 1 opens",
			opts: DynamicOptions{PerProfile: 1, Held: []string{"gpu-0-mig-1g10gb-19-6"}},
			want: concat(
				[]string{"gpu-0-mig-1g10gb-19-5", "gpu-0-mig-2g20gb-14-4", "gpu-0-mig-3g40gb-9-0", "gpu-0-mig-4g40gb-5-0"},
				[]string{"gpu-1-mig-1g10gb-19-6", "gpu-1-mig-2g20gb-14-4", "gpu-1-mig-3g40gb-9-4", "gpu-1-mig-4g40gb-5-0", "gpu-1-mig-7g80gb-0-0"},
				wholeRest[:6], []string{"gpu-1", "gpu-0-mig-1g10gb-19-6"}),
		},
		{
			name: "the fuller cut GPU first",
			opts: DynamicOptions{PerProfile: 1, Held: []string{"gpu-0-mig-1g10gb-19-6", "gpu-1-mig-4g40gb-5-0"}},
			want: concat(
				[]string{"gpu-1-mig-1g10gb-19-6", "gpu-1-mig-2g20gb-14-4", "gpu-1-mig-3g40gb-9-4"},
				[]string{"gpu-0-mig-1g10gb-19-5", "gpu-0-mig-2g20gb-14-4", "gpu-0-mig-3g40gb-9-0", "gpu-0-mig-4g40gb-5-0"},
				[]string{"gpu-2-mig-1g10gb-19-6", "gpu-2-mig-2g20gb-14-4", "gpu-2-mig-3g40gb-9-4", "gpu-2-mig-4g40gb-5-0", "gpu-2-mig-7g80gb-0-0"},
				wholeRest[:5], []string{"gpu-2", "gpu-0-mig-1g10gb-19-6", "gpu-1-mig-4g40gb-5-0"}),
		},
		{
			name: "a held whole GPU offers nothing else",
			opts: DynamicOptions{PerProfile: 1, Held: []string{"gpu-0"}},
			want: concat(
				[]string{"gpu-1-mig-1g10gb-19-6", "gpu-1-mig-2g20gb-14-4", "gpu-1-mig-3g40gb-9-4", "gpu-1-mig-4g40gb-5-0", "gpu-1-mig-7g80gb-0-0"},
				wholeRest[:6], []string{"gpu-1", "gpu-0"}),
		},
		{
			name: "an instance no claim holds is not published and takes its slices",
			cuts: []string{"0 3g.40gb@0"},
			opts: DynamicOptions{PerProfile: 1},
			// The 3g.40gb takes memory slices 0-3; a 1g.10gb at 6 blocks
			// only the 3g.40gb at 4, one at 4 or 5 also the 2g.20gb at 4.
			want: concat(
				[]string{"gpu-0-mig-1g10gb-19-6", "gpu-0-mig-2g20gb-14-4", "gpu-0-mig-3g40gb-9-4"},
				[]string{"gpu-1-mig-1g10gb-19-6", "gpu-1-mig-2g20gb-14-4", "gpu-1-mig-3g40gb-9-4", "gpu-1-mig-4g40gb-5-0", "gpu-1-mig-7g80gb-0-0"},
				wholeRest[:6], []string{"gpu-1"}),
		},
		{
			name: "kept devices stay while their slots are free",
			opts: DynamicOptions{PerProfile: 1, Held: []string{"gpu-0-mig-1g10gb-19-6"}, Keep: []string{"gpu-0-mig-7g80gb-0-0", "gpu-0-mig-1g10gb-19-0", "gpu-0"}},
			want: concat(
				[]string{"gpu-0-mig-1g10gb-19-5", "gpu-0-mig-2g20gb-14-4", "gpu-0-mig-3g40gb-9-0", "gpu-0-mig-4g40gb-5-0", "gpu-0-mig-1g10gb-19-0"},
				[]string{"gpu-1-mig-1g10gb-19-6", "gpu-1-mig-2g20gb-14-4", "gpu-1-mig-3g40gb-9-4", "gpu-1-mig-4g40gb-5-0", "gpu-1-mig-7g80gb-0-0"},
				wholeRest[:6], []string{"gpu-1", "gpu-0-mig-1g10gb-19-6"}),
		},
		{
			name: "a kept device of a GPU no longer open stays",
			opts: DynamicOptions{PerProfile: 1, Held: []string{"gpu-1-mig-7g80gb-0-0"}, Keep: []string{"gpu-2-mig-2g20gb-14-0"}},
			want: concat(
				[]string{"gpu-0-mig-1g10gb-19-6", "gpu-0-mig-2g20gb-14-4", "gpu-0-mig-3g40gb-9-4", "gpu-0-mig-4g40gb-5-0", "gpu-0-mig-7g80gb-0-0"},
				[]string{"gpu-2-mig-2g20gb-14-0"},
				[]string{"gpu-7", "gpu-6", "gpu-5", "gpu-4", "gpu-3", "gpu-2"}, []string{"gpu-0", "gpu-1-mig-7g80gb-0-0"}),
		},
		{
			name: "two open GPUs",
			opts: DynamicOptions{PerProfile: 1, OpenGPUs: 2, Profiles: []string{"1g.10gb"}},
			want: concat([]string{"gpu-0-mig-1g10gb-19-6", "gpu-1-mig-1g10gb-19-6"}, []string{"gpu-7", "gpu-6", "gpu-5", "gpu-4", "gpu-3", "gpu-2"}, []string{"gpu-0", "gpu-1"}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := buildDynamic(t, simInventory(t, "dgxh100-mig", tt.cuts...), tt.opts)
			if got := names(p.Devices); !slices.Equal(got, tt.want) {
				t.Errorf("devices\n got  %v\n want %v", got, tt.want)
			}
			if len(p.CounterSets) != 8 {
				t.Errorf("%d counter sets, want 8", len(p.CounterSets))
			}
		})
	}
}

func concat(parts ...[]string) []string { return slices.Concat(parts...) }

// TestBuildDynamicCountersExclude: every device consumes exactly the memory
// slices of its placement from its GPU's set (the whole GPU all of them),
// so two devices can both be allocated only if they do not overlap; an
// existing held instance carries its UUID, a device not yet cut none.
func TestBuildDynamicCountersExclude(t *testing.T) {
	inv := simInventory(t, "dgxh100-mig", "0 1g.10gb@6")
	held := MIGDeviceName(&inv.GPUs[0], &inv.GPUs[0].MIGDevices[0])
	p := buildDynamic(t, inv, DynamicOptions{Held: []string{held, "gpu-1-mig-2g20gb-14-2"}})
	sets := map[string]resourceapi.CounterSet{}
	for _, cs := range p.CounterSets {
		sets[cs.Name] = cs
		if len(cs.Counters) != 8 {
			t.Errorf("%s has %d counters, want the 8 memory slices", cs.Name, len(cs.Counters))
		}
	}
	for _, d := range p.Devices {
		tgt, err := LocateDynamic(inv, d.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.ConsumesCounters) != 1 || d.ConsumesCounters[0].CounterSet != CounterSetName(tgt.GPU) {
			t.Fatalf("%s consumes %+v, want from %s", d.Name, d.ConsumesCounters, CounterSetName(tgt.GPU))
		}
		pl := gpu.Placement{Start: 0, Size: 8}
		if tgt.Profile != nil {
			pl = tgt.Placement
		}
		var want []string
		for i := pl.Start; i < pl.Start+pl.Size; i++ {
			want = append(want, MemorySliceCounterName(i))
		}
		var got []string
		for c, v := range d.ConsumesCounters[0].Counters {
			got = append(got, c)
			if v.Value.Value() != 1 {
				t.Errorf("%s consumes %s of %s, want 1", d.Name, v.Value.String(), c)
			}
			if _, ok := sets[d.ConsumesCounters[0].CounterSet].Counters[c]; !ok {
				t.Errorf("%s consumes %s, which its set lacks", d.Name, c)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s consumes %v, want %v", d.Name, got, want)
		}
		uuid, hasUUID := d.Attributes["uuid"]
		switch {
		case d.Name == held:
			if !hasUUID || *uuid.StringValue != inv.GPUs[0].MIGDevices[0].UUID {
				t.Errorf("held instance %s has uuid %v, want %s", d.Name, uuid.StringValue, inv.GPUs[0].MIGDevices[0].UUID)
			}
		case tgt.Profile != nil && hasUUID:
			t.Errorf("%s is not cut yet but has a uuid", d.Name)
		case tgt.Profile != nil && *d.Attributes["type"].StringValue != TypeMIG:
			t.Errorf("%s has type %s", d.Name, *d.Attributes["type"].StringValue)
		}
	}
}

func TestBuildDynamicOptionErrors(t *testing.T) {
	inv := simInventory(t, "dgxh100-mig")
	tests := []struct {
		opts DynamicOptions
		want string
	}{
		{DynamicOptions{Profiles: []string{"1g.5gb"}}, `dynamic MIG profile "1g.5gb": no GPU in MIG mode on this node has it`},
		{DynamicOptions{Profiles: []string{"1g.10gb+me"}}, "JPEG or OFA engines"},
		{DynamicOptions{Held: []string{"gpu-0-mig-1g10gb-99-0"}}, "held device gpu-0-mig-1g10gb-99-0: "},
	}
	for _, tt := range tests {
		if _, err := BuildDynamic(inv, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.opts, err, tt.want)
		}
	}
}

// TestBuildDynamicMixedNode: GPUs not in MIG mode are published whole
// without counters, first; only GPUs in MIG mode get counter sets.
func TestBuildDynamicMixedNode(t *testing.T) {
	inv := simInventory(t, "mixed")
	p := buildDynamic(t, inv, DynamicOptions{PerProfile: 1})
	got := names(p.Devices)
	if !slices.Equal(got[:4], []string{"gpu-2", "gpu-3", "gpu-4", "gpu-5"}) {
		t.Errorf("devices start %v, want the four GPUs not in MIG mode", got[:4])
	}
	for _, d := range p.Devices[:4] {
		if len(d.ConsumesCounters) != 0 {
			t.Errorf("%s consumes counters", d.Name)
		}
	}
	if len(p.CounterSets) != 2 {
		t.Errorf("%d counter sets, want 2 (GPUs 0 and 1)", len(p.CounterSets))
	}
	// GPU 0 has three instances no claim holds; only slice 3 is free.
	for _, n := range got {
		if strings.HasPrefix(n, "gpu-0-") && n != "gpu-0-mig-1g10gb-19-3" {
			t.Errorf("published %s over GPU 0's instances", n)
		}
	}
	if !slices.Contains(got, "gpu-0-mig-1g10gb-19-3") {
		t.Error("GPU 0's free slice 3 is not offered")
	}
}

func TestDynamicDriverResources(t *testing.T) {
	p := buildDynamic(t, simInventory(t, "dgxh100-mig"), DynamicOptions{OpenGPUs: -1})
	if len(p.Devices) != 8*15 {
		t.Fatalf("%d devices with every GPU open, want 120", len(p.Devices))
	}
	res := p.DriverResources("node-a").Pools["node-a"].Slices
	if len(res) != 1+2 || len(res[0].SharedCounters) != 8 || len(res[0].Devices) != 0 {
		t.Fatalf("slices: %d; first has %d counter sets and %d devices", len(res), len(res[0].SharedCounters), len(res[0].Devices))
	}
	if len(res[1].Devices) != resourceapi.ResourceSliceMaxDevicesWithAdvancedFeatures || len(res[2].Devices) != 120-64 || res[1].SharedCounters != nil {
		t.Errorf("device slices hold %d and %d", len(res[1].Devices), len(res[2].Devices))
	}
}

func TestLocateDynamic(t *testing.T) {
	inv := simInventory(t, "mixed")
	tests := []struct {
		name    string
		profile string
		start   int
		want    string
		is      error
	}{
		{name: "gpu-1", profile: ""},
		{name: "gpu-1-mig-3g40gb-9-4", profile: "3g.40gb", start: 4},
		{name: "gpu-1-mig-1g10gb-me-20-2", profile: "1g.10gb+me", start: 2},
		{name: "gpu-9", want: "no GPU with minor number 9"},
		{name: "gpu-2", want: "not in MIG mode"},
		{name: "gpu-2-mig-1g10gb-19-0", want: "not in MIG mode"},
		{name: "gpu-1-mig-1g10gb-77-0", want: "no MIG profile with ID 77", is: gpu.ErrMIGProfileUnsupported},
		{name: "gpu-1-mig-2g20gb-19-0", want: `profile ID 19 is 1g.10gb on NVIDIA H100 80GB HBM3, not "2g20gb"`},
		{name: "gpu-1-mig-3g40gb-9-2", want: "2 is not a placement of 3g.40gb", is: gpu.ErrMIGPlacementInvalid},
		{name: "gpu-1-mig-3g40gb-x-2", want: "must be numbers"},
		{name: "mig-1", want: "not a GPU"},
		{name: "gpu--1", want: "not a GPU"},
	}
	for _, tt := range tests {
		tgt, err := LocateDynamic(inv, tt.name)
		if tt.want != "" {
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.name) || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Errorf("%s: %v, want an error naming it with %q", tt.name, err, tt.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if tgt.GPU.Minor != 1 || (tt.profile == "") != (tgt.Profile == nil) || (tgt.Profile != nil && (tgt.Profile.Name != tt.profile || tgt.Placement.Start != tt.start)) {
			t.Errorf("%s -> %+v", tt.name, tgt)
		}
	}
}

func TestDefaultDynamicProfiles(t *testing.T) {
	inv := simInventory(t, "dgxh100-mig")
	if got := DefaultDynamicProfiles(&inv.GPUs[0]); !slices.Equal(got, []string{"1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"}) {
		t.Errorf("H100 default profiles %v", got)
	}
}
