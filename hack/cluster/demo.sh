#!/usr/bin/env bash
# The seed walkthrough ("Understanding Kubernetes Network Policies",
# examples/seed/) on a real two-node cluster (hack/cluster/up.sh) with the
# real kubectl v1.37.2, Palisade's DaemonSet from deploy/ enforcing: the
# article's own commands, each result checked. The steps and the result each
# should have are not written here: they are internal/walkthrough/walkthrough.go
# (walkthrough.Seed, which `palisade demo` plays on the lab too), read from
# `palisade demo --steps` (one step a line, tab-separated) and played with the
# real kubectl. As root; the cluster is torn down on any exit (EXIT/INT/TERM
# trap -> down.sh).
#
#   hack/cluster/demo.sh        # make cluster-demo
#
# The cluster: NODES=2 IMAGES="pause agnhost palisade" DNS=1 MIRROR=nginx, i.e.
# CoreDNS as kube-dns (curl frontend-service needs cluster DNS) and the
# nginx stand-in (agnhost serve-hostname on :80 + curl, hack/images) pulled
# as docker.io/library/nginx:latest through a registry mirror, since the
# seed manifests say `image: nginx` (always pulled). The stand-in answers
# with the pod's hostname, so a check knows which pod answered.
#
# Env: PROXY_MODE (nftables|iptables, passed to up.sh), CURL_TIMEOUT (curl
# --max-time, default 5), KEEP=1 (leave the cluster up; down.sh removes it).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
. "$HERE/common.sh"
CURL_TIMEOUT="${CURL_TIMEOUT:-5}"
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root" >&2; exit 2; }
# The walkthrough, before anything is started: a tree that does not build
# fails here.
STEPS_TSV=$(cd "$REPO" && go run ./cmd/palisade demo --steps) ||
  { echo "demo.sh: palisade demo --steps failed" >&2; exit 1; }
mapfile -t STEPS <<<"$STEPS_TSV"

T0=$SECONDS
say() { printf '%s\n' "$*"; }
elapsed() { echo "$((SECONDS - T0))s"; }
FAILED=()
fail() { FAILED+=("$*"); say "# DEVIATION: $*"; }
# abort: a step the walkthrough cannot go on without failed
abort() { say "# DEMO ABORTED: $*"; exit 1; }

say "# The walkthrough of \"Understanding Kubernetes Network Policies\", on a real cluster:"
say "# two kubelet nodes (containerd, CNI bridge, kube-proxy ${PROXY_MODE:-nftables}), CoreDNS, kubectl v1.37.2,"
say "# and Palisade's DaemonSet from deploy/ enforcing the policies in each node's nftables."
say "# (curl runs with --max-time $CURL_TIMEOUT so that a block shows as a timeout.)"
say
say "\$ NODES=2 IMAGES=\"pause agnhost palisade\" DNS=1 MIRROR=nginx hack/cluster/up.sh"
# up.sh removes what it started when it fails; a cluster that existed before
# is not ours to remove: the trap is set only once up.sh has succeeded.
if ! NODES=2 IMAGES="pause agnhost palisade" DNS=1 MIRROR=nginx "$HERE/up.sh" >/dev/null; then
  say "# DEMO FAILED: the cluster did not come up"; exit 1
fi
teardown() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "${KEEP:-}" = 1 ]; then
    say; say "# KEEP=1: the cluster is still up: hack/cluster/kubectl.sh get pods -o wide; hack/cluster/down.sh"
  else
    say; say "\$ hack/cluster/down.sh"
    local t=$SECONDS
    "$HERE/down.sh" >/dev/null 2>&1 && say "# cluster removed in $((SECONDS - t))s" || { say "# down.sh failed"; rc=1; }
  fi
  say "# total $(elapsed)"
  exit "$rc"
}
trap teardown EXIT
trap 'say "# interrupted"; exit 130' INT TERM
say "# cluster up in $(elapsed)"

# kubectl: the real one (v1.37.2) in node 1's netns, where the API server is.
kubectl() { "$HERE/kubectl.sh" "$@"; }
# run CMD...: print it as the article writes it, run it, print its output.
run() { say; say "\$ $*"; "$@" 2>&1; }
step() { run "$@" || abort "$* failed"; }

cd "$REPO" || exit 1

# curl POD SERVICE WANT WANT_OK WHY: the article's `kubectl exec POD -- curl
# SERVICE`, bounded; ok = exit 0 and the answer is pod WANT's hostname.
curl_check() {
  local pod="$1" svc="$2" want="$3" want_ok="$4" why="$5" out code t=$SECONDS
  say; say "\$ kubectl exec $pod -- curl -sS --max-time $CURL_TIMEOUT $svc"
  out=$(kubectl exec "$pod" -- curl -sS --max-time "$CURL_TIMEOUT" "$svc" 2>&1); code=$?
  [ -n "$out" ] && say "$out"
  local ok=0 got=succeeded
  if [ "$code" = 0 ] && [ "$(printf '%s' "$out" | tail -1)" = "$want" ]; then ok=1; fi
  if [ "$ok" = 0 ]; then
    case "$code:$out" in
      28:*"Resolving timed out"*) got="blocked (the DNS lookup timed out, curl exit 28)" ;;
      28:*) got="blocked (connection timed out, curl exit 28)" ;;
      6:*) got="blocked (name not resolved, curl exit 6)" ;;
      *) got="failed (exit $code)" ;;
    esac
  fi
  local verdict="as expected"
  if [ "$ok" != "$want_ok" ]; then
    verdict="NOT as expected"
    FAILED+=("$pod -> $svc $got ($why)")
  fi
  say "# $got in $((SECONDS - t))s: $verdict ($why)"
}

