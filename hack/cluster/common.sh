# Shared names and paths of hack/cluster/{up,down,kubectl}.sh (sourced).
#
# Everything the cluster makes lives under these names, so down.sh can find
# and remove it even after a crash:
#   RUN_DIR   /run/palisade-cluster          pids, sockets, containerd state
#   VAR_DIR   /var/lib/palisade-cluster      certs, etcd, containerd root, kubelet root, logs
#   netns     pcluster-net                   the "switch": bridge br0 10.250.0.254/24
#             pcluster-nodeN                 node N: eth0 10.250.0.(10+N)/24
#             (not palisade-*: that prefix is the lab's, and `palisade lab
#             down --all` removes every namespace named so)
#   cgroups   /palisade-cluster/daemons      every daemon the scripts start (and containerd's shims)
#             /palisade-cluster/nodeN        kubelet's cgroupRoot (pods)
#   nft/iptables tables: only inside the netns above (they die with them).
CLUSTER_RUN_DIR="${CLUSTER_RUN_DIR:-/run/palisade-cluster}"
CLUSTER_VAR_DIR="${CLUSTER_VAR_DIR:-/var/lib/palisade-cluster}"
CLUSTER_NET_NS=pcluster-net
CLUSTER_CGROUP=palisade-cluster
CLUSTER_NODE_NET=10.250.0          # node addresses 10.250.0.11, .12 (inside the netns only)
CLUSTER_POD_CIDR=10.244.0.0/16
CLUSTER_SERVICE_CIDR=10.96.0.0/16
CLUSTER_API_IP="$CLUSTER_NODE_NET.11"
CLUSTER_API_PORT=6443

node_ns() { echo "pcluster-node$1"; }
node_name() { echo "palisade-node$1"; }
node_ip() { echo "$CLUSTER_NODE_NET.$((10 + $1))"; }
# run a command in node N's network namespace only: it stays in the host's
# mount namespace (unlike `ip netns exec`, which makes a private one per call
# and remounts /sys), so containerd's and kubelet's mounts see each other.
in_node() { local n="$1"; shift; nsenter --net="/run/netns/$(node_ns "$n")" -- "$@"; }

# the cgroup hierarchies (v1 here, plus the hybrid unified one where runc also
# makes the pods' cgroups)
cgroup_hierarchies() {
  local d
  for d in /sys/fs/cgroup/*/; do
    d="${d%/}"
    [ -f "$d/cgroup.procs" ] || continue
    echo "$d"
  done
}

# deploy_palisade KUBECTL [DIR]: Palisade as users install it (kubectl apply
# -k deploy/, or the overlay DIR; the image the cluster imported under the
# release tag), ready on every node.
deploy_palisade() {
  local k="$1" dir="${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/deploy}"
  "$k" apply -k "$dir" >&2 &&
    "$k" -n palisade-system rollout status daemonset/palisade-agent --timeout=120s >&2
}

# agent_checks KUBECTL: what the e2e run asks of the agents it ran with
# (hack/cluster/e2e-deploy): on every node, no restart; the process's
# effective capabilities exactly CAP_NET_ADMIN (bit 12: 0x1000), read from
# /proc of the host (the DaemonSet shares no PID namespace, but the host sees
# every process); and, where DENIED=1, at least one "connection denied" line
# (NFLOG works with NET_ADMIN alone). Prints what it finds; non-zero on a miss.
agent_checks() {
  local k="$1" bad=0 pod node restarts pid cap denied procs=0
  while read -r pod node restarts; do
    denied=$("$k" -n palisade-system logs "$pod" 2>/dev/null | grep -c '"msg":"connection denied"')
    echo "agent $pod on $node: restarts $restarts, denied connections logged $denied"
    [ "$restarts" = 0 ] || { echo "  agent restarted"; bad=1; }
    [ "${DENIED:-0}" = 0 ] || [ "$denied" -gt 0 ] || { echo "  no denied connection logged"; bad=1; }
  done < <("$k" -n palisade-system get pods -l app.kubernetes.io/name=palisade \
      -o jsonpath='{range .items[*]}{.metadata.name} {.spec.nodeName} {.status.containerStatuses[0].restartCount}{"\n"}{end}')
  for pid in $(pgrep -x palisade); do
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q '^/palisade agent ' || continue
    cap=$(sed -n 's/^CapEff:\s*//p' "/proc/$pid/status")
    echo "agent process $pid: CapEff $cap"; procs=$((procs + 1))
    [ "$cap" = 0000000000001000 ] || { echo "  expected CapEff 0000000000001000 (CAP_NET_ADMIN only)"; bad=1; }
  done
  [ "$procs" -gt 0 ] || { echo "no agent process found"; bad=1; }
  return "$bad"
}
