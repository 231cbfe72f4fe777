package discover

import (
	"bytes"
	"context"
	"os"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	dracel "k8s.io/dynamic-resource-allocation/cel"
	"sigs.k8s.io/yaml"

	"github.com/gpudra/gpudra/internal/devicemodel"
	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// The shipped DeviceClasses must select exactly the devices of their type,
// evaluated with the scheduler's own CEL environment.
func TestDeviceClassesSelectTheirDevices(t *testing.T) {
	data, err := os.ReadFile("../../deployments/deviceclasses/deviceclasses.yaml")
	if err != nil {
		t.Fatal(err)
	}
	classes := map[string]resourceapi.DeviceClass{}
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var dc resourceapi.DeviceClass
		if err := yaml.UnmarshalStrict(doc, &dc); err != nil {
			t.Fatalf("DeviceClass does not decode strictly: %v", err)
		}
		classes[dc.Name] = dc
	}
	if got := classes["gpu.nvidia.com"].Spec.ExtendedResourceName; got == nil || *got != "nvidia.com/gpu" {
		t.Errorf("gpu.nvidia.com extendedResourceName = %v, want nvidia.com/gpu", got)
	}

	b, err := sim.New(sim.Options{NodeName: "node-a", Profile: "mixed"})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := b.Inventory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	devices, err := devicemodel.Build(inv)
	if err != nil {
		t.Fatal(err)
	}
	compiler := dracel.GetCompiler(dracel.Features{})
	for className, wantType := range map[string]string{"gpu.nvidia.com": "gpu", "mig.nvidia.com": "mig"} {
		dc, ok := classes[className]
		if !ok {
			t.Fatalf("no DeviceClass %s", className)
		}
		matched := 0
		for _, d := range devices {
			match := true
			for _, sel := range dc.Spec.Selectors {
				res := compiler.CompileCELExpression(sel.CEL.Expression, dracel.Options{})
				if res.Error != nil {
					t.Fatalf("%s: %v", className, res.Error)
				}
				ok, _, err := res.DeviceMatches(context.Background(), dracel.Device{Driver: "gpu.nvidia.com", Attributes: d.Attributes, Capacity: d.Capacity})
				if err != nil {
					t.Fatalf("%s on %s: %v", className, d.Name, err)
				}
				match = match && ok
			}
			isType := *d.Attributes["type"].StringValue == wantType
			if match != isType {
				t.Errorf("class %s matches %s = %v, but its type is %s", className, d.Name, match, *d.Attributes["type"].StringValue)
			}
			if match {
				matched++
			}
		}
		if matched == 0 {
			t.Errorf("class %s matches no device of the mixed profile", className)
		}
	}
}
