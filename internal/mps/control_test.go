package mps

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gpudra/gpudra/internal/mps/simmps"
)

// envAsSim makes the test binary act as gpudra-sim-mps, so the daemons
// here are real processes running the sim's code.
const envAsSim = "GPUDRA_TEST_AS_SIM_MPS"

func TestMain(m *testing.M) {
	if os.Getenv(envAsSim) == "1" {
		os.Exit(simmps.Main(os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// newControl is a Control over the sim in a short directory (a unix
// socket path must stay under 108 bytes).
func newControl(t *testing.T, env ...string) *Control {
	t.Helper()
	root, err := os.MkdirTemp("", "mps")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	return &Control{Binary: os.Args[0], Env: append([]string{envAsSim + "=1"}, env...), Root: root, QuitTimeout: 2 * time.Second}
}

func stopAtEnd(t *testing.T, c *Control, d Daemon) {
	t.Cleanup(func() {
		if c.Alive(d) {
			_ = syscall.Kill(d.PID, syscall.SIGKILL)
		}
	})
}

func query(t *testing.T, c *Control, id, command string) string {
	t.Helper()
	out, err := c.Query(context.Background(), id, command)
	if err != nil {
		t.Fatalf("%s: %v", command, err)
	}
	return out
}

func TestStartSetsLimitsAndStopRemovesEverything(t *testing.T) {
	ctx := context.Background()
	c := newControl(t)
	pct := 50
	d, err := c.Start(ctx, "claim-1", []string{"GPU-a", "GPU-b"}, Limits{ActiveThreadPercentage: &pct, PinnedMemoryBytes: map[int]int64{0: 40 << 30, 1: 20 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, c, d)
	if !c.Alive(d) || d.PID <= 0 || d.StartTime == 0 {
		t.Fatalf("daemon %+v is not alive", d)
	}
	if sid, _ := unix.Getsid(d.PID); sid != d.PID {
		t.Errorf("daemon's session is %d, want its own (%d), so it outlives the plugin", sid, d.PID)
	}
	for cmd, want := range map[string]string{
		"get_default_active_thread_percentage":  "50",
		"get_default_device_pinned_mem_limit 0": "40960M",
		"get_default_device_pinned_mem_limit 1": "20480M",
		"sim_get_devices":                       "GPU-a,GPU-b",
	} {
		if got := query(t, c, "claim-1", cmd); got != want {
			t.Errorf("%s = %q, want %q", cmd, got, want)
		}
	}
	if err := c.Stop(ctx, d); err != nil {
		t.Fatal(err)
	}
	if c.Alive(d) {
		t.Error("daemon still runs after Stop")
	}
	if _, err := os.Stat(filepath.Join(c.Root, "claim-1")); !os.IsNotExist(err) {
		t.Errorf("daemon directory left: %v", err)
	}
	if err := c.Stop(ctx, d); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// A daemon whose PID was never recorded (a crash between start and
// record) is stopped through its pipe directory.
func TestStopWithoutPIDReachesTheDaemon(t *testing.T) {
	ctx := context.Background()
	c := newControl(t)
	d, err := c.Start(ctx, "orphan", []string{"GPU-a"}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, c, d)
	if err := c.Stop(ctx, Daemon{ID: "orphan"}); err != nil {
		t.Fatal(err)
	}
	if c.Alive(d) {
		t.Error("orphan daemon still runs")
	}
	if ids, _ := c.List(); len(ids) != 0 {
		t.Errorf("directories left: %v", ids)
	}
}

// A daemon that answers quit but stays is killed, by PID and start time.
func TestStopKillsADaemonThatWillNotQuit(t *testing.T) {
	ctx := context.Background()
	c := newControl(t, simmps.EnvIgnoreQuit+"=1")
	d, err := c.Start(ctx, "stuck", []string{"GPU-a"}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, c, d)
	if err := c.Stop(ctx, d); err != nil {
		t.Fatal(err)
	}
	if c.Alive(d) {
		t.Error("stuck daemon still runs")
	}
}

// Limits the daemon refuses fail Start with its reason, and nothing is
// left: no process, no directory.
func TestStartWithRefusedLimitsLeavesNothing(t *testing.T) {
	c := newControl(t)
	pct := 150
	_, err := c.Start(context.Background(), "bad", []string{"GPU-a"}, Limits{ActiveThreadPercentage: &pct})
	if err == nil || !strings.Contains(err.Error(), "invalid active thread percentage") {
		t.Fatalf("Start = %v, want the daemon's refusal", err)
	}
	if ids, _ := c.List(); len(ids) != 0 {
		t.Errorf("directories left: %v", ids)
	}
	_, err = c.Start(context.Background(), "bad2", []string{"GPU-a"}, Limits{PinnedMemoryBytes: map[int]int64{3: 1 << 30}})
	if err == nil || !strings.Contains(err.Error(), "invalid device") {
		t.Fatalf("Start = %v, want the daemon's refusal of device 3", err)
	}
}

// A binary that exits at once is an error with what it printed.
func TestStartOfABinaryThatExitsSaysWhatItPrinted(t *testing.T) {
	c := newControl(t)
	c.Binary = filepath.Join(c.Root, "failing-daemon")
	if err := os.WriteFile(c.Binary, []byte("#!/bin/sh\necho \"no GPU for flags $*\" >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := c.Start(context.Background(), "sh", nil, Limits{})
	if err == nil || !strings.Contains(err.Error(), "exited before answering") || !strings.Contains(err.Error(), "no GPU for flags -f") {
		t.Fatalf("Start = %v, want it to say the daemon exited and what it printed", err)
	}
	if _, err := os.Stat(filepath.Join(c.Root, "sh")); !os.IsNotExist(err) {
		t.Errorf("daemon directory left: %v", err)
	}
}

func TestAliveNeedsTheSameStartTime(t *testing.T) {
	c := newControl(t)
	self, err := startTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !c.Alive(Daemon{PID: os.Getpid(), StartTime: self}) {
		t.Error("this process is not alive")
	}
	if c.Alive(Daemon{PID: os.Getpid(), StartTime: self + 1}) {
		t.Error("a PID with another start time counts as the daemon")
	}
	if c.Alive(Daemon{}) {
		t.Error("PID 0 is alive")
	}
}

func TestParseStartTime(t *testing.T) {
	tail := " S 1 1 1 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10"
	for _, comm := range []string{"(sh)", "(a b)", "(x) (y))"} {
		got, err := parseStartTime("42 " + comm + tail)
		if err != nil || got != 123456 {
			t.Errorf("comm %s: %d, %v; want 123456", comm, got, err)
		}
	}
	if _, err := parseStartTime("42 (sh) S 1"); err == nil {
		t.Error("short stat parsed")
	}
}

// Through a launcher process's socket the daemon is the launcher's child,
// not the caller's, and everything else is the same.
func TestDaemonStartedThroughTheLauncher(t *testing.T) {
	c := newControl(t)
	ctx, cancel := context.WithCancel(context.Background())
	socket := filepath.Join(c.Root, "launcher.sock")
	served := make(chan error, 1)
	go func() { served <- ServeLauncher(ctx, socket) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("launcher: %v", err)
		}
	})
	c.Launcher = SocketLauncher{Socket: socket}
	waitUntil(t, "the launcher listens", func() bool { _, err := os.Stat(socket); return err == nil })
	d, err := c.Start(ctx, "via-launcher", []string{"GPU-a"}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, c, d)
	if got := query(t, c, "via-launcher", "sim_get_devices"); got != "GPU-a" {
		t.Errorf("devices %q", got)
	}
	if err := c.Stop(ctx, d); err != nil {
		t.Fatal(err)
	}
	if c.Alive(d) {
		t.Error("daemon runs after Stop")
	}

	// A launcher that cannot start the binary says why.
	c.Binary = filepath.Join(c.Root, "missing")
	if _, err := c.Start(ctx, "missing", nil, Limits{}); err == nil || !strings.Contains(err.Error(), "start "+c.Binary) {
		t.Errorf("Start of a missing binary: %v", err)
	}
	c.Launcher = SocketLauncher{Socket: filepath.Join(c.Root, "nobody.sock")}
	if _, err := c.Start(ctx, "nobody", nil, Limits{}); err == nil || !strings.Contains(err.Error(), "is the mps-launcher container running?") {
		t.Errorf("Start with no launcher: %v", err)
	}
}

// A launcher that stops leaves alone the socket another launcher now
// listens on at the same path (the pod that replaced it).
func TestStoppedLauncherLeavesItsSuccessorsSocket(t *testing.T) {
	c := newControl(t)
	socket := filepath.Join(c.Root, "l.sock")
	serve := func() (context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- ServeLauncher(ctx, socket) }()
		return cancel, done
	}
	stopOld, oldDone := serve()
	var old os.FileInfo
	waitUntil(t, "the first launcher listens", func() bool {
		fi, err := os.Stat(socket)
		old = fi
		return err == nil
	})
	stopNew, newDone := serve()
	defer func() {
		stopNew()
		if err := <-newDone; err != nil {
			t.Errorf("second launcher: %v", err)
		}
	}()
	waitUntil(t, "the second launcher listens", func() bool {
		fi, err := os.Stat(socket)
		return err == nil && !os.SameFile(fi, old)
	})
	stopOld()
	if err := <-oldDone; err != nil {
		t.Errorf("first launcher: %v", err)
	}
	c.Launcher = SocketLauncher{Socket: socket}
	d, err := c.Start(context.Background(), "after-handover", []string{"GPU-a"}, Limits{})
	if err != nil {
		t.Fatalf("the successor's socket is gone: %v", err)
	}
	stopAtEnd(t, c, d)
	_ = c.Stop(context.Background(), d)
}

// waitUntil polls cond (a file appearing: there is nothing to be told
// about) until it holds, failing after 10 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}
