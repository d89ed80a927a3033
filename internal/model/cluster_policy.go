package model

import (
	"net/netip"
	"sort"
)

// Cluster-wide policy (policy.networking.k8s.io): ClusterNetworkPolicy
// (v1alpha2, v1beta1) and its predecessors AdminNetworkPolicy and
// BaselineAdminNetworkPolicy (v1alpha1) map onto one ClusterPolicy. A
// direction of a pod is decided by the first of: the Admin tier (Accept,
// Deny, or Pass on to the next tier), NetworkPolicy when one isolates the
// pod, the Baseline tier, and finally the default, allow.

// Tier is where a cluster policy sits relative to NetworkPolicy.
type Tier uint8

// Tiers, in the order they are evaluated (NetworkPolicy sits between).
const (
	AdminTier Tier = iota
	BaselineTier
)

func (t Tier) String() string {
	if t == BaselineTier {
		return "Baseline"
	}
	return "Admin"
}

// Action is what a cluster policy rule does with the traffic it matches.
type Action uint8

// Actions. v1alpha1's Allow is Accept.
const (
	Accept Action = iota + 1
	Deny
	Pass
)

func (a Action) String() string {
	switch a {
	case Accept:
		return "Accept"
	case Deny:
		return "Deny"
	case Pass:
		return "Pass"
	}
	return "unknown"
}

// Kinds of cluster policy, as the API names them.
const (
	KindClusterNetworkPolicy       = "ClusterNetworkPolicy"
	KindAdminNetworkPolicy         = "AdminNetworkPolicy"
	KindBaselineAdminNetworkPolicy = "BaselineAdminNetworkPolicy"
)

// ClusterKey names a cluster policy: names are unique per kind only.
type ClusterKey struct {
	Kind, Name string
}

func (k ClusterKey) String() string { return k.Kind + "/" + k.Name }

// NamespacedPods selects the pods matching PodSelector in the namespaces
// matching NamespaceSelector (both required; empty selects all).
type NamespacedPods struct {
	NamespaceSelector Selector
	PodSelector       Selector
}

// Selects reports whether a pod with podLabels in a namespace with
// nsLabels is chosen.
func (n NamespacedPods) Selects(nsLabels, podLabels map[string]string) bool {
	return n.NamespaceSelector.Matches(nsLabels) && n.PodSelector.Matches(podLabels)
}

// ClusterSubject is the pods a cluster policy applies to: every pod of the
// namespaces Namespaces selects, or the pods Pods selects. Exactly one is
// set. Host-network pods are never subjects.
type ClusterSubject struct {
	Namespaces *Selector
	Pods       *NamespacedPods
}

// Selects reports whether the subject holds a pod with podLabels in a
// namespace with nsLabels.
func (s ClusterSubject) Selects(nsLabels, podLabels map[string]string) bool {
	if s.Namespaces != nil {
		return s.Namespaces.Matches(nsLabels)
	}
	return s.Pods != nil && s.Pods.Selects(nsLabels, podLabels)
}

// ClusterPeer is one entry of a cluster rule's from/to. Exactly one field
// is set. Namespaces and Pods match pods (never host-network ones), Nodes
// the addresses of the nodes whose labels match, Networks any address in
// the CIDRs, pods' included. Nodes and Networks appear in egress rules
// only.
type ClusterPeer struct {
	Namespaces *Selector
	Pods       *NamespacedPods
	Nodes      *Selector
	Networks   []netip.Prefix
}

// ClusterPort is one entry of a cluster rule's ports (v1alpha1) or
// protocols (v1alpha2). A named port (Name) resolves on the destination
// pod's container ports of any protocol; otherwise Protocol with First..Last
// (First 0: every port of the protocol).
type ClusterPort struct {
	Protocol    Protocol
	First, Last uint16
	Name        string
}

// ClusterRule is one ingress or egress rule. Ports nil means every port
// and protocol.
type ClusterRule struct {
	Name   string
	Action Action
	Peers  []ClusterPeer
	Ports  []ClusterPort
}

// ClusterPolicy is a validated cluster-wide policy of any of the three
// kinds.
type ClusterPolicy struct {
	Kind string
	Name string
	// APIVersion is the version it was read as, for messages.
	APIVersion string
	Tier       Tier
	// Priority orders policies within a tier, lower first (0..1000). A
	// BaselineAdminNetworkPolicy, which has none, gets BaselinePriority.
	Priority     int32
	Subject      ClusterSubject
	IngressRules []ClusterRule
	EgressRules  []ClusterRule
}

// BaselinePriority is the priority given to the BaselineAdminNetworkPolicy:
// after every Baseline-tier ClusterNetworkPolicy (0..1000). The API leaves
// the order of the two kinds to implementations.
const BaselinePriority = 1001

// Key returns the policy's kind/name.
func (p *ClusterPolicy) Key() ClusterKey { return ClusterKey{p.Kind, p.Name} }

// Rules returns p's rules for dir.
func (p *ClusterPolicy) Rules(dir Direction) []ClusterRule {
	if dir == Egress {
		return p.EgressRules
	}
	return p.IngressRules
}

// kindOrder breaks priority ties between kinds: ClusterNetworkPolicy
// first, then the v1alpha1 kinds. The API says the choice among policies
// of equal priority is the implementation's; Palisade's is stable and
// documented: priority, then kind, then name.
func kindOrder(kind string) int {
	switch kind {
	case KindClusterNetworkPolicy:
		return 0
	case KindAdminNetworkPolicy:
		return 1
	}
	return 2
}

// ClusterPolicyLess orders policies of one tier as they are evaluated:
// priority, then kind, then name.
func ClusterPolicyLess(a, b *ClusterPolicy) bool {
	if a.Tier != b.Tier {
		return a.Tier < b.Tier
	}
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	if ka, kb := kindOrder(a.Kind), kindOrder(b.Kind); ka != kb {
		return ka < kb
	}
	return a.Name < b.Name
}

// SortedClusterPolicies returns c's cluster policies in evaluation order
// (Admin tier, then Baseline; ClusterPolicyLess within each).
func (c *Cluster) SortedClusterPolicies() []*ClusterPolicy {
	out := make([]*ClusterPolicy, 0, len(c.ClusterPolicies))
	for _, p := range c.ClusterPolicies {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return ClusterPolicyLess(out[i], out[j]) })
	return out
}
