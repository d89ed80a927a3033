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
// Cluster-wide policies (ClusterNetworkPolicy, AdminNetworkPolicy,
// BaselineAdminNetworkPolicy) add stage chains around those, so that the
// kernel decides as engine.decide does: a pod that some Admin-tier
// policy applies to in a direction is dispatched to an Admin chain (one
// per list of such policies and next stage), whose rules in evaluation
// order return (Accept), goto the policy's deny chain (Deny: the same
// per-pod drop counter, log and drop as a NetworkPolicy chain's tail,
// the chain's name in the log prefix naming the policy) or goto the next
// stage (Pass, and the chain's end); DenyChainPolicy maps a deny
// chain, as a drop's log prefix names it, back to its policy. The next stage is the pod's
// NetworkPolicy chain when one isolates it (final), else its Baseline
// chain (Accept and Pass return, Deny goes to the deny chain, the end
// returns: allowed), else nothing (allowed). A pod no policy isolates
// and no cluster policy applies to stays out of the maps. Peers of
// cluster rules are interval sets (`*_cpeers4/6`: selected pods'
// addresses, the addresses of label-matching nodes, networks), named
// ports sets of `addr . proto . port` (`*_cnamed4/6`: this node's pods
// for ingress, the peer pods for egress).
//
// Cost: cluster policies are few, and the engine matches their selectors
// on demand, so the Compiler recompiles all of their rules and sets on
// any change of a cluster policy, pod, namespace or node (one pass over
// the cluster's pods per distinct peer list); a NetworkPolicy's change
// alone reuses them. At 10k pods, 10k NetworkPolicies and 20 cluster
// policies (BenchmarkCompileCluster), a pod's change compiles in ~33 ms
// (~14 ms without cluster policies), a NetworkPolicy's in ~10 ms (as
// without), a full Compile in ~0.12 s; the table grows by ~230 chains
// and ~7k elements.
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
