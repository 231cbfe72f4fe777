//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpudra/gpudra/internal/localcluster"
)

// What the plugin leaves on the node for a prepared claim. The suite runs on
// the node itself, so it reads them directly: they are the ground truth the
// kubelet and the container runtime act on.
const (
	cdiDir         = "/var/run/cdi"
	checkpointPath = "/var/lib/kubelet/plugins/" + driverName + "/checkpoint.json"
	pluginSelector = "app.kubernetes.io/name=gpudra,app.kubernetes.io/component=kubelet-plugin"
	pluginBinary   = "gpudra-kubelet-plugin"
)

// nodeState is what the node holds for one claim.
type nodeState struct {
	// specs are the CDI spec files whose name carries the claim UID.
	specs []string
	// checkpointed tells whether the plugin's checkpoint has the claim.
	checkpointed bool
}

func (s nodeState) prepared() bool { return len(s.specs) > 0 && s.checkpointed }
func (s nodeState) clean() bool    { return len(s.specs) == 0 && !s.checkpointed }

func (s nodeState) String() string {
	return fmt.Sprintf("CDI specs %v, in checkpoint: %v", s.specs, s.checkpointed)
}

// claimOnNode reads the node's CDI directory and the plugin's checkpoint for
// the claim with the given UID.
func claimOnNode(t *testing.T, claimUID string) nodeState {
	t.Helper()
	var s nodeState
	entries, err := os.ReadDir(cdiDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), claimUID) {
			s.specs = append(s.specs, filepath.Join(cdiDir, e.Name()))
		}
	}
	data, err := os.ReadFile(checkpointPath)
	if err != nil {
		t.Fatalf("read the plugin's checkpoint: %v", err)
	}
	var cp struct {
		Claims map[string]json.RawMessage `json:"claims"`
	}
	if err := json.Unmarshal(data, &cp); err != nil {
		t.Fatalf("parse the plugin's checkpoint %s: %v", checkpointPath, err)
	}
	_, s.checkpointed = cp.Claims[claimUID]
	return s
}

// pluginPods lists the kubelet plugin's pods.
func pluginPods(ctx context.Context) ([]corev1.Pod, error) {
	list, err := suite.client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: pluginSelector})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// waitPluginServing waits until exactly one plugin pod exists, it is ready
// (its readiness means its slices are published) and ok holds for it, and
// the node publishes the given number of devices again.
func waitPluginServing(t *testing.T, timeout time.Duration, devices int, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	var found *corev1.Pod
	var seen string
	err := waitFor(ctx, timeout, "the plugin pod to serve again", func() (bool, error) {
		pods, err := pluginPods(ctx)
		if err != nil {
			return false, err
		}
		seen = fmt.Sprintf("%d plugin pods", len(pods))
		if len(pods) != 1 || !podReady(&pods[0]) || !ok(&pods[0]) {
			return false, nil
		}
		found = &pods[0]
		return len(publishedDevices(t)) == devices, nil
	})
	if err != nil {
		t.Fatalf("%v (%s)\n%s", err, seen, pluginLogs())
	}
	return found
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// pluginHostPID is the host PID of the plugin container's main process, as
// the container runtime reports it; it is checked to run the plugin binary
// so that a stale PID never makes us signal something else.
func pluginHostPID(t *testing.T, pod *corev1.Pod) int {
	t.Helper()
	status := pluginStatus(pod)
	_, id, ok := strings.Cut(status.ContainerID, "://")
	if !ok {
		t.Fatalf("plugin pod %s: plugin container ID %q (statuses %+v)", pod.Name, status.ContainerID, pod.Status.ContainerStatuses)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := run(ctx, filepath.Join(suite.cluster.BinDir, "crictl"),
		"--runtime-endpoint", "unix://"+localcluster.ContainerdSocket(suite.cluster.Root), "inspect", id)
	if err != nil {
		t.Fatalf("crictl inspect %s: %v", id, err)
	}
	var inspect struct {
		Info struct {
			PID int `json:"pid"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(out), &inspect); err != nil || inspect.Info.PID <= 1 {
		t.Fatalf("crictl inspect %s: no PID in %.300s (%v)", id, out, err)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", inspect.Info.PID))
	if err != nil || filepath.Base(exe) != pluginBinary {
		t.Fatalf("PID %d of container %s runs %q (%v), not %s", inspect.Info.PID, id, exe, err, pluginBinary)
	}
	return inspect.Info.PID
}

// pluginStatus is the status of the plugin pod's "plugin" container (the
// pod also runs the mps-launcher); zero if the kubelet has not reported it.
func pluginStatus(pod *corev1.Pod) corev1.ContainerStatus {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == "plugin" {
			return cs
		}
	}
	return corev1.ContainerStatus{}
}
