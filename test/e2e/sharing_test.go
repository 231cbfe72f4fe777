//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/gpu/sim"
	"github.com/gpudra/gpudra/internal/mps"
)

const timeSlicedLong = `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"TimeSlicing","timeSlicingConfig":{"interval":"Long"}}}`

// simGPU returns a GPU's state as the sim's hardware.json holds it.
func simGPU(t *testing.T, uuid string) sim.HardwareGPU {
	t.Helper()
	st, err := sim.ReadHardware(simStateDir)
	if err != nil || st == nil {
		t.Fatalf("read sim hardware: %v", err)
	}
	for _, g := range st.GPUs {
		if g.UUID == uuid {
			return g
		}
	}
	t.Fatalf("no GPU %s in the sim's hardware", uuid)
	return sim.HardwareGPU{}
}

func TestTimeSlicedClaimSharedByTwoPodsSetsTheGPUAndPutsItBack(t *testing.T) {
	ns := testNamespace(t)
	claim := resourceClaim(ns, "timesliced", request("gpu", "gpu.nvidia.com", `device.attributes["gpu.nvidia.com"].productName.matches("H100")`))
	claim.Spec.Devices.Config = append(claim.Spec.Devices.Config, opaqueConfig(timeSlicedLong))
	create(t, claim, suite.client.ResourceV1().ResourceClaims(ns).Create)
	for _, pod := range []string{"first", "second"} {
		create(t, reportPod(ns, pod, 1, podClaim{name: "gpu", claim: "timesliced"}), suite.client.CoreV1().Pods(ns).Create)
	}
	a, b := waitReport(t, ns, "first")["ctr0"], waitReport(t, ns, "second")["ctr0"]
	if len(a.UUIDs) != 1 || fmt.Sprint(a.UUIDs) != fmt.Sprint(b.UUIDs) {
		t.Fatalf("pods see %v and %v, want the same one GPU", a.UUIDs, b.UUIDs)
	}
	uuid := a.UUIDs[0]
	if g := simGPU(t, uuid); g.TimeSlice != gpu.TimeSliceLong || g.ComputeMode != gpu.ComputeModeDefault {
		t.Errorf("while the pods run, GPU %s has time slice %s and compute mode %s; want Long, Default", uuid, g.TimeSlice, g.ComputeMode)
	}

	ctx := context.Background()
	if err := suite.client.CoreV1().Pods(ns).Delete(ctx, "first", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// One pod still runs on the claim: the setting stays.
	waitPodGone(t, ns, "first")
	if g := simGPU(t, uuid); g.TimeSlice != gpu.TimeSliceLong {
		t.Errorf("with one pod left, GPU %s has time slice %s, want Long", uuid, g.TimeSlice)
	}
	if err := suite.client.CoreV1().Pods(ns).Delete(ctx, "second", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := waitFor(ctx, 2*time.Minute, "GPU "+uuid+" back to its time slice", func() (bool, error) {
		return simGPU(t, uuid).TimeSlice == gpu.TimeSliceDefault, nil
	})
	if err != nil {
		t.Fatalf("%v (has %s)", err, simGPU(t, uuid).TimeSlice)
	}
}

func waitPodGone(t *testing.T, ns, name string) {
	t.Helper()
	ctx := context.Background()
	err := waitFor(ctx, 2*time.Minute, "pod "+ns+"/"+name+" gone", func() (bool, error) {
		_, err := suite.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		t.Fatal(err)
	}
}

const mpsConfigJSON = `{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS","mpsConfig":{"defaultActiveThreadPercentage":50,"defaultPinnedDeviceMemoryLimit":"40Gi"}}}`

// mpsCommand prints what an MPS client container sees, then waits.
const mpsCommand = `echo "PIPE=$CUDA_MPS_PIPE_DIRECTORY"; echo "LOG=$CUDA_MPS_LOG_DIRECTORY"; for f in /tmp/nvidia-mps/*; do echo "PIPEFILE=$f"; done; echo DONE; exec sleep 3600`

const mpsRoot = "/var/lib/kubelet/plugins/" + driverName + "/mps"

// mpsRecord is the MPS daemon the checkpoint records for a claim.
func mpsRecord(t *testing.T, claimUID string) (pid int, start uint64) {
	t.Helper()
	data, err := os.ReadFile(checkpointPath)
	if err != nil {
		t.Fatal(err)
	}
	var cp struct {
		Claims map[string]struct {
			MPS []struct {
				PID       int    `json:"pid"`
				StartTime uint64 `json:"startTime"`
			} `json:"mps"`
		} `json:"claims"`
	}
	if err := json.Unmarshal(data, &cp); err != nil {
		t.Fatal(err)
	}
	c, ok := cp.Claims[claimUID]
	if !ok || len(c.MPS) != 1 || c.MPS[0].PID == 0 {
		t.Fatalf("checkpoint has no running MPS daemon for claim %s: %+v", claimUID, c)
	}
	return c.MPS[0].PID, c.MPS[0].StartTime
}

// askDaemon sends one command to the daemon on the node through its pipe
// directory, with the sim's client (the repository's build of it).
func askDaemon(t *testing.T, claimUID, command string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "_output/bin/gpudra-sim-mps"))
	cmd.Env = []string{"CUDA_MPS_PIPE_DIRECTORY=" + filepath.Join(mpsRoot, mps.DaemonID(claimUID), "pipe")}
	cmd.Stdin = strings.NewReader(command + "\n")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestMPSClaimsDaemonOutlivesAPluginKillAndGoesWithThePod(t *testing.T) {
	ns := testNamespace(t)
	ctx := context.Background()
	claim := resourceClaim(ns, "mps", request("gpu", "gpu.nvidia.com", `device.attributes["gpu.nvidia.com"].productName.matches("H100")`))
	claim.Spec.Devices.Config = append(claim.Spec.Devices.Config, opaqueConfig(mpsConfigJSON))
	create(t, claim, suite.client.ResourceV1().ResourceClaims(ns).Create)
	pod := reportPod(ns, "client", 1, podClaim{name: "gpu", claim: "mps"})
	pod.Spec.Containers[0].Command = []string{"sh", "-c", mpsCommand}
	create(t, pod, suite.client.CoreV1().Pods(ns).Create)
	waitPodRunning(t, ns, "client", 2*time.Minute)
	var logs string
	if err := waitFor(ctx, time.Minute, "the client's report", func() (bool, error) {
		l, err := podLogs(ctx, ns, "client", "ctr0")
		logs = l
		return err == nil && strings.Contains(l, "DONE"), err
	}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PIPE=/tmp/nvidia-mps", "LOG=/var/log/nvidia-mps", "PIPEFILE=/tmp/nvidia-mps/control"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the container does not see %q:\n%s", want, logs)
		}
	}

	uid := string(getClaim(t, ns, "mps").UID)
	for cmd, want := range map[string]string{"get_default_active_thread_percentage": "50", "get_default_device_pinned_mem_limit 0": "40960M"} {
		if got, err := askDaemon(t, uid, cmd); err != nil || got != want {
			t.Errorf("daemon: %s = %q (%v), want %q", cmd, got, err, want)
		}
	}
	uuid, err := askDaemon(t, uid, "sim_get_devices")
	if err != nil {
		t.Fatal(err)
	}
	if g := simGPU(t, uuid); g.ComputeMode != gpu.ComputeModeExclusiveProcess {
		t.Errorf("GPU %s compute mode %s while the daemon runs, want Exclusive_Process", uuid, g.ComputeMode)
	}
	pid, start := mpsRecord(t, uid)

	// kill -9 of the plugin: the daemon keeps running, and the restarted
	// plugin keeps it (same PID and start time, no second start).
	plugins, err := pluginPods(ctx)
	if err != nil || len(plugins) != 1 {
		t.Fatalf("plugin pods: %d (%v)", len(plugins), err)
	}
	restarts := pluginStatus(&plugins[0]).RestartCount
	devices := len(publishedDevices(t))
	if err := syscall.Kill(pluginHostPID(t, &plugins[0]), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitPluginServing(t, 2*time.Minute, devices, func(p *corev1.Pod) bool {
		return p.UID == plugins[0].UID && pluginStatus(p).RestartCount > restarts
	})
	if got, err := askDaemon(t, uid, "get_default_device_pinned_mem_limit 0"); err != nil || got != "40960M" {
		t.Errorf("after the plugin's restart the daemon answers %q (%v)", got, err)
	}
	// The restarted plugin's first cleanup has run once it serves; a dead
	// daemon would have been started again and recorded anew.
	if p, s := mpsRecord(t, uid); p != pid || s != start {
		t.Errorf("after the plugin's restart the record says pid %d start %d, want the same daemon (pid %d start %d)", p, s, pid, start)
	}
	log, err := os.ReadFile(filepath.Join(mpsRoot, mps.DaemonID(uid), "log", "control.log"))
	if err != nil || strings.Count(string(log), "Control daemon started") != 1 {
		t.Errorf("daemon log (%v) shows %d starts, want 1:\n%s", err, strings.Count(string(log), "Control daemon started"), log)
	}

	// Deleting the pod (and so the claim's last user) stops the daemon and
	// removes its directories; the GPU's compute mode comes back.
	if err := suite.client.CoreV1().Pods(ns).Delete(ctx, "client", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, 2*time.Minute, "the daemon's directory removed", func() (bool, error) {
		_, err := os.Stat(filepath.Join(mpsRoot, mps.DaemonID(uid)))
		return os.IsNotExist(err), nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := askDaemon(t, uid, "get_default_active_thread_percentage"); err == nil {
		t.Error("a daemon still answers after the pod is gone")
	}
	if g := simGPU(t, uuid); g.ComputeMode != gpu.ComputeModeDefault {
		t.Errorf("GPU %s compute mode %s after the pod, want Default back", uuid, g.ComputeMode)
	}
}
