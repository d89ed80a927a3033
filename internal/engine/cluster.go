package engine

import (
	"fmt"
	"slices"

	"github.com/palisade-net/palisade/internal/model"
)

// Cluster-wide policies (model.ClusterPolicy) are few, tens in a cluster
// that has many thousands of pods: the engine keeps them in evaluation
// order and matches their selectors when asked, rather than keeping
// shared selectors up to date as it does for NetworkPolicy.

// Stage is the part of the evaluation that decided a direction.
type Stage uint8

// Stages, in evaluation order.
const (
	// StageDefault: nothing decided (no cluster rule matched and no
	// NetworkPolicy isolates the pod): allowed.
	StageDefault Stage = iota
	StageAdmin
	StageNetworkPolicy
	StageBaseline
)

func (s Stage) String() string {
	switch s {
	case StageAdmin:
		return "Admin tier"
	case StageNetworkPolicy:
		return "NetworkPolicy"
	case StageBaseline:
		return "Baseline tier"
	}
	return "default"
}

// ClusterRuleRef names one rule of one cluster policy.
type ClusterRuleRef struct {
	Policy    model.ClusterKey
	Tier      model.Tier
	Priority  int32
	Direction model.Direction
	Index     int
	Name      string // the rule's name, when it has one
	Action    model.Action
}

func (r ClusterRuleRef) String() string {
	s := fmt.Sprintf("%s (%s tier, priority %d) %s rule %d", r.Policy, r.Tier, r.Priority, map[model.Direction]string{model.Ingress: "ingress", model.Egress: "egress"}[r.Direction], r.Index)
	if r.Name != "" {
		s += fmt.Sprintf(" %q", r.Name)
	}
	return s + ": " + r.Action.String()
}

// ClusterMiss is why a rule of a cluster policy that applies to the pod
// did not match the connection.
type ClusterMiss struct {
	Rule   ClusterRuleRef
	Reason string
}

// UpsertClusterPolicy adds or replaces a cluster-wide policy.
func (e *Engine) UpsertClusterPolicy(p *model.ClusterPolicy) {
	if e.clusterPolicies == nil {
		e.clusterPolicies = map[model.ClusterKey]*model.ClusterPolicy{}
	}
	e.clusterPolicies[p.Key()] = p
	e.sortClusterPolicies()
}

// DeleteClusterPolicy removes a cluster-wide policy.
func (e *Engine) DeleteClusterPolicy(k model.ClusterKey) {
	if _, ok := e.clusterPolicies[k]; ok {
		delete(e.clusterPolicies, k)
		e.sortClusterPolicies()
	}
}

func (e *Engine) sortClusterPolicies() {
	e.clusterOrder = e.clusterOrder[:0]
	for _, p := range e.clusterPolicies {
		e.clusterOrder = append(e.clusterOrder, p)
	}
	slices.SortFunc(e.clusterOrder, func(a, b *model.ClusterPolicy) int {
		switch {
		case model.ClusterPolicyLess(a, b):
			return -1
		case model.ClusterPolicyLess(b, a):
			return 1
		}
		return 0
	})
	e.dirty.ClusterPolicies = true
}

// ClusterPolicies returns the cluster-wide policies in evaluation order:
// the Admin tier, then the Baseline tier, each by priority, kind and name.
func (e *Engine) ClusterPolicies() []*model.ClusterPolicy { return e.clusterOrder }

// ClusterPolicy returns the cluster-wide policy k, or nil.
func (e *Engine) ClusterPolicy(k model.ClusterKey) *model.ClusterPolicy {
	return e.clusterPolicies[k]
}

// Subject reports whether cluster policy p applies to pod: never to a
// host-network pod.
func (e *Engine) Subject(p *model.ClusterPolicy, pod *model.Pod) bool {
	return !pod.HostNetwork && p.Subject.Selects(e.nsLabels(pod.Namespace), pod.Labels)
}

// SubjectPods returns the pods cluster policy p applies to, sorted.
func (e *Engine) SubjectPods(p *model.ClusterPolicy) []*model.Pod {
	var out []*model.Pod
	for _, pod := range e.pods {
		if e.Subject(p, pod) {
			out = append(out, pod)
		}
	}
	sortPods(out)
	return out
}

