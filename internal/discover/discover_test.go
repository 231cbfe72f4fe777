package discover

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/gpudra/gpudra/internal/devicemodel"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func discoverProfile(t *testing.T, profile, node, output string) []byte {
	t.Helper()
	b, err := sim.New(sim.Options{NodeName: node, Profile: profile})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Run(context.Background(), b, Options{DriverName: "gpu.nvidia.com", NodeName: node, Output: output}, &out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestGoldenSlices pins what every simulated profile publishes. Run
// `go test ./internal/discover -update` after an intended change and review
// the diff of testdata/.
func TestGoldenSlices(t *testing.T) {
	for _, profile := range sim.Profiles() {
		t.Run(profile, func(t *testing.T) {
			got := discoverProfile(t, profile, "node-a", "yaml")
			golden := filepath.Join("testdata", profile+".yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("slices of %s differ from %s (run with -update after an intended change)", profile, golden)
			}
			var list resourceapi.ResourceSliceList
			if err := yaml.UnmarshalStrict(got, &list); err != nil {
				t.Fatalf("output is not a ResourceSliceList: %v", err)
			}
		})
	}
}

func TestDiscoverDGXH100(t *testing.T) {
	out := discoverProfile(t, "dgxh100", "node-a", "json")
	var list resourceapi.ResourceSliceList
	if err := yaml.UnmarshalStrict(out, &list); err != nil {
		t.Fatal(err)
	}
	if list.Kind != "ResourceSliceList" || len(list.Items) != 1 {
		t.Fatalf("kind %q with %d slices, want one ResourceSliceList item", list.Kind, len(list.Items))
	}
	slice := list.Items[0]
	if slice.Spec.Driver != "gpu.nvidia.com" || slice.Spec.Pool.Name != "node-a" || *slice.Spec.NodeName != "node-a" {
		t.Errorf("slice spec %+v", slice.Spec)
	}
	devices := slice.Spec.Devices
	if len(devices) != 8 {
		t.Fatalf("got %d devices, want 8", len(devices))
	}
	wantAttrs := []resourceapi.QualifiedName{
		"type", "uuid", "productName", "brand", "architecture", "cudaComputeCapability", "driverVersion",
		"cudaDriverVersion", "resource.kubernetes.io/pciBusID", "pcieBusID", "resource.kubernetes.io/pcieRoot", "resource.kubernetes.io/numaNode",
	}
	for i, d := range devices {
		if want := "gpu-" + string(rune('0'+i)); d.Name != want {
			t.Errorf("device %d is %s, want %s", i, d.Name, want)
		}
		for _, a := range wantAttrs {
			if _, ok := d.Attributes[a]; !ok {
				t.Errorf("%s lacks attribute %s", d.Name, a)
			}
		}
		if got := *d.Attributes["type"].StringValue; got != "gpu" {
			t.Errorf("%s type %s", d.Name, got)
		}
		if got := *d.Attributes["productName"].StringValue; !strings.Contains(got, "H100") {
			t.Errorf("%s productName %s", d.Name, got)
		}
		if got := d.Capacity["memory"].Value; got.Cmp(resource.MustParse("80Gi")) != 0 {
			t.Errorf("%s memory %s, want 80Gi", d.Name, got.String())
		}
	}
}

func TestDiscoverIsDeterministic(t *testing.T) {
	first := discoverProfile(t, "dgxh100", "node-a", "json")
	second := discoverProfile(t, "dgxh100", "node-a", "json")
	if !bytes.Equal(first, second) {
		t.Fatal("two runs for the same node printed different bytes")
	}
}

// Another node name changes the UUIDs (and the names derived from the node),
// nothing else.
func TestDiscoverOtherNodeChangesOnlyUUIDs(t *testing.T) {
	uuid := regexp.MustCompile(`(GPU|MIG)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	for _, profile := range []string{"dgxh100", "mixed"} {
		a := discoverProfile(t, profile, "node-a", "yaml")
		b := discoverProfile(t, profile, "node-b", "yaml")
		if bytes.Equal(a, b) {
			t.Fatalf("%s: two nodes got identical slices (same UUIDs)", profile)
		}
		uuidsA := uuid.FindAll(a, -1)
		uuidsB := uuid.FindAll(b, -1)
		if len(uuidsA) == 0 || len(uuidsA) != len(uuidsB) {
			t.Fatalf("%s: %d vs %d UUIDs", profile, len(uuidsA), len(uuidsB))
		}
		for i := range uuidsA {
			if bytes.Equal(uuidsA[i], uuidsB[i]) {
				t.Errorf("%s: UUID %s is the same on both nodes", profile, uuidsA[i])
			}
		}
		normA := uuid.ReplaceAll(bytes.ReplaceAll(a, []byte("node-a"), []byte("NODE")), []byte("UUID"))
		normB := uuid.ReplaceAll(bytes.ReplaceAll(b, []byte("node-b"), []byte("NODE")), []byte("UUID"))
		if !bytes.Equal(normA, normB) {
			t.Errorf("%s: slices of two nodes differ in more than UUIDs and node name", profile)
		}
	}
}

func TestDiscoverRejectsUnknownOutput(t *testing.T) {
	b, err := sim.New(sim.Options{NodeName: "n", Profile: "l4x4"})
	if err != nil {
		t.Fatal(err)
	}
	err = Run(context.Background(), b, Options{DriverName: "gpu.nvidia.com", NodeName: "n", Output: "table"}, &bytes.Buffer{})
	if err == nil || err.Error() != `output format "table": want json or yaml` {
		t.Fatalf("error = %v", err)
	}
}

// TestGoldenDynamicSlices pins what the MIG-capable profiles publish in
// dynamic MIG mode: counter sets in their own slice, then the devices.
func TestGoldenDynamicSlices(t *testing.T) {
	for _, profile := range []string{"dgxh100-mig", "mixed"} {
		t.Run(profile, func(t *testing.T) {
			b, err := sim.New(sim.Options{NodeName: "node-a", Profile: profile})
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			opts := Options{DriverName: "gpu.nvidia.com", NodeName: "node-a", Output: "yaml", MIGMode: devicemodel.MIGModeDynamic, Dynamic: devicemodel.DynamicOptions{PerProfile: 1}}
			if err := Run(context.Background(), b, opts, &out); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "dynamic-"+profile+".yaml")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(out.Bytes(), want) {
				t.Errorf("dynamic slices of %s differ from %s (run with -update after an intended change)", profile, golden)
			}
			var list resourceapi.ResourceSliceList
			if err := yaml.UnmarshalStrict(out.Bytes(), &list); err != nil {
				t.Fatal(err)
			}
			if len(list.Items) < 2 || len(list.Items[0].Spec.SharedCounters) == 0 || len(list.Items[0].Spec.Devices) != 0 {
				t.Errorf("first slice has %d counter sets and %d devices; want counter sets only", len(list.Items[0].Spec.SharedCounters), len(list.Items[0].Spec.Devices))
			}
		})
	}
}
