package crash

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	drapb "k8s.io/kubelet/pkg/apis/dra/v1"
)

// PluginOptions start one plugin process.
type PluginOptions struct {
	// Binary is the gpudra-kubelet-plugin to run.
	Binary     string
	NodeName   string
	Kubeconfig string
	// Dir holds the run's state: plugin/, registry/, cdi/ and the log.
	Dir string
	// Args are extra flags (e.g. --cleanup-interval, --pprof-addr).
	Args []string
	// Env is added to the plugin's environment (GPUDRA_FAILPOINT...).
	Env []string
	// DynamicMIG runs the plugin in dynamic MIG mode on a simulated DGX
	// H100 in MIG mode (dgxh100-mig); otherwise on a plain dgxh100.
	DynamicMIG bool
	// SimMPS, when set, is the gpudra-sim-mps the plugin runs MPS daemons
	// with (sharing mode).
	SimMPS string
}

// Plugin is a running plugin process.
type Plugin struct {
	opts   PluginOptions
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // set before exited is closed
	conn   *grpc.ClientConn
	// Kubelet is the plugin's DRA service, as the kubelet calls it.
	Kubelet drapb.DRAPluginClient
}

// Dirs of a run, under PluginOptions.Dir.
func (o PluginOptions) PluginDir() string   { return filepath.Join(o.Dir, "plugin") }
func (o PluginOptions) RegistryDir() string { return filepath.Join(o.Dir, "registry") }
func (o PluginOptions) CDIDir() string      { return filepath.Join(o.Dir, "cdi") }
func (o PluginOptions) Socket() string      { return filepath.Join(o.PluginDir(), "dra.sock") }
func (o PluginOptions) Checkpoint() string  { return filepath.Join(o.PluginDir(), "checkpoint.json") }

// MPSDir holds the MPS daemons' directories (the plugin's default).
func (o PluginOptions) MPSDir() string { return filepath.Join(o.PluginDir(), "mps") }

// SimStateDir is the simulated node's state (the plugin's default).
func (o PluginOptions) SimStateDir() string { return filepath.Join(o.PluginDir(), "sim") }

// StartPlugin starts the plugin and waits until its DRA socket answers a
// call (or the process dies, which a failpoint hit during start-up may do:
// then the returned Plugin has Exited closed and no error is returned).
func StartPlugin(ctx context.Context, opts PluginOptions) (*Plugin, error) {
	profile := "--sim-profile=dgxh100"
	if opts.DynamicMIG {
		profile = "--sim-profile=dgxh100-mig"
		opts.Args = append([]string{"--mig-mode=dynamic"}, opts.Args...)
	}
	if opts.SimMPS != "" {
		opts.Args = append([]string{"--mps-control=" + opts.SimMPS}, opts.Args...)
	}
	args := append([]string{
		profile, "--node-name=" + opts.NodeName, "--kubeconfig=" + opts.Kubeconfig,
		"--plugin-dir=" + opts.PluginDir(), "--registrar-dir=" + opts.RegistryDir(), "--cdi-dir=" + opts.CDIDir(),
		"--inventory-interval=1h", "-v=2",
	}, opts.Args...)
	logFile, err := os.OpenFile(filepath.Join(opts.Dir, "plugin.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(opts.Binary, args...)
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start plugin: %w", err)
	}
	p := &Plugin{opts: opts, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	conn, err := grpc.NewClient("unix://"+opts.Socket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		p.Kill()
		return nil, err
	}
	p.conn, p.Kubelet = conn, drapb.NewDRAPluginClient(conn)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if p.Exited() {
			return p, nil
		}
		callCtx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := p.Kubelet.NodePrepareResources(callCtx, &drapb.NodePrepareResourcesRequest{})
		cancel()
		if err == nil {
			return p, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("plugin did not answer on %s: %w\n%s", opts.Socket(), err, p.LogTail())
		}
		select {
		case <-p.exited:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Exited tells whether the process has ended.
func (p *Plugin) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// WaitExit waits up to d for the process to end and tells whether it did:
// a call cut off by a crash can fail before the exit is noticed.
func (p *Plugin) WaitExit(d time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// Killed tells whether the process ended by SIGKILL (a failpoint).
func (p *Plugin) Killed() bool {
	if !p.Exited() {
		return false
	}
	var exitErr *exec.ExitError
	if errors.As(p.err, &exitErr) {
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok {
			return ws.Signaled() && ws.Signal() == syscall.SIGKILL
		}
	}
	return false
}

// ExitError is how the process ended, once it has.
func (p *Plugin) ExitError() error { return p.err }

// PID of the process.
func (p *Plugin) PID() int { return p.cmd.Process.Pid }

// Kill ends the process with SIGKILL and waits for it.
func (p *Plugin) Kill() {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.exited
	p.closeConn()
}

// Stop ends the process with SIGTERM (its graceful shutdown) and waits, up
// to a deadline after which it is killed.
func (p *Plugin) Stop() error {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.Kill()
		return errors.New("plugin did not stop within 30s of SIGTERM")
	}
	p.closeConn()
	if p.err != nil {
		return fmt.Errorf("plugin exited: %w", p.err)
	}
	return nil
}

func (p *Plugin) closeConn() {
	if p.conn != nil {
		_ = p.conn.Close()
		p.conn = nil
	}
}

// LogTail returns the end of the plugin's log.
func (p *Plugin) LogTail() string {
	data, _ := os.ReadFile(filepath.Join(p.opts.Dir, "plugin.log"))
	s := string(data)
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return strings.TrimSpace(s)
}
