package mps

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

// Environment variables of the MPS daemon and its clients.
const (
	EnvPipeDirectory = "CUDA_MPS_PIPE_DIRECTORY"
	EnvLogDirectory  = "CUDA_MPS_LOG_DIRECTORY"
)

// How long a daemon may take to answer after start, and to go after quit.
const (
	readyTimeout = 15 * time.Second
	quitTimeout  = 10 * time.Second
	pollInterval = 20 * time.Millisecond
)

// Control starts, queries and stops daemons of one control binary.
type Control struct {
	// Binary is the control program: nvidia-cuda-mps-control or
	// gpudra-sim-mps.
	Binary string
	// Env is added to the daemon's and the clients' environment (the
	// driver's library path for a binary from a driver root).
	Env []string
	// Root holds one directory per daemon: <Root>/<ID>/{pipe,log}.
	Root string
	// QuitTimeout is how long Stop waits after quit before it kills, and
	// after the kill before it gives up; 0 means 10 seconds.
	QuitTimeout time.Duration
	// Launcher starts the daemons; nil is LocalLauncher.
	Launcher Launcher
}

// Daemon is one running daemon, as a checkpoint records it.
type Daemon struct {
	// ID names its directory under Control.Root.
	ID string
	// PID and StartTime identify the process; both zero before it started.
	PID       int
	StartTime uint64
}

// Limits are what a daemon is told after it starts.
type Limits struct {
	// ActiveThreadPercentage is the default share of multiprocessors a
	// client may use; nil leaves the daemon's default (100).
	ActiveThreadPercentage *int
	// PinnedMemoryBytes is the default pinned device memory limit per
	// device, by the device's index in the daemon's CUDA_VISIBLE_DEVICES.
	PinnedMemoryBytes map[int]int64
}

// DaemonID names the daemon of a claim: short, because the daemon's
// sockets live in its pipe directory and a socket path has at most 107
// bytes.
func DaemonID(claimUID string) string {
	sum := sha256.Sum256([]byte(claimUID))
	return hex.EncodeToString(sum[:8])
}

// maxSocketPath is the longest path a unix socket can have (sun_path less
// its NUL), and longestSocket the longest name an MPS daemon puts in its
// pipe directory.
const (
	maxSocketPath = 107
	longestSocket = "control_privileged"
)

// PipeDir and LogDir are a daemon's directories on the host.
func (c *Control) PipeDir(id string) string { return filepath.Join(c.Root, id, "pipe") }
func (c *Control) LogDir(id string) string  { return filepath.Join(c.Root, id, "log") }

// Start runs a daemon for the GPUs (UUIDs, in the order limits index
// them), waits until it answers and sets its limits. The process is in a
// session of its own, so it outlives the caller; ctx bounds the wait.
func (c *Control) Start(ctx context.Context, id string, gpus []string, limits Limits) (Daemon, error) {
	if err := validID(id); err != nil {
		return Daemon{}, err
	}
	d, err := c.start(ctx, id, gpus, limits)
	if err != nil {
		// Leave nothing half-started: the caller's record may say
		// nothing about this process yet.
		_ = c.Stop(context.WithoutCancel(ctx), Daemon{ID: id, PID: d.PID, StartTime: d.StartTime})
		return Daemon{}, fmt.Errorf("MPS control daemon %s: %w", id, err)
	}
	return d, nil
}

func (c *Control) start(ctx context.Context, id string, gpus []string, limits Limits) (Daemon, error) {
	pipe, logDir := c.PipeDir(id), c.LogDir(id)
	if n := len(filepath.Join(pipe, longestSocket)); n > maxSocketPath {
		return Daemon{}, fmt.Errorf("pipe directory %s is too long: the daemon's sockets there would need %d bytes, and a unix socket path has at most %d (use a shorter --plugin-dir)", pipe, n, maxSocketPath)
	}
	for _, dir := range []string{pipe, logDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return Daemon{}, err
		}
	}
	launcher := c.Launcher
	if launcher == nil {
		launcher = LocalLauncher{}
	}
	env := append(c.env(id), "CUDA_VISIBLE_DEVICES="+strings.Join(gpus, ","))
	pid, err := launcher.Launch(ctx, c.Binary, []string{"-f"}, env, filepath.Join(logDir, "daemon.out"))
	if err != nil {
		return Daemon{}, err
	}
	d := Daemon{ID: id, PID: pid}
	if d.StartTime, err = startTime(d.PID); err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			// Gone (and reaped) before we looked.
			return d, fmt.Errorf("exited before answering: %s", c.tail(id))
		}
		return d, fmt.Errorf("read start time of pid %d: %w", d.PID, err)
	}

	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		if _, err := c.Query(ctx, id, "get_default_active_thread_percentage"); err == nil {
			break
		}
		if !c.Alive(d) {
			return d, fmt.Errorf("exited before answering: %s", c.tail(id))
		}
		select {
		case <-ctx.Done():
			return d, fmt.Errorf("did not answer within %s: %s", readyTimeout, c.tail(id))
		case <-time.After(pollInterval):
		}
	}
	for _, command := range limits.commands() {
		if _, err := c.Query(ctx, id, command); err != nil {
			return d, fmt.Errorf("%s: %w", command, err)
		}
	}
	klog.FromContext(ctx).V(2).Info("Started MPS control daemon", "id", id, "pid", d.PID, "gpus", gpus)
	return d, nil
}

