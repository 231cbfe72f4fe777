//go:build e2e

package e2e

import (
	"context"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Each test here runs two pods with a GPU each, disrupts the node's DRA
// stack while they run, and checks what a user would: the pods keep running
// with the same GPUs, new pods still get GPUs, and deleting the pods leaves
// nothing behind on the node.

func TestRunningPodsSurvivePluginKill(t *testing.T) {
	podsSurvive(t, func(t *testing.T, before *corev1.Pod, devices int) {
		restarts := pluginStatus(before).RestartCount
		pid := pluginHostPID(t, before)
		t.Logf("killing plugin pid %d (pod %s)", pid, before.Name)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill plugin pid %d: %v", pid, err)
		}
		waitPluginServing(t, 2*time.Minute, devices, func(p *corev1.Pod) bool {
			return p.UID == before.UID && pluginStatus(p).RestartCount > restarts
		})
	})
}

func TestRunningPodsSurviveKubeletRestart(t *testing.T) {
	podsSurvive(t, func(t *testing.T, before *corev1.Pod, devices int) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := suite.cluster.RestartKubelet(ctx); err != nil {
			t.Fatalf("restart kubelet: %v", err)
		}
		waitPluginServing(t, 2*time.Minute, devices, func(p *corev1.Pod) bool { return p.UID == before.UID })
	})
}

func TestRunningPodsSurvivePluginUpgrade(t *testing.T) {
	podsSurvive(t, func(t *testing.T, before *corev1.Pod, devices int) {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		// A changed pod template rolls the DaemonSet: the new plugin pod
		// starts next to the old one (maxSurge 1), then the old one goes.
		verbosity := "3"
		if slices.Contains(before.Spec.Containers[0].Args, "-v=3") {
			verbosity = "4"
		}
		watch := watchPluginPods(ctx)
		upgraded := make(chan error, 1)
		var out string
		go func() {
			var err error
			out, err = helmCmd(ctx, "upgrade", release, filepath.Join(repoRoot, "deployments/helm/gpudra"),
				"--namespace", namespace, "--reuse-values", "--set", "logVerbosity="+verbosity,
				"--wait", "--timeout", "3m")
			upgraded <- err
		}()
		// A pod created while the old and the new plugin pod both run gets
		// its GPU from whichever the kubelet calls; the node lease makes
		// that safe.
		if err := waitFor(ctx, 3*time.Minute, "the new plugin pod next to the old one", func() (bool, error) {
			pods, err := pluginPods(ctx)
			return len(pods) >= 2, err
		}); err != nil {
			t.Fatal(err)
		}
		ns := createNamespace(t, "roll", nil)
		create(t, claimTemplate(ns, "one-gpu", request("gpu", "gpu.nvidia.com")), suite.client.ResourceV1().ResourceClaimTemplates(ns).Create)
		create(t, reportPod(ns, "during-roll", 1, podClaim{name: "gpu", template: "one-gpu"}), suite.client.CoreV1().Pods(ns).Create)
		if err := <-upgraded; err != nil {
			t.Fatalf("helm upgrade: %v\n%s", err, out)
		}
		during := runningWorkload(t, ns, "during-roll")
		if state := claimOnNode(t, during.claimUID); !state.prepared() {
			t.Errorf("pod started during the roll runs, but its claim has %s", state)
		}
		after := waitPluginServing(t, 2*time.Minute, devices, func(p *corev1.Pod) bool { return p.UID != before.UID })
		if !slices.Contains(after.Spec.Containers[0].Args, "-v="+verbosity) {
			t.Errorf("new plugin pod runs with %v, want -v=%s", after.Spec.Containers[0].Args, verbosity)
		}
		seen := watch()
		if seen.maxPods < 2 {
			t.Errorf("never saw the old and the new plugin pod side by side (at most %d)", seen.maxPods)
		}
		if seen.noneReady {
			t.Errorf("there was a moment without a ready plugin pod during the update")
		}
		deletePodAndWait(t, ns, "during-roll", time.Minute)
		if state := claimOnNode(t, during.claimUID); !state.clean() {
			t.Errorf("the pod started during the roll is gone, but its claim left %s", state)
		}
	})
}

// workload is one of the pods podsSurvive watches.
type workload struct {
	uuid        string
	containerID string
	claimUID    string
}

