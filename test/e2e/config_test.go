//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"

	resourceapi "k8s.io/api/resource/v1"
)

// The kubelet's event reason when a driver fails to prepare a pod's claims.
const failedPrepare = "FailedPrepareDynamicResources"

func TestBadOpaqueConfigKeepsPodFromStartingWithEventNamingTheFieldAndGoodPodRuns(t *testing.T) {
	ns := testNamespace(t)
	misspelt := claimTemplate(ns, "misspelt-field", request("gpu", "gpu.nvidia.com"))
	misspelt.Spec.Spec.Devices.Config = append(misspelt.Spec.Spec.Devices.Config, opaqueConfig(
		`{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"TimeSlicing","timeSlicingConfg":{}}}`))
	wrongKind := claimTemplate(ns, "gpuconfig-on-mig", request("mig", "mig.nvidia.com"))
	wrongKind.Spec.Spec.Devices.Config = append(wrongKind.Spec.Spec.Devices.Config, opaqueConfig(
		`{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig"}`, "mig"))
	good := claimTemplate(ns, "good", request("gpu", "gpu.nvidia.com"))
	for _, tpl := range []*resourceapi.ResourceClaimTemplate{misspelt, wrongKind, good} {
		create(t, tpl, suite.client.ResourceV1().ResourceClaimTemplates(ns).Create)
	}
	create(t, reportPod(ns, "misspelt", 1, podClaim{name: "gpu", template: "misspelt-field"}), suite.client.CoreV1().Pods(ns).Create)
	create(t, reportPod(ns, "wrong-kind", 1, podClaim{name: "mig", template: "gpuconfig-on-mig"}), suite.client.CoreV1().Pods(ns).Create)
	create(t, reportPod(ns, "good", 1, podClaim{name: "gpu", template: "good"}), suite.client.CoreV1().Pods(ns).Create)

	if s := waitReport(t, ns, "good")["ctr0"]; len(s.UUIDs) != 1 {
		t.Errorf("good pod sees UUIDs %v, want exactly one", s.UUIDs)
	}

	// The first prepare fails within seconds; the kubelet retries only at
	// its next pod sync, which this test does not wait for.
	ev := waitPodEvent(t, ns, "misspelt", failedPrepare, time.Minute)
	for _, want := range []string{"sharing.timeSlicingConfg", "unknown field"} {
		if !strings.Contains(ev.Message, want) {
			t.Errorf("misspelt: %s event %q does not mention %q", failedPrepare, ev.Message, want)
		}
	}

	migClaim := claimOfPod(t, ns, "wrong-kind", "mig")
	results := allocatedDevices(t, migClaim)
	if len(results) != 1 {
		t.Fatalf("wrong-kind: claim allocated %+v, want one MIG device", results)
	}
	ev = waitPodEvent(t, ns, "wrong-kind", failedPrepare, time.Minute)
	for _, want := range []string{results[0].Device, "GpuConfig", migClaim.Name} {
		if !strings.Contains(ev.Message, want) {
			t.Errorf("wrong-kind: %s event %q does not mention %q", failedPrepare, ev.Message, want)
		}
	}

	for pod, ref := range map[string]string{"misspelt": "gpu", "wrong-kind": "mig"} {
		requireNotStarted(t, ns, pod)
		claim := claimOfPod(t, ns, pod, ref)
		if state := claimOnNode(t, string(claim.UID)); !state.clean() {
			t.Errorf("%s: the failed prepare of claim %s left %s", pod, claim.Name, state)
		}
	}
}
