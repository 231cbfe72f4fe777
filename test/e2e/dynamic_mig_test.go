//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpudra/gpudra/internal/gpu/sim"
)

// dynamicDevicesEmpty is what an empty dgxh100-mig node offers in dynamic
// mode: the open GPU's 14 placements of five profiles, the other seven GPUs
// whole, and the open GPU whole.
const dynamicDevicesEmpty = 14 + 7 + 1

// TestDynamicMIG switches the node to a simulated DGX H100 with MIG mode on
// and nothing cut, in dynamic MIG mode, runs the dynamic cases, and switches
// back to the suite's static node.
func TestDynamicMIG(t *testing.T) {
	staticDevices := len(publishedDevices(t))
	upgradeChart(t, dynamicDevicesEmpty, func(p *corev1.Pod) bool { return slices.Contains(p.Spec.Containers[0].Args, "--mig-mode=dynamic") },
		"--set", "sim.profile=dgxh100-mig", "--set", "mig.mode=dynamic")
	t.Cleanup(func() {
		upgradeChart(t, staticDevices, func(p *corev1.Pod) bool { return !slices.Contains(p.Spec.Containers[0].Args, "--mig-mode=dynamic") },
			"--set-file", "sim.config=testdata/node.yaml")
	})
	if n := len(publishedDevices(t)); n != dynamicDevicesEmpty {
		t.Fatalf("the dynamic node publishes %d devices, want %d", n, dynamicDevicesEmpty)
	}
	t.Run("SevenSmallPodsShareOneGPU", testSevenSmallPods)
	t.Run("ThreeAndFourShareOneGPU", testThreeAndFour)
	t.Run("WholeGPUWaitsUntilAGPUIsFree", testWholeGPUWaits)
	t.Run("KillBetweenCutAndSpec", testKillBetweenCutAndSpec)
}

// upgradeChart upgrades the release to the suite's values plus args and
// waits until a plugin pod for which ok holds serves the given number of
// devices.
func upgradeChart(t *testing.T, devices int, ok func(*corev1.Pod) bool, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	base := []string{"upgrade", release, filepath.Join(repoRoot, "deployments/helm/gpudra"), "--namespace", namespace,
		"--set", "image.tag=e2e", "--set", "sim.enabled=true", "--set", "cleanupInterval=5s", "--wait", "--timeout", "3m"}
	if out, err := helmCmd(ctx, append(base, args...)...); err != nil {
		t.Fatalf("helm upgrade %v: %v\n%s", args, err, out)
	}
	waitPluginServing(t, 3*time.Minute, devices, ok)
}

func smallTemplate(t *testing.T, ns, name, profile string) {
	t.Helper()
	create(t, claimTemplate(ns, name, request("mig", "mig.nvidia.com", attr(attrProfile)+" == '"+profile+"'")),
		suite.client.ResourceV1().ResourceClaimTemplates(ns).Create)
}

// onlyMIGDevice checks that a container sees exactly one MIG device, the
// parent's device node, and returns the published device.
func onlyMIGDevice(t *testing.T, pod string, s seen, profile string) (uuid, parent string) {
	t.Helper()
	if len(s.UUIDs) != 1 {
		t.Fatalf("%s sees UUIDs %v, want one MIG device", pod, s.UUIDs)
	}
	dev := deviceByUUID(t, s.UUIDs[0])
	if stringAttr(dev, attrType) != "mig" || stringAttr(dev, attrProfile) != profile {
		t.Errorf("%s got %s (%s, %s), want a %s MIG device", pod, dev.Name, stringAttr(dev, attrType), stringAttr(dev, attrProfile), profile)
	}
	if want := []string{deviceNode(dev.Name), "/dev/nvidiactl"}; fmt.Sprint(s.Devices) != fmt.Sprint(want) {
		t.Errorf("%s sees device nodes %v, want %v", pod, s.Devices, want)
	}
	return s.UUIDs[0], stringAttr(dev, attrParentUUID)
}

// migDevicesOnNode reads the simulated hardware: MIG devices per GPU UUID.
func migDevicesOnNode(t *testing.T) map[string][]sim.HardwareMIGDevice {
	t.Helper()
	st, err := sim.ReadHardware(simStateDir)
	if err != nil || st == nil {
		t.Fatalf("read the simulated hardware in %s: %v", simStateDir, err)
	}
	out := map[string][]sim.HardwareMIGDevice{}
	for _, g := range st.GPUs {
		if len(g.MIGDevices) > 0 {
			out[g.UUID] = g.MIGDevices
		}
	}
	return out
}

// waitNoMIGDevices waits until the simulated hardware holds no MIG device.
func waitNoMIGDevices(t *testing.T) {
	t.Helper()
	var left map[string][]sim.HardwareMIGDevice
	err := waitFor(context.Background(), 2*time.Minute, "no MIG device left on the node", func() (bool, error) {
		left = migDevicesOnNode(t)
		return len(left) == 0, nil
	})
	if err != nil {
		t.Fatalf("%v: %+v\n%s", err, left, pluginLogs())
	}
}

