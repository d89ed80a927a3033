package cli

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// peerWhy says, one line per peer of the rule ref names, why c's other end
// (the source for ingress, the destination for egress) is not that peer,
// or, when it is, why c's port is not one the rule allows. It works from
// the rule as written, with model.Selector.Matches for each half and term,
// so that a reader sees which half of a peer and which label failed; the
// engine's membership answers only yes or no. Nil for a policy-level miss
// (a policy without rules in that direction).
func peerWhy(e *engine.Engine, ref engine.RuleRef, c engine.Conn) []string {
	return peerLines(e, ref, c, false)
}

// peerAllows is peerWhy for a rule that allows c: which of its peers c's
// other end is (the one that let c through), and why it is not the
// others.
func peerAllows(e *engine.Engine, ref engine.RuleRef, c engine.Conn) []string {
	return peerLines(e, ref, c, true)
}

// peerLines is a line per peer of the rule ref names; allowed says the
// rule allows c, so that a matching peer's port needs no reason.
func peerLines(e *engine.Engine, ref engine.RuleRef, c engine.Conn, allowed bool) []string {
	pol := e.Policy(ref.Policy)
	if pol == nil || ref.Index < 0 || ref.Index >= len(pol.Rules[ref.Direction]) {
		return nil
	}
	r := pol.Rules[ref.Direction][ref.Index]
	self, other, word, end := c.To, c.From, "from", "source"
	if ref.Direction == model.Egress {
		self, other, word, end = c.From, c.To, "to", "destination"
	}
	matches := "matches; " + portWhy(r, c, self, other)
	if allowed {
		matches = "matches"
	}
	if r.AllPeers {
		return []string{fmt.Sprintf("any %s: %s", end, matches)}
	}
	var out []string
	for i, p := range r.Spec().Peers {
		why := peerMiss(e, p, ref.Policy.Namespace, other)
		if why == "" {
			why = matches
		}
		out = append(out, fmt.Sprintf("%s[%d] %s: %s", word, i, peerSelects(p, ref.Policy.Namespace), why))
	}
	return out
}

// peerMiss returns why ep is not peer p of a policy in namespace ns, or ""
// when it is. Both halves of a namespaceSelector+podSelector peer are
// judged, and each that fails is named.
func peerMiss(e *engine.Engine, p model.Peer, ns string, ep engine.Endpoint) string {
	if b := p.IPBlock; b != nil {
		switch {
		case !ep.IP.IsValid():
			return fmt.Sprintf("%s has no address in the input: an ipBlock cannot match it", ep)
		case !b.CIDR.Contains(ep.IP):
			return fmt.Sprintf("address %s is outside %s", ep.IP, b.CIDR)
		}
		for _, x := range b.Except {
			if x.Contains(ep.IP) {
				return fmt.Sprintf("address %s is in %s but in its except %s", ep.IP, b.CIDR, x)
			}
		}
		return ""
	}
	pod := ep.Pod
	switch {
	case pod == nil:
		return fmt.Sprintf("%s is no pod's address: only an ipBlock can match it", ep.IP)
	case pod.HostNetwork:
		return fmt.Sprintf("%s is on the host network: its traffic is the node's, no pod selector matches it", pod.Key())
	}
	var fails []string
	if p.NamespaceSelector == nil {
		if pod.Namespace != ns {
			return fmt.Sprintf("%s is in namespace `%s`; without a namespaceSelector this peer selects only pods in `%s`", pod.Key(), pod.Namespace, ns)
		}
	} else if nl := e.NamespaceLabels(pod.Namespace); !p.NamespaceSelector.Matches(nl) {
		fails = append(fails, fmt.Sprintf("namespace `%s` labels %s do not match namespaceSelector %s: %s",
			pod.Namespace, braces(nl), p.NamespaceSelector, termMisses(*p.NamespaceSelector, nl)))
	}
	if p.PodSelector != nil && !p.PodSelector.Matches(pod.Labels) {
		fails = append(fails, fmt.Sprintf("pod labels %s do not match podSelector %s: %s",
			braces(pod.Labels), p.PodSelector, termMisses(*p.PodSelector, pod.Labels)))
	}
	return strings.Join(fails, "; and ")
}

