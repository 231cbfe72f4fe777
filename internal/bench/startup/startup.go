// Package startup measures the time from starting a kubelet plugin process
// to its ResourceSlices being visible through the API server: how long a
// freshly booted (or upgraded) node stays unschedulable for DRA claims.
package startup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/gpudra/gpudra/internal/bench/stats"
)

// Options of one measurement series.
type Options struct {
	// Command starts the plugin; {dir} in an argument is replaced by a fresh
	// per-run directory (plugin dir, CDI dir, checkpoint).
	Command    []string
	Kubeconfig string
	DriverName string
	NodeName   string
	Runs       int
	// Label names the series in the output (e.g. the sim profile).
	Label string
}

// Result of a series.
type Result struct {
	Label   string        `json:"label"`
	Runs    int           `json:"runs"`
	Latency stats.Summary `json:"latency"`
	Min     time.Duration `json:"min"`
}

// Run starts the plugin Runs times from a state without slices for the node,
// each time timing exec -> first slice of the node seen by a watch.
func Run(ctx context.Context, client kubernetes.Interface, opts Options) (*Result, error) {
	var samples []time.Duration
	for i := range opts.Runs {
		d, err := once(ctx, client, opts, i)
		if err != nil {
			return nil, fmt.Errorf("%s run %d: %w", opts.Label, i+1, err)
		}
		samples = append(samples, d)
	}
	res := &Result{Label: opts.Label, Runs: opts.Runs, Latency: stats.Summarize(samples), Min: samples[0]}
	for _, s := range samples {
		res.Min = min(res.Min, s)
	}
	return res, nil
}

func once(ctx context.Context, client kubernetes.Interface, opts Options, run int) (time.Duration, error) {
	selector := "spec.driver=" + opts.DriverName + ",spec.nodeName=" + opts.NodeName
	slices := client.ResourceV1().ResourceSlices()
	if err := slices.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{FieldSelector: selector}); err != nil {
		return 0, fmt.Errorf("delete old slices: %w", err)
	}
	list, err := slices.List(ctx, metav1.ListOptions{FieldSelector: selector})
	if err != nil {
		return 0, err
	}
	if len(list.Items) > 0 {
		return 0, fmt.Errorf("%d slices of node %s still exist", len(list.Items), opts.NodeName)
	}
	w, err := slices.Watch(ctx, metav1.ListOptions{FieldSelector: selector, ResourceVersion: list.ResourceVersion})
	if err != nil {
		return 0, err
	}
	defer w.Stop()

	dir, err := os.MkdirTemp("", "gpudra-startup-")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	args := make([]string, len(opts.Command))
	for i, a := range opts.Command {
		args[i] = strings.ReplaceAll(a, "{dir}", dir)
	}
	logFile, err := os.Create(filepath.Join(dir, "plugin.log"))
	if err != nil {
		return 0, err
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), "KUBECONFIG="+opts.Kubeconfig)

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer stop(cmd)
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return 0, fmt.Errorf("watch closed")
			}
			if ev.Type == watch.Added {
				return time.Since(start), nil
			}
		case <-timeout:
			log, _ := os.ReadFile(filepath.Join(dir, "plugin.log"))
			return 0, fmt.Errorf("no slice after 30s (run %d); plugin log:\n%s", run, log)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// stop ends the plugin with SIGTERM (as the kubelet would), SIGKILL after 10 s.
func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
