// Package localcluster runs a real Kubernetes 1.37 cluster on this machine
// from binaries built out of Go modules (hack/localcluster/build.sh): etcd,
// kube-apiserver, and for a full cluster the scheduler, controller manager,
// containerd + runc, kubelet and kube-proxy, on one node. No Docker, no image
// registry. All state lives under one root; processes are tracked by PID
// files there and stopped by PID, never by name.
//
// A control-plane-only cluster (Full=false) serves tests that need a real API
// server but no pods; it listens on 127.0.0.1 and leaves the host untouched.
package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Cluster is a local cluster rooted at Root.
type Cluster struct {
	// Root holds all state: etcd data, PKI, kubeconfigs, containerd, logs,
	// PID files.
	Root string
	// BinDir holds the binaries (see Binaries).
	BinDir string
	// Full runs a node (containerd, kubelet, kube-proxy), the scheduler and
	// the controller manager too; otherwise only etcd and the API server.
	Full bool
	// NodeName of the one node; default "gpudra-node".
	NodeName string
	// Log receives progress lines; may be nil.
	Log func(format string, args ...any)
	// ImportImages, when set, loads images into containerd before the
	// kubelet starts (there is no registry to pull from).
	ImportImages func(ctx context.Context, ctrBin, containerdAddress string) error

	state     State
	processes []*process
}

// State is what a running cluster records in <root>/cluster.json, so that
// later commands (status, down, kubeconfig) find it.
type State struct {
	Full        bool   `json:"full"`
	NodeName    string `json:"nodeName"`
	BinDir      string `json:"binDir"`
	APIAddress  string `json:"apiAddress"`
	APIPort     int    `json:"apiPort"`
	EtcdPort    int    `json:"etcdPort"`
	KubeletPort int    `json:"kubeletHealthzPort"`
	// kube-proxy's health and metrics ports (loopback).
	ProxyHealthzPort int `json:"proxyHealthzPort"`
	ProxyMetricsPort int `json:"proxyMetricsPort"`
}

// components in start order.
var (
	controlPlaneComponents = []string{"etcd", "kube-apiserver"}
	fullComponents         = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet", "kube-proxy"}
)

// Components lists the binaries a cluster needs.
func Components(full bool) []string {
	if full {
		return append(append([]string{}, fullComponents...), "containerd-shim-runc-v2", "runc", "ctr", "crictl", "kubectl")
	}
	return controlPlaneComponents
}

// Binaries returns the directory of the local cluster's binaries, building
// the named components first if they are not cached yet (minutes when cold,
// nothing when cached). GPUDRA_K8S_BIN overrides the location.
func Binaries(ctx context.Context, repoRoot string, components ...string) (string, error) {
	if dir := os.Getenv("GPUDRA_K8S_BIN"); dir != "" {
		return dir, nil
	}
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "hack/localcluster/build.sh"), components...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build local cluster binaries %v: %w", components, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

func (c *Cluster) logf(format string, args ...any) {
	if c.Log != nil {
		c.Log(format, args...)
	}
}

func (c *Cluster) components() []string {
	if c.Full {
		return fullComponents
	}
	return controlPlaneComponents
}