// podsSurvive runs the scenario the tests above share; disrupt gets the
// plugin pod and the number of published devices from before the
// disruption and returns once the plugin serves again.
func podsSurvive(t *testing.T, disrupt func(t *testing.T, plugin *corev1.Pod, devices int)) {
	ns := testNamespace(t)
	create(t, claimTemplate(ns, "one-gpu", request("gpu", "gpu.nvidia.com")), suite.client.ResourceV1().ResourceClaimTemplates(ns).Create)
	pods := []string{"pod-a", "pod-b"}
	for _, name := range pods {
		create(t, reportPod(ns, name, 1, podClaim{name: "gpu", template: "one-gpu"}), suite.client.CoreV1().Pods(ns).Create)
	}
	before := map[string]workload{}
	for _, name := range pods {
		before[name] = runningWorkload(t, ns, name)
		if state := claimOnNode(t, before[name].claimUID); !state.prepared() {
			t.Fatalf("%s runs, but its claim is not prepared on the node: %s", name, state)
		}
	}

	plugins, err := pluginPods(context.Background())
	if err != nil || len(plugins) != 1 {
		t.Fatalf("plugin pods: %d (%v), want 1", len(plugins), err)
	}
	disrupt(t, &plugins[0], len(publishedDevices(t)))

	for _, name := range pods {
		p := getPod(t, ns, name)
		if p.Status.Phase != corev1.PodRunning {
			t.Errorf("%s is %s after the disruption, want Running", name, p.Status.Phase)
			continue
		}
		cs := p.Status.ContainerStatuses[0]
		if cs.ContainerID != before[name].containerID || cs.RestartCount != 0 {
			t.Errorf("%s: container %s (restarts %d), want the same container %s", name, cs.ContainerID, cs.RestartCount, before[name].containerID)
		}
		// Logs come through the kubelet, which may still be starting.
		var logs string
		err := waitFor(context.Background(), time.Minute, "logs of "+name, func() (bool, error) {
			l, err := podLogs(context.Background(), ns, name, "ctr0")
			logs = l
			return err == nil, err
		})
		if err != nil {
			t.Fatal(err)
		}
		if s := parseReport(logs); len(s.UUIDs) != 1 || s.UUIDs[0] != before[name].uuid {
			t.Errorf("%s now reports UUIDs %v, want %s", name, s.UUIDs, before[name].uuid)
		}
		if state := claimOnNode(t, before[name].claimUID); !state.prepared() {
			t.Errorf("%s still runs, but after the disruption its claim has %s", name, state)
		}
	}

	// The node still prepares new claims, without handing out a held GPU.
	// A plugin that is Ready must be callable: a pod that fails to prepare
	// would run only after the kubelet's retry, 60-90 s late, so it is
	// reported and replaced.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	name, failures, err := runUntilPrepared(ctx, ns, "pod-after", func(name string) *corev1.Pod {
		return reportPod(ns, name, 1, podClaim{name: "gpu", template: "one-gpu"})
	})
	for _, f := range failures {
		t.Errorf("a pod created once the plugin was ready again failed to prepare: %s", f)
	}
	if err != nil {
		t.Fatalf("%v\nplugin logs:\n%s", err, pluginLogs())
	}
	after := runningWorkload(t, ns, name)
	for pod, w := range before {
		if after.uuid == w.uuid {
			t.Errorf("%s got GPU %s, which %s holds", name, after.uuid, pod)
		}
	}
	before[name] = after

	// The kubelet unprepares a pod's claims before it lets the pod go, so
	// nothing of them may be left once the pods are gone.
	for name, w := range before {
		deletePodAndWait(t, ns, name, time.Minute)
		if state := claimOnNode(t, w.claimUID); !state.clean() {
			t.Errorf("%s is gone, but its claim %s left %s\nplugin logs:\n%s", name, w.claimUID, state, pluginLogs())
		}
	}
}

// runningWorkload waits for a one-container pod with claim "gpu" to report
// and returns what identifies it.
func runningWorkload(t *testing.T, ns, name string) workload {
	t.Helper()
	s := waitReport(t, ns, name)["ctr0"]
	if len(s.UUIDs) != 1 {
		t.Fatalf("%s sees UUIDs %v, want exactly one", name, s.UUIDs)
	}
	p := getPod(t, ns, name)
	claim := getClaim(t, ns, podClaimName(t, p, "gpu"))
	return workload{uuid: s.UUIDs[0], containerID: p.Status.ContainerStatuses[0].ContainerID, claimUID: string(claim.UID)}
}

// podWatch is what watchPluginPods saw.
type podWatch struct {
	maxPods   int
	noneReady bool
}

// watchPluginPods polls the plugin pods until the returned function is
// called, and says how many existed at once and whether none was ready at
// some point: a surge update keeps one ready throughout.
func watchPluginPods(ctx context.Context) func() podWatch {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan podWatch)
	go func() {
		var w podWatch
		for ctx.Err() == nil {
			if pods, err := pluginPods(ctx); err == nil {
				w.maxPods = max(w.maxPods, len(pods))
				w.noneReady = w.noneReady || !slices.ContainsFunc(pods, func(p corev1.Pod) bool { return podReady(&p) })
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		done <- w
	}()
	return func() podWatch {
		cancel()
		return <-done
	}
}
