//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The kubelet's event reason when a driver fails to prepare a pod's claims.
const failedPrepare = "FailedPrepareDynamicResources"

// waitPodEvent waits for an event of the given reason about a pod and
// returns it. Kubelet and scheduler events both land in the core/v1 API.
func waitPodEvent(t *testing.T, ns, pod, reason string, timeout time.Duration) corev1.Event {
	t.Helper()
	ctx := context.Background()
	var found []corev1.Event
	err := waitFor(ctx, timeout, fmt.Sprintf("event %s about pod %s/%s", reason, ns, pod), func() (bool, error) {
		var err error
		found, err = podEvents(ctx, ns, pod, reason)
		return len(found) > 0, err
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, describe(ns, pod))
	}
	return found[0]
}

// podEvents lists the events of the given reason about a pod.
func podEvents(ctx context.Context, ns, pod, reason string) ([]corev1.Event, error) {
	list, err := suite.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + pod})
	if err != nil {
		return nil, err
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.Reason == reason {
			out = append(out, e)
		}
	}
	return out, nil
}

// waitUnschedulable waits until the scheduler has given up on the pod for
// now and returns its PodScheduled condition.
func waitUnschedulable(t *testing.T, ns, pod string, timeout time.Duration) corev1.PodCondition {
	t.Helper()
	ctx := context.Background()
	var found corev1.PodCondition
	err := waitFor(ctx, timeout, "pod "+ns+"/"+pod+" unschedulable", func() (bool, error) {
		p, err := suite.client.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Spec.NodeName != "" {
			return false, fmt.Errorf("pod was scheduled to %s", p.Spec.NodeName)
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				found = c
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, describe(ns, pod))
	}
	return found
}

// requireNotStarted fails the test if any container of the pod has started.
func requireNotStarted(t *testing.T, ns, pod string) {
	t.Helper()
	p := getPod(t, ns, pod)
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("pod %s is %s, want Pending", pod, p.Status.Phase)
	}
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running != nil || c.State.Terminated != nil {
			t.Errorf("pod %s: container %s started: %+v", pod, c.Name, c.State)
		}
	}
}

// deletePodAndWait deletes a pod gracefully, as a user would, and waits
// until it is gone from the API. The kubelet unprepares a pod's claims
// before it reports the pod terminated, so once the pod is gone its claims
// are unprepared (unless the plugin failed to).
func deletePodAndWait(t *testing.T, ns, pod string, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	if err := suite.client.CoreV1().Pods(ns).Delete(ctx, pod, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := waitFor(ctx, timeout, "pod "+ns+"/"+pod+" gone", func() (bool, error) {
		_, err := suite.client.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("%v\n%s\nplugin logs:\n%s", err, describe(ns, pod), pluginLogs())
	}
}
