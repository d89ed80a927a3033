#!/usr/bin/env bash
# The seed walkthrough ("Understanding Kubernetes Network Policies",
# examples/seed/) on a real two-node cluster (hack/cluster/up.sh) with the
# real kubectl v1.37.2, Palisade's DaemonSet from deploy/ enforcing: the
# article's own commands, each result checked as `palisade demo`
# (internal/cli/demo.go) checks it. As root; the cluster is torn down on any
# exit (EXIT/INT/TERM trap -> down.sh).
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

# --- the article: "Deploying Sample Applications"
step kubectl apply -f examples/seed/sample-app.yaml
step kubectl wait --for=condition=Ready pod/frontend pod/backend pod/client-pod --timeout=180s
run kubectl get pods -o wide
run kubectl get services
run kubectl get pods --show-labels

say; say "# No policy yet: every pod can reach every pod."
curl_check backend frontend-service frontend 1 "article: by default, pods can communicate freely"
curl_check client-pod frontend-service frontend 1 "article: by default, pods can communicate freely"

# --- "Applying the Network Policy"
step kubectl apply -f examples/seed/frontend-policy.yaml
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
settle
run kubectl get networkpolicies
run kubectl describe networkpolicy frontend-access

# --- "Verifying the Policy"
curl_check backend frontend-service frontend 1 "article: should succeed"
curl_check client-pod frontend-service frontend 0 "article: should fail"
say; say "# The article's \"Egress Behavior\" paragraph says frontend's outgoing traffic is now blocked."
say "# Kubernetes says otherwise: the policy has no egress section, so its policyTypes is [Ingress]."
curl_check frontend backend-service backend 1 "Kubernetes: frontend-access does not isolate frontend for egress"
run kubectl get pods --show-labels

# --- "Start with Default Deny"
say; say "# Start with Default Deny: \"blocks all traffic to and from every pod in the namespace\"."
step kubectl apply -f examples/seed/default-deny-all.yaml
settle
run kubectl get networkpolicies -A
curl_check backend frontend-service frontend 0 "article: blocks all traffic to and from every pod"
curl_check client-pod frontend-service frontend 0 "article: blocks all traffic to and from every pod"
say; say "# Beyond the article: the lookups above die at the egress to kube-dns; by the Service's"
say "# ClusterIP (no DNS) the connection itself is blocked too."
FRONTEND_IP=$(kubectl get service frontend-service -o jsonpath='{.spec.clusterIP}')
curl_check backend "$FRONTEND_IP" frontend 0 "default-deny-all: backend's egress is denied"

# --- what the kernel enforces
for n in 1 2; do
  say; say "\$ ip netns exec $(node_ns "$n") nft list table inet palisade   # $(node_name "$n")"
  ip netns exec "$(node_ns "$n")" nft list table inet palisade 2>&1 || fail "no table inet palisade on $(node_name "$n")"
done

say
if [ "${#FAILED[@]}" -gt 0 ]; then
  say "DEMO FAILED: ${#FAILED[@]} result(s) differ from the article:"
  for f in "${FAILED[@]}"; do say "  $f"; done
  exit 1
fi
say "Demo passed: every result is what the article says ($(elapsed))."
