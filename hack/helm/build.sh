#!/usr/bin/env bash
# Builds the helm binary from the Helm release pinned in go.mod (no binary
# downloads: only the Go module proxy is needed). The binary is cached outside
# git by the hash of go.mod, go.sum and this script, so a second run builds
# nothing.
#
#   hack/helm/build.sh
#
# Prints the binary's path on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
key=$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)
cache=${GPUDRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gpudra}
bin=$cache/helm/$key/bin
helm=$bin/helm

if [ ! -x "$helm" ]; then
  mkdir -p "$bin"
  cd "$here"
  # The version comes from go.mod so `helm version` reports the release
  # pinned there rather than a development build.
  version=$(go list -m -f '{{.Version}}' helm.sh/helm/v4)
  echo ">> building helm $version" >&2
  start=$SECONDS
  # A per-process temporary name and a rename keep concurrent runs (parallel
  # test packages) from seeing a half-written binary.
  CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$version -X helm.sh/helm/v4/internal/version.metadata= -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
    -o "$helm.tmp.$$" helm.sh/helm/v4/cmd/helm
  mv "$helm.tmp.$$" "$helm"
  echo ">> built helm in $((SECONDS-start))s" >&2
fi
echo "$helm"
