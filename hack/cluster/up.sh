#!/usr/bin/env bash
# Bring up a real Kubernetes cluster on this machine, inside network
# namespaces of its own (see README.md): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, and per node containerd (Debian's),
# kubelet, kube-proxy and the CNI bridge plugin. As root.
#
#   hack/cluster/up.sh            # start, wait for every node Ready, print assignments
#   hack/cluster/kubectl.sh get nodes
#   hack/cluster/down.sh          # stop everything, remove everything (also after a crash)
#   hack/cluster/up.sh -- CMD...  # start, run CMD (KUBECONFIG, CLUSTER_NETNS, KUBECTL set), then down.sh
#
# Env:
#   NODES        1 or 2 (default 1); node 1 also runs the control plane
#   PROXY_MODE   nftables (default) or iptables
#   IMAGES       images of hack/images/build.sh to build and import (default "pause";
#                "pause agnhost palisade" for all); PAUSE is always included
#   KEEP_ON_FAIL 1: do not run down.sh when start-up fails (to read the logs)
#   DNS          1: cluster DNS: CoreDNS (hack/cluster/coredns-build.sh, coredns.yaml)
#                as Service kube-system/kube-dns at 10.96.0.10, kubelet's clusterDNS
#   MIRROR       images of hack/images/build.sh to serve from a registry mirror
#                instead of importing them (e.g. "nginx": docker.io/library/nginx:latest,
#                always pulled): `mkimage serve` on 127.0.0.1:5000 in each node's
#                netns, containerd's CRI config_path hosts.toml per registry host
#
# Prints shell assignments: KUBECONFIG (usable inside the node netns only),
# CLUSTER_NETNS, KUBECTL (a wrapper that runs kubectl there).
set -eEuo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
. "$HERE/common.sh"
NODES="${NODES:-1}"
PROXY_MODE="${PROXY_MODE:-nftables}"
DNS="${DNS:-0}"
MIRROR="${MIRROR:-}"
CLUSTER_DNS_IP=10.96.0.10
IMAGES="${IMAGES:-pause}"
case " $IMAGES " in *" pause "*) ;; *) IMAGES="pause $IMAGES" ;; esac
case "$NODES" in 1|2) ;; *) echo "up.sh: NODES must be 1 or 2" >&2; exit 2 ;; esac
case "$PROXY_MODE" in nftables|iptables) ;; *) echo "up.sh: PROXY_MODE must be nftables or iptables" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "up.sh: run as root" >&2; exit 2; }

log() { echo "up.sh: $*" >&2; }
T0=$SECONDS
R="$CLUSTER_RUN_DIR" V="$CLUSTER_VAR_DIR"
if [ -e "$R" ] || [ -e "$V" ] || ip netns list | grep -q '^pcluster-'; then
  log "a cluster (or its remains) exists: run hack/cluster/down.sh first"; exit 1
fi
[ "$PROXY_MODE" = iptables ] && { command -v iptables >/dev/null || { log "PROXY_MODE=iptables needs iptables (apt-get install -y iptables)"; exit 1; }; }
for b in containerd runc ctr nft nsenter unshare openssl curl; do
  command -v "$b" >/dev/null || { log "missing $b (apt-get install -y containerd runc nftables util-linux openssl curl)"; exit 1; }
done

# --- binaries and images (cached)
eval "$("$HERE/build.sh")"
eval "$(ONLY="$IMAGES" "$REPO/hack/images/build.sh")"
: "${PAUSE_IMAGE:?hack/images/build.sh printed no PAUSE_IMAGE}"
if [ "$DNS" = 1 ]; then eval "$("$HERE/coredns-build.sh")"; fi
# MIRROR: built like the others, but served (not imported): their *_IMAGE_TAR
# are kept out of this shell's variables, which the import loop reads.
MIRROR_TARS=() MIRROR_HOSTS=()
if [ -n "$MIRROR" ]; then
  mirror_out="$(ONLY="$MIRROR" "$REPO/hack/images/build.sh")"
  while IFS='=' read -r k v; do
    case "$k" in
      *_IMAGE_TAR) MIRROR_TARS+=("$v") ;;
      *_IMAGE) h="${v%%/*}"; case " ${MIRROR_HOSTS[*]} " in *" $h "*) ;; *) MIRROR_HOSTS+=("$h") ;; esac ;;
    esac
  done <<<"$mirror_out"
