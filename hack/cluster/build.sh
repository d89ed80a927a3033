#!/usr/bin/env bash
# Build (once) and cache what a real node needs beyond hack/apiserver/build.sh:
# kubelet, kube-proxy, kube-controller-manager, kube-scheduler (k8s.io/kubernetes,
# scratch module, see kbuild.sh) and the CNI plugins bridge, host-local,
# loopback, portmap (github.com/containernetworking/plugins), all from the Go
# module proxy. Also runs hack/apiserver/build.sh (etcd, kube-apiserver).
#
# Idempotent; prints shell assignments:
#   eval "$(hack/cluster/build.sh)"
#   # KUBELET_BIN KUBE_PROXY_BIN KUBE_CONTROLLER_MANAGER_BIN KUBE_SCHEDULER_BIN
#   # KUBECTL_BIN CNI_BIN_DIR KUBE_APISERVER_BIN ETCD_BIN
#   # E2E_BIN (with WITH_E2E=1)
#
# WITH_E2E=1 also builds Kubernetes' end-to-end test binary, e2e.test
# (`go test -c k8s.io/kubernetes/test/e2e`, the whole suite as upstream ships
# it), in a scratch module of its own: about 8 minutes on 2 cores once the
# node binaries are built (they share most packages in the Go build cache).
#
# Env:
#   KUBE_VERSION   (default v1.37.2)
#   CNI_VERSION    github.com/containernetworking/plugins version (default v1.10.0)
#   KUBECTL_BIN    a kubectl to use instead of building v1.37.2
#   APISERVER_CACHE cache dir shared with hack/apiserver (default ~/.cache/k8s-testbin)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
CNI_VERSION="${CNI_VERSION:-v1.10.0}"
CACHE="${APISERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-testbin}"
export GOWORK=off
BIN="$CACHE/bin"
mkdir -p "$BIN"
log() { echo "cluster/build.sh: $*" >&2; }
. "$HERE/kbuild.sh"

# kubectl too: the machine's may be missing or far off v1.37 (same cache name
# as WITH_KUBECTL=1 hack/apiserver/build.sh, so either script's build serves both)
# (KUBECTL_BIN already set: not built, that one is printed)
CMDS=(cmd/kubelet cmd/kube-proxy cmd/kube-controller-manager cmd/kube-scheduler)
[ -n "${KUBECTL_BIN:-}" ] || CMDS+=(cmd/kubectl)
missing=()
for c in "${CMDS[@]}"; do [ -x "$BIN/${c##*/}-$KUBE_VERSION" ] || missing+=("$c"); done
if [ ${#missing[@]} -gt 0 ]; then
  kube_build_cmds "$CACHE/src/kube-cluster-$KUBE_VERSION" "$BIN" "${missing[@]}"
fi

CNI_DIR="$BIN/cni-plugins-$CNI_VERSION"
PLUGINS="bridge host-local loopback portmap"
need=
for p in $PLUGINS; do [ -x "$CNI_DIR/$p" ] || need=1; done
if [ -n "$need" ]; then
  src="$CACHE/src/cni-plugins-$CNI_VERSION"
  mkdir -p "$src" "$CNI_DIR"
  gover=$(GOFLAGS=-mod=mod go mod download -json "github.com/containernetworking/plugins@$CNI_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p' | xargs sed -n 's/^go \([0-9.]*\)$/\1/p')
  printf 'module cnibuild\n\ngo %s\n\nrequire github.com/containernetworking/plugins %s\n' "$gover" "$CNI_VERSION" > "$src/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "github.com/containernetworking/plugins/plugins/main/bridge"\n\t_ "github.com/containernetworking/plugins/plugins/ipam/host-local"\n\t_ "github.com/containernetworking/plugins/plugins/main/loopback"\n\t_ "github.com/containernetworking/plugins/plugins/meta/portmap"\n)\n' > "$src/tools.go"
  (cd "$src" && GOFLAGS=-mod=mod go mod tidy)
  t0=$SECONDS
  (cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$CNI_DIR/" \
     github.com/containernetworking/plugins/plugins/main/bridge \
     github.com/containernetworking/plugins/plugins/ipam/host-local \
     github.com/containernetworking/plugins/plugins/main/loopback \
     github.com/containernetworking/plugins/plugins/meta/portmap)
  log "CNI plugins $CNI_VERSION built in $((SECONDS - t0))s"
fi

E2E="$BIN/e2e.test-$KUBE_VERSION"
if [ "${WITH_E2E:-}" = 1 ] && [ ! -x "$E2E" ]; then
  src="$CACHE/src/kube-e2e-$KUBE_VERSION"
  kube_scratch_module "$src" kubee2ebuild k8s.io/kubernetes/test/e2e
  log "building e2e.test $KUBE_VERSION (many minutes on 2 cores)"
  t0=$SECONDS
  (cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go test -c -trimpath -ldflags "$(kube_ldflags)" -o "$E2E.tmp" k8s.io/kubernetes/test/e2e)
  mv "$E2E.tmp" "$E2E"
  log "built e2e.test in $((SECONDS - t0))s"
fi

"$HERE/../apiserver/build.sh"
[ "${WITH_E2E:-}" != 1 ] || echo "E2E_BIN=$E2E"
echo "KUBELET_BIN=$BIN/kubelet-$KUBE_VERSION"
echo "KUBE_PROXY_BIN=$BIN/kube-proxy-$KUBE_VERSION"
echo "KUBE_CONTROLLER_MANAGER_BIN=$BIN/kube-controller-manager-$KUBE_VERSION"
echo "KUBE_SCHEDULER_BIN=$BIN/kube-scheduler-$KUBE_VERSION"
echo "KUBECTL_BIN=${KUBECTL_BIN:-$BIN/kubectl-$KUBE_VERSION}"
echo "CNI_BIN_DIR=$CNI_DIR"
