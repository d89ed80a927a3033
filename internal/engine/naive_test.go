package engine_test

import (
	"net/netip"

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
	egressOK := src == nil || naiveDirection(c, src, model.Egress, conn.To, dst, conn)
	ingressOK := dst == nil || naiveFromOwnNode(c, conn, dst) || naiveDirection(c, dst, model.Ingress, conn.From, src, conn)
	return egressOK && ingressOK
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
