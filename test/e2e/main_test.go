//go:build e2e

// Package e2e tests gpudra the way a user meets it: a real single-node
// Kubernetes 1.37 cluster (internal/localcluster: etcd, API server,
// scheduler, controller manager, kubelet, containerd, runc, kube-proxy), the
// Helm chart installed with the sim backend, and pods whose containers print
// what they were given. Tests assert on that output and on API objects.
//
// Run with `make e2e` (root needed). The suite uses the same cluster root as
// `make demo` and removes that cluster when it ends.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gpudra/gpudra/internal/localcluster"
	"github.com/gpudra/gpudra/internal/localcluster/images"
)

const (
	repoRoot   = "../.."
	driverName = "gpu.nvidia.com"
	namespace  = "gpudra"
	release    = "gpudra"
)

// suite is what every test shares.
var suite struct {
	cluster *localcluster.Cluster
	client  kubernetes.Interface
	helm    string
	kubectl string
	// nodeName is the cluster's single node.
	nodeName string
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[e2e %s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	root := os.Getenv("GPUDRA_CLUSTER_ROOT")
	if root == "" {
		root = "/var/lib/gpudra-localcluster"
	}
	bin, err := localcluster.Binaries(ctx, repoRoot, localcluster.Components(true)...)
	if err != nil {
		logf("%v", err)
		return 1
	}
	helm, err := run(ctx, filepath.Join(repoRoot, "hack/helm/build.sh"))
	if err != nil {
		logf("build helm: %v", err)
		return 1
	}
	suite.helm = lastLine(helm)
	suite.kubectl = filepath.Join(bin, "kubectl")
	suite.nodeName = "gpudra-e2e"

	c := &localcluster.Cluster{Root: root, BinDir: bin, Full: true, NodeName: suite.nodeName, Log: logf}
	c.ImportImages = func(ctx context.Context, ctr, addr string) error {
		// The same image cache as `gpudra cluster`: tars are rebuilt when
		// their inputs change (the writer is deterministic).
		userCache, err := os.UserCacheDir()
		if err != nil {
			return err
		}
		cache := filepath.Join(userCache, "gpudra", "images")
		pause, err := images.Pause(ctx, cache)
		if err != nil {
			return err
		}
		busybox, err := images.Busybox(ctx, cache)
		if err != nil {
			return err
		}
		driver, err := images.Driver(ctx, cache, []string{
			filepath.Join(repoRoot, "_output/bin/gpudra-kubelet-plugin"),
			filepath.Join(repoRoot, "_output/bin/gpudra"),
			filepath.Join(repoRoot, "_output/bin/gpudra-sim-mps"),
			filepath.Join(repoRoot, "_output/bin/failpoints/gpudra-kubelet-plugin-failpoints"),
		}, "localhost/gpudra/gpudra:e2e")
		if err != nil {
			return fmt.Errorf("driver image (run `make e2e`, which builds the binaries, or `make build` and the failpoints plugin): %w", err)
		}
		for _, tar := range []string{pause, busybox, driver} {
			if err := images.Import(ctx, ctr, addr, tar); err != nil {
				return err
			}
		}
		return nil
	}
	suite.cluster = c
	start := time.Now()
	if err := c.Up(ctx); err != nil {
		logf("cluster up: %v", err)
		_ = c.Clean(context.Background())
		return 1
	}
	defer func() {
		if err := c.Clean(context.Background()); err != nil {
			logf("clean: %v", err)
		}
	}()
	logf("cluster up in %.1fs", time.Since(start).Seconds())
	suite.client, _, err = c.Client()
	if err != nil {
		logf("%v", err)
		return 1
	}
	start = time.Now()
	if err := installChart(ctx); err != nil {
		logf("install chart: %v\n%s", err, pluginLogs())
		return 1
	}
	logf("chart installed and slices published in %.1fs", time.Since(start).Seconds())
	if err := waitKubeletPrepares(ctx, 3*time.Minute, logf); err != nil {
		logf("no claim could be prepared on the node: %v\n%s", err, pluginLogs())
		return 1
	}

	code := m.Run()
	if code != 0 {
		logf("a test failed; component logs:\n%s\nplugin logs:\n%s", c.Logs(6000), pluginLogs())
		if dir, err := keepLogs(root); err != nil {
			logf("keep logs: %v", err)
		} else {
			logf("full component logs kept in %s", dir)
		}
	}
	return code
}

// keepLogs copies the components' full logs out of the cluster root, which
// the suite removes when it ends, to _output/e2e-logs.
func keepLogs(root string) (string, error) {
	dir, err := filepath.Abs(filepath.Join(repoRoot, "_output", "e2e-logs"))
	if err != nil {
		return "", err
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	logs, err := filepath.Glob(filepath.Join(root, "logs", "*.log"))
	if err != nil {
		return "", err
	}
	for _, src := range logs {
		data, err := os.ReadFile(src)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(src)), data, 0o644); err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plugin, _ := kubectl(ctx, "logs", "-n", namespace, "-l", "app.kubernetes.io/name=gpudra", "--tail=-1", "--all-containers", "--prefix", "--timestamps")
	return dir, os.WriteFile(filepath.Join(dir, "plugin.log"), []byte(plugin), 0o644)
}

// installChart installs the chart with the e2e node inventory and waits until
// the node's slices are published.
func installChart(ctx context.Context) error {
	out, err := helmCmd(ctx, "upgrade", "--install", release, filepath.Join(repoRoot, "deployments/helm/gpudra"),
		"--namespace", namespace, "--create-namespace",
		"--set", "image.tag=e2e",
		"--set", "sim.enabled=true",
		"--set-file", "sim.config=testdata/node.yaml",
		"--set", "cleanupInterval=5s",
		"--wait", "--timeout", "3m")
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return waitFor(ctx, time.Minute, "ResourceSlices of the node", func() (bool, error) {
		list, err := suite.client.ResourceV1().ResourceSlices().List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + suite.nodeName})
		return err == nil && len(list.Items) > 0, nil
	})
}

func helmCmd(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, suite.helm, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+suite.cluster.Kubeconfig())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, suite.kubectl, append([]string{"--kubeconfig", suite.cluster.Kubeconfig()}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func pluginLogs() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := kubectl(ctx, "logs", "-n", namespace, "-l", "app.kubernetes.io/name=gpudra", "--tail=200", "--all-containers", "--prefix")
	return out
}

func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	return string(out), err
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// waitFor polls cond every 100ms until it holds, fails or time runs out.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if lastErr != nil {
		return fmt.Errorf("timed out after %s waiting for %s (last error: %w)", timeout, what, lastErr)
	}
	return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
}
