package findings

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// Checks of cluster-wide policies (ClusterNetworkPolicy,
// AdminNetworkPolicy, BaselineAdminNetworkPolicy): PL013 to PL016. They
// ask the engine which pods a subject or peer holds, so that lint and
// check agree on what a selector means (host-network pods are never
// subjects nor pod peers).

func (l *linter) addCluster(p *model.ClusterPolicy, code, field, msg string) {
	r := RuleFor(code)
	l.out = append(l.out, Finding{Code: code, Severity: r.Severity, Kind: p.Kind,
		Key: model.Key{Name: p.Name}, Field: field, Message: msg, Fix: r.Fix})
}

// clusterPolicies runs the cluster checks over every cluster policy, in
// evaluation order.
func (l *linter) clusterPolicies() {
	pols := l.c.SortedClusterPolicies()
	if len(pols) == 0 {
		return
	}
	e := engine.FromCluster(l.c)
	for _, p := range pols {
		l.clusterPolicy(e, p)
	}
	l.priorityTies(e, pols)
	l.shadows(e, pols)
}

// dirField names a direction's rules and peers as the API spells them.
func dirField(dir model.Direction) (rules, peers string) {
	if dir == model.Egress {
		return "egress", "to"
	}
	return "ingress", "from"
}

func (l *linter) clusterPolicy(e *engine.Engine, p *model.ClusterPolicy) {
	if l.hasPods && len(e.SubjectPods(p)) == 0 {
		field, what := "spec.subject.namespaces", fmt.Sprintf("namespaces %s", p.Subject.Namespaces)
		if p.Subject.Pods != nil {
			field, what = "spec.subject.pods", fmt.Sprintf("pods %s in namespaces %s", p.Subject.Pods.PodSelector, p.Subject.Pods.NamespaceSelector)
		}
		l.addCluster(p, ClusterSubjectNothing, field, fmt.Sprintf("selects no pod (%s; host-network pods are never subjects), so the policy does nothing", what))
	}
	for _, dir := range []model.Direction{model.Ingress, model.Egress} {
		rulesField, peersField := dirField(dir)
		for i, r := range p.Rules(dir) {
			rf := fmt.Sprintf("spec.%s[%d]", rulesField, i)
			for j := range r.Peers {
				l.clusterPeer(e, p, &r.Peers[j], fmt.Sprintf("%s.%s[%d]", rf, peersField, j))
			}
			if r.Action == model.Pass && p.Tier == model.BaselineTier {
				l.addCluster(p, BaselinePass, rf+".action", fmt.Sprintf("a Pass in the Baseline tier skips the Baseline rules after it: the %s traffic it matches is allowed by default", rulesField))
			}
		}
	}
}

// clusterPeer: PL014 for a namespaces or pods peer that holds no pod
// (when the input holds pods) and a nodes peer that holds no node (when
// it holds nodes).
func (l *linter) clusterPeer(e *engine.Engine, p *model.ClusterPolicy, pr *model.ClusterPeer, field string) {
	switch {
	case pr.Namespaces != nil || pr.Pods != nil:
		if !l.hasPods {
			return
		}
		for _, q := range e.Pods() {
			if e.ClusterPeerMatch(pr, engine.Endpoint{Pod: q}) {
				return
			}
		}
		if pr.Namespaces != nil {
			where := "no namespace of the input matches it"
			if nss := l.namespacesMatching(*pr.Namespaces); len(nss) > 0 {
				where = "the input has no pod in " + list("namespace", nss)
			}
			l.addCluster(p, ClusterPeerNothing, field+".namespaces", fmt.Sprintf("matches no pod (namespaces %s): %s", pr.Namespaces, where))
			return
		}
		l.addCluster(p, ClusterPeerNothing, field+".pods", fmt.Sprintf("matches no pod (pods %s in namespaces %s)",
			pr.Pods.PodSelector, pr.Pods.NamespaceSelector))
	case pr.Nodes != nil:
		if len(l.c.Nodes) == 0 {
			return
		}
		for _, n := range l.c.Nodes {
			if pr.Nodes.Matches(n.Labels) {
				return
			}
		}
		l.addCluster(p, ClusterPeerNothing, field+".nodes", fmt.Sprintf("matches no node (%s) of the input's %d", pr.Nodes, len(l.c.Nodes)))
	}
}

