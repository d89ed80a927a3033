#!/usr/bin/env bash
# The start-up window, measured on the real node: with a default-deny policy
# in place, how long a new pod can talk before its rules exist, with the
# agent's guard (--drop-unknown-pod-ips, the default: a local pod address
# that the agent does not know yet is dropped) and without it; and what the
# guard costs: how long after its address exists a new pod's ALLOWED
# traffic first passes. As root; the cluster is torn down on any exit.
#
#   hack/cluster/window.sh          # make cluster-window; PODS=N (default 10) per case
#
# How: a one-node cluster with Palisade from deploy/; a server (agnhost
# netexec :8080) in namespace win-target; namespace win-deny has a
# default-deny policy (ingress and egress), win-allow one that allows egress
# to win-target only. For each new pod (the pause image: nothing runs in it,
# the probes do) a watcher on the host finds the pod's network namespace the
# moment containerd makes it, waits for the CNI to give eth0 its address
# (t=0), then connects from inside it to the server every ~10 ms for
# WINDOW_SECS (default 4) seconds (curl, 100 ms connect timeout). A pod in
# win-deny must never connect; one in win-allow should, as soon as its
# rules exist. Prints a markdown table; exits 1 if, with the guard, a
# default-deny pod connected or an allowed pod never did.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/common.sh"
[ "$(id -u)" = 0 ] || { echo "window.sh: run as root" >&2; exit 2; }
PODS="${PODS:-10}"
WINDOW_SECS="${WINDOW_SECS:-4}"
log() { echo "window.sh: $*" >&2; }

if ! NODES=1 IMAGES="pause agnhost palisade" "$HERE/up.sh" >/dev/null; then log "the cluster did not come up"; exit 1; fi
finish() { local rc=$?; trap - EXIT INT TERM; [ "${KEEP:-}" = 1 ] || "$HERE/down.sh" >/dev/null 2>&1; exit "$rc"; }
trap finish EXIT
trap 'exit 130' INT TERM
kubectl() { "$HERE/kubectl.sh" "$@"; }
deploy_palisade kubectl || exit 1
# the node's image names, one per line (read once)
IMAGE_NAMES=$(kubectl get nodes -o jsonpath='{.items[0].status.images[*].names}' | tr -d '[]"' | tr ', ' '\n\n')
PAUSE=$(grep -m1 '^registry.k8s.io/pause:' <<<"$IMAGE_NAMES")
AGNHOST=$(grep -m1 'agnhost:' <<<"$IMAGE_NAMES")
[ -n "$PAUSE" ] && [ -n "$AGNHOST" ] || { log "pause or agnhost image missing on the node"; exit 1; }

kubectl apply -f - >/dev/null <<EOF2 || exit 1
apiVersion: v1
kind: Namespace
metadata: {name: win-target}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: win-target, labels: {app: server}}
spec:
  containers:
  - {name: netexec, image: $AGNHOST, args: [netexec, --http-port=8080], ports: [{containerPort: 8080}]}
EOF2
# the two namespaces whose new pods are probed, and their policies
apply_cases() {
  kubectl apply -f - >/dev/null <<EOF2
apiVersion: v1
kind: Namespace
metadata: {name: win-deny}
---
apiVersion: v1
kind: Namespace
metadata: {name: win-allow}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: win-deny}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-to-server, namespace: win-allow}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: win-target}}
      podSelector: {matchLabels: {app: server}}
    ports: [{protocol: TCP, port: 8080}]
EOF2
}
apply_cases || exit 1
kubectl -n win-target wait --for=condition=Ready pod/server --timeout=120s >/dev/null || exit 1
SERVER=$(kubectl -n win-target get pod server -o jsonpath='{.status.podIP}')
log "server $SERVER:8080"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
netns_dir=$(find "$CLUSTER_RUN_DIR" -type d -name netns -path '*containerd*' | head -1)
[ -d "$netns_dir" ] || { log "no containerd netns directory under $CLUSTER_RUN_DIR"; exit 1; }

