#!/usr/bin/env bash
# Build (once) the container images a cluster on this machine needs, without
# Docker and without a registry, as image tarballs for `ctr images import`:
#
#   palisade  the agent, what ../../Dockerfile describes (static binary on a
#             distroless-static-like base), from this working tree
#   pause     the sandbox image, from k8s.io/kubernetes's build/pause/linux/pause.c
#   agnhost   the e2e test image, from k8s.io/kubernetes/test/images/agnhost
#   nginx     (opt-in) a stand-in for docker.io/library/nginx:latest, see build_nginx
#   agnhost-npapi (opt-in) agnhost:2.45 with bash, for the network-policy-api
#             conformance suite, see build_agnhost_npapi
#
# Idempotent: an image is rebuilt only when its inputs changed (the palisade
# binary is rebuilt by `go build`, which its build cache makes quick, and the
# image only when the binary's digest or HEAD changed). Prints shell assignments
# (NAME_IMAGE, NAME_IMAGE_TAR for each image, and MKIMAGE_BIN, whose
# `serve` subcommand is a registry for the tarballs):
#
#   eval "$(hack/images/build.sh)"
#   ctr -n k8s.io images import "$PALISADE_IMAGE_TAR"   # and PAUSE_, AGNHOST_
#
# Env:
#   PALISADE_VERSION    the agent image tag  (default v0.1.0)
#   PALISADE_REPO       the agent image repo (default ghcr.io/palisade-net/palisade, as deploy/)
#   KUBE_VERSION        k8s.io/kubernetes version for pause and agnhost (default v1.37.2)
#   IMAGES_CACHE        cache dir (default ${XDG_CACHE_HOME:-$HOME/.cache}/palisade-images)
#   ONLY                build only these images, e.g. ONLY="palisade pause"
#                       (default "palisade pause agnhost"; "nginx" and "agnhost-npapi" are opt-in)
#
# Needs: go, gcc with a static libc (Debian's libc6-dev), the Go module proxy.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PALISADE_VERSION="${PALISADE_VERSION:-v0.1.0}"
PALISADE_REPO="${PALISADE_REPO:-ghcr.io/palisade-net/palisade}"
KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
CACHE="${IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/palisade-images}"
ONLY="${ONLY:-palisade pause agnhost}"
export GOWORK=off

# Names the cluster asks for. pause: kubeadm's constants.PauseVersion of
# v1.37 is 3.10.2 (build/pause/Makefile TAG); kubelet v1.37 has no
# --pod-infra-container-image any more, the runtime picks the sandbox image,
# and Debian bookworm's containerd 1.6.20 defaults to registry.k8s.io/pause:3.6,
# so the tarball carries both names (one image). agnhost: test/utils/image/
# manifest.go configs[Agnhost] of v1.37.2 (test/images/agnhost/VERSION).
PAUSE_TAG=3.10.2
PAUSE_NAMES="registry.k8s.io/pause:$PAUSE_TAG registry.k8s.io/pause:3.6"
AGNHOST_TAG=2.66.1
AGNHOST_NAME="registry.k8s.io/e2e-test-images/agnhost:$AGNHOST_TAG"
PALISADE_NAME="$PALISADE_REPO:$PALISADE_VERSION"

log() { echo "images/build.sh: $*" >&2; }
. "$REPO/hack/cluster/kbuild.sh"
sha() { sha256sum "$@" | cut -d" " -f1 | sha256sum | cut -c1-16; }   # digest of the files' digests (not their names)
mkdir -p "$CACHE/bin" "$CACHE/images" "$CACHE/work"
# One build at a time per cache (the cluster's up.sh and smoke.sh may both call this).
exec 9>"$CACHE/.lock"
flock 9

