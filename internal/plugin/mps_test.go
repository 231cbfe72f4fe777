package plugin

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	resourceapi "k8s.io/api/resource/v1"

	"github.com/gpudra/gpudra/internal/checkpoint"
	"github.com/gpudra/gpudra/internal/gpu"
	"github.com/gpudra/gpudra/internal/mps"
	"github.com/gpudra/gpudra/internal/mps/simmps"
)

// envAsSimMPS makes the test binary act as gpudra-sim-mps, so the MPS
// daemons of these tests are real processes running the sim's code.
const envAsSimMPS = "GPUDRA_TEST_AS_SIM_MPS"

func TestMain(m *testing.M) {
	if os.Getenv(envAsSimMPS) == "1" {
		os.Exit(simmps.Main(os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// mpsEnv is an env whose plugin runs sim MPS daemons; they are killed at
// the end of the test whatever it left.
func mpsEnv(t *testing.T, profile string) (*env, *mps.Control) {
	t.Helper()
	root, err := os.MkdirTemp("", "mps") // short: a socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	control := &mps.Control{Binary: os.Args[0], Env: []string{envAsSimMPS + "=1"}, Root: root}
	e := unstartedEnv(t, simBackend(t, profile), nil)
	e.configure = func(cfg *Config) { cfg.MPS = control }
	e.restart("boot-1")
	t.Cleanup(func() {
		for _, rec := range e.store.List() {
			for _, m := range rec.MPS {
				if control.Alive(mps.Daemon{PID: m.PID, StartTime: m.StartTime}) {
					_ = syscall.Kill(m.PID, syscall.SIGKILL)
				}
			}
		}
		_ = os.RemoveAll(root)
	})
	return e, control
}

func mpsConfig(body string) resourceapi.DeviceAllocationConfiguration {
	return opaque([]string{"gpu"}, resourceapi.AllocationConfigSourceClaim,
		`{"apiVersion":"resource.nvidia.com/v1beta1","kind":"GpuConfig","sharing":{"strategy":"MPS","mpsConfig":`+body+`}}`)
}

func daemonOf(t *testing.T, e *env, c *resourceapi.ResourceClaim) (checkpoint.Claim, mps.Daemon) {
	t.Helper()
	rec, ok := e.store.Get(string(c.UID))
	if !ok || len(rec.MPS) != 1 {
		t.Fatalf("record %+v (found %v), want one MPS daemon", rec, ok)
	}
	m := rec.MPS[0]
	return rec, mps.Daemon{ID: m.ID, PID: m.PID, StartTime: m.StartTime}
}

func TestMPSClaimRunsADaemonWithItsLimitsAndStopsItAtUnprepare(t *testing.T) {
	ctx := context.Background()
	e, control := mpsEnv(t, "dgxh100")
	c := e.claim("mps", []alloc{{"gpu", "gpu-3", false}, {"gpu", "gpu-4", false}},
		mpsConfig(`{"defaultActiveThreadPercentage":40,"defaultPinnedDeviceMemoryLimit":"20Gi","defaultPerDevicePinnedMemoryLimit":{"1":"30Gi"}}`))
	if err := e.prepare(c)[c.UID].Err; err != nil {
		t.Fatal(err)
	}
	rec, d := daemonOf(t, e, c)
	if !control.Alive(d) || rec.State != checkpoint.PrepareCompleted {
		t.Fatalf("daemon %+v alive %v, record %s", d, control.Alive(d), rec.State)
	}
	uuid3, uuid4 := uuidOf(t, e.backend, 3), uuidOf(t, e.backend, 4)
	for cmd, want := range map[string]string{
		"get_default_active_thread_percentage":  "40",
		"get_default_device_pinned_mem_limit 0": "20480M",
		"get_default_device_pinned_mem_limit 1": "30720M",
		"sim_get_devices":                       uuid3 + "," + uuid4,
	} {
		if got, err := control.Query(ctx, d.ID, cmd); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", cmd, got, err, want)
		}
	}
	for _, dev := range []string{"gpu-3", "gpu-4"} {
		if _, cm := settingsOf(t, e.backend, dev); cm != gpu.ComputeModeExclusiveProcess {
			t.Errorf("%s compute mode %s while the daemon runs, want Exclusive_Process", dev, cm)
		}
	}
	spec, err := os.ReadFile(e.specPath(string(c.UID)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps", control.PipeDir(d.ID), control.LogDir(d.ID)} {
		if !strings.Contains(string(spec), want) {
			t.Errorf("CDI spec lacks %q", want)
		}
	}

	if err := e.unprepare(c)[c.UID]; err != nil {
		t.Fatal(err)
	}
	if control.Alive(d) {
		t.Error("daemon still runs after unprepare")
	}
	if ids, _ := control.List(); len(ids) != 0 {
		t.Errorf("daemon directories left: %v", ids)
	}
	if _, cm := settingsOf(t, e.backend, "gpu-3"); cm != gpu.ComputeModeDefault {
		t.Errorf("gpu-3 compute mode %s after unprepare, want Default back", cm)
	}
}

// A restarted plugin keeps the running daemon (same PID and start time)
// for the claim; one whose daemon died is started again by cleanup with the
// limits it had.
func TestMPSDaemonOutlivesThePluginAndIsAdopted(t *testing.T) {
	e, control := mpsEnv(t, "dgxh100")
	c := e.claim("mps", []alloc{{"gpu", "gpu-1", false}}, mpsConfig(`{"defaultPinnedDeviceMemoryLimit":"10Gi"}`))
	if err := e.prepare(c)[c.UID].Err; err != nil {
		t.Fatal(err)
	}
	_, before := daemonOf(t, e, c)
	e.restart("boot-1")
	if err := e.prepare(c)[c.UID].Err; err != nil {
		t.Fatal(err)
	}
	if _, after := daemonOf(t, e, c); after != before || !control.Alive(after) {
		t.Errorf("after a plugin restart the daemon is %+v (alive %v), want %+v kept", after, control.Alive(after), before)
	}

	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); control.Alive(before); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("killed daemon still runs")
		}
	}
	if r := e.driver.CleanupOnce(context.Background()); r.RestartedMPSDaemons != 1 {
		t.Fatalf("cleanup: %+v, want the dead daemon restarted", r)
	}
	_, again := daemonOf(t, e, c)
	if again.PID == before.PID || !control.Alive(again) {
		t.Errorf("after the daemon died, the claim has %+v (alive %v), want a new daemon", again, control.Alive(again))
	}
	if got, err := control.Query(context.Background(), again.ID, "get_default_device_pinned_mem_limit 0"); err != nil || got != "10240M" {
		t.Errorf("restarted daemon's limit %q, %v; want the recorded 10240M", got, err)
	}
	// A kubelet retry keeps the restarted daemon.
	if err := e.prepare(c)[c.UID].Err; err != nil {
		t.Fatal(err)
	}
	if _, kept := daemonOf(t, e, c); kept != again {
		t.Errorf("prepare replaced the restarted daemon: %+v, want %+v", kept, again)
	}
}

// Limits that cannot hold fail the claim, naming claim, device and field,
// before anything changes: no daemon, no record, the compute mode as it was.
func TestMPSLimitsThatCannotHoldChangeNothing(t *testing.T) {
	e, control := mpsEnv(t, "dgxh100")
	for name, tc := range map[string]struct{ config, want string }{
		"too-much":   {`{"defaultPinnedDeviceMemoryLimit":"100Gi"}`, "device gpu-2: sharing.mpsConfig.defaultPinnedDeviceMemoryLimit: 100Gi is more than the device's 80Gi of memory"},
		"no-device":  {`{"defaultPerDevicePinnedMemoryLimit":{"3":"1Gi"}}`, `sharing.mpsConfig.defaultPerDevicePinnedMemoryLimit["3"]: the claim's MPS devices are [gpu-2]`},
		"per-device": {`{"defaultPerDevicePinnedMemoryLimit":{"0":"81Gi"}}`, `defaultPerDevicePinnedMemoryLimit["0"]: 81Gi is more than`},
	} {
		c := e.claim(name, []alloc{{"gpu", "gpu-2", false}}, mpsConfig(tc.config))
		err := e.prepare(c)[c.UID].Err
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "claim default/"+name) {
			t.Errorf("%s: %v; want an error naming the claim and %q", name, err, tc.want)
		}
		if _, ok := e.store.Get(string(c.UID)); ok {
			t.Errorf("%s: record left", name)
		}
	}
	if ids, _ := control.List(); len(ids) != 0 {
		t.Errorf("daemons started: %v", ids)
	}
	if _, cm := settingsOf(t, e.backend, "gpu-2"); cm != gpu.ComputeModeDefault {
		t.Errorf("compute mode %s, want Default untouched", cm)
	}
	good := e.claim("good", []alloc{{"gpu", "gpu-2", false}}, mpsConfig(`{"defaultPinnedDeviceMemoryLimit":"80Gi"}`))
	if err := e.prepare(good)[good.UID].Err; err != nil {
		t.Errorf("a claim asking for all of the memory: %v", err)
	}
}