// commands are the control commands that set the limits, in a stable
// order.
func (l Limits) commands() []string {
	var out []string
	if l.ActiveThreadPercentage != nil {
		out = append(out, fmt.Sprintf("set_default_active_thread_percentage %d", *l.ActiveThreadPercentage))
	}
	devs := make([]int, 0, len(l.PinnedMemoryBytes))
	for i := range l.PinnedMemoryBytes {
		devs = append(devs, i)
	}
	sort.Ints(devs)
	for _, i := range devs {
		out = append(out, fmt.Sprintf("set_default_device_pinned_mem_limit %d %dM", i, l.PinnedMemoryBytes[i]>>20))
	}
	return out
}

// Query sends one command to the daemon of id through its pipe directory,
// as a client run of the control binary, and returns its answer.
func (c *Control) Query(ctx context.Context, id, command string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Binary)
	cmd.Env = c.env(id)
	cmd.Stdin = strings.NewReader(command + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w: %s", command, err, strings.TrimSpace(stderr.String()+stdout.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Alive tells whether the daemon's process still runs: the same PID with
// the same start time.
func (c *Control) Alive(d Daemon) bool { return running(d.PID, d.StartTime) }

// Stop ends the daemon and removes its directories. It asks through the
// pipe directory (which also reaches a daemon whose PID is not known),
// waits, and kills the recorded process only if it is still the same one.
func (c *Control) Stop(ctx context.Context, d Daemon) error {
	if err := validID(d.ID); err != nil {
		return err
	}
	dir := filepath.Join(c.Root, d.ID)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) && !c.Alive(d) {
		return nil
	}
	logger := klog.FromContext(ctx)
	_, _ = c.Query(ctx, d.ID, "quit") // nobody listening is fine
	wait := c.QuitTimeout
	if wait == 0 {
		wait = quitTimeout
	}
	deadline, killed := time.Now().Add(wait), false
	for c.Alive(d) || c.answers(ctx, d.ID) {
		if time.Now().After(deadline) {
			if killed || !c.Alive(d) {
				return fmt.Errorf("MPS control daemon %s (pid %d) is still there %s after quit", d.ID, d.PID, wait)
			}
			logger.Info("MPS control daemon did not quit, killing it", "id", d.ID, "pid", d.PID)
			if err := syscall.Kill(d.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("MPS control daemon %s: kill pid %d: %w", d.ID, d.PID, err)
			}
			deadline, killed = time.Now().Add(wait), true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("MPS control daemon %s: stop: %w", d.ID, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("MPS control daemon %s: remove %s: %w", d.ID, dir, err)
	}
	logger.V(2).Info("Stopped MPS control daemon", "id", d.ID, "pid", d.PID)
	return nil
}

// answers tells whether a daemon listens on id's pipe directory.
func (c *Control) answers(ctx context.Context, id string) bool {
	_, err := c.Query(ctx, id, "get_default_active_thread_percentage")
	return err == nil
}

// List returns the IDs of the daemon directories under Root, to find
// daemons no record names.
func (c *Control) List() ([]string, error) {
	entries, err := os.ReadDir(c.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list MPS daemon directories: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && validID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

func (c *Control) env(id string) []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		EnvPipeDirectory + "=" + c.PipeDir(id), EnvLogDirectory + "=" + c.LogDir(id)}
	return append(env, c.Env...)
}

// tail is the end of what the daemon printed, for errors.
func (c *Control) tail(id string) string {
	data, _ := os.ReadFile(filepath.Join(c.LogDir(id), "daemon.out"))
	s := strings.TrimSpace(string(data))
	if len(s) > 500 {
		s = "..." + s[len(s)-500:]
	}
	if s == "" {
		return "(it printed nothing)"
	}
	return s
}

// validID keeps IDs to one path element.
func validID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("MPS daemon ID %q is not a directory name", id)
	}
	return nil
}
