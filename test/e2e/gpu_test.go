//go:build e2e

package e2e

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
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

func TestOneClaimSharedByContainersAndPodsGivesTheSameGPUEverywhere(t *testing.T) {
	ns := testNamespace(t)
	create(t, resourceClaim(ns, "shared", request("gpu", "gpu.nvidia.com")), suite.client.ResourceV1().ResourceClaims(ns).Create)
	create(t, reportPod(ns, "two-containers", 2, podClaim{name: "gpu", claim: "shared"}), suite.client.CoreV1().Pods(ns).Create)
	create(t, reportPod(ns, "one-container", 1, podClaim{name: "gpu", claim: "shared"}), suite.client.CoreV1().Pods(ns).Create)

	all := map[string]seen{}
	for _, pod := range []string{"two-containers", "one-container"} {
		for ctr, s := range waitReport(t, ns, pod) {
			all[pod+"/"+ctr] = s
		}
	}
	results := allocatedDevices(t, getClaim(t, ns, "shared"))
	if len(results) != 1 {
		t.Fatalf("claim allocated %d devices, want 1: %+v", len(results), results)
	}
	dev := deviceByName(t, results[0].Device)
	wantUUID := stringAttr(dev, attrUUID)
	wantDevices := []string{deviceNode(dev.Name), "/dev/nvidiactl"}
	if len(all) != 3 {
		t.Fatalf("got reports of %d containers, want 3", len(all))
	}
	for name, s := range all {
		if len(s.UUIDs) != 1 || s.UUIDs[0] != wantUUID {
			t.Errorf("%s sees UUIDs %v, want [%s] (device %s of the shared claim)", name, s.UUIDs, wantUUID, dev.Name)
		}
		if fmt.Sprint(s.Devices) != fmt.Sprint(wantDevices) {
			t.Errorf("%s sees device nodes %v, want %v", name, s.Devices, wantDevices)
		}
	}
	reserved := map[string]bool{}
	for _, r := range getClaim(t, ns, "shared").Status.ReservedFor {
		reserved[r.Name] = true
	}
	if !reserved["two-containers"] || !reserved["one-container"] {
		t.Errorf("claim is reserved for %v, want both pods", reserved)
	}
}

func TestLegacyPodAskingForNvidiaComGPUGetsOneGPUThroughDRA(t *testing.T) {
	ns := testNamespace(t)
	pod := reportPod(ns, "legacy", 1)
	pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}
	create(t, pod, suite.client.CoreV1().Pods(ns).Create)

	s := waitReport(t, ns, "legacy")["ctr0"]
	if len(s.UUIDs) != 1 {
		t.Fatalf("legacy pod sees UUIDs %v, want exactly one", s.UUIDs)
	}
	dev := deviceByUUID(t, s.UUIDs[0])
	if got := stringAttr(dev, attrType); got != "gpu" {
		t.Errorf("legacy pod got device %s of type %q, want a full GPU", dev.Name, got)
	}
	if want := []string{deviceNode(dev.Name), "/dev/nvidiactl"}; fmt.Sprint(s.Devices) != fmt.Sprint(want) {
		t.Errorf("legacy pod sees device nodes %v, want %v", s.Devices, want)
	}

	// The scheduler serves the extended resource with a claim of its own,
	// built from the DeviceClass that names nvidia.com/gpu.
	status := getPod(t, ns, "legacy").Status.ExtendedResourceClaimStatus
	if status == nil || status.ResourceClaimName == "" {
		t.Fatalf("pod has no extendedResourceClaimStatus: %+v", status)
	}
	if len(status.RequestMappings) != 1 || status.RequestMappings[0].ContainerName != "ctr0" || status.RequestMappings[0].ResourceName != "nvidia.com/gpu" {
		t.Errorf("request mappings %+v, want ctr0's nvidia.com/gpu", status.RequestMappings)
	}
	claim := getClaim(t, ns, status.ResourceClaimName)
	for _, r := range claim.Spec.Devices.Requests {
		if r.Exactly == nil || r.Exactly.DeviceClassName != "gpu.nvidia.com" {
			t.Errorf("generated claim request %+v, want class gpu.nvidia.com", r)
		}
	}
	results := allocatedDevices(t, claim)
	if len(results) != 1 || results[0].Device != dev.Name || results[0].Driver != driverName {
		t.Errorf("generated claim allocated %+v, want %s of %s", results, dev.Name, driverName)
	}
}

func TestAdminAccessClaimSeesTheGPUAnotherPodHolds(t *testing.T) {
	ns := testNamespace(t)
	create(t, claimTemplate(ns, "one-gpu", request("gpu", "gpu.nvidia.com")), suite.client.ResourceV1().ResourceClaimTemplates(ns).Create)
	create(t, reportPod(ns, "holder", 1, podClaim{name: "gpu", template: "one-gpu"}), suite.client.CoreV1().Pods(ns).Create)
	held := waitReport(t, ns, "holder")["ctr0"]
	if len(held.UUIDs) != 1 {
		t.Fatalf("holder sees UUIDs %v, want exactly one", held.UUIDs)
	}

	adminNS := createNamespace(t, "admin", map[string]string{resourceapi.DRAAdminNamespaceLabelKey: "true"})
	selector := fmt.Sprintf("device.attributes['%s'].uuid == '%s'", driverName, held.UUIDs[0])
	create(t, resourceClaim(adminNS, "monitor", adminRequest("gpu", "gpu.nvidia.com", selector)), suite.client.ResourceV1().ResourceClaims(adminNS).Create)
	create(t, reportPod(adminNS, "admin", 1, podClaim{name: "gpu", claim: "monitor"}), suite.client.CoreV1().Pods(adminNS).Create)

	admin := waitReport(t, adminNS, "admin")["ctr0"]
	if len(admin.UUIDs) != 1 || admin.UUIDs[0] != held.UUIDs[0] {
		t.Errorf("admin pod sees UUIDs %v, want the held GPU %s", admin.UUIDs, held.UUIDs[0])
	}
	if fmt.Sprint(admin.Devices) != fmt.Sprint(held.Devices) {
		t.Errorf("admin pod sees device nodes %v, holder %v", admin.Devices, held.Devices)
	}
	results := allocatedDevices(t, getClaim(t, adminNS, "monitor"))
	if len(results) != 1 || !ptr.Deref(results[0].AdminAccess, false) {
		t.Errorf("admin claim allocated %+v, want one device with adminAccess", results)
	}
	if p := getPod(t, ns, "holder"); p.Status.Phase != corev1.PodRunning {
		t.Errorf("holder is %s after the admin pod started, want Running", p.Status.Phase)
	}
}
