package localcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// process is one component the cluster started. It is stopped by its PID,
// never by name: other processes on the machine are not ours.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	pidPath string
	done    chan struct{}
	err     error
}

// startProcess runs bin with args, logging to <root>/logs/<name>.log and
// recording the PID in <root>/pids/<name>.pid.
func startProcess(root, name, bin string, args []string, env []string) (*process, error) {
	logDir, pidDir := filepath.Join(root, "logs"), filepath.Join(root, "pids")
	for _, d := range []string{logDir, pidDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	// Own process group, so a terminal's Ctrl-C reaches us first and we stop
	// components in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, pidPath: filepath.Join(pidDir, name+".pid"), done: make(chan struct{})}
	if err := os.WriteFile(p.pidPath, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited tells whether the process has ended (and how).
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM, then SIGKILL after grace, and waits.
func (p *process) stop(grace time.Duration) {
	if done, _ := p.exited(); !done {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	_ = os.Remove(p.pidPath)
}

// stopStale stops a process recorded in a PID file by an earlier run that
// did not clean up, if that PID still runs the same binary (a PID reused by
// another program is left alone): SIGTERM, then SIGKILL after 10 s.
func stopStale(pidPath, name string) error {
	data, err := os.ReadFile(pidPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(pidPath) }()
	pid, convErr := strconv.Atoi(string(data))
	if convErr != nil || pid <= 1 || !runs(pid, name) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if !runs(pid, name) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

// runs tells whether pid is a live process of binary name (zombies do not
// count: their exe link is gone).
func runs(pid int, name string) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return err == nil && filepath.Base(exe) == name
}

// killByPIDFile sends SIGKILL to the process recorded in pidPath if it still
// runs binary name, and waits until it is gone.
func killByPIDFile(pidPath, name string) error {
	data, err := os.ReadFile(pidPath)
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(string(data))
	if err != nil || pid <= 1 {
		return fmt.Errorf("bad PID file %s", pidPath)
	}
	if !runs(pid, name) {
		return fmt.Errorf("%s (pid %d) is not running", name, pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return err
	}
	for i := 0; i < 100; i++ {
		if !runs(pid, name) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", name, pid)
}
