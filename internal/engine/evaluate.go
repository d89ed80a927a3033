package engine

import (
	"fmt"
	"net/netip"

	"github.com/palisade-net/palisade/internal/model"
)

// Endpoint is one end of a connection: a pod (with the address of the
// connection's family) or a bare address outside the cluster's pods.
type Endpoint struct {
	Pod *model.Pod // nil for an address that is no pod's
	IP  netip.Addr
}

func (ep Endpoint) String() string {
	if ep.Pod != nil {
		return ep.Pod.Key().String()
	}
	return ep.IP.String()
}

// isPod reports whether policy treats ep as a pod: host-network pods
// share their node's address and are treated as the node.
func (ep Endpoint) isPod() bool { return ep.Pod != nil && !ep.Pod.HostNetwork }

// Conn is a new connection: the first packet's source, destination,
// protocol and destination port.
type Conn struct {
	From, To Endpoint
	Protocol model.Protocol
	Port     uint16
}

// Verdict is the answer for a connection, with the reasons.
type Verdict struct {
	Allowed bool
	// Shortcut is set when the connection is never subject to policy:
	// "loopback" or "node to own pod".
	Shortcut string
	Egress   Decision // the source's egress
	Ingress  Decision // the destination's ingress
}

// Decision is one direction's part of a verdict.
type Decision struct {
	Direction model.Direction
	// Pod is the pod this direction is checked on (the source for egress,
	// the destination for ingress); zero when that end is not a pod.
	Pod model.Key
	// Isolating lists the policies that isolate Pod in this direction;
	// empty means not isolated, so allowed.
	Isolating []model.Key
	Allowed   bool
	// By is the rule that allowed it, when Isolating is not empty.
	By *RuleRef
	// Misses says, per rule of the isolating policies, why it did not
	// match. Only filled by Explain.
	Misses []Miss
	// Stage is what decided: a cluster-wide policy's rule of the Admin
	// tier, NetworkPolicy (Isolating not empty), a rule of the Baseline
	// tier, or nothing (the default: allowed).
	Stage Stage
	// Cluster is the cluster policy rule that decided, for StageAdmin and
	// StageBaseline.
	Cluster *ClusterRuleRef
	// Passed holds the Pass rules that handed the decision down a tier,
	// in order. Only filled by Explain.
	Passed []ClusterRuleRef
	// ClusterMisses are the rules of cluster policies that apply to Pod
	// and were passed over, with why. Only filled by Explain.
	ClusterMisses []ClusterMiss
}

// Miss is why one rule did not allow a connection.
type Miss struct {
	Rule   RuleRef
	Reason string
}

// Applies reports whether this direction was checked on a pod.
func (d Decision) Applies() bool { return d.Pod != model.Key{} }

// Allowed reports whether c is allowed, without building an explanation.
func (e *Engine) Allowed(c Conn) bool {
	v := e.evaluate(c, false)
	return v.Allowed
}

// Explain returns the verdict for c with everything that led to it.
func (e *Engine) Explain(c Conn) Verdict { return e.evaluate(c, true) }

func (e *Engine) evaluate(c Conn, explain bool) Verdict {
	v := Verdict{Egress: Decision{Direction: model.Egress}, Ingress: Decision{Direction: model.Ingress}}
	if c.From.isPod() && c.To.isPod() && c.From.Pod.Key() == c.To.Pod.Key() && !c.From.Pod.Siblings() {
		v.Allowed, v.Shortcut = true, "loopback"
		v.Egress.Allowed, v.Ingress.Allowed = true, true
		return v
	}
	v.Egress = e.decide(c, model.Egress, explain)
	v.Ingress = e.decide(c, model.Ingress, explain)
	if c.To.isPod() && e.fromOwnNode(c) {
		v.Shortcut = "node to own pod"
		v.Ingress.Allowed = true
	}
	v.Allowed = v.Egress.Allowed && v.Ingress.Allowed
	return v
}

// fromOwnNode reports whether c comes from the destination pod's node (its
// address, or a host-network pod on it): kubelet probes must always work.
func (e *Engine) fromOwnNode(c Conn) bool {
	node := c.To.Pod.Node
	if node == "" {
		return false
	}
	if c.From.Pod != nil && c.From.Pod.HostNetwork && c.From.Pod.Node == node {
		return true
	}
	return e.nodeIPs[c.From.IP] == node
}

func (e *Engine) decide(c Conn, dir model.Direction, explain bool) Decision {
	d := Decision{Direction: dir}
	self, peer := c.To, c.From
	if dir == model.Egress {
		self, peer = c.From, c.To
	}
	if !self.isPod() {
		d.Allowed = true
		return d
	}
	d.Pod = self.Pod.Key()
	if e.tierDecides(&d, model.AdminTier, c, self, peer, explain) {
		return d
	}
	pols := e.Isolating(d.Pod, dir)
	if len(pols) == 0 {
		if !e.tierDecides(&d, model.BaselineTier, c, self, peer, explain) {
			d.Allowed = true
		}
		return d
	}
	d.Stage = StageNetworkPolicy
	if explain {
		// Only Explain shows the decision: Allowed must not allocate.
		d.Isolating = make([]model.Key, len(pols))
		for i, p := range pols {
			d.Isolating[i] = p.Key
		}
	}
	for _, p := range pols {
		for _, r := range p.Rules[dir] {
			reason := e.match(r, c, self, peer, dir, explain)
			if reason == "" {
				d.Allowed = true
				if explain {
					ref := r.Ref
					d.By = &ref
					d.Misses = nil
				}
				return d
			}
			if explain {
				d.Misses = append(d.Misses, Miss{r.Ref, reason})
			}
		}
		if explain && len(p.Rules[dir]) == 0 {
			d.Misses = append(d.Misses, Miss{RuleRef{p.Key, dir, -1}, fmt.Sprintf("policy has no %s rules: it only isolates", dir)})
		}
	}
	return d
}

