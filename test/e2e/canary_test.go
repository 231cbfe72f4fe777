//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// canaryNamespace holds the pods waitKubeletPrepares starts.
const canaryNamespace = "gpudra-e2e-canary"

// waitKubeletPrepares starts one-GPU pods until one runs, so that tests
// start once the kubelet can call the plugin. The plugin is Ready once its
// slices are published, which can be before the kubelet has registered it;
// a pod whose prepare fails in that window ("DRA driver ... is not
// registered") waits for the kubelet's next pod sync, 60-90 s later, so a
// canary that fails is replaced rather than waited for. logf reports each
// such failure: it is the window a user's first pod can fall into.
func waitKubeletPrepares(ctx context.Context, timeout time.Duration, logf func(string, ...any)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := suite.client
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: canaryNamespace}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	defer deleteCanaries(logf)
	tpl := claimTemplate(canaryNamespace, "one-gpu", request("gpu", "gpu.nvidia.com"))
	if _, err := client.ResourceV1().ResourceClaimTemplates(canaryNamespace).Create(ctx, tpl, metav1.CreateOptions{}); err != nil {
		return err
	}
	start := time.Now()
	name, failures, err := runUntilPrepared(ctx, canaryNamespace, "canary", func(name string) *corev1.Pod {
		return reportPod(canaryNamespace, name, 1, podClaim{name: "gpu", template: "one-gpu"})
	})
	for _, f := range failures {
		logf("the plugin is Ready but the kubelet could not prepare yet: %s", f)
	}
	if err != nil {
		return err
	}
	logf("the kubelet prepared %s %.1fs after the plugin was ready", name, time.Since(start).Seconds())
	return nil
}

// runUntilPrepared creates pods (newPod names them prefix-0, prefix-1, ...)
// until one runs, and returns its name. A pod whose prepare failed is
// replaced at once rather than left to the kubelet's retry 60-90 s later;
// the failures are returned.
func runUntilPrepared(ctx context.Context, ns, prefix string, newPod func(name string) *corev1.Pod) (string, []string, error) {
	var failures []string
	for attempt := 0; ctx.Err() == nil; attempt++ {
		name := fmt.Sprintf("%s-%d", prefix, attempt)
		if _, err := suite.client.CoreV1().Pods(ns).Create(ctx, newPod(name), metav1.CreateOptions{}); err != nil {
			return "", failures, err
		}
		var failure string
		err := waitFor(ctx, 2*time.Minute, "pod "+ns+"/"+name+" running", func() (bool, error) {
			p, err := suite.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if p.Status.Phase == corev1.PodRunning {
				return true, nil
			}
			events, err := podEvents(ctx, ns, name, failedPrepare)
			if len(events) > 0 {
				failure = name + ": " + events[0].Message
			}
			return len(events) > 0, err
		})
		if err != nil {
			return "", failures, err
		}
		if failure == "" {
			return name, failures, nil
		}
		failures = append(failures, failure)
		if err := suite.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
			return "", failures, err
		}
		// The next pod may need the failed one's device: wait until it is gone.
		if err := waitFor(ctx, time.Minute, "pod "+ns+"/"+name+" gone", func() (bool, error) {
			_, err := suite.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		}); err != nil {
			return "", failures, err
		}
	}
	return "", failures, ctx.Err()
}

// deleteCanaries removes the canary namespace and waits until it is gone, so
// the first test starts on an idle node.
func deleteCanaries(logf func(string, ...any)) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_ = suite.client.CoreV1().Pods(canaryNamespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	_ = suite.client.CoreV1().Namespaces().Delete(ctx, canaryNamespace, metav1.DeleteOptions{})
	err := waitFor(ctx, 2*time.Minute, "namespace "+canaryNamespace+" gone", func() (bool, error) {
		_, err := suite.client.CoreV1().Namespaces().Get(ctx, canaryNamespace, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		logf("delete canaries: %v", err)
	}
}