// Up starts the cluster from a clean state and waits until the API server
// is ready (and, for a full cluster, the node is Ready). Whatever an earlier
// crashed run left behind under Root is stopped and removed first.
func (c *Cluster) Up(ctx context.Context) error {
	if c.NodeName == "" {
		c.NodeName = "gpudra-node"
	}
	if err := c.checkPrerequisites(); err != nil {
		return err
	}
	if err := c.Clean(ctx); err != nil {
		return fmt.Errorf("clean up an earlier run: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	if err := c.start(ctx); err != nil {
		return err
	}
	ok = true
	return nil
}

func (c *Cluster) start(ctx context.Context) error {
	address := "127.0.0.1"
	if c.Full {
		address = bridgeIP
		if err := createBridge(); err != nil {
			return err
		}
	}
	ports, err := freePorts(6)
	if err != nil {
		return err
	}
	c.state = State{Full: c.Full, NodeName: c.NodeName, BinDir: c.BinDir, APIAddress: address, APIPort: ports[0], EtcdPort: ports[1], KubeletPort: ports[3], ProxyHealthzPort: ports[4], ProxyMetricsPort: ports[5]}
	etcdPeerPort := ports[2]
	if c.Full {
		c.state.APIPort = 6443
	}

	p, err := c.makePKI()
	if err != nil {
		return err
	}
	if err := c.writeKubeconfigs(p); err != nil {
		return err
	}
	if err := c.saveState(); err != nil {
		return err
	}

	c.logf("starting etcd and kube-apiserver")
	if err := c.startEtcd(etcdPeerPort); err != nil {
		return err
	}
	if err := c.startAPIServer(p); err != nil {
		return err
	}
	if err := c.waitAPIReady(ctx); err != nil {
		return err
	}
	if !c.Full {
		return nil
	}
	c.logf("starting controller manager, scheduler, containerd, kubelet and kube-proxy")
	if err := c.startControllers(p); err != nil {
		return err
	}
	if err := c.startNode(ctx, p); err != nil {
		return err
	}
	return c.waitNodeReady(ctx)
}

func (c *Cluster) checkPrerequisites() error {
	var missing []string
	for _, name := range c.components() {
		if _, err := os.Stat(filepath.Join(c.BinDir, name)); err != nil {
			missing = append(missing, filepath.Join(c.BinDir, name))
		}
	}
	if c.Full {
		for _, tool := range []string{"ip", "iptables"} {
			if _, err := exec.LookPath(tool); err != nil {
				missing = append(missing, tool+" (apt-get install iproute2 iptables)")
			}
		}
		for _, plugin := range []string{"bridge", "host-local", "portmap", "loopback"} {
			if _, err := os.Stat(filepath.Join("/usr/lib/cni", plugin)); err != nil {
				missing = append(missing, "/usr/lib/cni/"+plugin+" (apt-get install containernetworking-plugins)")
			}
		}
		if os.Geteuid() != 0 {
			missing = append(missing, "root (a kubelet and containerd need it)")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the local cluster needs: %s", strings.Join(missing, ", "))
	}
	return nil
}

// Kubeconfig is the admin kubeconfig's path.
func (c *Cluster) Kubeconfig() string { return filepath.Join(c.Root, "admin.kubeconfig") }

// Client returns an admin clientset and its config.
func (c *Cluster) Client() (kubernetes.Interface, *rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
	if err != nil {
		return nil, nil, err
	}
	cfg.QPS, cfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(cfg)
	return client, cfg, err
}

// LoadState reads the state a running cluster recorded.
func LoadState(root string) (State, error) {
	var s State
	data, err := os.ReadFile(filepath.Join(root, "cluster.json"))
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(data, &s)
}

func (c *Cluster) saveState() error {
	data, err := json.MarshalIndent(c.state, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.Root, "cluster.json"), data, 0o644)
}

// Stop stops every component this process started, in reverse order. For a
// cluster started by another process use Down.
func (c *Cluster) Stop() {
	if c.Full {
		c.removeAllPods()
	}
	for i := len(c.processes) - 1; i >= 0; i-- {
		c.processes[i].stop(15 * time.Second)
		if c.processes[i].name == "containerd" {
			c.stopShims()
		}
	}
	c.processes = nil
}

// Down stops a cluster by the PID files under Root, whoever started it.
// Pods are removed first so their shims and mounts go away with them.
func (c *Cluster) Down(ctx context.Context) error {
	s, err := LoadState(c.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	c.state = s
	if c.BinDir == "" {
		c.BinDir = s.BinDir
	}
	if s.Full {
		c.removeAllPods()
	}
	comps := fullComponents
	for i := len(comps) - 1; i >= 0; i-- {
		if err := stopStale(filepath.Join(c.Root, "pids", comps[i]+".pid"), comps[i]); err != nil {
			return fmt.Errorf("stop %s: %w", comps[i], err)
		}
		if comps[i] == "containerd" {
			c.stopShims()
		}
	}
	return nil
}

// Logs returns the last bytes of each component's log, for failed tests.
func (c *Cluster) Logs(maxBytes int) string {
	var b strings.Builder
	for _, name := range fullComponents {
		data, err := os.ReadFile(filepath.Join(c.Root, "logs", name+".log"))
		if err != nil {
			continue
		}
		if len(data) > maxBytes {
			data = data[len(data)-maxBytes:]
		}
		fmt.Fprintf(&b, "==> %s <==\n%s\n", name, data)
	}
	return b.String()
}

func (c *Cluster) bin(name string) string { return filepath.Join(c.BinDir, name) }

func itoa(i int) string { return strconv.Itoa(i) }
