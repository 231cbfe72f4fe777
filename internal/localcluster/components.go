package localcluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// identities are the client certificates of the cluster's components.
var identities = map[string]struct {
	user   string
	groups []string
}{
	"admin":                   {"admin", []string{"system:masters"}},
	"kube-controller-manager": {"system:kube-controller-manager", nil},
	"kube-scheduler":          {"system:kube-scheduler", nil},
	"kube-proxy":              {"system:kube-proxy", nil},
	"apiserver-kubelet":       {"kube-apiserver-kubelet-client", []string{"system:masters"}},
}

func (c *Cluster) makePKI() (*pki, error) {
	p, err := newPKI(filepath.Join(c.Root, "pki"))
	if err != nil {
		return nil, err
	}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(apiServiceIP), net.ParseIP(c.state.APIAddress)}
	if err := p.issue("apiserver", "kube-apiserver", nil, ips, []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}, true); err != nil {
		return nil, err
	}
	for name, id := range identities {
		if err := p.issue(name, id.user, id.groups, nil, nil, false); err != nil {
			return nil, err
		}
	}
	// The kubelet authenticates as its node, which the Node authorizer keys on.
	if err := p.issue("kubelet", "system:node:"+c.NodeName, []string{"system:nodes"}, []net.IP{net.ParseIP(bridgeIP)}, []string{c.NodeName}, true); err != nil {
		return nil, err
	}
	return p, p.serviceAccountKey()
}

func (c *Cluster) kubeconfigPath(name string) string {
	if name == "admin" {
		return c.Kubeconfig()
	}
	return filepath.Join(c.Root, "kubeconfigs", name+".kubeconfig")
}

func (c *Cluster) writeKubeconfigs(p *pki) error {
	names := []string{"admin", "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubelet"}
	for _, name := range names {
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["local"] = &clientcmdapi.Cluster{
			Server:               fmt.Sprintf("https://%s:%d", c.state.APIAddress, c.state.APIPort),
			CertificateAuthority: p.path("ca.crt"),
		}
		cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificate: p.path(name + ".crt"), ClientKey: p.path(name + ".key")}
		cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name}
		cfg.CurrentContext = "local"
		if err := writeFiles(map[string]string{c.kubeconfigPath(name): ""}); err != nil {
			return err
		}
		if err := clientcmd.WriteToFile(*cfg, c.kubeconfigPath(name)); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) run(name string, args []string, env ...string) error {
	p, err := startProcess(c.Root, name, c.bin(name), args, env)
	if err != nil {
		return err
	}
	c.processes = append(c.processes, p)
	return nil
}

func (c *Cluster) startEtcd(peerPort int) error {
	url := "http://127.0.0.1:" + itoa(c.state.EtcdPort)
	peer := "http://127.0.0.1:" + itoa(peerPort)
	return c.run("etcd", []string{
		"--name=localcluster",
		"--data-dir=" + filepath.Join(c.Root, "etcd"),
		"--listen-client-urls=" + url,
		"--advertise-client-urls=" + url,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=localcluster=" + peer,
		// A throwaway data dir: no fsync per write.
		"--unsafe-no-fsync",
		"--log-level=warn",
	})
}