fi

fail() {  # fail [RC]
  local rc="${1:-$?}"
  log "start-up failed (exit $rc); logs in $V/logs:"
  for f in "$V"/logs/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -5 "$f" >&2; }; done
  if [ "${KEEP_ON_FAIL:-}" = 1 ]; then log "KEEP_ON_FAIL=1: left running; hack/cluster/down.sh removes it"
  else "$HERE/down.sh" >&2 || true; fi
  exit "$rc"
}
trap fail ERR
trap 'fail 130' INT TERM

mkdir -p "$R/pids" "$V/logs" "$V/pki"
# kubelet runs in a mount namespace of its own (see start_kubelet); its
# volume mounts under $V reach containerd (host mount namespace) because $V
# is a shared mount point.
mount --bind "$V" "$V"
mount --make-rshared "$V"
echo "$PROXY_MODE" > "$R/proxy-mode"
echo "$NODES" > "$R/nodes"
echo "$KUBECTL_BIN" > "$R/kubectl"   # for kubectl.sh

# --- cgroups (v1): daemons' cgroup in the pids hierarchy (down.sh kills what
# is in it, containerd's shims included); kubelet's cgroupRoot per node.
for h in $(cgroup_hierarchies); do
  for d in "$CLUSTER_CGROUP" "$CLUSTER_CGROUP/daemons" $(for n in $(seq 1 "$NODES"); do echo "$CLUSTER_CGROUP/node$n"; done); do
    mkdir -p "$h/$d"
    if [ -f "$h/cpuset.cpus" ]; then
      cat "$h/cpuset.cpus" > "$h/$d/cpuset.cpus"; cat "$h/cpuset.mems" > "$h/$d/cpuset.mems"
    fi
  done
done
DAEMON_CG=/sys/fs/cgroup/pids/$CLUSTER_CGROUP/daemons
[ -f "$DAEMON_CG/cgroup.procs" ] || { log "no pids cgroup hierarchy at /sys/fs/cgroup/pids"; false; }

# --- network: a "switch" netns with bridge br0, one veth per node. No
# address or route is added to the host's network namespace.
ip netns add "$CLUSTER_NET_NS"
ip -n "$CLUSTER_NET_NS" link set lo up
ip -n "$CLUSTER_NET_NS" link add br0 type bridge
ip -n "$CLUSTER_NET_NS" addr add "$CLUSTER_NODE_NET.254/24" dev br0
ip -n "$CLUSTER_NET_NS" link set br0 up
for n in $(seq 1 "$NODES"); do
  ns=$(node_ns "$n")
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip -n "$CLUSTER_NET_NS" link add "node$n" type veth peer name eth0 netns "$ns"
  ip -n "$CLUSTER_NET_NS" link set "node$n" master br0 up
  ip -n "$ns" addr add "$(node_ip "$n")/24" dev eth0
  ip -n "$ns" link set eth0 up
  # a default route, so that host-network processes can reach Service IPs
  # (kube-proxy's DNAT runs after the route lookup); br0's address answers
  # ARP and drops the rest (no forwarding in the switch netns).
  ip -n "$ns" route add default via "$CLUSTER_NODE_NET.254"
  in_node "$n" sysctl -qw net.ipv4.ip_forward=1
  in_node "$n" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
done

# --- certificates (ECDSA P-256, one CA)
P="$V/pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$P/ca.key" -out "$P/ca.crt" \
  -days 3650 -subj "/CN=palisade-cluster-ca" 2>/dev/null
