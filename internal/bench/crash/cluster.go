package crash

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gpudra/gpudra/internal/kubeclient"
	"github.com/gpudra/gpudra/internal/localcluster"
)

// ClusterOptions say which API server the harnesses talk to.
type ClusterOptions struct {
	// Kubeconfig of an API server to use. Empty: start etcd and
	// kube-apiserver on 127.0.0.1 (localcluster, control plane only).
	Kubeconfig string
	// Repo is the gpudra source tree, for building etcd and kube-apiserver
	// (hack/localcluster/build.sh; cached after the first build).
	Repo string
	// Dir holds a started cluster's state; it is removed by Close.
	Dir string
	// Log receives progress lines; may be nil.
	Log func(format string, args ...any) `json:"-"`
}

// Cluster is the API server the plugin under test and the harness use.
type Cluster struct {
	Kubeconfig string
	Client     kubernetes.Interface
	local      *localcluster.Cluster
	dir        string
}

// StartCluster connects to opts.Kubeconfig, or brings up a control-plane-only
// local cluster under a new directory in opts.Dir.
func StartCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	c := &Cluster{Kubeconfig: opts.Kubeconfig}
	if c.Kubeconfig == "" {
		bin, err := localcluster.Binaries(ctx, opts.Repo, "etcd", "kube-apiserver")
		if err != nil {
			return nil, err
		}
		c.dir, err = os.MkdirTemp(opts.Dir, "gpudra-apiserver-")
		if err != nil {
			return nil, err
		}
		c.local = &localcluster.Cluster{Root: filepath.Join(c.dir, "cluster"), BinDir: bin, Log: opts.Log}
		if err := c.local.Up(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("start API server: %w", err)
		}
		c.Kubeconfig = c.local.Kubeconfig()
	}
	client, _, err := kubeclient.New(kubeclient.Options{Kubeconfig: c.Kubeconfig, QPS: 500, Burst: 1000})
	if err != nil {
		c.Close()
		return nil, err
	}
	c.Client = client
	return c, nil
}

// Close stops a cluster StartCluster started (by PID) and removes its
// directory; an existing API server is left alone.
func (c *Cluster) Close() {
	if c.local != nil {
		c.local.Stop()
	}
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

// Logs returns the tail of the started API server's logs, for errors.
func (c *Cluster) Logs() string {
	if c.local == nil {
		return ""
	}
	return c.local.Logs(4000)
}

// EnsureNode creates the Node object the plugin publishes its slices for;
// one that exists already is fine.
func (c *Cluster) EnsureNode(ctx context.Context, name string) error {
	_, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	return nil
}

// Namespace creates a fresh namespace for one harness's claims and returns
// its name and a function deleting it. Without a namespace controller
// (control plane only) the namespace stays Terminating; the harnesses
// delete their claims themselves.
func (c *Cluster) Namespace(ctx context.Context, prefix string) (string, func(), error) {
	ns, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix}}, metav1.CreateOptions{})
	if err != nil {
		return "", nil, fmt.Errorf("create namespace: %w", err)
	}
	return ns.Name, func() {
		_ = c.Client.CoreV1().Namespaces().Delete(context.WithoutCancel(ctx), ns.Name, metav1.DeleteOptions{})
	}, nil
}
