package simmps

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

// Environment the program reads (the names the real MPS uses).
const (
	envPipeDirectory = "CUDA_MPS_PIPE_DIRECTORY"
	envLogDirectory  = "CUDA_MPS_LOG_DIRECTORY"
	envDevices       = "CUDA_VISIBLE_DEVICES"
	// EnvIgnoreQuit makes the daemon answer quit but keep running: a
	// daemon that hangs, for tests of the kill that follows.
	EnvIgnoreQuit = "GPUDRA_SIM_MPS_IGNORE_QUIT"
)

// Main is gpudra-sim-mps: the daemon with -f, else the client. It returns
// the exit code.
func Main(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gpudra-sim-mps", flag.ContinueOnError)
	fs.SetOutput(stderr)
	foreground := fs.Bool("f", false, "run the control daemon in the foreground")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	pipe := getenv(envPipeDirectory)
	if pipe == "" {
		_, _ = fmt.Fprintln(stderr, envPipeDirectory+" is not set")
		return 2
	}
	if !*foreground {
		if err := Client(pipe, stdin, stdout); err != nil {
			_, _ = fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	log := stderr
	if dir := getenv(envLogDirectory); dir != "" {
		f, err := os.OpenFile(filepath.Join(dir, "control.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			_, _ = fmt.Fprintln(stderr, err)
			return 1
		}
		defer func() { _ = f.Close() }()
		log = f
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s := NewServer(getenv(envDevices), log)
	s.ignoreQuit = getenv(EnvIgnoreQuit) == "1"
	if err := s.Serve(ctx, pipe); err != nil {
		_, _ = fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