// testSevenSmallPods: seven pods asking for a 1g.10gb at once all run on
// one GPU, each with its own new MIG device; deleting them leaves none.
func testSevenSmallPods(t *testing.T) {
	ns := createNamespace(t, "", nil)
	smallTemplate(t, ns, "small", "1g.10gb")
	for i := range 7 {
		create(t, reportPod(ns, fmt.Sprintf("small-%d", i), 1, podClaim{name: "mig", template: "small"}), suite.client.CoreV1().Pods(ns).Create)
	}
	uuids, parents := map[string]bool{}, map[string]bool{}
	for i := range 7 {
		pod := fmt.Sprintf("small-%d", i)
		uuid, parent := onlyMIGDevice(t, pod, waitReport(t, ns, pod)["ctr0"], "1g.10gb")
		uuids[uuid], parents[parent] = true, true
	}
	if len(uuids) != 7 || len(parents) != 1 {
		t.Errorf("seven pods got %d MIG devices on %d GPUs, want 7 on 1", len(uuids), len(parents))
	}
	onNode := migDevicesOnNode(t)
	for parent := range parents {
		if got := len(onNode[parent]); got != 7 {
			t.Errorf("the simulated GPU %s holds %d MIG devices, want 7", parent, got)
		}
	}
	deleteNamespace(t, ns)
	waitNoMIGDevices(t)
}

// testThreeAndFour: a 3g.40gb and a 4g.40gb pod share one GPU.
func testThreeAndFour(t *testing.T) {
	ns := createNamespace(t, "", nil)
	smallTemplate(t, ns, "three", "3g.40gb")
	smallTemplate(t, ns, "four", "4g.40gb")
	create(t, reportPod(ns, "three", 1, podClaim{name: "mig", template: "three"}), suite.client.CoreV1().Pods(ns).Create)
	create(t, reportPod(ns, "four", 1, podClaim{name: "mig", template: "four"}), suite.client.CoreV1().Pods(ns).Create)
	threeUUID, threeParent := onlyMIGDevice(t, "three", waitReport(t, ns, "three")["ctr0"], "3g.40gb")
	fourUUID, fourParent := onlyMIGDevice(t, "four", waitReport(t, ns, "four")["ctr0"], "4g.40gb")
	if threeParent != fourParent || threeUUID == fourUUID {
		t.Errorf("3g.40gb %s on %s and 4g.40gb %s on %s, want two devices of one GPU", threeUUID, threeParent, fourUUID, fourParent)
	}
	deleteNamespace(t, ns)
	waitNoMIGDevices(t)
}

// testWholeGPUWaits: with a 4g.40gb in use on each of the eight GPUs no GPU
// is free whole, so a whole-GPU pod is unschedulable; once the 4g pods are
// deleted it runs, on a MIG device spanning its GPU.
func testWholeGPUWaits(t *testing.T) {
	ns := createNamespace(t, "", nil)
	smallTemplate(t, ns, "four", "4g.40gb")
	for i := range 8 {
		create(t, reportPod(ns, fmt.Sprintf("four-%d", i), 1, podClaim{name: "mig", template: "four"}), suite.client.CoreV1().Pods(ns).Create)
	}
	parents := map[string]bool{}
	for i := range 8 {
		pod := fmt.Sprintf("four-%d", i)
		_, parent := onlyMIGDevice(t, pod, waitReport(t, ns, pod)["ctr0"], "4g.40gb")
		parents[parent] = true
	}
	if len(parents) != 8 {
		t.Fatalf("eight 4g.40gb pods are on %d GPUs, want 8", len(parents))
	}

	create(t, claimTemplate(ns, "whole", request("gpu", "gpu.nvidia.com")), suite.client.ResourceV1().ResourceClaimTemplates(ns).Create)
	create(t, reportPod(ns, "whole", 1, podClaim{name: "gpu", template: "whole"}), suite.client.CoreV1().Pods(ns).Create)
	ctx := context.Background()
	err := waitFor(ctx, time.Minute, "the whole-GPU pod to be unschedulable", func() (bool, error) {
		p, err := suite.client.CoreV1().Pods(ns).Get(ctx, "whole", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Spec.NodeName != "" {
			return false, fmt.Errorf("the whole-GPU pod was bound to %s while every GPU has a MIG device in use", p.Spec.NodeName)
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, describe(ns, "whole"))
	}

	for i := range 8 {
		deletePodAndWait(t, ns, fmt.Sprintf("four-%d", i), time.Minute)
	}
	s := waitReport(t, ns, "whole")["ctr0"]
	if len(s.UUIDs) != 1 {
		t.Fatalf("the whole-GPU pod sees %v, want one device", s.UUIDs)
	}
	var spanning []sim.HardwareMIGDevice
	for _, devs := range migDevicesOnNode(t) {
		spanning = append(spanning, devs...)
	}
	if len(spanning) != 1 || spanning[0].UUID != s.UUIDs[0] || spanning[0].Profile != "7g.80gb" {
		t.Errorf("the node holds %+v, want only the whole-GPU pod's 7g.80gb %s", spanning, s.UUIDs[0])
	}
	deleteNamespace(t, ns)
	waitNoMIGDevices(t)
}
