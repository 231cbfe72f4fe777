package allocate

import (
	"context"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
)

// buildCluster builds a small cluster of a case or fails the test.
func buildCluster(t *testing.T, c Case, nodes int) *Cluster {
	t.Helper()
	cl, err := BuildCluster(context.Background(), c, nodes)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// mustCase returns a named case or fails the test.
func mustCase(t *testing.T, name string) Case {
	t.Helper()
	c, err := CaseByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// devicesByNode indexes a cluster's devices by node, then device name.
func devicesByNode(cl *Cluster) map[string]map[string]*resourceapi.Device {
	idx := map[string]map[string]*resourceapi.Device{}
	for _, s := range cl.Slices {
		node := *s.Spec.NodeName
		if idx[node] == nil {
			idx[node] = map[string]*resourceapi.Device{}
		}
		for i := range s.Spec.Devices {
			idx[node][s.Spec.Devices[i].Name] = &s.Spec.Devices[i]
		}
	}
	return idx
}

func stringAttr(d *resourceapi.Device, name resourceapi.QualifiedName) string {
	if a, ok := d.Attributes[name]; ok && a.StringValue != nil {
		return *a.StringValue
	}
	return ""
}