cert() {  # cert NAME SUBJECT EXTENSIONS
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$P/$1.key" -out "$P/$1.csr" -subj "$2" 2>/dev/null
  printf '%s\n' "$3" > "$P/$1.ext"
  openssl x509 -req -in "$P/$1.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -days 3650 \
    -extfile "$P/$1.ext" -out "$P/$1.crt" 2>/dev/null
  rm -f "$P/$1.csr" "$P/$1.ext"
}
client='extendedKeyUsage=clientAuth'
cert apiserver "/CN=kube-apiserver" "subjectAltName=IP:$CLUSTER_API_IP,IP:10.96.0.1,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth"
cert admin "/O=system:masters/CN=admin" "$client"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
cert controller-manager "/CN=system:kube-controller-manager" "$client"
cert scheduler "/CN=system:kube-scheduler" "$client"
cert kube-proxy "/CN=system:kube-proxy" "$client"
for n in $(seq 1 "$NODES"); do cert "kubelet-node$n" "/O=system:nodes/CN=system:node:$(node_name "$n")" "$client"; done
openssl ecparam -name prime256v1 -genkey -noout -out "$P/sa.key" 2>/dev/null
openssl ec -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null

kubeconfig() {  # kubeconfig NAME CERT
  cat > "$V/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: palisade-cluster
  cluster:
    server: https://$CLUSTER_API_IP:$CLUSTER_API_PORT
    certificate-authority: $P/ca.crt
users:
- name: $2
  user:
    client-certificate: $P/$2.crt
    client-key: $P/$2.key
contexts:
- name: palisade-cluster
  context: {cluster: palisade-cluster, user: $2}
current-context: palisade-cluster
EOF
}
for c in admin controller-manager scheduler kube-proxy; do kubeconfig "$c" "$c"; done
for n in $(seq 1 "$NODES"); do kubeconfig "kubelet-node$n" "kubelet-node$n"; done