func (c *Cluster) startAPIServer(p *pki) error {
	var extra []string
	if !c.Full {
		// A loopback advertise address cannot back the kubernetes service;
		// without pods nothing needs it.
		extra = append(extra, "--endpoint-reconciler-type=none")
	}
	return c.run("kube-apiserver", append([]string{
		"--etcd-servers=http://127.0.0.1:" + itoa(c.state.EtcdPort),
		"--bind-address=" + c.state.APIAddress,
		"--advertise-address=" + c.state.APIAddress,
		"--secure-port=" + itoa(c.state.APIPort),
		"--tls-cert-file=" + p.path("apiserver.crt"),
		"--tls-private-key-file=" + p.path("apiserver.key"),
		"--client-ca-file=" + p.path("ca.crt"),
		"--kubelet-client-certificate=" + p.path("apiserver-kubelet.crt"),
		"--kubelet-client-key=" + p.path("apiserver-kubelet.key"),
		// There is no DNS for node names: reach the kubelet by its IP.
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-key-file=" + p.path("sa.pub"),
		"--service-account-signing-key-file=" + p.path("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=" + serviceCIDR,
		"--authorization-mode=Node,RBAC",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1",
	}, extra...))
}

func (c *Cluster) startControllers(p *pki) error {
	if err := c.run("kube-controller-manager", []string{
		"--kubeconfig=" + c.kubeconfigPath("kube-controller-manager"),
		"--authentication-kubeconfig=" + c.kubeconfigPath("kube-controller-manager"),
		"--authorization-kubeconfig=" + c.kubeconfigPath("kube-controller-manager"),
		"--service-account-private-key-file=" + p.path("sa.key"),
		"--root-ca-file=" + p.path("ca.crt"),
		"--use-service-account-credentials=true",
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--cluster-cidr=" + clusterCIDR,
		"--service-cluster-ip-range=" + serviceCIDR,
		"--v=1",
	}); err != nil {
		return err
	}
	return c.run("kube-scheduler", []string{
		"--kubeconfig=" + c.kubeconfigPath("kube-scheduler"),
		"--authentication-kubeconfig=" + c.kubeconfigPath("kube-scheduler"),
		"--authorization-kubeconfig=" + c.kubeconfigPath("kube-scheduler"),
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--v=1",
	})
}

func (c *Cluster) startNode(ctx context.Context, p *pki) error {
	if err := writeFiles(map[string]string{
		filepath.Join(c.Root, "containerd", "config.toml"):          containerdConfig(c.Root, c.BinDir),
		filepath.Join(c.Root, "cni", "net.d", "10-gpudra.conflist"): cniConfig(c.Root),
		filepath.Join(c.Root, "kubelet", "config.yaml"):             kubeletConfig(c.Root, p, c.state.KubeletPort),
	}); err != nil {
		return err
	}
	if err := c.run("containerd", []string{"--config=" + filepath.Join(c.Root, "containerd", "config.toml")}, c.nodePath()); err != nil {
		return err
	}
	if err := waitSocket(ctx, ContainerdSocket(c.Root), 30*time.Second); err != nil {
		return fmt.Errorf("containerd: %w\n%s", err, c.Logs(3000))
	}
	if c.ImportImages != nil {
		if err := c.ImportImages(ctx, c.bin("ctr"), ContainerdSocket(c.Root)); err != nil {
			return fmt.Errorf("import images: %w", err)
		}
	}
	if err := c.startKubelet(p); err != nil {
		return err
	}
	return c.run("kube-proxy", []string{
		"--kubeconfig=" + c.kubeconfigPath("kube-proxy"),
		"--hostname-override=" + c.NodeName,
		"--cluster-cidr=" + clusterCIDR,
		"--proxy-mode=iptables",
		"--bind-address=" + bridgeIP,
		"--healthz-bind-address=127.0.0.1:" + itoa(c.state.ProxyHealthzPort),
		"--metrics-bind-address=127.0.0.1:" + itoa(c.state.ProxyMetricsPort),
		// Leave the machine's conntrack table size alone.
		"--conntrack-max-per-core=0",
		"--v=1",
	}, c.nodePath())
}

// nodePath is the PATH node components run with: containerd and the kubelet
// find the shim and runc there.
func (c *Cluster) nodePath() string {
	return "PATH=" + c.BinDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

func (c *Cluster) startKubelet(p *pki) error {
	return c.run("kubelet", []string{
		"--config=" + filepath.Join(c.Root, "kubelet", "config.yaml"),
		"--kubeconfig=" + c.kubeconfigPath("kubelet"),
		"--hostname-override=" + c.NodeName,
		"--node-ip=" + bridgeIP,
		"--tls-cert-file=" + p.path("kubelet.crt"),
		"--tls-private-key-file=" + p.path("kubelet.key"),
		"--v=2",
	}, c.nodePath())
}

// RestartKubelet kills the kubelet (SIGKILL, as a crash would) and starts
// it again with the same settings. Running pods are left alone, as on a
// real node.
func (c *Cluster) RestartKubelet(ctx context.Context) error {
	if err := killByPIDFile(filepath.Join(c.Root, "pids", "kubelet.pid"), "kubelet"); err != nil {
		return err
	}
	kept := c.processes[:0]
	for _, p := range c.processes {
		if p.name != "kubelet" {
			kept = append(kept, p)
		}
	}
	c.processes = kept
	if err := c.startKubelet(&pki{dir: filepath.Join(c.Root, "pki")}); err != nil {
		return err
	}
	return c.waitNodeReady(ctx)
}

func (c *Cluster) waitAPIReady(ctx context.Context) error {
	p := &pki{dir: filepath.Join(c.Root, "pki")}
	cert, err := tls.LoadX509KeyPair(p.path("admin.crt"), p.path("admin.key"))
	if err != nil {
		return err
	}
	pool, err := rootPool(p.path("ca.crt"))
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	url := fmt.Sprintf("https://%s:%d/readyz", c.state.APIAddress, c.state.APIPort)
	return c.poll(ctx, 90*time.Second, "API server ready", func() bool {
		resp, err := client.Get(url)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func (c *Cluster) waitNodeReady(ctx context.Context) error {
	client, _, err := c.Client()
	if err != nil {
		return err
	}
	return c.poll(ctx, 120*time.Second, "node "+c.NodeName+" Ready and default service account", func() bool {
		node, err := client.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
		if err != nil {
			return false
		}
		ready := false
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			return false
		}
		_, err = client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	})
}

// poll waits for cond, failing early when a component exits.
func (c *Cluster) poll(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, proc := range c.processes {
			if done, err := proc.exited(); done {
				return fmt.Errorf("%s exited (%w) while waiting for %s; logs:\n%s", proc.name, err, what, c.Logs(3000))
			}
		}
		if cond() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("timed out after %s waiting for %s; logs:\n%s", timeout, what, c.Logs(3000))
}

// freePorts reserves n loopback ports by listening and closing.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func waitSocket(ctx context.Context, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			_ = conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("socket %s not ready after %s", path, timeout)
}