// priorityTies: PL015, for two policies of one tier and priority that
// apply to a common pod and have rules, for one direction, that can
// match the same connection: a peer both rules' peers hold (a pod, a
// node's address, or an address of their networks) on a port both
// cover. The API leaves the order of such policies undefined. Reported
// on the one Palisade evaluates second. Without pods, subjects cannot be
// compared and nothing is reported.
func (l *linter) priorityTies(e *engine.Engine, pols []*model.ClusterPolicy) {
	if !l.hasPods {
		return
	}
	subjects := map[*model.ClusterPolicy]map[model.Key]bool{}
	for _, p := range pols {
		s := map[model.Key]bool{}
		for _, q := range e.SubjectPods(p) {
			s[q.Key()] = true
		}
		subjects[p] = s
	}
	peers := l.candidatePeers(e, pols)
	for i, a := range pols {
		for _, b := range pols[i+1:] {
			if a.Tier != b.Tier || a.Priority != b.Priority {
				continue
			}
			var shared string
			for _, q := range e.SubjectPods(b) {
				if subjects[a][q.Key()] {
					shared = q.Key().String()
					break
				}
			}
			if shared == "" {
				continue
			}
			if dir, ia, ib, ok := overlap(e, a, b, peers); ok {
				name, _ := dirField(dir)
				l.addCluster(b, PriorityTie, "spec.priority", fmt.Sprintf(
					"%s tier priority %d is also %s's; both apply to %s, and %s rule %d here and rule %d there can match the same connection: the API leaves which decides undefined (Palisade evaluates %s first: priority, then kind, then name; other implementations may not)",
					a.Tier, a.Priority, a.Key(), shared, name, ib, ia, a.Key()))
			}
		}
	}
}

// candidatePeers are the endpoints a rule's peers can hold: every pod,
// every node's address, and an address of each network any rule names
// (the first of a prefix lies in every prefix that overlaps it from
// above, so two overlapping networks share one of these).
func (l *linter) candidatePeers(e *engine.Engine, pols []*model.ClusterPolicy) []engine.Endpoint {
	var out []engine.Endpoint
	for _, q := range e.Pods() {
		ep, _ := engine.PodEndpoint(q, netip.Addr{})
		out = append(out, ep)
	}
	for _, n := range l.c.Nodes {
		for _, ip := range n.IPs {
			out = append(out, e.EndpointFor(ip))
		}
	}
	for _, p := range pols {
		for _, rules := range [][]model.ClusterRule{p.IngressRules, p.EgressRules} {
			for _, r := range rules {
				for _, pr := range r.Peers {
					for _, n := range pr.Networks {
						out = append(out, e.EndpointFor(n.Masked().Addr()))
					}
				}
			}
		}
	}
	return out
}

// overlap finds, for some direction, a rule of a and a rule of b that a
// common peer and port can both match.
func overlap(e *engine.Engine, a, b *model.ClusterPolicy, peers []engine.Endpoint) (model.Direction, int, int, bool) {
	for _, dir := range []model.Direction{model.Ingress, model.Egress} {
		for i, ra := range a.Rules(dir) {
			for j, rb := range b.Rules(dir) {
				if portsOverlap(ra.Ports, rb.Ports) && sharePeer(e, ra, rb, peers) {
					return dir, i, j, true
				}
			}
		}
	}
	return 0, 0, 0, false
}

func sharePeer(e *engine.Engine, a, b model.ClusterRule, peers []engine.Endpoint) bool {
	for _, ep := range peers {
		if rulePeer(e, a, ep) && rulePeer(e, b, ep) {
			return true
		}
	}
	return false
}

func rulePeer(e *engine.Engine, r model.ClusterRule, ep engine.Endpoint) bool {
	for i := range r.Peers {
		if e.ClusterPeerMatch(&r.Peers[i], ep) {
			return true
		}
	}
	return false
}

