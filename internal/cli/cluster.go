package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// Cluster-wide policies in check's and explain's output: which stage of
// the evaluation decided a direction, and the cluster rule behind it.

// stageName is a stage as -o json spells it.
func stageName(s engine.Stage) string {
	switch s {
	case engine.StageAdmin:
		return "admin"
	case engine.StageNetworkPolicy:
		return "networkPolicy"
	case engine.StageBaseline:
		return "baseline"
	}
	return "default"
}

// jsonClusterRule names one rule of one cluster policy.
type jsonClusterRule struct {
	Policy    string `json:"policy"` // KIND/NAME
	Tier      string `json:"tier"`
	Priority  int32  `json:"priority"`
	Direction string `json:"direction"`
	Index     int    `json:"index"`
	Rule      string `json:"rule,omitempty"` // the rule's name, when it has one
	Action    string `json:"action"`
}

type jsonClusterMiss struct {
	jsonClusterRule
	Reason string `json:"reason"`
}

func toJSONClusterRule(r engine.ClusterRuleRef) jsonClusterRule {
	return jsonClusterRule{Policy: r.Policy.String(), Tier: r.Tier.String(), Priority: r.Priority,
		Direction: r.Direction.String(), Index: r.Index, Rule: r.Name, Action: r.Action.String()}
}

// String is the rule as text output names it, as engine.ClusterRuleRef
// does: `AdminNetworkPolicy/x (Admin tier, priority 10) ingress rule 0 "name": Deny`.
func (r jsonClusterRule) String() string {
	s := fmt.Sprintf("%s (%s tier, priority %d) %s rule %d", r.Policy, r.Tier, r.Priority, strings.ToLower(r.Direction), r.Index)
	if r.Rule != "" {
		s += fmt.Sprintf(" %q", r.Rule)
	}
	return s + ": " + r.Action
}

// addCluster fills j's cluster fields from d.
func addCluster(j *jsonDecision, d engine.Decision) {
	j.Stage = stageName(d.Stage)
	if d.Cluster != nil {
		r := toJSONClusterRule(*d.Cluster)
		j.ClusterRule = &r
	}
	for _, r := range d.Passed {
		j.PassedBy = append(j.PassedBy, toJSONClusterRule(r))
	}
	for _, m := range d.ClusterMisses {
		j.ClusterMisses = append(j.ClusterMisses, jsonClusterMiss{toJSONClusterRule(m.Rule), m.Reason})
	}
}

// nextStage names, for a Pass line, what decided after the Pass.
func nextStage(stage string) string {
	switch stage {
	case "networkPolicy":
		return "NetworkPolicy decides"
	case "baseline":
		return "the Baseline tier decides"
	}
	return "nothing else matches: allowed"
}

// decisionHeader is the first line's verdict for a direction of a pod.
func decisionHeader(d jsonDecision, dir string) string {
	verb := "denied"
	if d.Allowed {
		verb = "allowed"
	}
	switch d.Stage {
	case "admin":
		return verb + " by the Admin tier (NetworkPolicy not consulted)"
	case "baseline":
		return "not isolated by NetworkPolicy; " + verb + " by the Baseline tier"
	case "networkPolicy":
		return "isolated by " + strings.Join(d.Isolating, ", ")
	}
	if len(d.ClusterMisses) > 0 || len(d.PassedBy) > 0 {
		return "not isolated by NetworkPolicy, and no cluster rule decides: allowed"
	}
	return fmt.Sprintf("not isolated (no policy selects it for %s): allowed", strings.ToUpper(dir[:1])+dir[1:])
}

// writeClusterTier prints, for one tier, the cluster rules passed over,
// the Pass rules that handed the decision on, and the rule that decided.
func writeClusterTier(w io.Writer, indent string, d jsonDecision, tier string) {
	for _, m := range d.ClusterMisses {
		if m.Tier == tier {
			fmt.Fprintf(w, "%s  not matched: %s: %s\n", indent, esc(m.jsonClusterRule.String()), esc(m.Reason))
		}
	}
	for _, p := range d.PassedBy {
		if p.Tier == tier {
			fmt.Fprintf(w, "%s  passed by %s → %s\n", indent, esc(p.String()), nextStage(d.Stage))
		}
	}
	if d.ClusterRule != nil && d.ClusterRule.Tier == tier {
		fmt.Fprintf(w, "%s  decided by %s\n", indent, esc(d.ClusterRule.String()))
	}
}

