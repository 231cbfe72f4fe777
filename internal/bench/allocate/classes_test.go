package allocate

import (
	"os"
	"strings"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"
)

// deploymentClasses is the file users install; the benchmark must schedule
// with exactly these classes.
const deploymentClasses = "../../../deployments/deviceclasses/deviceclasses.yaml"

func TestDeviceClassesMatchDeployment(t *testing.T) {
	data, err := os.ReadFile(deploymentClasses)
	if err != nil {
		t.Fatal(err)
	}
	deployed := map[string]resourceapi.DeviceClass{}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var c resourceapi.DeviceClass
		if err := yaml.UnmarshalStrict([]byte(doc), &c); err != nil {
			t.Fatalf("%s: %v", deploymentClasses, err)
		}
		deployed[c.Name] = c
	}
	ours := DeviceClasses()
	if len(ours) != len(deployed) {
		t.Fatalf("benchmark has %d classes, %s has %d", len(ours), deploymentClasses, len(deployed))
	}
	for _, c := range ours {
		d, ok := deployed[c.Name]
		if !ok {
			t.Fatalf("class %s is not in %s", c.Name, deploymentClasses)
		}
		if !apiequality.Semantic.DeepEqual(c.Spec, d.Spec) {
			t.Errorf("class %s: benchmark spec %+v, deployed %+v", c.Name, c.Spec, d.Spec)
		}
	}
}

func TestClassLister(t *testing.T) {
	l := NewClassLister(DeviceClasses())
	all, err := l.List()
	if err != nil || len(all) != 2 || all[0].Name != GPUClass || all[1].Name != MIGClass {
		t.Fatalf("List = %v, %v", all, err)
	}
	if c, err := l.Get(MIGClass); err != nil || c.Name != MIGClass {
		t.Fatalf("Get(%s) = %v, %v", MIGClass, c, err)
	}
	if _, err := l.Get("vfio.gpu.nvidia.com"); err == nil || err.Error() != "DeviceClass vfio.gpu.nvidia.com not found" {
		t.Fatalf("Get(missing) error = %v", err)
	}
}
