#!/usr/bin/env bash
# `make soak`: the long runs of BENCHMARKS.md ("Node state under faults"):
# crash injection at full count, a prepare/unprepare soak, and fuzzing of
# the config decoder and the checkpoint loader. Each starts (and stops) its
# own etcd and kube-apiserver on 127.0.0.1; JSON results go to _output/soak/.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export CGO_ENABLED=1 CGO_CFLAGS=${CGO_CFLAGS:--Wno-deprecated-declarations}
out=$repo/_output/soak
mkdir -p "$out"
CRASH_RUNS=${CRASH_RUNS:-1000}
CRASH_DYNAMIC_RUNS=${CRASH_DYNAMIC_RUNS:-500}
CRASH_SHARING_RUNS=${CRASH_SHARING_RUNS:-300}
SOAK_CYCLES=${SOAK_CYCLES:-10000}
FUZZ_TIME=${FUZZ_TIME:-5m}

section() { printf '\n## %s\n\n' "$*"; }

make --no-print-directory build >/dev/null
go build -tags failpoints -o _output/bin/failpoints/gpudra-kubelet-plugin ./cmd/gpudra-kubelet-plugin
hack/localcluster/build.sh etcd kube-apiserver >/dev/null

echo "# gpudra soak — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(go version | cut -d' ' -f3)"

section "Crash injection ($CRASH_RUNS runs)"
_output/bin/gpudra bench crash --plugin=_output/bin/failpoints/gpudra-kubelet-plugin \
  --runs="$CRASH_RUNS" --repo=. --keep-failed="$out/crash-failed" --json-out="$out/crash.json" | tail -n 20

section "Crash injection, dynamic MIG ($CRASH_DYNAMIC_RUNS runs)"
_output/bin/gpudra bench crash --plugin=_output/bin/failpoints/gpudra-kubelet-plugin --dynamic-mig \
  --runs="$CRASH_DYNAMIC_RUNS" --repo=. --keep-failed="$out/crash-dynamic-failed" --json-out="$out/crash-dynamic.json" | tail -n 20

section "Crash injection, time-slicing and MPS ($CRASH_SHARING_RUNS runs)"
_output/bin/gpudra bench crash --plugin=_output/bin/failpoints/gpudra-kubelet-plugin --sharing="$PWD/_output/bin/gpudra-sim-mps" \
  --runs="$CRASH_SHARING_RUNS" --repo=. --keep-failed="$out/crash-sharing-failed" --json-out="$out/crash-sharing.json" | tail -n 20

section "Soak ($SOAK_CYCLES prepare/unprepare cycles)"
_output/bin/gpudra bench soak --plugin=_output/bin/gpudra-kubelet-plugin \
  --cycles="$SOAK_CYCLES" --repo=. --json-out="$out/soak.json"

section "Fuzzing ($FUZZ_TIME per target)"
fuzz() {
  local target=$1 pkg=$2
  # The last status line says how many inputs were run; a crasher is
  # written to the package's testdata/fuzz and fails the command.
  go test -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZ_TIME" "$pkg" 2>&1 | tee "$out/fuzz-$target.log" |
    grep -E '^(fuzz: elapsed|ok|FAIL|--- FAIL)' | tail -n 2
}
fuzz FuzzDecode ./api/resource.nvidia.com/v1beta1/
fuzz FuzzLoad ./internal/checkpoint/
