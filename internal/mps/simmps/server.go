// Package simmps is the sim backend's MPS control daemon: a real process
// that takes the commands of nvidia-cuda-mps-control on a socket in its pipe
// directory, holds the limits it is given and answers for them, so that the
// plugin's daemon lifecycle and limits are testable without a GPU.
//
// Contract:
//   - Serve (the daemon, `gpudra-sim-mps -f`) listens on <pipe dir>/control
//     until "quit"; it logs to <log dir>/control.log as the real daemon
//     does.
//   - Client (`gpudra-sim-mps` with commands on stdin) sends each line and
//     prints the answer; a refused command, or no daemon, exits non-zero
//     with the reason, as the real client does.
//   - Commands: get/set_default_active_thread_percentage,
//     get/set_default_device_pinned_mem_limit <dev> [<value>], quit, and
//     sim_get_devices (sim only: the daemon's CUDA_VISIBLE_DEVICES). Bad
//     values are refused and change nothing.
package simmps

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SocketName is the control socket in the pipe directory.
const SocketName = "control"

// Server is one daemon's state.
type Server struct {
	// Devices is the daemon's CUDA_VISIBLE_DEVICES, comma separated.
	Devices string

	// ignoreQuit: answer quit, keep running (EnvIgnoreQuit).
	ignoreQuit bool

	mu     sync.Mutex
	thread int
	pinned map[int]string
	log    io.Writer
}

// NewServer returns a daemon for the devices with the real daemon's
// defaults (100 % of threads, no pinned memory limit).
func NewServer(devices string, log io.Writer) *Server {
	return &Server{Devices: devices, thread: 100, pinned: map[int]string{}, log: log}
}

var memLimit = regexp.MustCompile(`^[0-9]+[MG]$`)

// Handle answers one command line; quit reports true.
func (s *Server) Handle(line string) (reply string, quit bool, err error) {
	f := strings.Fields(line)
	if len(f) == 0 {
		return "", false, errors.New("empty command")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case f[0] == "quit" && len(f) == 1:
		return "", true, nil
	case f[0] == "get_default_active_thread_percentage" && len(f) == 1:
		return strconv.Itoa(s.thread), false, nil
	case f[0] == "set_default_active_thread_percentage" && len(f) == 2:
		n, err := strconv.Atoi(f[1])
		if err != nil || n <= 0 || n > 100 {
			return "", false, fmt.Errorf("invalid active thread percentage %q (1 to 100)", f[1])
		}
		s.thread = n
		return "", false, nil
	case f[0] == "get_default_device_pinned_mem_limit" && len(f) == 2:
		i, err := s.device(f[1])
		if err != nil {
			return "", false, err
		}
		return s.pinned[i], false, nil
	case f[0] == "set_default_device_pinned_mem_limit" && len(f) == 3:
		i, err := s.device(f[1])
		if err != nil {
			return "", false, err
		}
		if !memLimit.MatchString(f[2]) {
			return "", false, fmt.Errorf("invalid memory limit %q (a number followed by M or G)", f[2])
		}
		s.pinned[i] = f[2]
		return "", false, nil
	case f[0] == "sim_get_devices" && len(f) == 1:
		return s.Devices, false, nil
	}
	return "", false, fmt.Errorf("unknown command %q", line)
}

// device checks a device index against CUDA_VISIBLE_DEVICES.
func (s *Server) device(arg string) (int, error) {
	n := len(strings.Split(s.Devices, ","))
	if s.Devices == "" {
		n = 0
	}
	i, err := strconv.Atoi(arg)
	if err != nil || i < 0 || i >= n {
		return 0, fmt.Errorf("invalid device %q: the daemon has %d devices", arg, n)
	}
	return i, nil
}

// Serve runs the daemon on pipeDir until quit or ctx ends.
func (s *Server) Serve(ctx context.Context, pipeDir string) error {
	path := filepath.Join(pipeDir, SocketName)
	_ = os.Remove(path) // a socket left by a daemon that was killed
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	defer func() { _ = l.Close(); _ = os.Remove(path) }()
	go func() { <-ctx.Done(); _ = l.Close() }()
	s.logf("Control daemon started, devices %q", s.Devices)
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		quit := s.serveConn(conn)
		if quit && s.ignoreQuit {
			s.logf("Ignoring quit (%s)", EnvIgnoreQuit)
			continue
		}
		if quit {
			s.logf("Control daemon quit")
			return nil
		}
	}
}

// serveConn answers one command: a line in, "OK <reply>" or "ERR <why>"
// out.
func (s *Server) serveConn(conn net.Conn) (quit bool) {
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && line == "" {
		return false
	}
	line = strings.TrimSpace(line)
	reply, quit, err := s.Handle(line)
	if err != nil {
		s.logf("Refused %q: %v", line, err)
		_, _ = fmt.Fprintf(conn, "ERR %v\n", err)
		return false
	}
	s.logf("Command %q", line)
	_, _ = fmt.Fprintf(conn, "OK %s\n", reply)
	return quit
}

func (s *Server) logf(format string, args ...any) {
	if s.log != nil {
		_, _ = fmt.Fprintf(s.log, "[%s] %s\n", time.Now().UTC().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
	}
}

// Client sends each line of in to the daemon on pipeDir and writes the
// answers to out. It stops at the first refused command.
func Client(pipeDir string, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		reply, err := send(filepath.Join(pipeDir, SocketName), line)
		if err != nil {
			return err
		}
		if reply != "" {
			_, _ = fmt.Fprintln(out, reply)
		}
	}
	return sc.Err()
}

func send(socket, line string) (string, error) {
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return "", fmt.Errorf("cannot find MPS control daemon process (%w)", err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(conn, line); err != nil {
		return "", err
	}
	answer, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && answer == "" {
		return "", fmt.Errorf("%s: no answer: %w", line, err)
	}
	answer = strings.TrimRight(answer, "\n")
	if msg, ok := strings.CutPrefix(answer, "ERR "); ok {
		return "", fmt.Errorf("%s: %s", line, msg)
	}
	return strings.TrimPrefix(strings.TrimPrefix(answer, "OK"), " "), nil
}