# The image writer: its own module (hack/images/mkimage), so the product's
# go.mod does not grow.
MKIMAGE="$CACHE/bin/mkimage-$(cd "$HERE/mkimage" && sha go.mod go.sum main.go)"
if [ ! -x "$MKIMAGE" ]; then
  log "building mkimage"
  (cd "$HERE/mkimage" && GOFLAGS=-mod=mod go build -trimpath -o "$MKIMAGE.tmp" .)
  mv "$MKIMAGE.tmp" "$MKIMAGE"
fi

# fresh TAR KEY: whether TAR exists and was built from inputs KEY.
fresh() { [ -f "$1" ] && [ "$(cat "$1.key" 2>/dev/null)" = "$2" ]; }
# rootfs DIR: a fresh staging directory with a minimal /etc and /tmp.
rootfs() {
  rm -rf "$1"; mkdir -p "$1/etc" "$1/tmp"; chmod 1777 "$1/tmp"
  printf 'hosts: files dns\n' > "$1/etc/nsswitch.conf"
}

build_palisade() {
  local w="$CACHE/work/palisade" t0=$SECONDS
  mkdir -p "$w"
  # As the Dockerfile's build stage: no cgo, trimmed, stripped.
  (cd "$REPO" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 \
    go build -trimpath -ldflags="-s -w" -o "$w/palisade.new" ./cmd/palisade)
  local rev epoch key tar="$CACHE/images/palisade-$PALISADE_VERSION.tar"
  rev=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
  epoch=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 0)
  key="$(sha "$w/palisade.new" "$MKIMAGE" "${BASH_SOURCE[0]}") $PALISADE_NAME $rev"
  if fresh "$tar" "$key"; then rm -f "$w/palisade.new"; return; fi
  log "palisade: image $PALISADE_NAME"
  local r="$w/rootfs"
  rootfs "$r"
  install -m 0755 "$w/palisade.new" "$r/palisade"
  rm -f "$w/palisade.new"
  # What distroless/static-debian12 gives a static binary: passwd/group with
  # root, nobody and nonroot (65532), a home for nonroot, CA certificates
  # (the agent uses the in-cluster service-account CA, not these; they are
  # here for parity), /tmp. No shell, no tzdata (the agent logs in UTC).
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' > "$r/etc/group"
  mkdir -p "$r/root" "$r/home/nonroot"; chmod 0700 "$r/root" "$r/home/nonroot"
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$r/etc/ssl/certs"
    install -m 0644 /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
  fi
  # uid 0, as the Dockerfile says (static-debian12, not :nonroot): the
  # DaemonSet's added capabilities take effect for uid 0 alone.
  "$MKIMAGE" -o "$tar" -t "$PALISADE_NAME" -epoch "$epoch" \
    -entrypoint /palisade -cmd agent -user 0:0 \
    -env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    -chown home/nonroot=65532:65532 \
    -label org.opencontainers.image.title=palisade \
    -label org.opencontainers.image.source=https://github.com/palisade-net/palisade \
    -label "org.opencontainers.image.version=$PALISADE_VERSION" \
    -label "org.opencontainers.image.revision=$rev" \
    "$r"
  echo "$key" > "$tar.key"
  log "palisade: $(du -h "$tar" | cut -f1) in $((SECONDS - t0))s"
}

# kube_src: the k8s.io/kubernetes module's directory in the module cache.
kube_src() {
  go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p'
}

