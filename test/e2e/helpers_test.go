//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// reportCommand is what every test container runs: it prints what the
// container was given, then stays up so the claim stays prepared.
const reportCommand = `echo "NVIDIA_VISIBLE_DEVICES=$NVIDIA_VISIBLE_DEVICES"; for d in /dev/nvidia*; do echo "DEVICE=$d"; done; echo DONE; exec sleep 3600`

// testNamespace creates a namespace for one test and deletes it (with its
// pods and claims) when the test ends, waiting until the plugin has
// unprepared everything.
func testNamespace(t *testing.T) string {
	t.Helper()
	return createNamespace(t, "", nil)
}

// createNamespace creates a namespace named after the test plus suffix, with
// labels, and deletes it when the test ends (see testNamespace).
func createNamespace(t *testing.T, suffix string, labels map[string]string) string {
	t.Helper()
	ctx := context.Background()
	name := strings.ToLower(regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), "-"))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-")
	if suffix != "" {
		name += "-" + suffix
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := suite.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(t, name) })
	return name
}

func deleteNamespace(t *testing.T, name string) {
	ctx := context.Background()
	_ = suite.client.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{})
	_ = suite.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	err := waitFor(ctx, 2*time.Minute, "namespace "+name+" gone", func() (bool, error) {
		_, err := suite.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// claimTemplate is a ResourceClaimTemplate with one request per class.
func claimTemplate(ns, name string, requests ...resourceapi.DeviceRequest) *resourceapi.ResourceClaimTemplate {
	return &resourceapi.ResourceClaimTemplate{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       resourceapi.ResourceClaimTemplateSpec{Spec: resourceapi.ResourceClaimSpec{Devices: resourceapi.DeviceClaim{Requests: requests}}},
	}
}

// request asks for one device of class, optionally with CEL selectors.
func request(name, class string, selectors ...string) resourceapi.DeviceRequest {
	r := resourceapi.DeviceRequest{Name: name, Exactly: &resourceapi.ExactDeviceRequest{DeviceClassName: class}}
	for _, s := range selectors {
		r.Exactly.Selectors = append(r.Exactly.Selectors, resourceapi.DeviceSelector{CEL: &resourceapi.CELDeviceSelector{Expression: s}})
	}
	return r
}

// podClaim is a pod-level claim reference: a template or an existing claim.
type podClaim struct {
	name, template, claim string
}

// reportPod is a pod whose containers run reportCommand; each container
// uses every claim of the pod.
func reportPod(ns, name string, containers int, claims ...podClaim) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: ptr.To[int64](1),
		},
	}
	for _, c := range claims {
		pc := corev1.PodResourceClaim{Name: c.name}
		if c.template != "" {
			pc.ResourceClaimTemplateName = ptr.To(c.template)
		} else {
			pc.ResourceClaimName = ptr.To(c.claim)
		}
		pod.Spec.ResourceClaims = append(pod.Spec.ResourceClaims, pc)
	}
	for i := range containers {
		ctr := corev1.Container{
			Name:            fmt.Sprintf("ctr%d", i),
			Image:           "localhost/gpudra/busybox:1",
			ImagePullPolicy: corev1.PullNever,
			Command:         []string{"sh", "-c", reportCommand},
		}
		for _, c := range claims {
			ctr.Resources.Claims = append(ctr.Resources.Claims, corev1.ResourceClaim{Name: c.name})
		}
		pod.Spec.Containers = append(pod.Spec.Containers, ctr)
	}
	return pod
}

func create[T any](t *testing.T, obj *T, fn func(context.Context, *T, metav1.CreateOptions) (*T, error)) *T {
	t.Helper()
	out, err := fn(context.Background(), obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// seen is what one container reported.
type seen struct {
	UUIDs   []string
	Devices []string
}

// waitReport waits for the pod to run and returns what each container saw.
func waitReport(t *testing.T, ns, pod string) map[string]seen {
	t.Helper()
	ctx := context.Background()
	p := waitPodRunning(t, ns, pod, 2*time.Minute)
	out := map[string]seen{}
	for _, c := range p.Spec.Containers {
		var logs string
		err := waitFor(ctx, time.Minute, "report of "+pod+"/"+c.Name, func() (bool, error) {
			l, err := podLogs(ctx, ns, pod, c.Name)
			logs = l
			return err == nil && strings.Contains(l, "DONE"), err
		})
		if err != nil {
			t.Fatal(err)
		}
		out[c.Name] = parseReport(logs)
	}
	return out
}

func parseReport(logs string) seen {
	var s seen
	for _, line := range strings.Split(logs, "\n") {
		if v, ok := strings.CutPrefix(line, "NVIDIA_VISIBLE_DEVICES="); ok && v != "" {
			s.UUIDs = strings.Split(v, ",")
		}
		if v, ok := strings.CutPrefix(line, "DEVICE="); ok && v != "/dev/nvidia*" {
			s.Devices = append(s.Devices, v)
		}
	}
	sort.Strings(s.Devices)
	return s
}

func podLogs(ctx context.Context, ns, pod, container string) (string, error) {
	rc, err := suite.client.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).Stream(ctx)
	if err != nil {
		return "", err
	}
	defer func() { _ = rc.Close() }()
	data, err := io.ReadAll(rc)
	return string(data), err
}

func waitPodRunning(t *testing.T, ns, name string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	var pod *corev1.Pod
	err := waitFor(ctx, timeout, "pod "+ns+"/"+name+" running", func() (bool, error) {
		p, err := suite.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pod = p
		if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			return false, fmt.Errorf("pod ended in phase %s", p.Status.Phase)
		}
		return p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, describe(ns, name))
	}
	return pod
}

// describe is kubectl describe of a pod, for failure messages.
func describe(ns, pod string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, _ := kubectl(ctx, "describe", "pod", "-n", ns, pod)
	return out
}

// deviceByUUID returns the published device with the given UUID attribute.
func deviceByUUID(t *testing.T, uuid string) resourceapi.Device {
	t.Helper()
	list, err := suite.client.ResourceV1().ResourceSlices().List(context.Background(), metav1.ListOptions{FieldSelector: "spec.nodeName=" + suite.nodeName})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Items {
		for _, d := range s.Spec.Devices {
			if a, ok := d.Attributes["uuid"]; ok && a.StringValue != nil && *a.StringValue == uuid {
				return d
			}
		}
	}
	t.Fatalf("no published device has UUID %s", uuid)
	return resourceapi.Device{}
}
