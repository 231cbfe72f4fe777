package mps

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

// Launcher starts a daemon process that does not end with the caller.
type Launcher interface {
	// Launch starts binary with args and exactly env, its output appended
	// to the file output, in a session of its own, and returns its PID.
	Launch(ctx context.Context, binary string, args, env []string, output string) (int, error)
}

// LocalLauncher starts daemons as children of this process, in their own
// session: they outlive it when it is killed on a host, but not a
// container's restart (the runtime kills what is left in the container).
type LocalLauncher struct{}

// Launch implements Launcher.
func (LocalLauncher) Launch(_ context.Context, binary string, args, env []string, output string) (int, error) {
	out, err := os.OpenFile(output, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer func() { _ = out.Close() }()
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", binary, err)
	}
	go func() { _ = cmd.Wait() }() // reap it when it exits while we run
	return cmd.Process.Pid, nil
}

// SocketLauncher asks a launcher process (ServeLauncher, in a container
// next to the plugin's) to start daemons, so that they are its children
// and outlive a restart of the plugin's container. The two containers share
// the pod's PID namespace, so PIDs mean the same to both.
type SocketLauncher struct {
	Socket string
}

type launchRequest struct {
	Binary string   `json:"binary"`
	Args   []string `json:"args"`
	Env    []string `json:"env"`
	Output string   `json:"output"`
}

type launchReply struct {
	PID   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// Launch implements Launcher.
func (l SocketLauncher) Launch(ctx context.Context, binary string, args, env []string, output string) (int, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", l.Socket)
	if err != nil {
		return 0, fmt.Errorf("MPS launcher at %s: %w (is the mps-launcher container running?)", l.Socket, err)
	}
	defer func() { _ = conn.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	if err := json.NewEncoder(conn).Encode(launchRequest{Binary: binary, Args: args, Env: env, Output: output}); err != nil {
		return 0, fmt.Errorf("MPS launcher at %s: %w", l.Socket, err)
	}
	var reply launchReply
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&reply); err != nil {
		return 0, fmt.Errorf("MPS launcher at %s: no answer: %w", l.Socket, err)
	}
	if reply.Error != "" {
		return 0, errors.New(reply.Error)
	}
	return reply.PID, nil
}

// ServeLauncher is the launcher process: it starts what SocketLauncher
// asks for, as its own children in their own sessions, until ctx ends.
// Its children are reaped as they exit.
func ServeLauncher(ctx context.Context, socket string) error {
	_ = os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	mine, err := os.Stat(socket)
	if err != nil {
		return err
	}
	defer func() {
		_ = l.Close()
		// Only our own socket: another launcher may listen on the path
		// now (a pod that replaced ours).
		if now, err := os.Stat(socket); err == nil && os.SameFile(now, mine) {
			_ = os.Remove(socket)
		}
	}()
	if err := os.Chmod(socket, 0o600); err != nil {
		return err
	}
	go func() { <-ctx.Done(); _ = l.Close() }()
	logger := klog.FromContext(ctx)
	logger.Info("MPS launcher serving", "socket", socket)
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go serveLaunch(ctx, conn)
	}
}

func serveLaunch(ctx context.Context, conn net.Conn) {
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	var req launchRequest
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&req); err != nil {
		_ = json.NewEncoder(conn).Encode(launchReply{Error: fmt.Sprintf("bad request: %v", err)})
		return
	}
	pid, err := LocalLauncher{}.Launch(ctx, req.Binary, req.Args, req.Env, req.Output)
	reply := launchReply{PID: pid}
	if err != nil {
		reply.Error = err.Error()
	} else {
		klog.FromContext(ctx).V(2).Info("Launched", "binary", req.Binary, "pid", pid)
	}
	_ = json.NewEncoder(conn).Encode(reply)
}
