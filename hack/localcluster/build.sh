#!/usr/bin/env bash
# Builds the local cluster's binaries from Go modules pinned in tools/go.mod
# (no downloads of binaries, no Docker). Binaries are cached by the hash of
# tools/go.mod and tools/go.sum, outside git, so a second run builds nothing.
#
#   hack/localcluster/build.sh [component...]   # default: all
#
# Prints the bin directory on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools=$here/tools
key=$(cat "$tools/go.mod" "$tools/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)
cache=${GPUDRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpudra}
bin=$cache/localcluster/$key/bin
mkdir -p "$bin"

k8s_version=v1.37.2
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=37"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

declare -A pkgs=(
  [etcd]=./cmd/etcd
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kubelet]=k8s.io/kubernetes/cmd/kubelet
  [kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [containerd]=github.com/containerd/containerd/v2/cmd/containerd
  [containerd-shim-runc-v2]=github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
  [ctr]=github.com/containerd/containerd/v2/cmd/ctr
  [runc]=github.com/opencontainers/runc
  [crictl]=sigs.k8s.io/cri-tools/cmd/crictl
)
order=(etcd kube-apiserver kube-scheduler kube-controller-manager kubelet kube-proxy kubectl containerd containerd-shim-runc-v2 ctr runc crictl)
want=("$@")
[ ${#want[@]} -gt 0 ] || want=("${order[@]}")

cd "$tools"
for name in "${want[@]}"; do
  pkg=${pkgs[$name]:?unknown component $name}
  [ -x "$bin/$name" ] && continue
  echo ">> building $name" >&2
  start=$SECONDS
  case $name in
    runc)
      # runc needs libseccomp for its seccomp support.
      if ! pkg-config --exists libseccomp 2>/dev/null; then
        echo "runc needs libseccomp-dev (apt-get install libseccomp-dev pkg-config)" >&2; exit 1
      fi
      CGO_ENABLED=1 go build -trimpath -tags seccomp -ldflags "-s -w" -o "$bin/$name.tmp" "$pkg" ;;
    containerd*|ctr)
      CGO_ENABLED=1 go build -trimpath -ldflags "-s -w" -o "$bin/$name.tmp" "$pkg" ;;
    *)
      CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$bin/$name.tmp" "$pkg" ;;
  esac
  mv "$bin/$name.tmp" "$bin/$name"
  echo ">> built $name in $((SECONDS-start))s" >&2
done
echo "$bin"
