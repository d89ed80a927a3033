package engine_test

import (
	"net/netip"
	"sort"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// This file is an oracle: a deliberately naive evaluator written from the
// Kubernetes NetworkPolicy API reference and DESIGN.md, sharing no code with
// the engine beyond the model types and engine.Conn. It scans every policy
// for every question and reimplements label selector matching, so that a
// bug in the engine's indexes, caches or shared selectors cannot hide.

// naiveSelects is label selector matching as the API reference states it:
// every matchLabels pair and every matchExpressions requirement must hold.
func naiveSelects(s model.Selector, labels map[string]string) bool {
	for k, want := range s.MatchLabels {
		got, has := labels[k]
		if !has || got != want {
			return false
		}
	}
	for _, r := range s.Exprs {
		got, has := labels[r.Key]
		inValues := false
		for _, v := range r.Values {
			if has && v == got {
				inValues = true
			}
		}
		switch r.Operator {
		case model.OpIn:
			if !inValues {
				return false
			}
		case model.OpNotIn:
			if inValues {
				return false
			}
		case model.OpExists:
			if !has {
				return false
			}
		case model.OpDoesNotExist:
			if has {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// naiveNSLabels returns a namespace's labels; a namespace that is not
// declared still has its name label.
func naiveNSLabels(c *model.Cluster, name string) map[string]string {
	if ns, ok := c.Namespaces[name]; ok {
		return ns.Labels
	}
	return map[string]string{model.NamespaceNameLabel: name}
}

// naivePod returns the pod behind an endpoint when policy sees one: a
// host-network pod is its node, not a pod.
func naivePod(ep engine.Endpoint) *model.Pod {
	if ep.Pod == nil || ep.Pod.HostNetwork {
		return nil
	}
	return ep.Pod
}

// naiveAllowed answers whether connection conn is allowed in cluster c.
func naiveAllowed(c *model.Cluster, conn engine.Conn) bool {
	src, dst := naivePod(conn.From), naivePod(conn.To)
	if src != nil && dst != nil && src.Namespace == dst.Namespace && src.Name == dst.Name &&
		(src.Workload == "" || src.Replicas == 1) {
		return true // a pod talking to itself is never filtered (two replicas of a workload are two pods)
	}
	egressOK := src == nil || naiveTiers(c, src, model.Egress, conn.To, dst, conn)
	ingressOK := dst == nil || naiveFromOwnNode(c, conn, dst) || naiveTiers(c, dst, model.Ingress, conn.From, src, conn)
	return egressOK && ingressOK
}

// naiveTiers decides one direction as the policy.networking.k8s.io API
// documents it: the Admin tier's first matching rule (policies by
// priority, ties broken as Palisade documents: ClusterNetworkPolicy, then
// AdminNetworkPolicy, then BaselineAdminNetworkPolicy, then name) decides
// unless it passes; then NetworkPolicy, when one selects the pod for the
// direction; then the Baseline tier likewise; then allow.
func naiveTiers(c *model.Cluster, self *model.Pod, dir model.Direction, other engine.Endpoint, otherPod *model.Pod, conn engine.Conn) bool {
	if action := naiveTier(c, model.AdminTier, self, dir, other, otherPod, conn); action == model.Accept || action == model.Deny {
		return action == model.Accept
	}
	if naiveIsolated(c, self, dir) {
		return naiveDirection(c, self, dir, other, otherPod, conn)
	}
	return naiveTier(c, model.BaselineTier, self, dir, other, otherPod, conn) != model.Deny
}

// naiveTier returns the action of the first rule of tier that matches, 0
// when none does.
func naiveTier(c *model.Cluster, tier model.Tier, self *model.Pod, dir model.Direction, other engine.Endpoint, otherPod *model.Pod, conn engine.Conn) model.Action {
	var pols []*model.ClusterPolicy
	for _, p := range c.ClusterPolicies {
		if p.Tier == tier {
			pols = append(pols, p)
		}
	}
	rank := map[string]int{model.KindClusterNetworkPolicy: 0, model.KindAdminNetworkPolicy: 1, model.KindBaselineAdminNetworkPolicy: 2}
	sort.Slice(pols, func(i, j int) bool {
		a, b := pols[i], pols[j]
		if a.Priority != b.Priority {
			return a.Priority < b.Priority
		}
		if rank[a.Kind] != rank[b.Kind] {
			return rank[a.Kind] < rank[b.Kind]
		}
		return a.Name < b.Name
	})
	nsLabels := naiveNSLabels(c, self.Namespace)
	for _, p := range pols {
		subject := false
		if p.Subject.Namespaces != nil {
			subject = naiveSelects(*p.Subject.Namespaces, nsLabels)
		} else if p.Subject.Pods != nil {
			subject = naiveSelects(p.Subject.Pods.NamespaceSelector, nsLabels) && naiveSelects(p.Subject.Pods.PodSelector, self.Labels)
		}
		if !subject {
			continue
		}
		rules := p.IngressRules
		if dir == model.Egress {
			rules = p.EgressRules
		}
		for _, r := range rules {
			if naiveClusterRuleMatches(c, r, self, dir, other, otherPod, conn) {
				return r.Action
			}
		}
	}
	return 0
}

func naiveClusterRuleMatches(c *model.Cluster, r model.ClusterRule, self *model.Pod, dir model.Direction, other engine.Endpoint, otherPod *model.Pod, conn engine.Conn) bool {
	peerOK := false
	for _, peer := range r.Peers {
		switch {
		case peer.Namespaces != nil:
			peerOK = peerOK || otherPod != nil && naiveSelects(*peer.Namespaces, naiveNSLabels(c, otherPod.Namespace))
		case peer.Pods != nil:
			peerOK = peerOK || otherPod != nil && naiveSelects(peer.Pods.NamespaceSelector, naiveNSLabels(c, otherPod.Namespace)) &&
				naiveSelects(peer.Pods.PodSelector, otherPod.Labels)
		case peer.Nodes != nil:
			for _, n := range c.Nodes {
				for _, ip := range n.IPs {
					if ip == other.IP && naiveSelects(*peer.Nodes, n.Labels) {
						peerOK = true
					}
				}
			}
		default:
			for _, cidr := range peer.Networks {
				peerOK = peerOK || cidr.Contains(other.IP)
			}
		}
	}
	if !peerOK {
		return false
	}
	if r.Ports == nil {
		return true
	}
	receiver := self
	if dir == model.Egress {
		receiver = otherPod
	}
	for _, p := range r.Ports {
		if p.Name != "" {
			if receiver == nil {
				continue
			}
			for _, cp := range receiver.Ports {
				if cp.Name == p.Name && cp.Protocol == conn.Protocol && cp.Port == conn.Port {
					return true
				}
			}
			continue
		}
		if p.Protocol == conn.Protocol && (p.First == 0 || p.First <= conn.Port && conn.Port <= p.Last) {
			return true
		}
	}
	return false
}

// naiveIsolated reports whether a NetworkPolicy selects self for dir.
func naiveIsolated(c *model.Cluster, self *model.Pod, dir model.Direction) bool {
	for _, pol := range c.Policies {
		if pol.Namespace == self.Namespace && naiveSelects(pol.PodSelector, self.Labels) && pol.Affects(dir) {
			return true
		}
	}
	return false
}

// naiveFromOwnNode reports whether conn comes from dst's own node: one of
// the node's addresses, or a host-network pod running on it.
func naiveFromOwnNode(c *model.Cluster, conn engine.Conn, dst *model.Pod) bool {
	if dst.Node == "" {
		return false
	}
	if conn.From.Pod != nil && conn.From.Pod.HostNetwork && conn.From.Pod.Node == dst.Node {
		return true
	}
	for _, n := range c.Nodes {
		if n.Name != dst.Node {
			continue
		}
		for _, ip := range n.IPs {
			if ip == conn.From.IP {
				return true
			}
		}
	}
	return false
}

// naiveDirection decides one direction for pod self, whose other end is
// other (otherPod when that end is a pod).
func naiveDirection(c *model.Cluster, self *model.Pod, dir model.Direction, other engine.Endpoint, otherPod *model.Pod, conn engine.Conn) bool {
	isolated := false
	for _, pol := range c.Policies {
		if pol.Namespace != self.Namespace || !naiveSelects(pol.PodSelector, self.Labels) {
			continue
		}
		affects := pol.Ingress
		rules := pol.IngressRules
		if dir == model.Egress {
			affects, rules = pol.Egress, pol.EgressRules
		}
		if !affects {
			continue
		}
		isolated = true
		for _, r := range rules {
			if naiveRuleAllows(c, pol, r, self, dir, other, otherPod, conn) {
				return true
			}
		}
	}
	return !isolated
}

func naiveRuleAllows(c *model.Cluster, pol *model.Policy, r model.Rule, self *model.Pod, dir model.Direction, other engine.Endpoint, otherPod *model.Pod, conn engine.Conn) bool {
	peerOK := len(r.Peers) == 0
	for _, peer := range r.Peers {
		if peer.IPBlock != nil {
			if naiveInBlock(peer.IPBlock, other.IP) {
				peerOK = true
			}
			continue
		}
		if otherPod == nil {
			continue
		}
		if peer.NamespaceSelector == nil {
			if otherPod.Namespace != pol.Namespace {
				continue
			}
		} else if !naiveSelects(*peer.NamespaceSelector, naiveNSLabels(c, otherPod.Namespace)) {
			continue
		}
		if peer.PodSelector != nil && !naiveSelects(*peer.PodSelector, otherPod.Labels) {
			continue
		}
		peerOK = true
	}
	if !peerOK {
		return false
	}
	if len(r.Ports) == 0 {
		return true
	}
	for _, p := range r.Ports {
		if p.Protocol != conn.Protocol {
			continue
		}
		switch {
		case p.Name != "":
			// The receiver of the traffic names its ports: for egress
			// the destination pod, however the peer matched it.
			receiver := self
			if dir == model.Egress {
				receiver = otherPod
			}
			if receiver == nil {
				continue
			}
			for _, cp := range receiver.Ports {
				if cp.Name == p.Name && cp.Protocol == p.Protocol && cp.Port == conn.Port {
					return true
				}
			}
		case p.Port == 0:
			return true
		case p.EndPort != 0:
			if p.Port <= conn.Port && conn.Port <= p.EndPort {
				return true
			}
		default:
			if p.Port == conn.Port {
				return true
			}
		}
	}
	return false
}

// naiveInBlock reports whether ip is in b's CIDR and in none of its
// exceptions.
func naiveInBlock(b *model.IPBlock, ip netip.Addr) bool {
	if !b.CIDR.Contains(ip) {
		return false
	}
	for _, ex := range b.Except {
		if ex.Contains(ip) {
			return false
		}
	}
	return true
}