# probe_new_pod NS NAME: create the pod, find its netns, probe; prints
# "first_ok_ms last_ok_ms oks tries" (first/last -1 when nothing passed).
probe_new_pod() {
  local ns="$1" name="$2" before f=
  before=$(ls "$netns_dir")
  kubectl -n "$ns" run "$name" --image="$PAUSE" --restart=Never >/dev/null || return 1
  local deadline=$((SECONDS + 30))
  while [ -z "$f" ] && [ $SECONDS -lt $deadline ]; do
    for c in "$netns_dir"/*; do grep -qxF "${c##*/}" <<<"$before" || { f="$c"; break; }; done
    [ -n "$f" ] || sleep 0.005
  done
  [ -n "$f" ] || { log "$ns/$name: no new netns"; return 1; }
  while ! nsenter --net="$f" ip -4 -o addr show dev eth0 2>/dev/null | grep -q inet; do
    [ $SECONDS -lt $deadline ] || { log "$ns/$name: eth0 got no address"; return 1; }
    sleep 0.002
  done
  local t0 t first=-1 last=-1 oks=0 tries=0
  t0=$(now_ms)
  while :; do
    t=$(now_ms); [ $((t - t0)) -lt $((WINDOW_SECS * 1000)) ] || break
    tries=$((tries + 1))
    if nsenter --net="$f" curl -s -o /dev/null --connect-timeout 0.1 --max-time 0.3 "http://$SERVER:8080/hostname"; then
      oks=$((oks + 1)); last=$((t - t0)); [ "$first" -ge 0 ] || first=$((t - t0))
    fi
    sleep 0.01
  done
  echo "$first $last $oks $tries"
}

# stats LIST: "median max" of numbers
stats() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "- -"; exit} print a[int((NR+1)/2)], a[NR]}'; }

run_case() {  # run_case on|off
  local g="$1" i r
  kubectl -n palisade-system patch daemonset palisade-agent --type=json \
    -p "[{\"op\":\"replace\",\"path\":\"/spec/template/spec/containers/0/args\",\"value\":[\"agent\",\"--node-name=\$(NODE_NAME)\",\"--metrics-addr=127.0.0.1:9484\",\"--drop-unknown-pod-ips=$([ "$g" = on ] && echo true || echo false)\"]}]" >/dev/null || return 1
  kubectl -n palisade-system rollout status daemonset/palisade-agent --timeout=120s >/dev/null || return 1
  local deny_pods=0 deny_oks=0 deny_windows=() allow_first=() allow_never=0
  for i in $(seq 1 "$PODS"); do
    r=$(probe_new_pod win-deny "d-$g-$i") || return 1
    set -- $r
    [ "$3" = 0 ] || { deny_pods=$((deny_pods + 1)); deny_oks=$((deny_oks + $3)); deny_windows+=("$2"); }
    r=$(probe_new_pod win-allow "a-$g-$i") || return 1
    set -- $r
    if [ "$1" -ge 0 ]; then allow_first+=("$1"); else allow_never=$((allow_never + 1)); fi
  done
  kubectl delete namespace win-deny win-allow --wait=false >/dev/null 2>&1 || true
  local dw af
  dw=$(printf '%s\n' "${deny_windows[@]}" | grep . | stats)
  af=$(printf '%s\n' "${allow_first[@]}" | grep . | stats)
  echo "| $g | $deny_pods of $PODS | $deny_oks | ${dw% *} / ${dw#* } | ${af% *} / ${af#* } | $allow_never |"
  # with the guard: never a connection from a default-deny pod, and every
  # allowed pod passes in the end
  [ "$g" = off ] || { [ "$deny_pods" = 0 ] && [ "$allow_never" = 0 ]; }
}

echo "| guard | new default-deny pods that connected | connections that passed | last passing connection after the address, ms (median / max) | allowed traffic first passes after the address, ms (median / max) | allowed pods that never passed in ${WINDOW_SECS}s |"
echo "|---|---|---|---|---|---|"
rc=0
for g in off on; do
  out=$(run_case "$g") || { log "case $g failed"; rc=1; }
  echo "$out"
  # recreate the namespaces' policies for the next case
  if [ "$g" = off ]; then
    kubectl wait --for=delete namespace/win-deny namespace/win-allow --timeout=120s >/dev/null 2>&1
    apply_cases
  fi
done
exit "$rc"
