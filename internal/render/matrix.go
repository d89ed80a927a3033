// Package render holds the connectivity matrix of a set of pods, as matrix
// computes it with the engine (a verdict and its explanation per ordered
// pair and probed port), and writes it as aligned text, CSV, Markdown,
// Graphviz DOT, SVG and one self-contained HTML page. The formats share
// the matrix so that they cannot disagree on a verdict.
package render

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/truth"
)

// Probe is one port to probe: a number, or (Name set) a container port
// name, which each destination resolves to its own number.
type Probe struct {
	Port     uint16
	Name     string
	Protocol model.Protocol
}

func (p Probe) String() string {
	if p.Name != "" {
		return p.Name + "/" + p.Protocol.String()
	}
	return strconv.Itoa(int(p.Port)) + "/" + p.Protocol.String()
}

// Verdict is a cell's answer.
type Verdict int

const (
	Deny Verdict = iota
	Allow
	// NoPort: the probe is a named port the destination does not declare,
	// so there is nothing to connect to.
	NoPort
)

// String is the verdict as data attributes and CSV spell it.
func (v Verdict) String() string {
	return [...]string{"deny", "allow", "no-port"}[v]
}

// Mark is the verdict in a grid: "." allowed, "X" denied, as upstream's
// e2e tests print; "-" no such port.
func (v Verdict) Mark() string {
	return [...]string{"X", ".", "-"}[v]
}

// Cell is one ordered pair on one probe.
type Cell struct {
	Verdict Verdict
	Port    uint16 // the port connected to; 0 with NoPort
	Why     string // the explanation, when Build was asked for it
}

// Grid is the cells of one probe, Cells[from][to] over Matrix.Pods.
type Grid struct {
	Probe Probe
	Cells [][]Cell
}

// Pod is a row (and column) of the matrix.
type Pod struct {
	Key       string // namespace/name, or namespace/name[Kind] for a workload
	Namespace string
	// Declared lists the container ports the pod declares ("80/TCP",
	// "http=8080/TCP").
	Declared []string
	// Ingress and Egress list the policies isolating the pod.
	Ingress, Egress []string
	// ClusterIngress and ClusterEgress list the cluster policies with
	// rules for the pod in that direction, in evaluation order, as
	// "KIND/NAME (TIER tier, priority N)".
	ClusterIngress, ClusterEgress []string
}

// Matrix is every probe's grid over the same pods.
type Matrix struct {
	Source string // what the cluster was read from
	Family string // "IPv6", or "" for IPv4
	// Ports says where the probes came from, for the legend.
	Ports string
	Pods  []Pod // in truth.Less order
	Grids []Grid
	// Group, when set, maps a pod key to the node that stands for it in
	// the graph views (its workload), instead of a node per pod.
	Group func(podKey string) string
}

// Build judges every ordered pair of pods on every probe with the engine,
// for the pods' addresses of the family fam, by truth.Endpoints' rule: pods
// with addresses but none of that family can neither send nor receive,
// pods without any address are judged by identity. With explain, every
// cell says why.
func Build(e *engine.Engine, pods []*model.Pod, fam netip.Addr, probes []Probe, explain bool) *Matrix {
	pods = append([]*model.Pod(nil), pods...)
	sort.Slice(pods, func(i, j int) bool { return truth.Less(pods[i].Key().String(), pods[j].Key().String()) })
	m := &Matrix{}
	if fam.Is6() {
		m.Family = "IPv6"
	}
	eps, has := truth.Endpoints(pods, fam)
	for _, p := range pods {
		rp := Pod{Key: p.Key().String(), Namespace: p.Namespace}
		for _, cp := range p.Ports {
			d := fmt.Sprintf("%d/%s", cp.Port, cp.Protocol)
			if cp.Name != "" {
				d = cp.Name + "=" + d
			}
			rp.Declared = append(rp.Declared, d)
		}
		for _, k := range e.Isolating(p.Key(), model.Ingress) {
			rp.Ingress = append(rp.Ingress, k.Key.String())
		}
		for _, k := range e.Isolating(p.Key(), model.Egress) {
			rp.Egress = append(rp.Egress, k.Key.String())
		}
		rp.ClusterIngress, rp.ClusterEgress = clusterPolicies(e, p, model.Ingress), clusterPolicies(e, p, model.Egress)
		m.Pods = append(m.Pods, rp)
	}
	for _, pr := range probes {
		g := Grid{Probe: pr, Cells: make([][]Cell, len(pods))}
		for i := range pods {
			g.Cells[i] = make([]Cell, len(pods))
			for j, to := range pods {
				g.Cells[i][j] = judge(e, pr, pods[i], to, eps[i], eps[j], has[i], has[j], m.Family, explain)
			}
		}
		m.Grids = append(m.Grids, g)
	}
	return m
}

