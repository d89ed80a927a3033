#!/usr/bin/env bash
# Kernel dataplane benchmarks (BENCHMARKS.md, "Kernel dataplane").
# Usage: sudo bash bench/run.sh [flags of bench/dataplane]
#   bash bench/run.sh                                  # everything, default sizes
#   bash bench/run.sh -bench traffic -rounds 25        # conn/s and throughput only
#   bash bench/run.sh -bench traffic -tput=false -conn crr  # conn/s as netperf's TCP_CRR
#   bash bench/run.sh -bench change -scales 1k,10k     # policy change latency only
#   bash bench/run.sh -h                               # all flags
# Needs root. Everything it creates is in network namespaces named
# palisade-bench-* / palisade-benchk-* (and /run/palisade/bench), removed at
# the end, on error and on Ctrl-C; a run killed with SIGKILL is cleaned up by
# the next run, or by `palisade lab down bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/palisade-bench
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./bench/dataplane
echo "nproc: $(nproc); go: $(go version)"
# Not exec: the EXIT trap removes the binary. Signals reach the program
# (same process group), which cleans up and exits.
"$bin" "$@"
