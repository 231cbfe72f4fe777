package localcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Network layout of the local cluster. The bridge address is the host's own
// address on the pod network: the API server listens there, so pods reach it
// through the kubernetes service (kube-proxy DNATs 10.96.0.1:443 to it) and
// the host reaches it too, without binding anything beyond this machine.
const (
	bridgeName   = "gpudra0"
	bridgeIP     = "10.244.0.1"
	podCIDR      = "10.244.0.0/24"
	clusterCIDR  = "10.244.0.0/16"
	serviceCIDR  = "10.96.0.0/16"
	apiServiceIP = "10.96.0.1"
	// PauseImage is the sandbox image name containerd 2.4.2 expects.
	PauseImage = "registry.k8s.io/pause:3.10.2"
)

// containerdConfig is containerd 2.x's config (version 3). CDI spec dirs are
// the standard ones, so the plugin's specs reach containers; the sandbox image
// is never pulled (there is no registry); network namespaces live under the
// state dir so clean-up finds them.
func containerdConfig(root, binDir string) string {
	cd := filepath.Join(root, "containerd")
	return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %[5]q

[plugins.'io.containerd.cri.v1.runtime']
  cdi_spec_dirs = ['/etc/cdi', '/var/run/cdi']
  # No CAP_SYS_RESOURCE here: runc cannot lower oom_score_adj below ours.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      disable_pause_image_pull = true
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %[6]q
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/usr/lib/cni']
    conf_dir = %[7]q
`, filepath.Join(cd, "root"), filepath.Join(cd, "state"), ContainerdSocket(root), ContainerdSocket(root)+".ttrpc",
		PauseImage, filepath.Join(binDir, "runc"), filepath.Join(root, "cni", "net.d"))
}

// ContainerdSocket is the address of the cluster's containerd.
func ContainerdSocket(root string) string {
	return filepath.Join(root, "containerd", "containerd.sock")
}

// cniConfig is a bridge network on the pre-created bridge with host-local
// addresses kept under the cluster root.
func cniConfig(root string) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "gpudra-localcluster",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "isDefaultGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "dataDir": %q
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, bridgeName, podCIDR, bridgeIP, filepath.Join(root, "cni", "ipam"))
}

// kubeletConfig holds the settings this machine kind needs (cgroup v1,
// cgroupfs, swap, relaxed eviction), see shared/notes/local-cluster.md.
func kubeletConfig(root string, pki *pki, healthzPort int) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
podCIDR: %s
containerRuntimeEndpoint: unix://%s
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %s
authorization:
  mode: Webhook
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
resolvConf: /etc/resolv.conf
shutdownGracePeriod: 0s
`, bridgeIP, healthzPort, podCIDR, ContainerdSocket(root), pki.path("ca.crt"))
}

func writeFiles(files map[string]string) error {
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(strings.TrimLeft(content, "\n")), 0o644); err != nil {
			return err
		}
	}
	return nil
}