// tierDecides runs one tier of cluster policies for d's direction and
// reports whether it decided (Accept or Deny), filling d. A Pass, or no
// rule matching, leaves the decision to what follows.
func (e *Engine) tierDecides(d *Decision, tier model.Tier, c Conn, self, peer Endpoint, explain bool) bool {
	if len(e.clusterOrder) == 0 {
		return false
	}
	ref, ok, misses := e.clusterDecide(tier, c, self, peer, d.Direction, explain)
	if explain {
		d.ClusterMisses = append(d.ClusterMisses, misses...)
	}
	if !ok {
		return false
	}
	if ref.Action == model.Pass {
		if explain {
			d.Passed = append(d.Passed, ref)
		}
		return false
	}
	d.Stage = StageAdmin
	if tier == model.BaselineTier {
		d.Stage = StageBaseline
	}
	d.Allowed = ref.Action == model.Accept
	if explain {
		d.Cluster = &ref
	}
	return true
}

// match returns "" when r allows c, or why it does not. self is the pod
// the rule belongs to, peer the other end.
func (e *Engine) match(r *Rule, c Conn, self, peer Endpoint, dir model.Direction, explain bool) string {
	if !e.peerMatch(r, peer) {
		if !explain {
			return "peer"
		}
		return fmt.Sprintf("%s %s is not a peer of this rule", map[model.Direction]string{model.Ingress: "source", model.Egress: "destination"}[dir], peer)
	}
	if r.AllPorts {
		return ""
	}
	for _, pr := range r.Ports {
		if pr.Protocol == c.Protocol && (pr.First == 0 || (pr.First <= c.Port && c.Port <= pr.Last)) {
			return ""
		}
	}
	// A named port resolves on the pod that receives the traffic: the
	// selected pod for ingress, the destination pod for egress, however
	// the rule's peers matched it (a selector, or an ipBlock holding its
	// address), as the reference implementation, Calico and Cilium do.
	// An address that is no pod's has no ports to name.
	resolveOn := self.Pod
	if dir == model.Egress {
		resolveOn = nil
		if peer.isPod() {
			resolveOn = peer.Pod
		}
	}
	var unresolved []string
	for _, np := range r.Named {
		if np.Protocol != c.Protocol {
			continue
		}
		if resolveOn == nil {
			unresolved = append(unresolved, np.Name)
			continue
		}
		if port, ok := resolveOn.NamedPort(np.Name, np.Protocol); ok && port == c.Port {
			return ""
		} else if !ok {
			unresolved = append(unresolved, np.Name)
		}
	}
	if !explain {
		return "port"
	}
	msg := fmt.Sprintf("port %d/%s is not in the rule's ports (%s)", c.Port, c.Protocol, describePorts(r))
	for _, name := range unresolved {
		if resolveOn == nil {
			msg += fmt.Sprintf("; named port %q cannot resolve on %s (no pod has this address)", name, peer)
		} else {
			msg += fmt.Sprintf("; named port %q is not a %s port of %s", name, c.Protocol, resolveOn.Key())
		}
	}
	return msg
}

// peerMatch reports whether ep is a peer of r: every endpoint under
// AllPeers, a pod through a selector, any address through an ipBlock.
func (e *Engine) peerMatch(r *Rule, ep Endpoint) bool {
	if r.AllPeers {
		return true
	}
	if ep.isPod() {
		k := ep.Pod.Key()
		for _, s := range r.peerSels {
			if _, in := s.members[k]; in {
				return true
			}
		}
	}
	return r.Blocks != nil && r.Blocks.Contains(ep.IP)
}

func describePorts(r *Rule) string {
	s := ""
	add := func(x string) {
		if s != "" {
			s += ", "
		}
		s += x
	}
	for _, pr := range r.Ports {
		switch {
		case pr.First == 0:
			add("any/" + pr.Protocol.String())
		case pr.First == pr.Last:
			add(fmt.Sprintf("%d/%s", pr.First, pr.Protocol))
		default:
			add(fmt.Sprintf("%d-%d/%s", pr.First, pr.Last, pr.Protocol))
		}
	}
	for _, np := range r.Named {
		add(np.Name + "/" + np.Protocol.String())
	}
	return s
}

// DescribePorts renders a rule's ports as "80/TCP, 81-90/UDP, http/TCP",
// or "any" for a rule without ports.
func DescribePorts(r *Rule) string {
	if r.AllPorts {
		return "any"
	}
	return describePorts(r)
}