// portsOverlap reports whether some port can be in both lists (nil:
// every port). A named port may resolve to any number, so it overlaps
// everything.
func portsOverlap(a, b []model.ClusterPort) bool {
	if a == nil || b == nil {
		return true
	}
	for _, x := range a {
		for _, y := range b {
			if x.Name != "" || y.Name != "" {
				return true
			}
			if x.Protocol != y.Protocol {
				continue
			}
			if x.First == 0 || y.First == 0 || (x.First <= y.Last && y.First <= x.Last) {
				return true
			}
		}
	}
	return false
}

// shadows: PL017, an Admin-tier rule that Accepts or Denies every pod on
// every port (a namespaces peer selecting all namespaces, no ports), with
// no Pass before it that could hand a connection on (none in its policy's
// earlier rules, nor in an Admin policy evaluated before it that shares a
// subject pod): for its subject pods, the NetworkPolicies that isolate
// them in that direction never decide a connection with a pod, so their
// rules for pod peers are unreachable.
func (l *linter) shadows(e *engine.Engine, pols []*model.ClusterPolicy) {
	if !l.hasPods {
		return
	}
	for pi, p := range pols {
		if p.Tier != model.AdminTier {
			continue
		}
		subjects := e.SubjectPods(p)
		for _, dir := range []model.Direction{model.Ingress, model.Egress} {
			if passBefore(e, pols[:pi], p, subjects, dir) {
				continue
			}
			for i, r := range p.Rules(dir) {
				if r.Action == model.Pass {
					break // the rules after it may be passed over
				}
				if r.Ports != nil || !everyPod(r.Peers) {
					continue
				}
				var shadowed []string
				seen := map[model.Key]bool{}
				for _, q := range subjects {
					for _, np := range e.Isolating(q.Key(), dir) {
						if !seen[np.Key] && len(np.Rules[dir]) > 0 {
							seen[np.Key] = true
							shadowed = append(shadowed, np.Key.String())
						}
					}
				}
				if len(shadowed) == 0 {
					break
				}
				rulesField, _ := dirField(dir)
				l.addCluster(p, AdminShadowsNetworkPolicy, fmt.Sprintf("spec.%s[%d]", rulesField, i), fmt.Sprintf(
					"%s every pod on every port for %s of %s before NetworkPolicy: the %s rules of %s, which isolate them, never decide a connection with a pod (only addresses that are no pod's reach them)",
					map[model.Action]string{model.Accept: "accepts", model.Deny: "denies"}[r.Action], rulesField, list("pod", keys(subjects)), rulesField, list("NetworkPolicy", shadowed)))
				break
			}
		}
	}
}

// everyPod reports whether peers hold every pod: a namespaces peer
// selecting every namespace.
func everyPod(peers []model.ClusterPeer) bool {
	for _, pr := range peers {
		if pr.Namespaces != nil && len(pr.Namespaces.MatchLabels) == 0 && len(pr.Namespaces.Exprs) == 0 {
			return true
		}
	}
	return false
}

// passBefore reports whether an Admin policy of before that shares a
// subject pod with subjects has a Pass rule for dir.
func passBefore(e *engine.Engine, before []*model.ClusterPolicy, p *model.ClusterPolicy, subjects []*model.Pod, dir model.Direction) bool {
	for _, b := range before {
		if b.Tier != model.AdminTier {
			continue
		}
		hasPass := false
		for _, r := range b.Rules(dir) {
			hasPass = hasPass || r.Action == model.Pass
		}
		if !hasPass {
			continue
		}
		for _, q := range subjects {
			if e.Subject(b, q) {
				return true
			}
		}
	}
	return false
}

// clusterObject names a finding's object in text: NAMESPACE/NAME, or the
// name alone for a cluster-scoped one.
func clusterObject(k model.Key) string {
	if k.Namespace == "" {
		return k.Name
	}
	return k.String()
}

// Object names f's object as text output and SARIF do: KIND NAMESPACE/NAME,
// or KIND NAME for a cluster-scoped object.
func (f Finding) Object() string {
	return strings.TrimSpace(f.Kind + " " + clusterObject(f.Key))
}
