//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
)

const (
	gpuConfigWithMisspeltField = `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"TimeSlicing","timeSlicingConfg":{}}}`
	plainGpuConfig             = `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig"}`
)

func TestBadOpaqueConfigKeepsPodFromStartingWithEventNamingTheFieldAndGoodPodRuns(t *testing.T) {
	ns := testNamespace(t)
	cases := []struct {
		pod      string
		requests []resourceapi.DeviceRequest
		config   resourceapi.DeviceClaimConfiguration
		// badRequest is the request whose device the config cannot apply to.
		badRequest string
		// mention says what the event must name, given the bad device.
		mention func(device string) []string
	}{{
		pod:        "misspelt-field",
		requests:   []resourceapi.DeviceRequest{request("gpu", "gpu.nvidia.com")},
		config:     opaqueConfig(gpuConfigWithMisspeltField),
		badRequest: "gpu",
		mention:    func(string) []string { return []string{"sharing.timeSlicingConfg", "unknown field"} },
	}, {
		pod:        "gpuconfig-on-mig",
		requests:   []resourceapi.DeviceRequest{request("mig", "mig.nvidia.com")},
		config:     opaqueConfig(plainGpuConfig, "mig"),
		badRequest: "mig",
		mention:    func(device string) []string { return []string{device, "GpuConfig"} },
	}, {
		// The same mistake in a claim with a second request: the config then
		// names only some of the claim's requests.
		pod:        "gpuconfig-on-mig-of-two",
		requests:   []resourceapi.DeviceRequest{request("gpu", "gpu.nvidia.com"), request("mig", "mig.nvidia.com")},
		config:     opaqueConfig(plainGpuConfig, "mig"),
		badRequest: "mig",
		mention:    func(device string) []string { return []string{device, "GpuConfig"} },
	}}
	for _, tc := range cases {
		tpl := claimTemplate(ns, tc.pod, tc.requests...)
		tpl.Spec.Spec.Devices.Config = []resourceapi.DeviceClaimConfiguration{tc.config}
		create(t, tpl, suite.client.ResourceV1().ResourceClaimTemplates(ns).Create)
		create(t, reportPod(ns, tc.pod, 1, podClaim{name: "claim", template: tc.pod}), suite.client.CoreV1().Pods(ns).Create)
	}
	create(t, claimTemplate(ns, "good", request("gpu", "gpu.nvidia.com")), suite.client.ResourceV1().ResourceClaimTemplates(ns).Create)
	create(t, reportPod(ns, "good", 1, podClaim{name: "claim", template: "good"}), suite.client.CoreV1().Pods(ns).Create)

	if s := waitReport(t, ns, "good")["ctr0"]; len(s.UUIDs) != 1 {
		t.Errorf("good pod sees UUIDs %v, want exactly one", s.UUIDs)
	}
	for _, tc := range cases {
		claim := claimOfPod(t, ns, tc.pod, "claim")
		var badDevice string
		for _, r := range allocatedDevices(t, claim) {
			if r.Request == tc.badRequest {
				badDevice = r.Device
			}
		}
		// The first prepare fails within seconds; the kubelet retries only
		// at its next pod sync, which this test does not wait for.
		ev, failed := waitPrepareFailed(t, ns, tc.pod, claim)
		if !failed {
			continue
		}
		t.Logf("%s: %s", tc.pod, ev.Message)
		for _, want := range append(tc.mention(badDevice), claim.Name) {
			if !strings.Contains(ev.Message, want) {
				t.Errorf("%s: %s event %q does not mention %q", tc.pod, failedPrepare, ev.Message, want)
			}
		}
		requireNotStarted(t, ns, tc.pod)
		if state := claimOnNode(t, string(claim.UID)); !state.clean() {
			t.Errorf("%s: the failed prepare of claim %s left %s", tc.pod, claim.Name, state)
		}
	}
}

// waitPrepareFailed waits for the kubelet's event that preparing the pod's
// claims failed. A pod that starts instead is an error showing the claim's
// spec and allocation (with the configs the driver was given).
func waitPrepareFailed(t *testing.T, ns, pod string, claim *resourceapi.ResourceClaim) (corev1.Event, bool) {
	t.Helper()
	ctx := context.Background()
	var found corev1.Event
	started := false
	err := waitFor(ctx, time.Minute, failedPrepare+" event about pod "+pod, func() (bool, error) {
		events, err := podEvents(ctx, ns, pod, failedPrepare)
		if err != nil {
			return false, err
		}
		if len(events) > 0 {
			found = events[0]
			return true, nil
		}
		started = getPod(t, ns, pod).Status.Phase != corev1.PodPending
		return started, nil
	})
	switch {
	case err != nil:
		t.Errorf("%v\n%s", err, describe(ns, pod))
		return found, false
	case started:
		spec, _ := json.MarshalIndent(claim.Spec.Devices, "", "  ")
		allocation, _ := json.MarshalIndent(claim.Status.Allocation, "", "  ")
		t.Errorf("pod %s started although its claim %s has a bad config\nspec.devices: %s\nstatus.allocation: %s", pod, claim.Name, spec, allocation)
		return found, false
	}
	return found, true
}