build_pause() {
  local tar="$CACHE/images/pause-$PAUSE_TAG.tar" src key t0=$SECONDS
  src="$(kube_src)/build/pause/linux/pause.c"
  [ -f "$src" ] || { log "no $src"; exit 1; }
  # build/pause/Makefile's CFLAGS (-Os -Wall -Werror -static -DVERSION=...).
  local cflags="-Os -Wall -Werror -static -DVERSION=v$PAUSE_TAG-$KUBE_VERSION"
  key="$(sha "$src" "$MKIMAGE" "${BASH_SOURCE[0]}") $cflags $PAUSE_NAMES"
  if fresh "$tar" "$key"; then return; fi
  log "pause: image $PAUSE_NAMES"
  local w="$CACHE/work/pause" r="$CACHE/work/pause/rootfs"
  mkdir -p "$w"; rm -rf "$r"; mkdir -p "$r"
  # shellcheck disable=SC2086
  gcc $cflags -o "$w/pause" "$src"
  strip "$w/pause"
  install -m 0755 "$w/pause" "$r/pause"
  local tags=() n
  for n in $PAUSE_NAMES; do tags+=(-t "$n"); done
  # build/pause/Dockerfile: ADD pause /pause, USER 65535:65535, ENTRYPOINT ["/pause"].
  "$MKIMAGE" -o "$tar" "${tags[@]}" -entrypoint /pause -user 65535:65535 \
    -label "org.opencontainers.image.source=https://github.com/kubernetes/kubernetes/tree/$KUBE_VERSION/build/pause" \
    "$r"
  echo "$key" > "$tar.key"
  log "pause: $(du -h "$tar" | cut -f1) in $((SECONDS - t0))s"
}

# agnhost_bin: build (once) the agnhost binary; sets AG (its source dir) and AGNHOST_BIN.
agnhost_bin() {
  local dir
  dir="$(kube_src)"
  AG="$dir/test/images/agnhost"
  [ "$(cat "$AG/VERSION")" = "$AGNHOST_TAG" ] || {
    log "k8s.io/kubernetes@$KUBE_VERSION has agnhost $(cat "$AG/VERSION"), this script names $AGNHOST_TAG"; exit 1; }
  local w="$CACHE/work/agnhost-$KUBE_VERSION"
  AGNHOST_BIN="$w/agnhost"
  mkdir -p "$w/src"
  [ -x "$AGNHOST_BIN" ] && return
  # The scratch-module trick (hack/cluster/kbuild.sh, shared with
  # hack/apiserver and hack/cluster): k8s.io/kubernetes replaces every
  # k8s.io/* staging module with ./staging/src/...
  kube_scratch_module "$w/src" agnhostbuild k8s.io/kubernetes/test/images/agnhost
  log "agnhost: building $AGNHOST_TAG (a few minutes on 2 cores)"
  # test/images/image-util.sh bin: CGO_ENABLED=0, -ldflags "-w -X main.Version=...".
  (cd "$w/src" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOFLAGS=-mod=mod \
    go build -trimpath -ldflags "-s -w -X main.Version=$AGNHOST_TAG" -o "$AGNHOST_BIN.tmp" k8s.io/kubernetes/test/images/agnhost)
  mv "$AGNHOST_BIN.tmp" "$AGNHOST_BIN"
}

build_agnhost() {
  local tar="$CACHE/images/agnhost-$AGNHOST_TAG.tar" key t0=$SECONDS
  agnhost_bin
  local ag="$AG" bin="$AGNHOST_BIN" w="$CACHE/work/agnhost-$KUBE_VERSION"
  key="$(sha "$bin" "$ag/porter/localhost.crt" "$ag/porter/localhost.key" "$MKIMAGE" "${BASH_SOURCE[0]}") $AGNHOST_NAME"
  if fresh "$tar" "$key"; then return; fi
  log "agnhost: image $AGNHOST_NAME"
  local r="$w/rootfs"
  rootfs "$r"
  install -m 0755 "$bin" "$r/agnhost"
  # test/images/agnhost/Dockerfile, minus alpine's tools (no shell, curl, nc,
  # dig, iperf: the NetworkPolicy e2e tests exec only /agnhost connect and run
  # /agnhost porter): agnhost-2 for the entrypoint tests, porter's TLS pair,
  # netexec's /uploads, the user and group the SupplementalGroups test expects.
  ln -s agnhost "$r/agnhost-2"
  install -m 0644 "$ag/porter/localhost.crt" "$ag/porter/localhost.key" "$r/"
  mkdir -p "$r/uploads" "$r/home/user-defined-in-image"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\nuser-defined-in-image:x:1000:1000:Linux User,,,:/home/user-defined-in-image:/bin/sh\n' > "$r/etc/passwd"
  printf 'root:x:0:root\nnobody:x:65533:\nnogroup:x:65534:\nuser-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' > "$r/etc/group"
  local p ports=()
  for p in 80 8080 8081 9376 5000; do ports+=(-expose "$p/tcp"); done
  "$MKIMAGE" -o "$tar" -t "$AGNHOST_NAME" -entrypoint /agnhost -cmd pause "${ports[@]}" \
    -chown home/user-defined-in-image=1000:1000 \
    -label "org.opencontainers.image.source=https://github.com/kubernetes/kubernetes/tree/$KUBE_VERSION/test/images/agnhost" \
    -label "org.opencontainers.image.version=$AGNHOST_TAG" \
    "$r"
  echo "$key" > "$tar.key"
  log "agnhost: $(du -h "$tar" | cut -f1) in $((SECONDS - t0))s"
}

