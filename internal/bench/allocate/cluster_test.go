package allocate

import (
	"slices"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
)

func TestBuildClusterPublishesGpudraDevices(t *testing.T) {
	tests := []struct {
		caseName       string
		devicesPerNode int
		wantType       string
	}{
		{"gpu", 8, "gpu"},
		{"cel", 8, "gpu"},
		{"mig", 8 * 5, "mig"}, // four 1g.10gb and one 3g.40gb per GPU
	}
	for _, tc := range tests {
		t.Run(tc.caseName, func(t *testing.T) {
			cl := buildCluster(t, mustCase(t, tc.caseName), 2)
			if len(cl.Nodes) != 2 || cl.Devices() != 2*tc.devicesPerNode {
				t.Fatalf("%d nodes, %d devices; want 2 and %d", len(cl.Nodes), cl.Devices(), 2*tc.devicesPerNode)
			}
			uuids := map[string]bool{}
			for node, devices := range devicesByNode(cl) {
				for name, d := range devices {
					if stringAttr(d, "type") != tc.wantType || stringAttr(d, "productName") == "" {
						t.Fatalf("%s/%s: type %q, productName %q", node, name, stringAttr(d, "type"), stringAttr(d, "productName"))
					}
					uuid := stringAttr(d, "uuid")
					if uuids[uuid] {
						t.Fatalf("%s/%s: UUID %s also on another device", node, name, uuid)
					}
					uuids[uuid] = true
				}
			}
		})
	}
}

func TestMinimalKeepsDeviceNamesAndOnlyWhatTheClaimNeeds(t *testing.T) {
	for _, c := range Cases() {
		t.Run(c.Name, func(t *testing.T) {
			rich := buildCluster(t, c, 2)
			minimal := rich.Minimal(c.MinimalAttributes)
			if len(minimal.Slices) != len(rich.Slices) || minimal.Devices() != rich.Devices() {
				t.Fatalf("minimal has %d slices and %d devices, gpudra %d and %d", len(minimal.Slices), minimal.Devices(), len(rich.Slices), rich.Devices())
			}
			for i, ms := range minimal.Slices {
				rs := rich.Slices[i]
				if ms.Name != rs.Name || *ms.Spec.NodeName != *rs.Spec.NodeName || ms.Spec.Pool != rs.Spec.Pool {
					t.Fatalf("slice %d: minimal %s on %s, gpudra %s on %s", i, ms.Name, *ms.Spec.NodeName, rs.Name, *rs.Spec.NodeName)
				}
				for j, md := range ms.Spec.Devices {
					rd := rs.Spec.Devices[j]
					if md.Name != rd.Name {
						t.Fatalf("slice %s device %d: minimal %s, gpudra %s", ms.Name, j, md.Name, rd.Name)
					}
					if len(md.Attributes) != len(c.MinimalAttributes) || len(md.Capacity) != 1 {
						t.Fatalf("device %s: %d attributes, %d capacities; want %d and 1", md.Name, len(md.Attributes), len(md.Capacity), len(c.MinimalAttributes))
					}
					for _, name := range c.MinimalAttributes {
						if stringAttr(&md, name) != stringAttr(&rd, name) {
							t.Fatalf("device %s: %s = %q, gpudra has %q", md.Name, name, stringAttr(&md, name), stringAttr(&rd, name))
						}
					}
					mm, rm := md.Capacity["memory"].Value, rd.Capacity["memory"].Value
					if mm.Cmp(rm) != 0 {
						t.Fatalf("device %s: memory %s, gpudra %s", md.Name, mm.String(), rm.String())
					}
					if len(rd.Attributes) <= len(md.Attributes) {
						t.Fatalf("device %s: gpudra layout lost attributes: %d", rd.Name, len(rd.Attributes))
					}
				}
			}
		})
	}
}

func TestCases(t *testing.T) {
	if got, want := CaseNames(), []string{"gpu", "cel", "mig"}; !slices.Equal(got, want) {
		t.Fatalf("cases %v, want %v", got, want)
	}
	for _, c := range Cases() {
		if !slices.Contains(c.MinimalAttributes, resourceapi.QualifiedName("type")) {
			t.Errorf("case %s: the minimal layout drops type, which the DeviceClasses select on", c.Name)
		}
	}
	if _, err := CaseByName("tpu"); err == nil || err.Error() != `unknown case "tpu" (valid: [cel gpu mig])` {
		t.Fatalf("error = %v", err)
	}
}
