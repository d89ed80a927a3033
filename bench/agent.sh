#!/usr/bin/env bash
# Agent on a real API server (BENCHMARKS.md, "Agent on a real API server").
# Usage: sudo bash bench/agent.sh [-scales 1k,10k] [flags of bench/agent]
#   bash bench/agent.sh                         # both scales, default sizes
#   bash bench/agent.sh -scales 1k -samples 50  # quick run
#   bash bench/agent.sh -probe read             # poll with dataplane.Read
#   bash bench/agent.sh -h                      # all flags of bench/agent
# Builds bin/palisade and the bench, then for each scale starts a fresh
# kube-apiserver + etcd (hack/apiserver/up.sh), runs bench/agent against
# it, and stops it (also on failure and on Ctrl-C). Needs root: the agent
# enforces in a network namespace palisade-agentbench-<pid>, removed by
# the bench at the end (or by the next run if it was killed hard).
set -euo pipefail
cd "$(dirname "$0")/.."

scales=1k,10k
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -scales|--scales) scales="$2"; shift 2 ;;
    -scales=*|--scales=*) scales="${1#*=}"; shift ;;
    -scale|--scale|-scale=*|--scale=*|-kubeconfig*|--kubeconfig*) echo "agent.sh: use -scales; the script sets -kubeconfig" >&2; exit 2 ;;
    *) args+=("$1"); shift ;;
  esac
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/palisade-agentbench.XXXXXX")
STATE_DIR=
cleanup() {
  if [ -n "$STATE_DIR" ]; then bash hack/apiserver/down.sh "$STATE_DIR"; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o bin/palisade ./cmd/palisade
go build -o "$tmp/agentbench" ./bench/agent
if [ "${args[0]:-}" = -h ] || [ "${args[0]:-}" = --help ]; then "$tmp/agentbench" -h; exit 0; fi
echo "nproc: $(nproc); go: $(go version); kernel: $(uname -r); load: $(cut -d' ' -f1-3 /proc/loadavg)"

for scale in ${scales//,/ }; do
  out=$(bash hack/apiserver/up.sh)
  STATE_DIR=$(sed -n 's/^STATE_DIR=//p' <<<"$out")
  KUBECONFIG=$(sed -n 's/^KUBECONFIG=//p' <<<"$out")
  [ -n "$STATE_DIR" ] && [ -n "$KUBECONFIG" ] || { echo "agent.sh: up.sh printed no KUBECONFIG/STATE_DIR" >&2; exit 1; }
  # Not exec: the EXIT trap stops the API server. Signals reach the bench
  # (same process group), which stops the agent and removes its namespace.
  "$tmp/agentbench" -kubeconfig "$KUBECONFIG" -palisade bin/palisade -scale "$scale" ${args[@]+"${args[@]}"}
  bash hack/apiserver/down.sh "$STATE_DIR"
  STATE_DIR=
done
