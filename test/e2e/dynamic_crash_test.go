//go:build e2e

package e2e

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpudra/gpudra/internal/plugin"
)

// failpointPlugin is the plugin built with -tags failpoints, shipped in the
// e2e image next to the normal one (make e2e builds it).
const failpointPlugin = "/usr/bin/gpudra-kubelet-plugin-failpoints"

// testKillBetweenCutAndSpec: the plugin is killed with SIGKILL right after it
// cut a pod's MIG device and recorded its UUID, before the CDI spec exists
// (failpoint plugin/prepare-after-mig). The kubelet restarts the container
// and retries the prepare; the plugin finds the unfinished record, destroys
// the device it cut and prepares again: the pod runs, the node holds only
// the device the pod sees (no orphan), and deleting the pod leaves none.
func testKillBetweenCutAndSpec(t *testing.T) {
	marker := "/var/lib/kubelet/plugins/" + driverName + "/failpoint-fired"
	_ = os.Remove(marker)
	t.Cleanup(func() { _ = os.Remove(marker) })
	restarts := swapPluginCommand(t, failpointPlugin,
		corev1.EnvVar{Name: "GPUDRA_FAILPOINT", Value: plugin.FailpointPrepareAfterMIG + ":1"},
		corev1.EnvVar{Name: "GPUDRA_FAILPOINT_ONCE", Value: marker})

	ns := createNamespace(t, "", nil)
	smallTemplate(t, ns, "two", "2g.20gb")
	create(t, reportPod(ns, "after-crash", 1, podClaim{name: "mig", template: "two"}), suite.client.CoreV1().Pods(ns).Create)
	uuid, parent := onlyMIGDevice(t, "after-crash", waitReport(t, ns, "after-crash")["ctr0"], "2g.20gb")

	fired, err := os.ReadFile(marker)
	if err != nil || strings.TrimSpace(string(fired)) != plugin.FailpointPrepareAfterMIG {
		t.Fatalf("the failpoint did not fire (marker %s: %q, %v): the crash was not tested", marker, fired, err)
	}
	pods, err := pluginPods(context.Background())
	if err != nil || len(pods) != 1 || pluginStatus(&pods[0]).RestartCount <= restarts {
		t.Errorf("the plugin container was not restarted after the crash: %+v (%v)", pods, err)
	}
	onNode := migDevicesOnNode(t)
	if len(onNode) != 1 || len(onNode[parent]) != 1 || onNode[parent][0].UUID != uuid || onNode[parent][0].Incomplete {
		t.Errorf("after the crash the node holds %+v, want only %s on %s", onNode, uuid, parent)
	}
	deleteNamespace(t, ns)
	waitNoMIGDevices(t)
}

// swapPluginCommand runs the plugin DaemonSet's container with another
// binary and extra environment until the test ends (then the chart's
// container is put back), waits until that pod serves, and returns its
// container's restart count.
func swapPluginCommand(t *testing.T, binary string, env ...corev1.EnvVar) int32 {
	t.Helper()
	ctx := context.Background()
	dsClient := suite.client.AppsV1().DaemonSets(namespace)
	list, err := dsClient.List(ctx, metav1.ListOptions{LabelSelector: pluginSelector})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("the plugin DaemonSet: %d found, %v", len(list.Items), err)
	}
	name := list.Items[0].Name
	original := list.Items[0].Spec.Template.Spec.Containers[0].DeepCopy()
	devices := len(publishedDevices(t))
	set := func(cmd []string, env []corev1.EnvVar) {
		t.Helper()
		err := waitFor(ctx, time.Minute, "the plugin DaemonSet updated", func() (bool, error) {
			ds, err := dsClient.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			c := &ds.Spec.Template.Spec.Containers[0]
			c.Command, c.Env = cmd, env
			_, err = dsClient.Update(ctx, ds, metav1.UpdateOptions{})
			return err == nil, nil // a conflict: read again
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	set([]string{binary}, append(slices.Clone(original.Env), env...))
	t.Cleanup(func() {
		set(original.Command, original.Env)
		waitPluginServing(t, 3*time.Minute, devices, func(p *corev1.Pod) bool {
			return slices.Equal(p.Spec.Containers[0].Command, original.Command)
		})
	})
	p := waitPluginServing(t, 3*time.Minute, devices, func(p *corev1.Pod) bool {
		return slices.Equal(p.Spec.Containers[0].Command, []string{binary})
	})
	return pluginStatus(p).RestartCount
}