// ClusterPeerMatch reports whether ep is the peer pr names: a pod (never a
// host-network one) through namespaces or pods, a node's address (or a
// host-network pod, which has it) through nodes, any address in networks.
func (e *Engine) ClusterPeerMatch(pr *model.ClusterPeer, ep Endpoint) bool {
	switch {
	case pr.Namespaces != nil:
		return ep.isPod() && pr.Namespaces.Matches(e.nsLabels(ep.Pod.Namespace))
	case pr.Pods != nil:
		return ep.isPod() && pr.Pods.Selects(e.nsLabels(ep.Pod.Namespace), ep.Pod.Labels)
	case pr.Nodes != nil:
		n := e.nodes[e.nodeIPs[ep.IP]]
		return n != nil && pr.Nodes.Matches(n.Labels)
	}
	for _, cidr := range pr.Networks {
		if cidr.Contains(ep.IP) {
			return true
		}
	}
	return false
}

// clusterDecide runs one tier for one direction of c on pod self: the
// first matching rule of the first policy (in evaluation order) decides.
// It returns that rule and true, or false when none matched; with explain,
// the rules passed over and why.
func (e *Engine) clusterDecide(tier model.Tier, c Conn, self, peer Endpoint, dir model.Direction, explain bool) (ClusterRuleRef, bool, []ClusterMiss) {
	var misses []ClusterMiss
	for _, p := range e.clusterOrder {
		if p.Tier != tier {
			continue
		}
		rules := p.Rules(dir)
		if len(rules) == 0 || !e.Subject(p, self.Pod) {
			continue
		}
		for i := range rules {
			r := &rules[i]
			ref := ClusterRuleRef{Policy: p.Key(), Tier: p.Tier, Priority: p.Priority, Direction: dir, Index: i, Name: r.Name, Action: r.Action}
			reason := e.clusterMatch(r, c, self, peer, dir, explain)
			if reason == "" {
				return ref, true, misses
			}
			if explain {
				misses = append(misses, ClusterMiss{ref, reason})
			}
		}
	}
	return ClusterRuleRef{}, false, misses
}

// clusterMatch returns "" when r matches c, or why it does not.
func (e *Engine) clusterMatch(r *model.ClusterRule, c Conn, self, peer Endpoint, dir model.Direction, explain bool) string {
	matched := false
	for i := range r.Peers {
		if e.ClusterPeerMatch(&r.Peers[i], peer) {
			matched = true
			break
		}
	}
	if !matched {
		if !explain {
			return "peer"
		}
		return fmt.Sprintf("%s %s is not a peer of this rule", map[model.Direction]string{model.Ingress: "source", model.Egress: "destination"}[dir], peer)
	}
	if r.Ports == nil {
		return ""
	}
	// A named port resolves on the pod that receives the traffic, in any
	// of its container ports' protocols.
	dst := self
	if dir == model.Egress {
		dst = peer
	}
	for _, pt := range r.Ports {
		if pt.Name != "" {
			if dst.isPod() && namedPortIs(dst.Pod, pt.Name, c.Protocol, c.Port) {
				return ""
			}
			continue
		}
		if pt.Protocol == c.Protocol && (pt.First == 0 || (pt.First <= c.Port && c.Port <= pt.Last)) {
			return ""
		}
	}
	if !explain {
		return "port"
	}
	return fmt.Sprintf("port %d/%s is not in the rule's ports (%s)", c.Port, c.Protocol, DescribeClusterPorts(r.Ports))
}

// namedPortIs reports whether pod declares a container port called name
// that is port/proto.
func namedPortIs(pod *model.Pod, name string, proto model.Protocol, port uint16) bool {
	for _, cp := range pod.Ports {
		if cp.Name == name && cp.Protocol == proto && cp.Port == port {
			return true
		}
	}
	return false
}

// DescribeClusterPorts renders a cluster rule's ports as
// "80/TCP, 81-90/UDP, any/SCTP, named http", or "any" for none.
func DescribeClusterPorts(ports []model.ClusterPort) string {
	if ports == nil {
		return "any"
	}
	s := ""
	for i, pt := range ports {
		if i > 0 {
			s += ", "
		}
		switch {
		case pt.Name != "":
			s += "named " + pt.Name
		case pt.First == 0:
			s += "any/" + pt.Protocol.String()
		case pt.First == pt.Last:
			s += fmt.Sprintf("%d/%s", pt.First, pt.Protocol)
		default:
			s += fmt.Sprintf("%d-%d/%s", pt.First, pt.Last, pt.Protocol)
		}
	}
	return s
}
