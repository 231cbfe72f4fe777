#!/usr/bin/env bash
# `make demo`: a real single-node Kubernetes 1.37 on this machine with gpudra
# installed on a simulated DGX H100 node, a few GPU workloads, and what each
# container saw. Builds what is missing (the first run compiles Kubernetes
# from Go modules: several minutes on 2 cores; later runs take seconds).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export CGO_CFLAGS=${CGO_CFLAGS:--Wno-deprecated-declarations}
root=${GPUDRA_CLUSTER_ROOT:-/var/lib/gpudra-localcluster}
start=$SECONDS
step() { printf '\n\033[1m==> [%3ds] %s\033[0m\n' $((SECONDS - start)) "$*"; }

step "Checking Debian packages"
hack/install-deps.sh

step "Building gpudra binaries"
make --no-print-directory build >/dev/null
gpudra=$repo/_output/bin/gpudra

step "Building (or reusing) Kubernetes, containerd, runc and Helm from Go modules"
bin=$("$gpudra" cluster build --repo "$repo" --root "$root")
helm=$(hack/helm/build.sh | tail -n1)
export PATH=$bin:$PATH

step "Starting the local cluster"
"$gpudra" cluster up --repo "$repo" --root "$root"
export KUBECONFIG=$root/admin.kubeconfig

step "Loading the gpudra image into containerd"
"$gpudra" cluster load-driver --root "$root" --binaries _output/bin/gpudra-kubelet-plugin,_output/bin/gpudra,_output/bin/gpudra-sim-mps

step "Installing the gpudra chart (sim mode: a DGX H100 with one GPU cut into MIG devices)"
"$helm" upgrade --install gpudra deployments/helm/gpudra --namespace gpudra --create-namespace \
  --set sim.enabled=true --set-file sim.config=deployments/demo/node.yaml --wait --timeout 2m >/dev/null
kubectl wait --for=create resourceslices --field-selector spec.driver=gpu.nvidia.com --timeout=60s >/dev/null 2>&1 || true
for _ in $(seq 1 100); do
  [ "$(kubectl get resourceslices -o name 2>/dev/null | wc -l)" -gt 0 ] && break
  sleep 0.2
done

step "Running the demo workloads"
kubectl delete pods -l app=gpudra-demo --ignore-not-found --wait=true >/dev/null
kubectl apply -f deployments/demo/workloads.yaml >/dev/null
kubectl wait --for=condition=Ready pod -l app=gpudra-demo --timeout=120s >/dev/null

step "What each container saw"
for pod in $(kubectl get pods -l app=gpudra-demo -o jsonpath='{.items[*].metadata.name}'); do
  for ctr in $(kubectl get pod "$pod" -o jsonpath='{.spec.containers[*].name}'); do
    printf '%s/%s:\n' "$pod" "$ctr"
    kubectl logs "$pod" -c "$ctr" | sed 's/^/    /'
  done
done

step "kubectl get resourceslices,resourceclaims"
kubectl get resourceslices,resourceclaims -A

cat <<MSG

The cluster is still running ($((SECONDS - start))s for this demo). Try:
    export KUBECONFIG=$KUBECONFIG PATH=$bin:\$PATH
    kubectl get resourceslices -o yaml
Stop it and remove all its state with:
    hack/localcluster/localcluster clean
MSG
