//go:build e2e

package e2e

import (
	"fmt"
	"testing"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/utils/ptr"
)

func TestTwoMIGDevicesWithMatchingParentUUIDComeFromOneGPU(t *testing.T) {
	ns := testNamespace(t)
	profile := func(p string) string { return attr(attrProfile) + " == '" + p + "'" }
	tpl := claimTemplate(ns, "mig-pair",
		request("small", "mig.nvidia.com", profile("1g.10gb")),
		request("large", "mig.nvidia.com", profile("3g.40gb")))
	tpl.Spec.Spec.Devices.Constraints = []resourceapi.DeviceConstraint{{
		Requests:       []string{"small", "large"},
		MatchAttribute: ptr.To(resourceapi.FullyQualifiedName(driverName + "/" + attrParentUUID)),
	}}
	create(t, tpl, suite.client.ResourceV1().ResourceClaimTemplates(ns).Create)
	create(t, reportPod(ns, "mig", 1, podClaim{name: "mig", template: "mig-pair"}), suite.client.CoreV1().Pods(ns).Create)

	s := waitReport(t, ns, "mig")["ctr0"]
	if len(s.UUIDs) != 2 {
		t.Fatalf("container sees UUIDs %v, want two MIG devices", s.UUIDs)
	}
	parents := map[string]bool{}
	profiles := map[string]bool{}
	var parentNode string
	for _, uuid := range s.UUIDs {
		dev := deviceByUUID(t, uuid)
		if typ := stringAttr(dev, attrType); typ != "mig" {
			t.Errorf("%s is device %s of type %q, want mig", uuid, dev.Name, typ)
		}
		parents[stringAttr(dev, attrParentUUID)] = true
		profiles[stringAttr(dev, attrProfile)] = true
		parentNode = deviceNode(dev.Name)
	}
	if len(parents) != 1 || parents[""] {
		t.Errorf("MIG devices %v have parentUUIDs %v, want one shared parent", s.UUIDs, parents)
	}
	if !profiles["1g.10gb"] || !profiles["3g.40gb"] {
		t.Errorf("MIG devices %v have profiles %v, want 1g.10gb and 3g.40gb", s.UUIDs, profiles)
	}
	if want := []string{parentNode, "/dev/nvidiactl"}; fmt.Sprint(s.Devices) != fmt.Sprint(want) {
		t.Errorf("container sees device nodes %v, want the parent's: %v", s.Devices, want)
	}
	if results := allocatedDevices(t, claimOfPod(t, ns, "mig", "mig")); len(results) != 2 {
		t.Errorf("claim allocated %+v, want two devices", results)
	}
}
