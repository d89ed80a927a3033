#!/usr/bin/env bash
# kubectl against the cluster of hack/cluster/up.sh: the API server's address
# (10.250.0.11) exists only inside the node network namespace, so kubectl runs
# there (nsenter --net: the host's files and mounts stay visible).
#   hack/cluster/kubectl.sh get nodes -o wide
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/common.sh"
k="${KUBECTL_BIN:-$(cat "$CLUSTER_RUN_DIR/kubectl" 2>/dev/null || echo kubectl)}"
exec nsenter --net="/run/netns/$(node_ns 1)" -- "$k" --kubeconfig "$CLUSTER_VAR_DIR/admin.kubeconfig" "$@"