# nginx: a stand-in for docker.io/library/nginx:latest, which the seed
# walkthrough's manifests name (`image: nginx`) and exec `curl` in. Not nginx:
# agnhost serve-hostname on :80 (any path answers the pod's hostname, i.e.
# its name) and Debian's curl (the host's /usr/bin/curl with the shared
# libraries ldd lists, and CA certificates). Opt-in (ONLY=... nginx): `:latest`
# means imagePullPolicy Always, so it is useful only behind a registry
# mirror (`mkimage serve`, see README.md).
NGINX_NAME="docker.io/library/nginx:latest"
build_nginx() {
  local tar="$CACHE/images/nginx-standin.tar" key t0=$SECONDS
  agnhost_bin
  command -v curl >/dev/null || { log "nginx: no curl on this host (apt-get install -y curl)"; exit 1; }
  local curl libs
  curl="$(readlink -f "$(command -v curl)")"
  libs=$(ldd "$curl" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
  # shellcheck disable=SC2086
  key="$(sha "$AGNHOST_BIN" "$curl" $libs "$MKIMAGE" "${BASH_SOURCE[0]}") $NGINX_NAME"
  if fresh "$tar" "$key"; then return; fi
  log "nginx: stand-in image $NGINX_NAME"
  local r="$CACHE/work/nginx/rootfs" l
  mkdir -p "$CACHE/work/nginx"; rootfs "$r"
  install -m 0755 "$AGNHOST_BIN" "$r/agnhost"
  install -D -m 0755 "$curl" "$r/usr/bin/curl"
  for l in $libs; do install -D -m 0644 "$(readlink -f "$l")" "$r$l"; done
  [ -e /lib64/ld-linux-x86-64.so.2 ] && chmod 0755 "$r/lib64/ld-linux-x86-64.so.2" 2>/dev/null || true
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
  fi
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$r/etc/group"
  "$MKIMAGE" -o "$tar" -t "$NGINX_NAME" -entrypoint '["/agnhost","serve-hostname","--http","--port","80"]' \
    -expose 80/tcp \
    -label "org.opencontainers.image.description=not nginx: a stand-in for the seed walkthrough (agnhost serve-hostname on :80, Debian's curl)" \
    "$r"
  echo "$key" > "$tar.key"
  log "nginx: $(du -h "$tar" | cut -f1) in $((SECONDS - t0))s"
}

# agnhost-npapi: the image sigs.k8s.io/network-policy-api v0.3.0's conformance
# suite names (conformance/base/manifests.yaml: agnhost:2.45, every server
# container started as `/bin/bash -c "/agnhost serve-hostname|netexec|porter ..."`,
# probes exec'd as `/agnhost connect`). Not 2.45: the agnhost of
# KUBE_VERSION (AGNHOST_TAG, as the agnhost image; its serve-hostname,
# netexec, porter and connect take the flags the suite passes) plus Debian's
# bash (the host's /bin/bash and the shared libraries ldd lists), which the
# agnhost image above leaves out. Opt-in (ONLY=... agnhost-npapi);
# hack/cluster/npapi-conformance.sh imports it.
AGNHOST_NPAPI_NAME="registry.k8s.io/e2e-test-images/agnhost:2.45"
build_agnhost_npapi() {
  local tar="$CACHE/images/agnhost-npapi-2.45.tar" key t0=$SECONDS
  agnhost_bin
  local bash libs l r="$CACHE/work/agnhost-npapi/rootfs"
  bash="$(readlink -f /bin/bash)"
  [ -x "$bash" ] || { log "agnhost-npapi: no /bin/bash on this host"; exit 1; }
  libs=$(ldd "$bash" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
  # shellcheck disable=SC2086
  key="$(sha "$AGNHOST_BIN" "$bash" $libs "$MKIMAGE" "${BASH_SOURCE[0]}") $AGNHOST_NPAPI_NAME"
  if fresh "$tar" "$key"; then return; fi
  log "agnhost-npapi: image $AGNHOST_NPAPI_NAME (agnhost $AGNHOST_TAG, bash)"
  mkdir -p "$CACHE/work/agnhost-npapi"; rootfs "$r"
  install -m 0755 "$AGNHOST_BIN" "$r/agnhost"
  install -D -m 0755 "$bash" "$r/bin/bash"
  for l in $libs; do install -D -m 0644 "$(readlink -f "$l")" "$r$l"; done
  [ -e /lib64/ld-linux-x86-64.so.2 ] && chmod 0755 "$r/lib64/ld-linux-x86-64.so.2" 2>/dev/null || true
  printf 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$r/etc/group"
  "$MKIMAGE" -o "$tar" -t "$AGNHOST_NPAPI_NAME" -entrypoint /agnhost -cmd pause \
    -label "org.opencontainers.image.description=not agnhost 2.45: agnhost $AGNHOST_TAG ($KUBE_VERSION) and Debian's bash, for the network-policy-api conformance suite" \
    -label "org.opencontainers.image.version=$AGNHOST_TAG" \
    "$r"
  echo "$key" > "$tar.key"
  log "agnhost-npapi: $(du -h "$tar" | cut -f1) in $((SECONDS - t0))s"
}

echo "MKIMAGE_BIN=$MKIMAGE"
for img in $ONLY; do
  case "$img" in
    palisade) build_palisade
      echo "PALISADE_IMAGE=$PALISADE_NAME"
      echo "PALISADE_IMAGE_TAR=$CACHE/images/palisade-$PALISADE_VERSION.tar" ;;
    pause) build_pause
      echo "PAUSE_IMAGE=registry.k8s.io/pause:$PAUSE_TAG"
      echo "PAUSE_IMAGE_TAR=$CACHE/images/pause-$PAUSE_TAG.tar" ;;
    agnhost) build_agnhost
      echo "AGNHOST_IMAGE=$AGNHOST_NAME"
      echo "AGNHOST_IMAGE_TAR=$CACHE/images/agnhost-$AGNHOST_TAG.tar" ;;
    nginx) build_nginx
      echo "NGINX_IMAGE=$NGINX_NAME"
      echo "NGINX_IMAGE_TAR=$CACHE/images/nginx-standin.tar" ;;
    agnhost-npapi) build_agnhost_npapi
      echo "AGNHOST_NPAPI_IMAGE=$AGNHOST_NPAPI_NAME"
      echo "AGNHOST_NPAPI_IMAGE_TAR=$CACHE/images/agnhost-npapi-2.45.tar" ;;
    *) log "unknown image $img (palisade, pause, agnhost, nginx, agnhost-npapi)"; exit 2 ;;
  esac
done
