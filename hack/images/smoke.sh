#!/usr/bin/env bash
# Prove the images of build.sh in a real containerd: start a private
# containerd (its own root, state and socket under a temp dir; the system's
# defaults are not touched), `ctr images import` each tarball, run each image
# once, then stop containerd and remove everything it made.
#
#   hack/images/smoke.sh          # as root; needs Debian's containerd and runc
#   ONLY="palisade pause" hack/images/smoke.sh   # some of them
#   ONLY="palisade pause agnhost nginx" hack/images/smoke.sh  # and the opt-in one
#
# Checks: palisade --help prints its usage; pause runs until SIGTERM and
# exits 0 on it; agnhost --help lists porter and connect, `agnhost porter`
# serves SERVE_PORT_8080 and `agnhost connect` reaches it from an exec in the
# same container (how the NetworkPolicy e2e tests probe), and serve-hostname
# answers.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
eval "$("$HERE/build.sh")"

NS=palisade-images-smoke
TMP="$(mktemp -d /tmp/palisade-images-smoke.XXXXXX)"
SOCK="$TMP/containerd.sock"
CTR=(ctr --address "$SOCK" --namespace "$NS")
fail=0
log() { echo "smoke: $*" >&2; }

cat > "$TMP/config.toml" <<EOF
version = 2
root = "$TMP/root"
state = "$TMP/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$TMP/opt"
EOF

# The runc shim keeps its sockets, fifos and runc state under /run/containerd
# whatever the daemon's state dir: remove what we made there (if empty).
RUNDIRS_BEFORE="$(ls -d /run/containerd /run/containerd/* 2>/dev/null || true)"

containerd --config "$TMP/config.toml" > "$TMP/containerd.log" 2>&1 &
CPID=$!

