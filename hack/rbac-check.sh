#!/usr/bin/env bash
# Prove, on a real kube-apiserver, that deploy/'s RBAC is sufficient for the
# agent and minimal: the ServiceAccount palisade-agent can get, list and
# watch pods, namespaces, nodes and networkpolicies, and nothing else; and
# that the agent's own calls for nodes (field selector metadata.name=NODE)
# work, and what resourceNames could and could not restrict.
#
#   hack/rbac-check.sh                    # starts an API server (hack/apiserver/up.sh), stops it after
#   KUBECONFIG=ADMIN hack/rbac-check.sh --here   # against a running API server, as its admin
#
# It applies deploy/ (kubectl apply -k, server-side dry run first), mints a
# token for the ServiceAccount (TokenRequest: kubectl create token), writes
# a kubeconfig for it, and checks with kubectl auth can-i and real calls.
# Exit status 0 when every check holds. With --here it removes nothing it
# applied (deploy/ is an install: remove it with kubectl delete -k deploy/).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

if [ "${1:-}" != "--here" ]; then
  exec "$HERE/apiserver/up.sh" -- "$0" --here
fi
: "${KUBECONFIG:?set KUBECONFIG to an admin kubeconfig, or run without --here}"

fail=0
ok()  { printf '  ok    %s\n' "$*"; }
bad() { printf '  FAIL  %s\n' "$*"; fail=1; }
section() { printf '\n== %s\n' "$*"; }
denied() { # denied DESCRIPTION CMD...: CMD must fail with Forbidden
  local d="$1"; shift
  if out="$("$@" 2>&1)"; then bad "$d succeeded"; elif grep -q -i forbidden <<<"$out"; then ok "$d: Forbidden"; else bad "$d failed, but not with Forbidden: $out"; fi
}
# kubectl 1.32 warns about skew with a newer server: keep the output readable.
k() { kubectl "$@" 2> >(grep -v -i 'version difference\|skew' >&2); }

section "deploy/ accepted by the API server (server-side dry run, then applied)"
# A dry run persists nothing, so the namespaced objects need the Namespace
# to exist first.
k apply -f "$ROOT/deploy/namespace.yaml"
k apply --dry-run=server -k "$ROOT/deploy/"
k apply -k "$ROOT/deploy/"

section "a token for ServiceAccount palisade-system/palisade-agent (TokenRequest API)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
TOKEN="$(k create token palisade-agent -n palisade-system --duration=10m)"
SERVER="$(k config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')"
CA_FILE="$(k config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')"
CA_DATA="$(k config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
[ -n "$CA_DATA" ] || CA_DATA="$(base64 -w0 <"$CA_FILE")"
base64 -d <<<"$CA_DATA" >"$TMP/ca.crt"
AGENT="$TMP/agent.kubeconfig"
cat >"$AGENT" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: cluster
  cluster:
    server: $SERVER
    certificate-authority-data: $CA_DATA
users:
- name: palisade-agent
  user:
    token: $TOKEN
contexts:
- name: palisade-agent
  context: {cluster: cluster, user: palisade-agent}
current-context: palisade-agent
EOF
chmod 600 "$AGENT"
a() { k --kubeconfig "$AGENT" "$@"; }
who="$(a auth whoami -o jsonpath='{.status.userInfo.username}')"
if [ "$who" = "system:serviceaccount:palisade-system:palisade-agent" ]; then ok "authenticated as $who"; else bad "authenticated as '$who'"; fi

section "kubectl auth can-i --list (as the agent)"
a auth can-i --list | tee "$TMP/list"
# What deploy/ grants is the difference with an identity bound to nothing
# (a ServiceAccount of its own): the rules every authenticated user has
# (discovery, self-reviews, ...) are in both lists.
k create namespace rbac-check-ns >/dev/null 2>&1 || true
k -n rbac-check-ns create serviceaccount nobody >/dev/null 2>&1 || true
k --server "$SERVER" --certificate-authority "$TMP/ca.crt" --token "$(k -n rbac-check-ns create token nobody --duration=10m)" \
  --kubeconfig /dev/null auth can-i --list >"$TMP/baseline"
granted="$(grep -vxF -f "$TMP/baseline" "$TMP/list" | sed 's/  */ /g' | sort)"
want="$(printf '%s\n' 'namespaces [] [] [get list watch]' 'networkpolicies.networking.k8s.io [] [] [get list watch]' \
  'nodes [] [] [get list watch]' 'pods [] [] [get list watch]' | sort)"
echo "granted by deploy/ (the agent's list minus a bare ServiceAccount's):"
sed 's/^/    /' <<<"$granted"
if [ "$granted" = "$want" ]; then ok "exactly get/list/watch on pods, namespaces, nodes, networkpolicies"
else bad "deploy/ grants something else:"; diff <(echo "$want") <(echo "$granted") || true; fi

section "can (auth can-i)"
for r in pods namespaces nodes networkpolicies.networking.k8s.io; do
  for v in get list watch; do
    if a auth can-i "$v" "$r" --all-namespaces >/dev/null; then ok "$v $r"; else bad "cannot $v $r"; fi
  done
done

section "cannot (auth can-i)"
for r in pods namespaces nodes networkpolicies.networking.k8s.io; do
  for v in create update patch delete deletecollection; do
    if a auth can-i "$v" "$r" --all-namespaces >/dev/null; then bad "can $v $r"; else ok "no $v $r"; fi
  done
