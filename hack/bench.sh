#!/usr/bin/env bash
# `make bench`: gpudra's benchmarks on this machine, with a real API server
# (etcd + kube-apiserver built from Go modules, on 127.0.0.1) and the plugin
# running as a process on the sim backend. Prints the tables of
# BENCHMARKS.md; JSON results go to _output/bench/.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export CGO_CFLAGS=${CGO_CFLAGS:--Wno-deprecated-declarations}
out=$repo/_output/bench
work=$(mktemp -d /tmp/gpudra-bench-XXXXXX)
root=$work/cluster
# CDI specs live on tmpfs, as /var/run/cdi does on real nodes.
cdi=$(mktemp -d /dev/shm/gpudra-bench-cdi-XXXXXX)
mkdir -p "$out"
gpudra=$repo/_output/bin/gpudra
plugin=$repo/_output/bin/gpudra-kubelet-plugin
node=bench-node
plugin_pid=

cleanup() {
  [ -n "$plugin_pid" ] && kill "$plugin_pid" 2>/dev/null && wait "$plugin_pid" 2>/dev/null || true
  "$gpudra" cluster clean --root "$root" >/dev/null 2>&1 || true
  rm -rf "$work" "$cdi"
}
trap cleanup EXIT

section() { printf '\n## %s\n\n' "$*"; }

make --no-print-directory build >/dev/null
bin=$(hack/localcluster/build.sh etcd kube-apiserver kubectl | tail -n1)
"$gpudra" cluster up --control-plane-only --repo "$repo" --root "$root" >/dev/null 2>&1
export KUBECONFIG=$root/admin.kubeconfig
kubectl() { "$bin/kubectl" "$@"; }
kubectl apply -f deployments/deviceclasses/deviceclasses.yaml >/dev/null
kubectl create -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: $node
NODE

echo "# gpudra benchmarks — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -m), $(go version | cut -d' ' -f3)"

section "Plugin startup to published ResourceSlices (10 starts each)"
startup() {
  local label=$1; shift
  "$gpudra" bench startup --node-name=$node --runs=10 --label="$label" --json-out="$out/startup-$label.json" -- \
    "$plugin" "$@" --node-name=$node --kubeconfig="$KUBECONFIG" \
    --plugin-dir={dir}/plugin --registrar-dir={dir}/registry --cdi-dir={dir}/cdi | tail -n +$([ "$label" = dgxh100 ] && echo 1 || echo 2)
}
startup dgxh100 --sim-profile=dgxh100
startup dgxb200 --sim-profile=dgxb200
startup mig-node --sim-config=deployments/demo/node.yaml

section "Prepare / unprepare over the kubelet's gRPC API (sim dgxh100, real API server)"
mkdir -p "$work/plugin" "$work/registry"
"$plugin" --sim-profile=dgxh100 --node-name=$node --kubeconfig="$KUBECONFIG" \
  --plugin-dir="$work/plugin" --registrar-dir="$work/registry" --cdi-dir="$cdi" \
  --cleanup-interval=1h -v=0 >"$work/plugin.log" 2>&1 &
plugin_pid=$!
for _ in $(seq 1 100); do [ -S "$work/plugin/dra.sock" ] && break; sleep 0.1; done
prepare() {
  "$gpudra" bench prepare --socket="$work/plugin/dra.sock" --node-name=$node --plugin-pid=$plugin_pid "$@"
}
prepare --claims=200 --concurrency=1 --json-out="$out/prepare-c1.json"
prepare --claims=400 --concurrency=8 --json-out="$out/prepare-c8.json" | tail -n +2

section "Scheduler allocation over our slices vs. a minimal layout"
"$gpudra" bench allocate --json-out="$out/allocate.json"

section "Dynamic MIG: utilisation against the first-fit-decreasing bound (one DGX H100, 20 seeds)"
"$gpudra" bench pack --seeds="$(seq -s, 1 20)" --json-out="$out/pack.json"

section "Dynamic MIG: scheduler allocation at 1,000 nodes, by layout and fill (about 4 minutes)"
"$gpudra" bench allocate dynamic-mig --json-out="$out/allocate-dynamic-mig.json"

section "Memory shares: scheduler allocation at 1,000 nodes, by fill (under a minute)"
"$gpudra" bench allocate shares