// clusterPeerText describes a cluster rule's peer as written.
func clusterPeerText(p model.ClusterPeer) string {
	switch {
	case p.Namespaces != nil:
		return "pods in namespaces " + p.Namespaces.String()
	case p.Pods != nil:
		return fmt.Sprintf("pods %s in namespaces %s", p.Pods.PodSelector, p.Pods.NamespaceSelector)
	case p.Nodes != nil:
		return "nodes " + p.Nodes.String()
	}
	nets := make([]string, len(p.Networks))
	for i, n := range p.Networks {
		nets[i] = n.String()
	}
	return "networks " + strings.Join(nets, ", ")
}

// subjectText describes a cluster policy's subject as written.
func subjectText(s model.ClusterSubject) string {
	if s.Namespaces != nil {
		return "pods in namespaces " + s.Namespaces.String()
	}
	if s.Pods != nil {
		return fmt.Sprintf("pods %s in namespaces %s", s.Pods.PodSelector, s.Pods.NamespaceSelector)
	}
	return "no pod"
}

// explainedClusterPolicy is a cluster policy that applies to the pod in
// one direction, in evaluation order.
type explainedClusterPolicy struct {
	Policy   string                 `json:"policy"` // KIND/NAME
	Tier     string                 `json:"tier"`
	Priority int32                  `json:"priority"`
	Subject  string                 `json:"subject"`
	Rules    []explainedClusterRule `json:"rules"`
}

type explainedClusterRule struct {
	Index   int             `json:"index"`
	Name    string          `json:"name,omitempty"`
	Action  string          `json:"action"`
	Peers   []explainedPeer `json:"peers"`
	AnyPort bool            `json:"anyPort"`
	Ports   []string        `json:"ports,omitempty"`
}

// explainClusterDir lists the cluster policies whose subject holds p and
// that have rules for dir, in evaluation order, with each rule's peers
// and the pods they match today.
func explainClusterDir(e *engine.Engine, p *model.Pod, dir model.Direction) []explainedClusterPolicy {
	var out []explainedClusterPolicy
	for _, cp := range e.ClusterPolicies() {
		rules := cp.Rules(dir)
		if len(rules) == 0 || !e.Subject(cp, p) {
			continue
		}
		x := explainedClusterPolicy{Policy: cp.Key().String(), Tier: cp.Tier.String(), Priority: cp.Priority, Subject: subjectText(cp.Subject)}
		for i, r := range rules {
			xr := explainedClusterRule{Index: i, Name: r.Name, Action: r.Action.String(), AnyPort: r.Ports == nil, Peers: []explainedPeer{}}
			if r.Ports != nil {
				xr.Ports = strings.Split(engine.DescribeClusterPorts(r.Ports), ", ")
			}
			for j := range r.Peers {
				pr := &r.Peers[j]
				xp := explainedPeer{Selects: clusterPeerText(*pr)}
				for _, n := range pr.Networks {
					xp.CIDRs = append(xp.CIDRs, n.String())
				}
				if pr.Namespaces != nil || pr.Pods != nil {
					for _, q := range e.Pods() {
						if e.ClusterPeerMatch(pr, engine.Endpoint{Pod: q}) {
							xp.Pods = append(xp.Pods, q.Key().String())
						}
					}
				}
				xr.Peers = append(xr.Peers, xp)
			}
			x.Rules = append(x.Rules, xr)
		}
		out = append(out, x)
	}
	return out
}

// writeExplainedCluster prints the cluster policies of one direction.
func writeExplainedCluster(w io.Writer, dir, prep string, pols []explainedClusterPolicy) {
	if len(pols) == 0 {
		return
	}
	fmt.Fprintf(w, "  %s: cluster policies apply (the Admin tier decides before NetworkPolicy, the Baseline tier after; the first matching rule decides, Pass hands on):\n", dir)
	for _, p := range pols {
		fmt.Fprintf(w, "    %s (%s tier, priority %d), subject %s\n", esc(p.Policy), p.Tier, p.Priority, esc(p.Subject))
		for _, r := range p.Rules {
			name := ""
			if r.Name != "" {
				name = fmt.Sprintf(" %q", r.Name)
			}
			var parts []string
			for _, pr := range r.Peers {
				part := esc(pr.Selects)
				if pr.CIDRs == nil && strings.HasPrefix(pr.Selects, "pods") {
					if len(pr.Pods) == 0 {
						part += ": none today"
					} else {
						part += ": " + esc(abbreviate(pr.Pods, 8))
					}
				}
				parts = append(parts, part)
			}
			peers := strings.Join(parts, "; or ")
			if peers == "" {
				peers = "no peer"
			}
			ports := "any port"
			if !r.AnyPort {
				ports = strings.Join(r.Ports, ", ")
			}
			fmt.Fprintf(w, "      rule %d%s: %s %s %s on %s\n", r.Index, esc(name), r.Action, prep, peers, esc(ports))
		}
	}
}