done
for vr in "get secrets" "list secrets" "watch secrets" "get configmaps" "list services" "list endpointslices.discovery.k8s.io" \
  "create pods/exec" "update pods/status" "patch nodes/status" "create serviceaccounts/token" "create events" \
  "list daemonsets.apps" "create clusterrolebindings.rbac.authorization.k8s.io" "impersonate users" "escalate clusterroles.rbac.authorization.k8s.io"; do
  # shellcheck disable=SC2086
  if a auth can-i $vr --all-namespaces >/dev/null; then bad "can $vr"; else ok "no $vr"; fi
done

section "real calls, as the agent"
k -n rbac-check-ns apply -f - >/dev/null <<'EOF'
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny}
spec: {podSelector: {}}
EOF
for path in /api/v1/pods /api/v1/namespaces /api/v1/nodes /apis/networking.k8s.io/v1/networkpolicies; do
  if a get --raw "$path?limit=500" >/dev/null; then ok "list $path"; else bad "list $path"; fi
  # A real watch: the server streams events and closes after 1 s.
  if out="$(a get --raw "$path?watch=1&timeoutSeconds=1")"; then ok "watch $path ($(grep -c '"type"' <<<"$out" || true) event(s))"; else bad "watch $path"; fi
done
if a get --raw /apis/networking.k8s.io/v1/namespaces/rbac-check-ns/networkpolicies/deny >/dev/null; then ok "get networkpolicy rbac-check-ns/deny"; else bad "get networkpolicy"; fi

section "nodes: the agent reads only its own (field selector metadata.name=NODE), as its informer asks"
# The agent needs its node's addresses (traffic from a pod's own node, the
# kubelet's probes, is always allowed), not other nodes'. Its informer lists
# and watches with fieldSelector=metadata.name=NODE: these are its calls.
k apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Node
metadata: {name: rbac-check-node-a}
---
apiVersion: v1
kind: Node
metadata: {name: rbac-check-node-b}
EOF
sel='fieldSelector=metadata.name%3Drbac-check-node-a'
if out="$(a get --raw "/api/v1/nodes?$sel&limit=500")" && grep -q '"rbac-check-node-a"' <<<"$out" && ! grep -q '"rbac-check-node-b"' <<<"$out"; then
  ok "list nodes?$sel: its node only"; else bad "list nodes?$sel: $out"; fi
if a get --raw "/api/v1/nodes?$sel&watch=1&timeoutSeconds=1" >/dev/null; then ok "watch nodes?$sel"; else bad "watch nodes?$sel"; fi
# RBAC can hold a list or watch to one name (resourceNames matches a list
# or watch whose field selector is metadata.name=NAME), but a ClusterRole
# is the same for every node's agent, and they share one ServiceAccount:
# it would have to name every node, and each agent could then read every
# node anyway. So deploy/ grants get/list/watch on nodes and the agent asks
# only for its own. Shown here on the API server: a role with resourceNames
# allows the field-selected list and watch, and refuses the unselected
# list and the other name.
k apply -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: rbac-check-one-node}
rules:
- apiGroups: [""]
  resources: ["nodes"]
  resourceNames: ["rbac-check-node-a"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: rbac-check-one-node}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: rbac-check-one-node}
subjects:
- {kind: ServiceAccount, name: nobody, namespace: rbac-check-ns}
EOF
NOBODY="$(k -n rbac-check-ns create token nobody --duration=10m)"
nb() { k --server "$SERVER" --certificate-authority "$TMP/ca.crt" --token "$NOBODY" --kubeconfig /dev/null "$@"; }
if nb get --raw "/api/v1/nodes?$sel" >/dev/null; then ok "resourceNames: list nodes?$sel allowed"; else bad "resourceNames: list nodes?$sel refused"; fi
if nb get --raw "/api/v1/nodes?$sel&watch=1&timeoutSeconds=1" >/dev/null; then ok "resourceNames: watch nodes?$sel allowed"; else bad "resourceNames: watch nodes?$sel refused"; fi
denied "resourceNames: list every node"      nb get --raw /api/v1/nodes
denied "resourceNames: list the other node"  nb get --raw "/api/v1/nodes?fieldSelector=metadata.name%3Drbac-check-node-b"
k delete clusterrolebinding rbac-check-one-node >/dev/null
k delete clusterrole rbac-check-one-node >/dev/null
k delete node rbac-check-node-a rbac-check-node-b >/dev/null
denied "create namespace"            a create namespace rbac-check-other
denied "delete networkpolicy"        a -n rbac-check-ns delete networkpolicy deny
denied "label namespace"             a label namespace rbac-check-ns x=y
denied "create configmap"            a -n rbac-check-ns create configmap c
denied "list secrets"                a get secrets -A
denied "get secret"                  a -n palisade-system get secret anything
denied "create a token"              a -n palisade-system create token palisade-agent
denied "delete its own ClusterRole"  a delete clusterrole palisade-agent

echo
if [ $fail -eq 0 ]; then echo "RBAC check passed: deploy/'s ClusterRole is sufficient (get/list/watch work) and minimal (nothing else)."
else echo "RBAC check FAILED"; fi
exit $fail