// clusterPolicies names the cluster policies that have rules for pod p
// in dir, in evaluation order.
func clusterPolicies(e *engine.Engine, p *model.Pod, dir model.Direction) []string {
	var out []string
	for _, cp := range e.ClusterPolicies() {
		if len(cp.Rules(dir)) > 0 && e.Subject(cp, p) {
			out = append(out, fmt.Sprintf("%s (%s tier, priority %d)", cp.Key(), cp.Tier, cp.Priority))
		}
	}
	return out
}

func judge(e *engine.Engine, pr Probe, from, to *model.Pod, src, dst engine.Endpoint, srcOK, dstOK bool, family string, explain bool) Cell {
	port := pr.Port
	if pr.Name != "" {
		n, ok := to.NamedPort(pr.Name, pr.Protocol)
		if !ok {
			return Cell{Verdict: NoPort, Why: fmt.Sprintf("%s declares no container port %s", to.Key(), pr)}
		}
		port = n
	}
	c := Cell{Port: port}
	if !srcOK || !dstOK {
		p := from
		if srcOK {
			p = to
		}
		if explain {
			c.Why = fmt.Sprintf("denied: %s has no %s address", p.Key(), familyName(family))
		}
		return c
	}
	conn := engine.Conn{From: src, To: dst, Protocol: pr.Protocol, Port: port}
	if !explain {
		if e.Allowed(conn) {
			c.Verdict = Allow
		}
		return c
	}
	v := e.Explain(conn)
	if v.Allowed {
		c.Verdict = Allow
	}
	c.Why = Explain(v, from.Key().String(), to.Key().String())
	if pr.Name != "" {
		c.Why = fmt.Sprintf("%s is port %d on %s; %s", pr, port, to.Key(), c.Why)
	}
	return c
}

func familyName(f string) string {
	if f == "" {
		return "IPv4"
	}
	return f
}

// Explain says in one line why v: the shortcut that skips policy, or each
// direction's isolation and the rule that allowed it or the rules that
// did not match.
func Explain(v engine.Verdict, from, to string) string {
	word := "denied"
	if v.Allowed {
		word = "allowed"
	}
	if v.Shortcut == "loopback" {
		return word + ": loopback, a pod to itself is never subject to policy"
	}
	parts := []string{decision(v.Egress, from)}
	if v.Shortcut != "" {
		parts = append(parts, "ingress: "+v.Shortcut+", never subject to policy")
	} else {
		parts = append(parts, decision(v.Ingress, to))
	}
	return word + ": " + strings.Join(parts, "; ")
}

