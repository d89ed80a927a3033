#!/usr/bin/env bash
# Stop everything hack/cluster/up.sh started and remove everything it made,
# also after a crash or a half-finished up.sh: nothing is read from memory,
# only from the recorded state and the fixed names of common.sh.
#   1. recorded pids but containerd's, newest first: TERM, then KILL after 5 s
#   2. pods' tasks via containerd (clean shim exit, rootfs unmounted), if it still answers; containerd
#   3. whatever is left in the cluster's cgroups (shims, containers): KILL
#   4. every mount under /run/palisade-cluster and /var/lib/palisade-cluster, deepest first
#   5. the netns pcluster-* (with them their nftables/iptables tables, veths, bridges)
#   6. the cgroups, then the two directories (KEEP_STATE=1 keeps /var/lib/palisade-cluster's logs)
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$HERE/common.sh"
R="$CLUSTER_RUN_DIR" V="$CLUSTER_VAR_DIR"
log() { echo "down.sh: $*" >&2; }

stop_pids() {  # stop_pids FILE...: TERM, then KILL after 5 s
  local f p pids=()
  for f in "$@"; do
    [ -f "$f" ] || continue
    p=$(cat "$f" 2>/dev/null) || continue
    [ -n "$p" ] && kill "$p" 2>/dev/null && pids+=("$p")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  for _ in $(seq 1 50); do
    alive=
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  return 0
}

# 0. containerd 1.6's shim sockets live in /run/containerd/s (a fixed path);
# the ones bound in the nodes' netns are ours: remembered now, removed at the
# end (a clean shim exit removes its own; a crash leaves them)
shim_socks=$(for ns in $(ip netns list | awk '{print $1}' | grep '^pcluster-node'); do
  nsenter --net="/run/netns/$ns" cat /proc/net/unix | awk '$8 ~ /^\/run\/containerd\/s\// {print $8}'
done | sort -u)

# 1. recorded daemons but containerd, newest first (kubelet first: it would
# restart the pods' containers)
stop_pids $(ls -r "$R"/pids/*.pid 2>/dev/null | grep -v -- '-containerd-')

# 2. pods' tasks through containerd (best effort, bounded): the shims exit
# cleanly, unmount the rootfs and remove their sockets; then containerd
for sock in "$R"/node*/containerd.sock; do
  [ -S "$sock" ] || continue
  timeout 5 ctr -a "$sock" version >/dev/null 2>&1 || continue
  for t in $(timeout 10 ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
    timeout 10 ctr -a "$sock" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1
  done
  sleep 0.5
  for t in $(timeout 10 ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
    timeout 10 ctr -a "$sock" -n k8s.io tasks delete -f "$t" >/dev/null 2>&1
  done
done
stop_pids $(ls -r "$R"/pids/*.pid 2>/dev/null)

# 3. anything left in the cluster's cgroups (every hierarchy: pods live in all)
for _ in $(seq 1 20); do
  left=
  for h in $(cgroup_hierarchies); do
    [ -d "$h/$CLUSTER_CGROUP" ] || continue
    for p in $(find "$h/$CLUSTER_CGROUP" -name cgroup.procs -exec cat {} + 2>/dev/null); do
      kill -9 "$p" 2>/dev/null && left=1
    done
  done
  [ -z "$left" ] && break
  sleep 0.2
done

# 4. mounts under the two dirs (overlay rootfs, shm, pod netns, kubelet volumes, the shared bind of $V)
for _ in 1 2 3; do
  mps=$(awk -v r="$R" -v v="$V" '{gsub(/\\040/, " ", $5); if (index($5, r) == 1 || index($5, v) == 1) print $5}' /proc/self/mountinfo | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
  [ -z "$mps" ] && break
  while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done <<< "$mps"
done

# 5. network namespaces
for ns in $(ip netns list | awk '{print $1}' | grep '^pcluster-'); do
  ip netns del "$ns" || log "cannot delete netns $ns"
done

# 6. cgroups, deepest first, then the directories
for h in $(cgroup_hierarchies); do
  [ -d "$h/$CLUSTER_CGROUP" ] || continue
  find "$h/$CLUSTER_CGROUP" -depth -type d -exec rmdir {} \; 2>/dev/null
  [ -d "$h/$CLUSTER_CGROUP" ] && log "cgroup $h/$CLUSTER_CGROUP not removed"
done
rm -rf "$R"
# containerd 1.6 keeps its shims' sockets in /run/containerd/s (fixed path):
# emptied by the clean shim exits above; removed when empty
for f in $shim_socks; do rm -f "$f"; done
rmdir /run/containerd/s /run/containerd 2>/dev/null
if [ -n "${KEEP_STATE:-}" ]; then log "kept $V"; else rm -rf "$V"; fi
[ -d "$R" ] && log "$R not removed"
exit 0
