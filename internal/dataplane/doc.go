// Package dataplane compiles the engine's IR for one node into an
// nftables ruleset and programs it into the kernel over netlink
// (github.com/google/nftables), never through the nft binary.
//
// The ruleset is one table, `inet palisade`. Base chains `forward` and
// `input` accept replies (`ct state established,related`) and dispatch
// new connections through verdict maps keyed by local pod addresses
// (egress4/6 on the source, then ingress4/6 on the destination; input
// checks egress only). Pods isolated by the same policies share one
// chain per direction and address family, so pod churn only changes map
// and set elements.
// In a chain, each rule of each isolating policy becomes nft rules that
// return when it allows; the chain ends by counting the drop per pod (a
// counter per element of ingress_drops4/6, egress_drops4/6), optionally
// logging it to NFLOG, and dropping. Peers live in named sets shared by
// all rules with the same peers, named ports in per-rule sets, so the
// per-packet cost does not grow with pods.
//
// Compile is a pure function from the engine to a Ruleset (plain data,
// rendered by String as `nft list table` prints it). A Compiler gives the
// same Ruleset incrementally: fed the engine's TakeChanges, it recompiles
// only the policies they name and reuses the other policies' rules and
// sets (the same *Set, which Apply then skips). An Enforcer applies
// Rulesets to a network namespace, each in one atomic transaction: the
// first as the difference from what the kernel holds (read back), later
// ones as the difference from the last.
//
// The package imports engine and model; nothing imports it but the agent,
// the lab and the CLI.
package dataplane
