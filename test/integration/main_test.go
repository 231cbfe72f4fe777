// Package integration runs gpudra's node plugin against a real API server
// (etcd + kube-apiserver built from Go modules, see internal/localcluster),
// speaking the kubelet's side of the DRA gRPC protocol on the plugin's
// socket. No kubelet, scheduler or container runtime is involved: the e2e
// suite covers those.
package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gpudra/gpudra/internal/localcluster"
)

var (
	cluster    *localcluster.Cluster
	kubeClient kubernetes.Interface
	restConfig *rest.Config
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	bin, err := localcluster.Binaries(ctx, "../..", "etcd", "kube-apiserver")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	root, err := os.MkdirTemp("", "gpudra-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(root) }()
	cluster = &localcluster.Cluster{Root: filepath.Join(root, "cluster"), BinDir: bin}
	if err := cluster.Up(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cluster.Stop()
	kubeClient, restConfig, err = cluster.Client()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, cluster.Logs(4000))
	}
	return code
}