step kubectl version
run kubectl get nodes -o wide

# --- Palisade, as users install it
step kubectl apply -k deploy/
step kubectl -n palisade-system rollout status daemonset/palisade-agent --timeout=120s
run kubectl -n palisade-system get pods -o wide
run kubectl -n kube-system get pods,services -o wide

# The agents apply a policy when their watch delivers it: a moment after
# kubectl apply returns, not synchronously (the lab's demo applies
# synchronously). Wait until every node's agent has the cluster's policies in
# its kernel: its palisade_policies gauge (set after each transaction the
# kernel took, on 127.0.0.1:9484 in the node's netns) equals their number.
settle() {
  local want n got t=$SECONDS t0
  t0=$(date +%s%N)
  want=$(kubectl get networkpolicies -A --no-headers 2>/dev/null | wc -l)
  for n in 1 2; do
    while got=$(in_node "$n" curl -s --max-time 1 http://127.0.0.1:9484/metrics | sed -n 's/^palisade_policies //p')
          [ "$got" != "$want" ]; do
      [ $((SECONDS - t)) -lt 20 ] || abort "$(node_name "$n")'s agent has $got policies in its kernel, not $want, after 20s"
      sleep 0.1
    done
  done
  say "# (both nodes' agents have the $want policies in their kernel: checked $(( ($(date +%s%N) - t0) / 1000000 )) ms after kubectl apply returned)"
}
# serving SERVICE: wait until the Service answers on its ClusterIP from each
# node's own network (host network, which no NetworkPolicy governs). A pod
# Ready is not yet a Service that answers: the EndpointSlice controller and
# then each node's kube-proxy must see the pod first, and until then
# kube-proxy rejects the ClusterIP (curl exit 7), which a check made in that
# moment would blame on the network (CI saw this once).
serving() {
  local svc="$1" ip port n t=$SECONDS
  ip=$(kubectl get service "$svc" -o jsonpath='{.spec.clusterIP}') &&
    port=$(kubectl get service "$svc" -o jsonpath='{.spec.ports[0].port}') &&
    [ -n "$ip" ] && [ -n "$port" ] || abort "no ClusterIP and port for service $svc"
  for n in 1 2; do
    until in_node "$n" curl -s -o /dev/null --max-time 1 "http://$ip:$port/"; do
      [ $((SECONDS - t)) -lt 30 ] || abort "service $svc ($ip:$port) does not answer on $(node_name "$n") after 30s"
      sleep 0.2
    done
  done
}
# apply FILE: the article's `kubectl apply -f FILE`; then, as a user would,
# wait until the pods it makes are Ready and its Services answer, and until
# the agents enforce the policies it holds.
apply() {
  local objs pods svc
  step kubectl apply -f "$1"
  objs=$(kubectl get -f "$1" -o name) || abort "kubectl get -f $1 failed"
  pods=$(grep '^pod/' <<<"$objs")
  if [ -n "$pods" ]; then
    # shellcheck disable=SC2086 # one word a pod
    step kubectl wait --for=condition=Ready $pods --timeout=180s
  fi
  for svc in $(sed -n 's|^service/||p' <<<"$objs"); do serving "$svc"; done
  if grep -q '^networkpolicy' <<<"$objs"; then settle; fi
}

# --- the article's walkthrough, as internal/walkthrough/walkthrough.go has it
# (read above from `palisade demo --steps`)
for line in "${STEPS[@]}"; do
  IFS=$'\t' read -r -a f <<<"$line"
  case "${f[0]}" in
    say) say "${f[1]:-}" ;;
    apply) apply "${f[1]}" ;;
    kubectl) step kubectl "${f[@]:1}" ;;
    curl)
      target="${f[2]}"
      if [ "${f[3]}" = clusterip ]; then
        target=$(kubectl get service "${f[2]}" -o jsonpath='{.spec.clusterIP}') && [ -n "$target" ] ||
          abort "no ClusterIP for service ${f[2]}"
      fi
      want_ok=0; [ "${f[5]}" = succeeds ] && want_ok=1
      curl_check "${f[1]}" "$target" "${f[4]}" "$want_ok" "${f[6]}" ;;
    rules)
      for n in 1 2; do
        say; say "\$ ip netns exec $(node_ns "$n") nft list table inet palisade   # $(node_name "$n")"
        ip netns exec "$(node_ns "$n")" nft list table inet palisade 2>&1 || fail "no table inet palisade on $(node_name "$n")"
      done ;;
    *) abort "palisade demo --steps: unknown step: $line" ;;
  esac
done

say
if [ "${#FAILED[@]}" -gt 0 ]; then
  say "DEMO FAILED: ${#FAILED[@]} result(s) differ from the article:"
  for f in "${FAILED[@]}"; do say "  $f"; done
  exit 1
fi
say "Demo passed: every result is what the article says ($(elapsed))."