# start NAME NODE CMD...: in node NODE's network namespace, in the daemons'
# cgroup, detached, pid recorded, output to $V/logs/NAME.log
SEQ=0
start() {
  local name="$1" n="$2"; shift 2
  SEQ=$((SEQ + 1))
  setsid nsenter --net="/run/netns/$(node_ns "$n")" -- \
    sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$DAEMON_CG" "$@" \
    >"$V/logs/$name.log" 2>&1 </dev/null &
  echo $! > "$R/pids/$(printf %02d $SEQ)-$name.pid"
  disown
}
wait_for() {  # wait_for WHAT SECONDS PIDNAME CMD...: until CMD succeeds
  local what="$1" secs="$2" pidname="$3"; shift 3
  local i pidf
  for i in $(seq 1 $((secs * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    pidf=$(ls "$R"/pids/*-"$pidname".pid 2>/dev/null | head -1) || true
    if [ -n "$pidf" ] && ! kill -0 "$(cat "$pidf")" 2>/dev/null; then log "$pidname died"; tail -20 "$V/logs/$pidname.log" >&2; return 1; fi
    sleep 0.2
  done
  log "$what: not after ${secs}s"; return 1
}
K() { in_node 1 "$KUBECTL_BIN" --kubeconfig "$V/admin.kubeconfig" "$@"; }

# --- control plane, in node 1's netns
start etcd 1 "$ETCD_BIN" --name=palisade --data-dir="$V/etcd" \
  --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
  --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
  --initial-cluster=palisade=http://127.0.0.1:2380 --unsafe-no-fsync --log-level=warn \
  --listen-metrics-urls=http://127.0.0.1:2381
wait_for etcd 30 etcd in_node 1 curl -fsS http://127.0.0.1:2379/health

start kube-apiserver 1 "$KUBE_APISERVER_BIN" \
  --etcd-servers=http://127.0.0.1:2379 \
  --bind-address=0.0.0.0 --advertise-address="$CLUSTER_API_IP" --secure-port="$CLUSTER_API_PORT" \
  --cert-dir="$V/apiserver-certs" --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
  --client-ca-file="$P/ca.crt" \
  --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types=InternalIP \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --service-cluster-ip-range="$CLUSTER_SERVICE_CIDR" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --allow-privileged=true --profiling=false
wait_for kube-apiserver 120 kube-apiserver K get --raw /readyz
log "control plane API ready at https://$CLUSTER_API_IP:$CLUSTER_API_PORT ($((SECONDS - T0))s)"

start kube-controller-manager 1 "$KUBE_CONTROLLER_MANAGER_BIN" \
  --kubeconfig="$V/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" --use-service-account-credentials=true \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
  --allocate-node-cidrs=true --cluster-cidr="$CLUSTER_POD_CIDR" --node-cidr-mask-size=24 \
  --service-cluster-ip-range="$CLUSTER_SERVICE_CIDR" --controllers='*'
start kube-scheduler 1 "$KUBE_SCHEDULER_BIN" \
  --kubeconfig="$V/scheduler.kubeconfig" --bind-address=127.0.0.1 --leader-elect=false

# --- nodes
for n in $(seq 1 "$NODES"); do
  nd="$V/node$n" rd="$R/node$n"
  mkdir -p "$nd/containerd" "$nd/kubelet" "$nd/pod-logs" "$nd/var-log" "$nd/cni/net.d" "$nd/cni/ipam" "$rd/containerd" "$rd/runc" "$rd/sysctl"
  sock="$rd/containerd.sock"
  if [ -n "$MIRROR" ]; then
    start "registry-node$n" "$n" "$MKIMAGE_BIN" serve -addr 127.0.0.1:5000 "${MIRROR_TARS[@]}"
    wait_for "registry mirror node$n" 120 "registry-node$n" grep -q '^ready ' "$V/logs/registry-node$n.log"
    for h in "${MIRROR_HOSTS[@]}"; do
      mkdir -p "$nd/certs.d/$h"
      if [ "$h" = docker.io ]; then server=https://registry-1.docker.io; else server="https://$h"; fi
      printf 'server = "%s"\n[host."http://127.0.0.1:5000"]\n  capabilities = ["pull", "resolve"]\n' "$server" > "$nd/certs.d/$h/hosts.toml"
    done
  fi
  cat > "$nd/containerd.toml" <<EOF
version = 2
root = "$nd/containerd"
state = "$rd/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$rd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$nd/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  netns_mounts_under_state_dir = true
  # root here lacks CAP_SYS_RESOURCE (not in the bounding set): runc cannot
  # set the sandbox's oom_score_adj -998 ("nsexec: failed to update
  # /proc/self/oom_score_adj: Permission denied"); clamp to containerd's own
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$nd/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$rd/runc"
EOF
  if [ -n "$MIRROR" ]; then
    printf '[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "%s"\n' "$nd/certs.d" >> "$nd/containerd.toml"
  fi
  start "containerd-node$n" "$n" containerd --config "$nd/containerd.toml"
  wait_for "containerd node$n" 30 "containerd-node$n" ctr -a "$sock" version
  for var in $(compgen -v | grep '_IMAGE_TAR$'); do
    log "node$n: importing ${!var##*/}"
    ctr -a "$sock" -n k8s.io images import "${!var}" >/dev/null
  done

  cat > "$nd/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroups are v1 (hybrid) here: kubelet >= 1.35 refuses them unless told
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CLUSTER_CGROUP/node$n
failSwapOn: false
containerRuntimeEndpoint: unix://$sock
imageServiceEndpoint: unix://$sock
podLogsDir: $nd/pod-logs
address: $(node_ip "$n")
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $P/ca.crt}
authorization:
  mode: Webhook
clusterDomain: cluster.local
$([ "$DNS" = 1 ] && echo "clusterDNS: [$CLUSTER_DNS_IP]" || true)
resolvConf: /etc/resolv.conf
# imported images have no registry to come back from: never collect them
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%"}
rotateCertificates: false
serverTLSBootstrap: false
protectKernelDefaults: false
EOF
  # kubelet: its own mount namespace (mounts under $V still reach the host's:
  # shared), where /var/log and the sysctls kubelet insists on setting
  # (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops, ...) are
  # private copies, so the host's values are left alone.
  start "kubelet-node$n" "$n" unshare --mount --propagation unchanged -- sh -c '
    set -e
    rd="$1"; vl="$2"; shift 2
    for f in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes; do
      mkdir -p "$rd/sysctl/${f%/*}"; cat "/proc/sys/$f" > "$rd/sysctl/$f"
      mount --bind "$rd/sysctl/$f" "/proc/sys/$f"
    done
    mount --bind "$vl" /var/log
    exec "$@"' sh "$rd" "$nd/var-log" \
    "$KUBELET_BIN" --config="$nd/kubelet.yaml" --kubeconfig="$V/kubelet-node$n.kubeconfig" \
      --root-dir="$nd/kubelet" --hostname-override="$(node_name "$n")" --node-ip="$(node_ip "$n")" --v=1

  cat > "$nd/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $V/kube-proxy.kubeconfig}
mode: $PROXY_MODE
hostnameOverride: $(node_name "$n")
clusterCIDR: $CLUSTER_POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
iptables: {localhostNodePorts: false}
# leave the kernel's (global) conntrack table size alone
conntrack: {maxPerCore: 0, min: 0}
EOF
  start "kube-proxy-node$n" "$n" "$KUBE_PROXY_BIN" --config="$nd/kube-proxy.yaml" --v=1
done

# --- pod networks: the node's spec.podCIDR (allocated by the controller
# manager) -> the bridge plugin's subnet; routes between nodes.
declare -A CIDR
for n in $(seq 1 "$NODES"); do
  node=$(node_name "$n")
  wait_for "$node podCIDR" 120 "kubelet-node$n" sh -c "[ -n \"\$(nsenter --net=/run/netns/$(node_ns 1) -- $KUBECTL_BIN --kubeconfig $V/admin.kubeconfig get node $node -o jsonpath='{.spec.podCIDR}')\" ]"
  CIDR[$n]=$(K get node "$node" -o jsonpath='{.spec.podCIDR}')
  gw="${CIDR[$n]%.*}.1"
  cat > "$V/node$n/cni/net.d/10-palisade-cluster.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "palisade-cluster",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$V/node$n/cni/ipam",
        "ranges": [[{"subnet": "${CIDR[$n]}", "gateway": "$gw"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  log "$node: pod CIDR ${CIDR[$n]}"
done
for n in $(seq 1 "$NODES"); do
  for m in $(seq 1 "$NODES"); do
    [ "$n" = "$m" ] || ip -n "$(node_ns "$n")" route add "${CIDR[$m]}" via "$(node_ip "$m")"
  done
done

for n in $(seq 1 "$NODES"); do
  node=$(node_name "$n")
  wait_for "$node Ready" 180 "kubelet-node$n" sh -c "nsenter --net=/run/netns/$(node_ns 1) -- $KUBECTL_BIN --kubeconfig $V/admin.kubeconfig get node $node -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
done
# pods need the namespace's default ServiceAccount before they can be created
wait_for "default ServiceAccount" 60 kube-controller-manager K -n default get serviceaccount default
if [ "$DNS" = 1 ]; then
  K apply -f "$HERE/coredns.yaml" >&2
  K -n kube-system rollout status deployment/coredns --timeout=120s >&2
  log "cluster DNS: CoreDNS ready, kube-system/kube-dns $CLUSTER_DNS_IP ($((SECONDS - T0))s)"
fi

trap - ERR INT TERM
K get nodes -o wide >&2
log "cluster up in $((SECONDS - T0))s (kube-proxy: $PROXY_MODE)"

if [ "${1:-}" = "--" ]; then   # up.sh -- CMD ARGS...: run CMD, then down.sh
  shift
  trap '"$HERE/down.sh"' EXIT
  KUBECONFIG="$V/admin.kubeconfig" CLUSTER_NETNS="$(node_ns 1)" KUBECTL="$HERE/kubectl.sh" "$@"
  exit $?
fi
echo "KUBECONFIG=$V/admin.kubeconfig"
echo "CLUSTER_NETNS=$(node_ns 1)"
echo "KUBECTL=$HERE/kubectl.sh"