SERVE_PID=
cleanup() {
  set +e
  [ -z "$SERVE_PID" ] || { kill "$SERVE_PID"; wait "$SERVE_PID"; } 2>/dev/null
  for id in $("${CTR[@]}" tasks ls -q 2>/dev/null); do "${CTR[@]}" tasks kill -s SIGKILL "$id"; done
  sleep 1
  for id in $("${CTR[@]}" containers ls -q 2>/dev/null); do
    "${CTR[@]}" tasks delete -f "$id" >/dev/null 2>&1; "${CTR[@]}" containers delete "$id"
  done
  for img in $("${CTR[@]}" images ls -q 2>/dev/null); do "${CTR[@]}" images rm "$img" >/dev/null; done
  kill "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null
  # Anything still mounted under the temp dir (a crashed run's rootfs).
  grep -o " $TMP/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m"; done
  # The cgroups runc made for the namespace (v1: one per controller; v2: one).
  for d in /sys/fs/cgroup/*/"$NS" /sys/fs/cgroup/"$NS"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  rm -rf "/run/containerd/runc/$NS" "$TMP"
  for d in /run/containerd/fifo /run/containerd/runc /run/containerd/s /run/containerd; do
    echo "$RUNDIRS_BEFORE" | grep -qx "$d" || rmdir "$d" 2>/dev/null
  done
  true
}
trap cleanup EXIT

for _ in $(seq 50); do "${CTR[@]}" version >/dev/null 2>&1 && break; sleep 0.2; done
"${CTR[@]}" version >/dev/null

stopped() { # stopped ID: wait up to 10s for the task to be STOPPED
  for _ in $(seq 50); do
    [ "$("${CTR[@]}" tasks ls | awk -v id="$1" '$1 == id {print $3}')" = STOPPED ] && return 0
    sleep 0.2
  done
  return 1
}

check() { # check NAME CMD...: run CMD, report ok/FAIL
  local n="$1"; shift
  if "$@"; then log "ok   $n"; else log "FAIL $n"; fail=1; fi
}

for tar in ${PALISADE_IMAGE_TAR:-} ${PAUSE_IMAGE_TAR:-} ${AGNHOST_IMAGE_TAR:-} ${NGINX_IMAGE_TAR:-}; do
  t0=$(date +%s.%N)
  "${CTR[@]}" images import "$tar" >/dev/null
  log "imported $(basename "$tar") ($(du -h "$tar" | cut -f1)) in $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-4)s"
done
"${CTR[@]}" images ls | awk 'NR==1 || /palisade|pause|agnhost|nginx/ {print "smoke:   " $1, $4, $5}' >&2

# palisade: --help is its usage.
palisade_help() {
  local out
  out=$("${CTR[@]}" run --rm "$PALISADE_IMAGE" smoke-palisade /palisade --help 2>&1 || true)
  echo "$out" | head -5 | sed 's/^/smoke:   | /' >&2
  echo "$out" | grep -qi "usage" && echo "$out" | grep -q agent
}
[ -z "${PALISADE_IMAGE:-}" ] || check "palisade --help prints usage" palisade_help

# palisade agent with the image's own entrypoint and cmd, as the DaemonSet's
# securityContext has it (read-only root, only NET_ADMIN),
# outside a cluster: it must get as far as the in-cluster configuration
# (no service-account token here) and fail on that, not on the image.
palisade_agent() {
  local out
  out=$("${CTR[@]}" run --rm --read-only --cap-drop CAP_ALL --cap-add CAP_NET_ADMIN \
    --env NODE_NAME=smoke "$PALISADE_IMAGE" smoke-palisade-agent 2>&1 || true)
  echo "$out" | tail -3 | sed 's/^/smoke:   | /' >&2
  echo "$out" | grep -qi "in-cluster\|KUBERNETES_SERVICE_HOST\|serviceaccount\|kubeconfig"
}
[ -z "${PALISADE_IMAGE:-}" ] || check "palisade agent (image cmd, read-only root, 2 caps) reaches in-cluster config" palisade_agent

# pause: the image's own entrypoint and user, runs until SIGTERM.
pause_runs() {
  "${CTR[@]}" run -d "$PAUSE_IMAGE" smoke-pause >/dev/null
  sleep 2
  local st; st=$("${CTR[@]}" tasks ls | awk '$1 == "smoke-pause" {print $3}')
  [ "$st" = RUNNING ] || { log "pause is $st"; return 1; }
  local pid; pid=$("${CTR[@]}" tasks ls | awk '$1 == "smoke-pause" {print $2}')
  log "  pause pid $pid runs as uid $(awk '/^Uid:/ {print $2}' "/proc/$pid/status"), $(readlink "/proc/$pid/exe")"
  "${CTR[@]}" tasks kill -s SIGTERM smoke-pause
  stopped smoke-pause || { log "pause did not stop on SIGTERM"; return 1; }
  # ctr 1.6 has no `tasks wait`; `tasks delete` exits with the task's status.
  local code=0; "${CTR[@]}" tasks delete smoke-pause >/dev/null 2>&1 || code=$?
  "${CTR[@]}" containers delete smoke-pause
  log "  pause exited with status $code on SIGTERM"
  [ "$code" = 0 ]
}
[ -z "${PAUSE_IMAGE:-}" ] || check "pause runs until SIGTERM" pause_runs

agnhost_help() {
  local out; out=$("${CTR[@]}" run --rm "$AGNHOST_IMAGE" smoke-agnhost-help /agnhost --help 2>&1 || true)
  echo "$out" | grep -q porter && echo "$out" | grep -q connect && echo "$out" | grep -q serve-hostname
}
[ -z "${AGNHOST_IMAGE:-}" ] || check "agnhost --help lists porter, connect, serve-hostname" agnhost_help

# As netpol/model.go runs it: command /agnhost porter, SERVE_TCP_PORT_80-style env.
agnhost_porter() {
  "${CTR[@]}" run -d --env SERVE_PORT_8080=foo --env SERVE_TLS_PORT_8443=tls "$AGNHOST_IMAGE" smoke-porter /agnhost porter >/dev/null
  sleep 2
  # As netpol/kubemanager.go probes: an exec of /agnhost connect HOST:PORT --timeout=... --protocol=tcp.
  local rc=0
  "${CTR[@]}" tasks exec --exec-id c1 smoke-porter /agnhost connect 127.0.0.1:8080 --timeout=3s --protocol=tcp || rc=$?
  log "  agnhost connect 127.0.0.1:8080 (porter listening): exit $rc"
  local rc2=0
  "${CTR[@]}" tasks exec --exec-id c2 smoke-porter /agnhost connect 127.0.0.1:8081 --timeout=3s --protocol=tcp 2>/dev/null || rc2=$?
  log "  agnhost connect 127.0.0.1:8081 (nothing listening): exit $rc2"
  "${CTR[@]}" tasks kill -s SIGKILL smoke-porter; stopped smoke-porter || true
  "${CTR[@]}" tasks delete smoke-porter >/dev/null 2>&1 || true
  "${CTR[@]}" containers delete smoke-porter
  [ "$rc" = 0 ] && [ "$rc2" != 0 ]
}
[ -z "${AGNHOST_IMAGE:-}" ] || check "agnhost porter + connect via exec" agnhost_porter

agnhost_serve_hostname() {
  "${CTR[@]}" run -d "$AGNHOST_IMAGE" smoke-sh /agnhost serve-hostname --tcp --http=false --port 9376 >/dev/null
  sleep 2
  local rc=0
  "${CTR[@]}" tasks exec --exec-id c1 smoke-sh /agnhost connect 127.0.0.1:9376 --timeout=3s --protocol=tcp || rc=$?
  "${CTR[@]}" tasks kill -s SIGKILL smoke-sh; stopped smoke-sh || true
  "${CTR[@]}" tasks delete smoke-sh >/dev/null 2>&1 || true
  "${CTR[@]}" containers delete smoke-sh
  [ "$rc" = 0 ]
}
[ -z "${AGNHOST_IMAGE:-}" ] || check "agnhost serve-hostname --tcp answers connect" agnhost_serve_hostname

# nginx stand-in (ONLY=... nginx), pulled as docker.io/library/nginx:latest
# through a docker.io mirror that is `mkimage serve`: serve-hostname on :80
# answers the curl inside it.
nginx_via_registry() {
  "$MKIMAGE_BIN" serve -addr 127.0.0.1:0 "$NGINX_IMAGE_TAR" > "$TMP/serve.out" 2> "$TMP/serve.err" &
  SERVE_PID=$!
  local addr=""
  for _ in $(seq 50); do addr=$(awk '$1 == "ready" {print $2}' "$TMP/serve.out"); [ -n "$addr" ] && break; sleep 0.2; done
  [ -n "$addr" ] || { log "mkimage serve did not start"; cat "$TMP/serve.err" >&2; return 1; }
  # A mirror for docker.io in hosts.toml form: what containerd's CRI reads
  # with `config_path` set (plugins."io.containerd.grpc.v1.cri".registry).
  mkdir -p "$TMP/certs.d/docker.io"
  printf 'server = "https://registry-1.docker.io"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' "$addr" > "$TMP/certs.d/docker.io/hosts.toml"
  local ref="$NGINX_IMAGE"
  "${CTR[@]}" images rm "$ref" >/dev/null   # imported above: pull it for real
  "${CTR[@]}" images pull --hosts-dir "$TMP/certs.d" "$ref" >/dev/null || return 1
  log "  pulled $ref through a docker.io mirror (hosts.toml) at mkimage serve $addr"
  "${CTR[@]}" run -d "$ref" smoke-nginx >/dev/null
  sleep 2
  local out rc=0
  out=$("${CTR[@]}" tasks exec --exec-id c1 smoke-nginx curl -sS --max-time 3 http://localhost/ 2>&1) || rc=$?
  log "  curl http://localhost/ in it: exit $rc, answer: $out"
  "${CTR[@]}" tasks kill -s SIGKILL smoke-nginx; stopped smoke-nginx || true
  "${CTR[@]}" tasks delete smoke-nginx >/dev/null 2>&1 || true
  "${CTR[@]}" containers delete smoke-nginx
  kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null; SERVE_PID=
  [ "$rc" = 0 ] && [ -n "$out" ]
}
[ -z "${NGINX_IMAGE:-}" ] || check "nginx stand-in pulled from mkimage serve, curl inside" nginx_via_registry

if [ "$fail" = 0 ]; then log "all images ok"; else log "FAILED"; fi
exit "$fail"
