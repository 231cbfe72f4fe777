#!/usr/bin/env bash
# Installs the Debian packages gpudra's builds, tests and local cluster need
# and a fresh machine may lack: a C toolchain for cgo (go-nvml) and the static
# pause image, libseccomp for runc, the CNI plugins, iptables for kube-proxy,
# busybox-static for the test image. Installs nothing that is there already.
set -euo pipefail
need=()
for pkg in make gcc libc6-dev pkg-config libseccomp-dev containernetworking-plugins iptables iproute2 busybox-static git; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]} (run as root, or apt-get install them)" >&2
  exit 1
fi
echo "installing ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
