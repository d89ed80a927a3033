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