// termMisses lists the terms of s that labels fail, matchLabels (sorted by
// key) first, then matchExpressions in the order written. Each term is
// judged by Matches on a selector of that term alone.
func termMisses(s model.Selector, labels map[string]string) string {
	var out []string
	keys := make([]string, 0, len(s.MatchLabels))
	for k := range s.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r := model.Requirement{Key: k, Operator: model.OpIn, Values: []string{s.MatchLabels[k]}}
		if !(model.Selector{MatchLabels: map[string]string{k: s.MatchLabels[k]}}).Matches(labels) {
			out = append(out, termMiss(r, labels))
		}
	}
	for _, r := range s.Exprs {
		if !(model.Selector{Exprs: []model.Requirement{r}}).Matches(labels) {
			out = append(out, termMiss(r, labels))
		}
	}
	return strings.Join(out, ", ")
}

// termMiss says why labels fail requirement r, which they do.
func termMiss(r model.Requirement, labels map[string]string) string {
	v, ok := labels[r.Key]
	vals := slices.Clone(r.Values)
	sort.Strings(vals)
	switch {
	case r.Operator == model.OpDoesNotExist:
		return fmt.Sprintf("has label `%s`, which must be absent", r.Key)
	case !ok:
		return fmt.Sprintf("missing label `%s`", r.Key)
	case r.Operator == model.OpIn:
		return fmt.Sprintf("`%s=%s` not in [%s]", r.Key, v, strings.Join(vals, ","))
	case r.Operator == model.OpNotIn:
		return fmt.Sprintf("`%s=%s` is in notin [%s]", r.Key, v, strings.Join(vals, ","))
	}
	return fmt.Sprintf("operator %q on `%s` matches nothing", r.Operator, r.Key)
}

// portWhy says which ports r allows, c's port not being one of them, and
// what each named port resolves to on the pod that receives c: the
// selected pod for ingress, the destination pod for egress, as the
// engine resolves them.
func portWhy(r *engine.Rule, c engine.Conn, self, other engine.Endpoint) string {
	s := fmt.Sprintf("port %d/%s is not one the rule allows: %s", c.Port, c.Protocol, engine.DescribePorts(r))
	recv := self.Pod
	if r.Ref.Direction == model.Egress {
		recv = other.Pod
		if recv != nil && recv.HostNetwork {
			recv = nil
		}
	}
	var notes []string
	for _, np := range r.Named {
		switch port, ok := recvPort(recv, np); {
		case recv == nil:
			notes = append(notes, fmt.Sprintf("%s: %s is no pod's address, nothing declares it", np.Name, other))
		case ok:
			notes = append(notes, fmt.Sprintf("%s is %d/%s on %s", np.Name, port, np.Protocol, recv.Key()))
		default:
			notes = append(notes, fmt.Sprintf("%s/%s is not declared by %s", np.Name, np.Protocol, recv.Key()))
		}
	}
	if len(notes) > 0 {
		s += " (" + strings.Join(notes, "; ") + ")"
	}
	return s
}

func recvPort(p *model.Pod, np engine.NamedPort) (uint16, bool) {
	if p == nil {
		return 0, false
	}
	return p.NamedPort(np.Name, np.Protocol)
}

// braces renders labels as {k=v,…}, sorted by key.
func braces(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// peerSelects says in words what a peer as written selects; explain uses
// it too.
func peerSelects(p model.Peer, ns string) string {
	switch {
	case p.IPBlock != nil:
		s := "addresses " + p.IPBlock.CIDR.String()
		if len(p.IPBlock.Except) > 0 {
			var ex []string
			for _, x := range p.IPBlock.Except {
				ex = append(ex, x.String())
			}
			s += " except " + strings.Join(ex, ", ")
		}
		return s
	case p.NamespaceSelector == nil:
		return fmt.Sprintf("pods %s in namespace %s", p.PodSelector, ns)
	case p.PodSelector == nil:
		return fmt.Sprintf("every pod in namespaces %s", p.NamespaceSelector)
	}
	return fmt.Sprintf("pods %s in namespaces %s", p.PodSelector, p.NamespaceSelector)
}