func decision(d engine.Decision, who string) string {
	dir := strings.ToLower(d.Direction.String())
	if !d.Applies() {
		return fmt.Sprintf("%s: %s is not a pod, no %s policy applies", dir, who, dir)
	}
	var pass string // the Pass rules that handed it down, as a prefix
	for _, r := range d.Passed {
		pass += "passed by " + r.String() + ", "
	}
	switch d.Stage {
	case engine.StageAdmin:
		return fmt.Sprintf("%s of %s %s by the Admin tier: %s", dir, d.Pod, verb(d.Allowed), d.Cluster)
	case engine.StageBaseline:
		return fmt.Sprintf("%s of %s %snot isolated by NetworkPolicy, %s by the Baseline tier: %s", dir, d.Pod, pass, verb(d.Allowed), d.Cluster)
	case engine.StageDefault:
		if pass != "" {
			return fmt.Sprintf("%s of %s %snot isolated, no rule decides: allowed", dir, d.Pod, pass)
		}
		return fmt.Sprintf("%s of %s not isolated", dir, d.Pod)
	}
	var pols []string
	for _, k := range d.Isolating {
		pols = append(pols, k.String())
	}
	s := fmt.Sprintf("%s of %s %sisolated by %s, ", dir, d.Pod, pass, strings.Join(pols, ", "))
	if d.By != nil {
		return s + "allowed by " + rule(*d.By)
	}
	var misses []string
	for _, m := range d.Misses {
		if m.Rule.Index < 0 {
			misses = append(misses, m.Rule.Policy.String()+": "+m.Reason)
		} else {
			misses = append(misses, rule(m.Rule)+": "+m.Reason)
		}
	}
	s += "no rule allows it"
	if len(misses) > 0 {
		s += " (" + strings.Join(misses, "; ") + ")"
	}
	return s
}

func verb(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "denied"
}

func rule(r engine.RuleRef) string {
	return fmt.Sprintf("%s %s[%d]", r.Policy, strings.ToLower(r.Direction.String()), r.Index)
}

// Node is a node of the graph views: a pod, or the pods of one group.
type Node struct {
	Key       string
	Namespace string
	Pods      []int // indexes into Matrix.Pods
	// Isolated: no probe allows a connection to or from another node.
	Isolated bool
}

// Edge is an allowed connection between two distinct nodes, with the
// probes that allow it (some pod of From to some pod of To).
type Edge struct {
	From, To int // indexes into the nodes
	Probes   []string
}

// Graph returns the nodes and edges the graph views draw: a node per pod,
// or with Group set a node per group of pods (Group maps a pod key to its
// group's name, which stays in the pod's namespace), in row order.
func (m *Matrix) Graph() ([]Node, []Edge) {
	var nodes []Node
	at := map[string]int{}
	of := make([]int, len(m.Pods))
	for i, p := range m.Pods {
		k := p.Key
		if m.Group != nil {
			k = m.Group(k)
		}
		n, ok := at[k]
		if !ok {
			n = len(nodes)
			at[k] = n
			nodes = append(nodes, Node{Key: k, Namespace: p.Namespace, Isolated: true})
		}
		nodes[n].Pods = append(nodes[n].Pods, i)
		of[i] = n
	}
	var edges []Edge
	for a := range nodes {
		for b := range nodes {
			if a == b {
				continue
			}
			var probes []string
			for _, g := range m.Grids {
				if allowsAny(g, nodes[a].Pods, nodes[b].Pods) {
					probes = append(probes, g.Probe.String())
				}
			}
			if len(probes) > 0 {
				edges = append(edges, Edge{a, b, probes})
				nodes[a].Isolated, nodes[b].Isolated = false, false
			}
		}
	}
	return nodes, edges
}

func allowsAny(g Grid, from, to []int) bool {
	for _, i := range from {
		for _, j := range to {
			if g.Cells[i][j].Verdict == Allow {
				return true
			}
		}
	}
	return false
}

// Legend is the lines every format ends with: how to read a grid and
// which ports were probed.
func (m *Matrix) Legend() []string {
	var probes []string
	for _, g := range m.Grids {
		probes = append(probes, g.Probe.String())
	}
	marks := "rows are sources, columns destinations: . allowed, X denied"
	for _, g := range m.Grids {
		if g.Probe.Name != "" {
			marks += ", - the destination declares no such named port"
			break
		}
	}
	l := []string{marks}
	ports := "ports probed: " + strings.Join(probes, ", ")
	if len(probes) == 0 {
		ports = "ports probed: none"
	}
	if m.Ports != "" {
		ports += " (" + m.Ports + ")"
	}
	l = append(l, ports)
	if m.Family != "" {
		l = append(l, "addresses: "+m.Family)
	}
	return l
}
