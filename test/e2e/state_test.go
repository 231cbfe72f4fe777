//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// simStateDir is where the chart's plugin looks for injected faults: its
// --sim-state-dir default, <plugin dir>/sim, on the host.
const simStateDir = "/var/lib/kubelet/plugins/" + driverName + "/sim"

// A checkpoint that cannot be read (corrupt, or written by a newer version
// before a rollback) while pods run: the restarted plugin keeps the bad file,
// rebuilds the records from the CDI specs and the claims, says so in a Node
// event, and the pods keep their GPUs; deleting them leaves nothing.
func TestRunningPodsSurviveCorruptCheckpoint(t *testing.T) {
	podsSurvive(t, func(t *testing.T, before *corev1.Pod, devices int) {
		restarts := pluginStatus(before).RestartCount
		pid := pluginHostPID(t, before)
		// Stop the plugin first so that it cannot write a good file over
		// the bad one, then corrupt the checkpoint, then let it restart.
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(checkpointPath, []byte(`{"version": 1000, "claims": {`), 0o600); err != nil {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			t.Fatal(err)
		}
		t.Logf("corrupted %s, killing plugin pid %d", checkpointPath, pid)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitPluginServing(t, 2*time.Minute, devices, func(p *corev1.Pod) bool {
			return p.UID == before.UID && pluginStatus(p).RestartCount > restarts
		})
		kept, _ := filepath.Glob(checkpointPath + ".corrupt-*")
		if len(kept) == 0 {
			t.Errorf("the corrupt checkpoint was not kept next to %s", checkpointPath)
		}
		for _, k := range kept {
			_ = os.Remove(k)
		}
		err := waitFor(context.Background(), time.Minute, "a CheckpointRebuilt event on the node", func() (bool, error) {
			list, err := suite.client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{
				FieldSelector: "involvedObject.kind=Node,reason=CheckpointRebuilt",
			})
			if err != nil {
				return false, err
			}
			for _, e := range list.Items {
				m := regexp.MustCompile(`(\d+) claims adopted`).FindStringSubmatch(e.Message)
				if e.InvolvedObject.Name == suite.nodeName && m != nil {
					if n, _ := strconv.Atoi(m[1]); n >= 2 {
						return true, nil
					}
				}
			}
			return false, nil
		})
		if err != nil {
			t.Errorf("%v\n%s", err, pluginLogs())
		}
	})
}

// One simulated GPU falls off the bus: the plugin stays up (no restart),
// the other GPUs stay published and serve a new pod, the lost one is left
// out until it is back.
func TestLostGPULeavesTheOtherGPUsServing(t *testing.T) {
	ns := testNamespace(t)
	plugins, err := pluginPods(context.Background())
	if err != nil || len(plugins) != 1 {
		t.Fatalf("plugin pods: %d (%v), want 1", len(plugins), err)
	}
	plugin := plugins[0]
	restarts := pluginStatus(&plugin).RestartCount
	before := publishedDevices(t)
	// The GPU with the highest minor that is a whole GPU: the scheduler
	// picks it last, so no other test's leftovers hold it.
	var lost resourceapi.Device
	for _, d := range before {
		if stringAttr(d, "type") == "gpu" && d.Name > lost.Name {
			lost = d
		}
	}
	if lost.Name == "" {
		t.Fatal("no whole GPU published")
	}
	uuid := stringAttr(lost, "uuid")
	refresh := func() {
		if err := syscall.Kill(pluginHostPID(t, &plugin), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	if err := sim.InjectFault(simStateDir, sim.Fault{Kind: sim.FaultLost, GPU: uuid}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sim.ClearFaults(simStateDir, uuid)
		if p, err := pluginPods(context.Background()); err == nil && len(p) == 1 {
			plugin = p[0]
			refresh()
		}
	})
	t.Logf("%s (%s) is lost", lost.Name, uuid)
	refresh()
	err = waitFor(context.Background(), time.Minute, lost.Name+" to leave the published devices", func() (bool, error) {
		now := publishedDevices(t)
		return len(now) == len(before)-1 && !hasDevice(now, lost.Name), nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, pluginLogs())
	}
	create(t, claimTemplate(ns, "one-gpu", request("gpu", "gpu.nvidia.com", `device.attributes["gpu.nvidia.com"].type == "gpu"`)), suite.client.ResourceV1().ResourceClaimTemplates(ns).Create)
	create(t, reportPod(ns, "after-loss", 1, podClaim{name: "gpu", template: "one-gpu"}), suite.client.CoreV1().Pods(ns).Create)
	seen := waitReport(t, ns, "after-loss")["ctr0"]
	if len(seen.UUIDs) != 1 || seen.UUIDs[0] == uuid {
		t.Errorf("pod after the loss sees %v (lost GPU %s)", seen.UUIDs, uuid)
	}
	p, err := suite.client.CoreV1().Pods(namespace).Get(context.Background(), plugin.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := pluginStatus(p).RestartCount; got != restarts || !podReady(p) {
		t.Errorf("plugin restarted (%d -> %d) or is not ready after a GPU was lost", restarts, got)
	}

	if err := sim.ClearFaults(simStateDir, uuid); err != nil {
		t.Fatal(err)
	}
	refresh()
	err = waitFor(context.Background(), time.Minute, lost.Name+" to be published again", func() (bool, error) {
		return hasDevice(publishedDevices(t), lost.Name), nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, pluginLogs())
	}
	deletePodAndWait(t, ns, "after-loss", time.Minute)
}

func hasDevice(devs []resourceapi.Device, name string) bool {
	for _, d := range devs {
		if d.Name == name {
			return true
		}
	}
	return false
}
