//go:build e2e

package e2e

import (
	"testing"
)

func TestTwoPodsWithOneGPUEachGetDifferentGPUs(t *testing.T) {
	ns := testNamespace(t)
	create(t, claimTemplate(ns, "one-gpu", request("gpu", "gpu.nvidia.com")), suite.client.ResourceV1().ResourceClaimTemplates(ns).Create)
	for _, name := range []string{"pod-a", "pod-b"} {
		create(t, reportPod(ns, name, 1, podClaim{name: "gpu", template: "one-gpu"}), suite.client.CoreV1().Pods(ns).Create)
	}
	a := waitReport(t, ns, "pod-a")["ctr0"]
	b := waitReport(t, ns, "pod-b")["ctr0"]
	for name, s := range map[string]seen{"pod-a": a, "pod-b": b} {
		if len(s.UUIDs) != 1 {
			t.Fatalf("%s sees UUIDs %v, want exactly one", name, s.UUIDs)
		}
		dev := deviceByUUID(t, s.UUIDs[0])
		wantNode := "/dev/nvidia" + dev.Name[len("gpu-"):]
		if len(s.Devices) != 2 || s.Devices[0] != wantNode || s.Devices[1] != "/dev/nvidiactl" {
			t.Errorf("%s sees device nodes %v, want [%s /dev/nvidiactl]", name, s.Devices, wantNode)
		}
	}
	if a.UUIDs[0] == b.UUIDs[0] {
		t.Fatalf("both pods got GPU %s", a.UUIDs[0])
	}
}
