package dataplane

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// The table's vocabulary. Chains and sets that carry policy get generated
// names (see nameGroups and sharedSetName); these are the fixed ones.
const (
	// TableName is the one table Palisade owns (family inet).
	TableName = "palisade"

	forwardChain = "forward"
	inputChain   = "input"

	ingressPrefix = "ing"
	egressPrefix  = "egr"

	// Verdict maps from a local pod's address to its pod-group chain.
	ingressMap = "ingress"
	egressMap  = "egress"
	// Sets of local isolated pods whose elements count drops per pod.
	ingressDrops = "ingress_drops"
	egressDrops  = "egress_drops"
	// Set of `pod . pod` pairs: a pod's traffic to itself is never filtered.
	selfSet = "self"
	// The unknown-pod guard: the node's pod CIDRs, and the addresses in
	// them that pods the agent knows have (see Options.AllowUnknown).
	localCIDRs = "local_cidrs"
	knownPods  = "known_pods"

	// maxChainName and maxSetName bound generated names (nft allows 255).
	maxChainName = 64
	maxSetName   = 64
	hashLen      = 8
	// maxComment keeps comments within the 128 bytes nft accepts.
	maxComment = 127

	// logPrefix starts every NFLOG prefix, so that drops are easy to grep.
	logPrefix = "palisade-drop "
	// maxLogPrefix is NF_LOG_PREFIXLEN less the terminating NUL.
	maxLogPrefix = 127
)

// GuardSource and GuardDestination name the unknown-pod guard's drops in
// NFLOG prefixes (in place of a chain's name): a new connection from, or
// to, an address of the node's pod CIDRs that no pod known to the agent
// has.
const (
	GuardSource      = "unknown-pod-source"
	GuardDestination = "unknown-pod-destination"
)

// hashString returns the first n hex digits of sha256(s).
func hashString(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

// identifier makes s safe as an nft identifier: letters, digits and
// `/ - _ .`, starting with a letter or `_`.
func identifier(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == '/':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := b.String()
	if out == "" || !(out[0] >= 'a' && out[0] <= 'z' || out[0] >= 'A' && out[0] <= 'Z' || out[0] == '_') {
		out = "_" + out
	}
	return out
}
