#!/usr/bin/env bash
# Build (once) and cache Kubernetes' own end-to-end test binary, e2e.test,
# v1.37.2, from the Go module proxy: `go test -c k8s.io/kubernetes/test/e2e`
# in the scratch module of kbuild.sh (the whole suite, as upstream ships it;
# about 15 minutes cold on 2 cores, less when build.sh ran first: they share
# most packages in the Go build cache).
#
# Prints a shell assignment:  eval "$(hack/cluster/e2e-build.sh)"  # E2E_BIN
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
CACHE="${APISERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-testbin}"
export GOWORK=off
BIN="$CACHE/bin"
mkdir -p "$BIN"
log() { echo "cluster/e2e-build.sh: $*" >&2; }
. "$HERE/kbuild.sh"

out="$BIN/e2e.test-$KUBE_VERSION"
if [ ! -x "$out" ]; then
  src="$CACHE/src/kube-e2e-$KUBE_VERSION"
  kube_scratch_module "$src" kubee2ebuild k8s.io/kubernetes/test/e2e
  log "building e2e.test $KUBE_VERSION (many minutes on 2 cores)"
  t0=$SECONDS
  (cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go test -c -trimpath -ldflags "$(kube_ldflags)" -o "$out.tmp" k8s.io/kubernetes/test/e2e)
  mv "$out.tmp" "$out"
  log "built e2e.test in $((SECONDS - t0))s"
fi
echo "E2E_BIN=$out"
