//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// attr and capacity are CEL paths into the driver's domain.
func attr(name string) string     { return fmt.Sprintf("device.attributes['%s'].%s", driverName, name) }
func capacity(name string) string { return fmt.Sprintf("device.capacity['%s'].%s", driverName, name) }

// The scheduler's reason for a pod whose claims it cannot allocate.
const cannotAllocate = "cannot allocate all claims"

func TestCELSelectorsPickMatchingGPUs(t *testing.T) {
	ns := testNamespace(t)
	cases := []struct {
		pod      string
		selector string
		// check says what is wrong with the device the pod got, "" if nothing.
		check func(resourceapi.Device) string
	}{{
		pod:      "product-l4",
		selector: attr(attrProductName) + ".contains('L4')",
		check: func(d resourceapi.Device) string {
			return wantContains(stringAttr(d, attrProductName), "L4")
		},
	}, {
		pod:      "memory-40gi",
		selector: capacity("memory") + ".compareTo(quantity('40Gi')) >= 0",
		check: func(d resourceapi.Device) string {
			mem := d.Capacity["memory"].Value
			if mem.Cmp(resource.MustParse("40Gi")) < 0 {
				return fmt.Sprintf("memory %s < 40Gi", mem.String())
			}
			return wantContains(stringAttr(d, attrProductName), "H100")
		},
	}, {
		pod:      "driver-semver",
		selector: attr(attrDriver) + ".isGreaterThan(semver('500.0.0'))",
		check: func(d resourceapi.Device) string {
			v := ptr.Deref(d.Attributes[attrDriver].VersionValue, "")
			var major int
			if _, err := fmt.Sscanf(v, "%d.", &major); err != nil || major < 500 {
				return fmt.Sprintf("driverVersion %q is not above 500.0.0", v)
			}
			return ""
		},
	}, {
		pod:      "arch-hopper",
		selector: attr(attrArchitecture) + " == 'Hopper'",
		check: func(d resourceapi.Device) string {
			if a := stringAttr(d, attrArchitecture); a != "Hopper" {
				return fmt.Sprintf("architecture %q", a)
			}
			return ""
		},
	}}
	for _, tc := range cases {
		create(t, claimTemplate(ns, tc.pod, request("gpu", "gpu.nvidia.com", tc.selector)), suite.client.ResourceV1().ResourceClaimTemplates(ns).Create)
		create(t, reportPod(ns, tc.pod, 1, podClaim{name: "gpu", template: tc.pod}), suite.client.CoreV1().Pods(ns).Create)
	}
	for _, tc := range cases {
		s := waitReport(t, ns, tc.pod)["ctr0"]
		if len(s.UUIDs) != 1 {
			t.Errorf("%s sees UUIDs %v, want exactly one", tc.pod, s.UUIDs)
			continue
		}
		dev := deviceByUUID(t, s.UUIDs[0])
		if problem := tc.check(dev); problem != "" {
			t.Errorf("%s (selector %s) got %s: %s", tc.pod, tc.selector, dev.Name, problem)
		}
		if results := allocatedDevices(t, claimOfPod(t, ns, tc.pod, "gpu")); len(results) != 1 || results[0].Device != dev.Name {
			t.Errorf("%s: claim allocated %+v, but the container sees %s", tc.pod, results, dev.Name)
		}
	}
}

func wantContains(s, sub string) string {
	if !strings.Contains(s, sub) {
		return fmt.Sprintf("%q does not contain %q", s, sub)
	}
	return ""
}

func TestPodWhoseSelectorMatchesNoDeviceStaysPendingWithSchedulerReason(t *testing.T) {
	ns := testNamespace(t)
	cases := []struct{ pod, class, selector string }{
		{"product-b300", "gpu.nvidia.com", attr(attrProductName) + " == 'B300'"},
		{"driver-999", "gpu.nvidia.com", attr(attrDriver) + ".isGreaterThan(semver('999.0.0'))"},
		{"l4-with-80gi", "gpu.nvidia.com", attr(attrProductName) + ".contains('L4') && " + capacity("memory") + ".compareTo(quantity('80Gi')) >= 0"},
		{"mig-of-a100", "mig.nvidia.com", attr(attrProductName) + ".contains('A100')"},
	}
	for _, tc := range cases {
		create(t, claimTemplate(ns, tc.pod, request("gpu", tc.class, tc.selector)), suite.client.ResourceV1().ResourceClaimTemplates(ns).Create)
		create(t, reportPod(ns, tc.pod, 1, podClaim{name: "gpu", template: tc.pod}), suite.client.CoreV1().Pods(ns).Create)
	}
	for _, tc := range cases {
		pod := tc.pod
		cond := waitUnschedulable(t, ns, pod, time.Minute)
		if !strings.Contains(cond.Message, cannotAllocate) {
			t.Errorf("%s: PodScheduled message %q does not say %q", pod, cond.Message, cannotAllocate)
		}
		ev := waitPodEvent(t, ns, pod, "FailedScheduling", 30*time.Second)
		if !strings.Contains(ev.Message, cannotAllocate) {
			t.Errorf("%s: FailedScheduling event %q does not say %q", pod, ev.Message, cannotAllocate)
		}
		if claim := claimOfPod(t, ns, pod, "gpu"); claim.Status.Allocation != nil {
			t.Errorf("%s: claim %s was allocated %+v", pod, claim.Name, claim.Status.Allocation.Devices.Results)
		}
		requireNotStarted(t, ns, pod)
	}
}

func TestPodWaitsForBusyGPUsAndRunsWhenOneIsFreed(t *testing.T) {
	ns := testNamespace(t)
	create(t, claimTemplate(ns, "one-l4", request("gpu", "gpu.nvidia.com", attr(attrProductName)+".contains('L4')")), suite.client.ResourceV1().ResourceClaimTemplates(ns).Create)
	holders := []string{"holder-a", "holder-b"}
	for _, pod := range holders {
		create(t, reportPod(ns, pod, 1, podClaim{name: "gpu", template: "one-l4"}), suite.client.CoreV1().Pods(ns).Create)
	}
	held := map[string]string{}
	for _, pod := range holders {
		s := waitReport(t, ns, pod)["ctr0"]
		if len(s.UUIDs) != 1 {
			t.Fatalf("%s sees UUIDs %v, want exactly one", pod, s.UUIDs)
		}
		held[pod] = s.UUIDs[0]
	}
	if held["holder-a"] == held["holder-b"] {
		t.Fatalf("both holders got L4 %s", held["holder-a"])
	}

	create(t, reportPod(ns, "waiter", 1, podClaim{name: "gpu", template: "one-l4"}), suite.client.CoreV1().Pods(ns).Create)
	cond := waitUnschedulable(t, ns, "waiter", time.Minute)
	if !strings.Contains(cond.Message, cannotAllocate) {
		t.Errorf("waiter: PodScheduled message %q does not say %q", cond.Message, cannotAllocate)
	}
	requireNotStarted(t, ns, "waiter")

	freed := time.Now()
	deletePodAndWait(t, ns, "holder-a", time.Minute)
	s := waitReport(t, ns, "waiter")["ctr0"]
	t.Logf("waiter ran %.1fs after holder-a was deleted", time.Since(freed).Seconds())
	if len(s.UUIDs) != 1 || s.UUIDs[0] != held["holder-a"] {
		t.Errorf("waiter sees UUIDs %v, want the freed L4 %s", s.UUIDs, held["holder-a"])
	}
}
