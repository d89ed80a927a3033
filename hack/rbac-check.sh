#!/usr/bin/env bash
# Prove, on a real kube-apiserver, that deploy/'s RBAC is sufficient for the
# agent and minimal: the ServiceAccount palisade-agent can get, list and
# watch pods, namespaces, nodes, networkpolicies and the cluster-wide
# policies of policy.networking.k8s.io (whose CRDs it installs from
# internal/lab/crds, as a cluster that uses them has), and nothing else.
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

RESOURCES="pods namespaces nodes networkpolicies.networking.k8s.io adminnetworkpolicies.policy.networking.k8s.io
  baselineadminnetworkpolicies.policy.networking.k8s.io clusternetworkpolicies.policy.networking.k8s.io"
k apply --server-side -f "$ROOT/internal/lab/crds/" >/dev/null
k wait --for condition=established --timeout=60s crd --all >/dev/null

section "kubectl auth can-i --list (as the agent)"
a auth can-i --list | tee "$TMP/list"
# What deploy/ grants is the difference with an identity bound to nothing
# (a ServiceAccount of its own): the rules every authenticated user has
# (discovery, self-reviews, ...) are in both lists.
k create namespace rbac-check-ns >/dev/null 2>&1 || true
k -n rbac-check-ns create serviceaccount nobody >/dev/null 2>&1 || true
k --server "$SERVER" --certificate-authority "$TMP/ca.crt" --token "$(k -n rbac-check-ns create token nobody --duration=10m)" \
  --kubeconfig /dev/null auth can-i --list >"$TMP/baseline"
# kubectl pads its columns to the longest name of each list: compare the
# lines with their spaces squeezed.
squeeze() { sed 's/  */ /g; s/^ //' "$1"; }
granted="$(grep -vxF -f <(squeeze "$TMP/baseline") <(squeeze "$TMP/list") | sort)"
want="$(printf '%s\n' 'namespaces [] [] [get list watch]' 'networkpolicies.networking.k8s.io [] [] [get list watch]' \
  'nodes [] [] [get list watch]' 'pods [] [] [get list watch]' \
  'adminnetworkpolicies.policy.networking.k8s.io [] [] [get list watch]' \
  'baselineadminnetworkpolicies.policy.networking.k8s.io [] [] [get list watch]' \
  'clusternetworkpolicies.policy.networking.k8s.io [] [] [get list watch]' | sort)"
echo "granted by deploy/ (the agent's list minus a bare ServiceAccount's):"
sed 's/^/    /' <<<"$granted"
if [ "$granted" = "$want" ]; then ok "exactly get/list/watch on pods, namespaces, nodes, networkpolicies and the cluster-wide policies"
else bad "deploy/ grants something else:"; diff <(echo "$want") <(echo "$granted") || true; fi

section "can (auth can-i)"
for r in $RESOURCES; do
  for v in get list watch; do
    if a auth can-i "$v" "$r" --all-namespaces >/dev/null; then ok "$v $r"; else bad "cannot $v $r"; fi
  done
done

section "cannot (auth can-i)"
for r in $RESOURCES; do
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
for path in /api/v1/pods /api/v1/namespaces /api/v1/nodes /apis/networking.k8s.io/v1/networkpolicies \
  /apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies /apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies \
  /apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies; do
  if a get --raw "$path?limit=500" >/dev/null; then ok "list $path"; else bad "list $path"; fi
  # A real watch: the server streams events and closes after 1 s.
  if out="$(a get --raw "$path?watch=1&timeoutSeconds=1")"; then ok "watch $path ($(grep -c '"type"' <<<"$out" || true) event(s))"; else bad "watch $path"; fi
done
if a get --raw /apis/networking.k8s.io/v1/namespaces/rbac-check-ns/networkpolicies/deny >/dev/null; then ok "get networkpolicy rbac-check-ns/deny"; else bad "get networkpolicy"; fi

# Nodes: the agent reads every node (cluster policies' nodes peers select
# nodes by label, anywhere in the cluster), so no field selector narrows
# its node calls: the list and watch above are its calls.
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
