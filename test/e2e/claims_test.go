//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

// Attribute names as the driver publishes them (unqualified names live in
// the driver's domain).
const (
	attrUUID         = "uuid"
	attrType         = "type"
	attrProductName  = "productName"
	attrArchitecture = "architecture"
	attrParentUUID   = "parentUUID"
	attrProfile      = "profile"
	attrDriver       = "driverVersion"
)

// resourceClaim is a ResourceClaim (not a template) with the given requests.
func resourceClaim(ns, name string, requests ...resourceapi.DeviceRequest) *resourceapi.ResourceClaim {
	return &resourceapi.ResourceClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: requests}},
	}
}

// adminRequest is request with adminAccess: the device is observed, not
// taken, so it may be one that another claim holds.
func adminRequest(name, class string, selectors ...string) resourceapi.DeviceRequest {
	r := request(name, class, selectors...)
	r.Exactly.AdminAccess = ptr.To(true)
	return r
}

// opaqueConfig is a claim config entry for gpudra with the given JSON
// parameters, applying to requests (all requests when none are named).
func opaqueConfig(parameters string, requests ...string) resourceapi.DeviceClaimConfiguration {
	return resourceapi.DeviceClaimConfiguration{
		Requests: requests,
		DeviceConfiguration: resourceapi.DeviceConfiguration{Opaque: &resourceapi.OpaqueDeviceConfiguration{
			Driver:     driverName,
			Parameters: runtime.RawExtension{Raw: []byte(parameters)},
		}},
	}
}

// podClaimName returns the name of the ResourceClaim behind a pod's claim
// reference: the claim itself, or the one generated from the template.
func podClaimName(t *testing.T, pod *corev1.Pod, ref string) string {
	t.Helper()
	for _, pc := range pod.Spec.ResourceClaims {
		if pc.Name == ref && pc.ResourceClaimName != nil {
			return *pc.ResourceClaimName
		}
	}
	for _, s := range pod.Status.ResourceClaimStatuses {
		if s.Name == ref && s.ResourceClaimName != nil {
			return *s.ResourceClaimName
		}
	}
	t.Fatalf("pod %s/%s has no claim for %q (status %+v)", pod.Namespace, pod.Name, ref, pod.Status.ResourceClaimStatuses)
	return ""
}

// getPod and getClaim read objects that must exist.
func getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	p, err := suite.client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("pod %s/%s: %v", ns, name, err)
	}
	return p
}

func getClaim(t *testing.T, ns, name string) *resourceapi.ResourceClaim {
	t.Helper()
	c, err := suite.client.ResourceV1().ResourceClaims(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("claim %s/%s: %v", ns, name, err)
	}
	return c
}

// claimOfPod returns the ResourceClaim behind a pod's claim reference.
func claimOfPod(t *testing.T, ns, pod, ref string) *resourceapi.ResourceClaim {
	t.Helper()
	return getClaim(t, ns, podClaimName(t, getPod(t, ns, pod), ref))
}

// allocatedDevices returns the claim's allocation results, failing the test
// when the claim is not allocated.
func allocatedDevices(t *testing.T, claim *resourceapi.ResourceClaim) []resourceapi.DeviceRequestAllocationResult {
	t.Helper()
	if claim.Status.Allocation == nil {
		t.Fatalf("claim %s/%s is not allocated", claim.Namespace, claim.Name)
	}
	return claim.Status.Allocation.Devices.Results
}

// publishedDevices lists the devices in the node's ResourceSlices.
func publishedDevices(t *testing.T) []resourceapi.Device {
	t.Helper()
	list, err := suite.client.ResourceV1().ResourceSlices().List(context.Background(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + suite.nodeName})
	if err != nil {
		t.Fatal(err)
	}
	var out []resourceapi.Device
	for _, s := range list.Items {
		out = append(out, s.Spec.Devices...)
	}
	return out
}

// deviceByName returns the published device with the given name.
func deviceByName(t *testing.T, name string) resourceapi.Device {
	t.Helper()
	for _, d := range publishedDevices(t) {
		if d.Name == name {
			return d
		}
	}
	t.Fatalf("no published device is named %s", name)
	return resourceapi.Device{}
}

// stringAttr is a string attribute of a device, "" when absent.
func stringAttr(d resourceapi.Device, name resourceapi.QualifiedName) string {
	return ptr.Deref(d.Attributes[name].StringValue, "")
}

// deviceNode is the /dev node a container gets for a published device: the
// GPU's own for a full GPU, the parent's for a MIG device (gpu-<minor> or
// gpu-<parentMinor>-mig-...).
func deviceNode(deviceName string) string {
	minor, _, _ := strings.Cut(strings.TrimPrefix(deviceName, "gpu-"), "-")
	return "/dev/nvidia" + minor
}
