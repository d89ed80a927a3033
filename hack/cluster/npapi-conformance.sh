#!/usr/bin/env bash
# The upstream network-policy-api conformance suite (the Go tests of
# sigs.k8s.io/network-policy-api/conformance, v0.3.0: ClusterNetworkPolicy,
# Admin and Baseline tiers) against the real two-node cluster of up.sh, with
# Palisade's DaemonSet from deploy/ enforcing. As root; the cluster is torn
# down on any exit. NPAPI.md has the results and the reasons for each skip.
#
#   hack/cluster/npapi-conformance.sh          # make cluster-npapi
#   BUILD_ONLY=1 hack/cluster/npapi-conformance.sh   # just build (and print) the test binary
#
# Env: PROXY_MODE (passed to up.sh), RUN (a go test -run regexp of the
# suite's tests, e.g. 'CNPAdminTierIngressTCP|CNPBaselineTierGress'; default
# all), KEEP=1 (leave the cluster up), NPAPI_REPORT_DIR (log, results.md,
# nft tables and agent logs; default /tmp/palisade-npapi), NPAPI_TIMEOUT
# (the suite's go test -timeout, default 40m).
#
# The last line is "N passed, N failed, N skipped"; the exit status is 0 only
# if nothing failed and at least one test passed.
#
# What cannot run here, and how it is handled:
#   SCTP   this machine's kernel has no SCTP (CONFIG_IP_SCTP is not set): an
#          SCTP socket cannot be opened, so agnhost porter's SCTP servers exit
#          at once and `agnhost connect --protocol=sctp` fails whatever the
#          policy says. Three edits to a copy of the module, made at build time
#          (the module cache stays pristine; see patch_suite):
#          - the base manifests' SCTP server containers (agnhost porter,
#            SERVE_SCTP_PORT_*) are removed, or the pods would never be Ready;
#          - PokeServer logs an SCTP probe as "NPAPI-SCTP-PROBE-NOT-RUN" and
#            returns, so a test mixing TCP, UDP and SCTP probes still checks
#            its TCP and UDP ones (the table counts the SCTP probes not run);
#          - nothing else. The four tests about SCTP alone
#            (CNP{Admin,Baseline}Tier{Ingress,Egress}SCTP) are skipped
#            (go test -skip).
#   domainNames (FQDN peers, experimental CRD): not supported by Palisade; no
#          test of v0.3.0 exercises it, so nothing is skipped for it.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
. "$HERE/common.sh"
log() { echo "npapi-conformance.sh: $*" >&2; }

NPAPI_VERSION=v0.3.0
NPAPI_MODULE=sigs.k8s.io/network-policy-api
CACHE="${APISERVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-testbin}"
REPORT="${NPAPI_REPORT_DIR:-/tmp/palisade-npapi}"
# The standard features and the experimental ones Palisade implements: named
# ports (destinationNamedPort) and node peers (nodes); the CRD installed is
# the experimental channel's, which has those fields.
FEATURES=ClusterNetworkPolicy,ClusterNetworkPolicyNamedPorts,ClusterNetworkPolicyEgressNodePeers
SKIP_RE='SCTP$'
export GOWORK=off

# patch_suite DIR: the edits described above, each checked to have applied
# exactly where expected (a new upstream version that moves things fails here
# instead of running something else).
patch_suite() {
  local d="$1" n
  n=$(perl -0 -i -pe '$c += s{^        - name: [^\n]*\n          image: [^\n]*\n          command: \["/bin/bash", "-c", "/agnhost porter"\]\n          env:\n          - name: SERVE_SCTP_PORT_[^\n]*\n            value: "foo"\n}{}mg; END { print STDOUT $c+0 }' "$d/conformance/base/manifests.yaml")
  [ "$n" = 10 ] || { log "patch: expected 10 SCTP server containers in base/manifests.yaml, removed $n"; return 1; }
  grep -q SCTP "$d/conformance/base/manifests.yaml" && { log "patch: SCTP left in base/manifests.yaml"; return 1; }
  n=$(perl -0 -i -pe '$c += s{^(func PokeServer\(t \*testing\.T, [^\n]*shouldConnect bool\) \{\n)}{$1\tif protocol == "sctp" { // palisade hack/cluster/npapi-conformance.sh: this kernel has no SCTP\n\t\tt.Logf("NPAPI-SCTP-PROBE-NOT-RUN %s/%s -> %s:%d connect=%v", clientNamespace, clientPod, targetHost, targetPort, shouldConnect)\n\t\treturn\n\t}\n}m; END { print STDOUT $c+0 }' "$d/conformance/utils/kubernetes/helper.go")
  [ "$n" = 1 ] || { log "patch: PokeServer not found in utils/kubernetes/helper.go"; return 1; }
}