// A daemon no record names (a crash between its start and the record) is
// stopped by cleanup; a recorded one is left alone.
func TestCleanupStopsADaemonNoRecordNames(t *testing.T) {
	ctx := context.Background()
	e, control := mpsEnv(t, "dgxh100")
	kept := e.claim("kept", []alloc{{"gpu", "gpu-5", false}}, mpsConfig(`{}`))
	if err := e.prepare(kept)[kept.UID].Err; err != nil {
		t.Fatal(err)
	}
	orphan, err := control.Start(ctx, "uid-orphan", []string{"GPU-x"}, mps.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if r := e.driver.CleanupOnce(ctx); r.OrphanMPSDaemons != 1 {
		t.Fatalf("cleanup: %+v, want one orphan daemon stopped", r)
	}
	if control.Alive(orphan) {
		t.Error("orphan daemon still runs")
	}
	if _, d := daemonOf(t, e, kept); !control.Alive(d) {
		t.Error("cleanup stopped a recorded daemon")
	}
}

// MPS and time-slicing want other compute modes of one GPU: the second
// claim fails naming both.
func TestMPSAndTimeSlicingOnOneGPUConflict(t *testing.T) {
	e, _ := mpsEnv(t, "dgxh100")
	ts := e.claim("ts", []alloc{{"gpu", "gpu-6", false}}, timeSliced("Short"))
	if err := e.prepare(ts)[ts.UID].Err; err != nil {
		t.Fatal(err)
	}
	m := e.claim("m", []alloc{{"gpu", "gpu-6", true}}, mpsConfig(`{}`))
	err := e.prepare(m)[m.UID].Err
	if err == nil || !strings.Contains(err.Error(), "claim default/m asks for computeMode Exclusive_Process") || !strings.Contains(err.Error(), "claim default/ts") {
		t.Fatalf("err = %v, want the conflict naming both claims", err)
	}
}