# build_suite: `go test -c` of the patched copy's ./conformance, cached in
# $CACHE/bin under a name keyed by patch_suite's text and the Go version;
# prints NPAPI_BIN=... and NPAPI_SRC=... (the pristine module, for its CRDs).
build_suite() {
  local src key bin w t0=$SECONDS
  src=$(GOFLAGS=-mod=mod go mod download -json "$NPAPI_MODULE@$NPAPI_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  [ -d "$src/conformance" ] || { log "go mod download $NPAPI_MODULE@$NPAPI_VERSION gave no conformance dir"; return 1; }
  key=$( (declare -f patch_suite; go version) | sha256sum | cut -c1-12)
  bin="$CACHE/bin/npapi-conformance.test-$NPAPI_VERSION-$key"
  if [ ! -x "$bin" ]; then
    w="$CACHE/src/npapi-conformance-$NPAPI_VERSION"
    rm -rf "$w"; mkdir -p "$w" "$CACHE/bin"
    cp -r "$src/." "$w/"; chmod -R u+w "$w"
    patch_suite "$w" || return 1
    log "building the conformance suite of $NPAPI_MODULE $NPAPI_VERSION (a few minutes on 2 cores)"
    (cd "$w" && GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 go test -c -trimpath -o "$bin.tmp" ./conformance) || return 1
    mv "$bin.tmp" "$bin"
    log "built $bin in $((SECONDS - t0))s"
  fi
  echo "NPAPI_BIN=$bin"
  echo "NPAPI_SRC=$src"
}

export PATH="/usr/local/go/bin:$PATH"
if [ "${BUILD_ONLY:-}" = 1 ]; then build_suite; exit; fi
[ "$(id -u)" = 0 ] || { log "run as root"; exit 2; }

T0=$SECONDS
# The agent image is built from this working tree (hack/images/build.sh):
# say which tree, and whether it had changes not committed.
REV="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$REPO" status --porcelain -- cmd internal deploy go.mod 2>/dev/null)" ]; then REV="$REV+uncommitted"; fi
log "Palisade from $REV"
eval "$(build_suite)" || { log "could not build the conformance suite"; exit 1; }
[ -x "${NPAPI_BIN:-}" ] || { log "build_suite printed no NPAPI_BIN"; exit 1; }
rm -rf "$REPORT"; mkdir -p "$REPORT"
# The suite's tests, from its sources: name and features (a skipped test
# prints nothing, so the table lists every test from here).
ALL_TESTS=$(grep -ho 'ShortName: *"[A-Za-z0-9]*"' "$NPAPI_SRC"/conformance/tests/*.go | sed 's/.*"\(.*\)"/\1/' | sort)
[ -n "$ALL_TESTS" ] || { log "no ShortName in $NPAPI_SRC/conformance/tests"; exit 1; }

# agnhost-npapi: the suite's agnhost:2.45 (with bash; hack/images/build.sh)
if ! NODES=2 IMAGES="pause palisade agnhost-npapi" PROXY_MODE="${PROXY_MODE:-nftables}" "$HERE/up.sh" >/dev/null; then
  log "the cluster did not come up"; echo "0 passed, 0 failed, 0 skipped (no cluster)"; exit 1
fi
kubectl() { "$HERE/kubectl.sh" "$@"; }
# collect: what to read after a failure (agents' logs and rule sets, the
# policies, the pods), into $REPORT.
collect() {
  local n pod
  for n in 1 2; do in_node "$n" nft list table inet palisade >"$REPORT/nft-node$n.txt" 2>&1; done
  kubectl get pods -A -o wide >"$REPORT/pods.txt" 2>&1
  kubectl get clusternetworkpolicies -o yaml >"$REPORT/clusternetworkpolicies.yaml" 2>&1
  for pod in $(kubectl -n palisade-system get pods -o name 2>/dev/null); do
    kubectl -n palisade-system logs "$pod" >"$REPORT/agent-${pod#pod/}.log" 2>&1
  done
}
finish() {
  local rc=$?
  trap - EXIT INT TERM
  collect
  if [ "${KEEP:-}" = 1 ]; then log "KEEP=1: cluster still up (hack/cluster/down.sh removes it)"
  else "$HERE/down.sh" >/dev/null 2>&1 || { log "down.sh failed"; rc=1; }; fi
  exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

# The experimental channel's CRD (ClusterNetworkPolicy, served as v1alpha2
# and v1beta1, stored as v1beta1; v0.3.0 ships no AdminNetworkPolicy or
# BaselineAdminNetworkPolicy CRD and its suite uses neither). Server-side:
# the CRD is too large for apply's last-applied annotation to be sensible.
kubectl apply --server-side -f "$NPAPI_SRC/config/crd/experimental/policy.networking.k8s.io_clusternetworkpolicies.yaml" >&2 &&
  kubectl wait --for condition=established --timeout=60s crd/clusternetworkpolicies.policy.networking.k8s.io >&2 ||
  { log "the ClusterNetworkPolicy CRD was not established"; exit 1; }
deploy_palisade kubectl || { log "Palisade did not roll out"; exit 1; }
log "cluster, CRD and Palisade up in $((SECONDS - T0))s; running the suite (features $FEATURES)"

t=$SECONDS
in_node 1 env KUBECONFIG="$CLUSTER_VAR_DIR/admin.kubeconfig" \
  timeout --kill-after=30s "$(( ${NPAPI_TIMEOUT_MIN:-40} + 5 ))m" "$NPAPI_BIN" \
  -test.run "^TestConformance\$${RUN:+/($RUN)\$}" -test.skip "/$SKIP_RE" -test.v \
  -test.timeout "${NPAPI_TIMEOUT_MIN:-40}m" -supported-features="$FEATURES" \
  -cleanup-base-resources=true >"$REPORT/suite.log" 2>&1
rc=$?
dur=$((SECONDS - t))
log "the suite ran in ${dur}s (exit $rc); log in $REPORT/suite.log"

# results: one line per test of the suite: NAME RESULT SECONDS SCTP-PROBES-NOT-RUN DETAIL
# (DETAIL of a failure: the first failing subtest and the last probe that
# failed in the test: a probe is retried for 10 s, the last try is the one
# that counted)
awk -v all="$(echo $ALL_TESTS)" -v skipre="$SKIP_RE" -v run="${RUN:-}" '
  function flush() { if (cur != "" && !(cur in detail) && why != "") detail[cur] = why }
  /^=== RUN   TestConformance\/[^\/]+$/ { flush(); cur = substr($3, 17); why = ""; sub_ = ""; next }
  /^=== (RUN|NAME)/ { next }
  cur != "" && /NPAPI-SCTP-PROBE-NOT-RUN/ { sctp[cur]++ }
  cur != "" && /Expected connection to succeed/ { why = "allowed traffic blocked: " $0 }
  cur != "" && /Expected connection to fail .* successfully connected/ { why = "denied traffic got through: " $0 }
  cur != "" && /Expected connection to be dropped/ { why = "wrong failure: " $0 }
  cur != "" && /FAILED to execute command/ { why = "exec failed: " $0 }
  cur != "" && why == "" && /Error Trace|Error:/ && /error (creating|updating|getting|deleting) resource|unable to/ { why = "API: " $0 }
  cur != "" && /Skipping .*: suite does not support/ { skipwhy[cur] = $0 }
  /^        --- FAIL: TestConformance\/[^\/]+\// { s = $3; sub(/^TestConformance\/[^\/]+\//, "", s); n = $3; sub(/^TestConformance\//, "", n); sub(/\/.*/, "", n); if (!(n in firstsub)) firstsub[n] = s }
  /^    --- (PASS|FAIL|SKIP): TestConformance\/[^\/]+ \(/ {
    n = $3; sub(/^TestConformance\//, "", n); res[n] = $2; sub(/:/, "", res[n]); secs[n] = $4; gsub(/[()s]/, "", secs[n]) }
  /^--- FAIL: TestConformance / { topfail = 1 }
  END {
    flush()
    split(all, names, " ")
    for (i = 1; i <= length(names); i++) {
      n = names[i]; d = ""
      if (n in res) {
        r = res[n]
        if (r == "FAIL") { d = (n in firstsub ? firstsub[n] ": " : "") detail[n] }
        if (r == "SKIP") d = skipwhy[n]
      } else if (n ~ skipre) { r = "SKIP"; d = "SCTP only: no SCTP in this kernel" }
      else if (run != "" && n !~ ("^(" run ")$")) { r = "SKIP"; d = "not selected (RUN)" }
      else { r = "FAIL"; d = "not run (setup failed or the suite stopped; see suite.log)" }
      gsub(/[ \t]+/, " ", d); gsub(/\|/, "/", d)
      if (length(d) > 300) d = substr(d, 1, 300) "..."
      printf "%s\t%s\t%s\t%d\t%s\n", n, r, (n in secs ? secs[n] : "-"), sctp[n] + 0, d
    }
  }' "$REPORT/suite.log" >"$REPORT/results.tsv"

{
  echo "| test | result | s | SCTP probes not run | detail |"
  echo "|---|---|---|---|---|"
  while IFS=$'\t' read -r n r s p d; do echo "| $n | $r | $s | $p | $d |"; done <"$REPORT/results.tsv"
} >"$REPORT/results.md"
cat "$REPORT/results.md"
grep -E '^\s*--- FAIL' "$REPORT/suite.log" >&2
passed=$(awk -F'\t' '$2 == "PASS"' "$REPORT/results.tsv" | wc -l)
failed=$(awk -F'\t' '$2 == "FAIL"' "$REPORT/results.tsv" | wc -l)
skipped=$(awk -F'\t' '$2 == "SKIP"' "$REPORT/results.tsv" | wc -l)
log "total $((SECONDS - T0))s (suite ${dur}s)"
echo "Palisade $REV, $NPAPI_MODULE $NPAPI_VERSION: $passed passed, $failed failed, $skipped skipped" >"$REPORT/summary.txt"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ] && [ "$rc" = 0 ]
