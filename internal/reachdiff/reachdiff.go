// Package reachdiff compares two states of a cluster by what they allow:
// the connections between pods gained and lost, per port and protocol,
// each explained by the engine's provenance on both sides (which policy
// and rule allowed it before, which policies isolate it now, and which of
// them were added, deleted or changed). It answers "what will this pull
// request change?" for `palisade diff`.
package reachdiff

import (
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/truth"
)

// Port is a destination port and protocol the comparison probes.
type Port struct {
	Port     uint16
	Protocol model.Protocol
}

func (p Port) String() string { return fmt.Sprintf("%d/%s", p.Port, p.Protocol) }

// Change is one connection, from a pod to a pod on a port, that one side
// allows and the other does not.
type Change struct {
	From, To string // pod keys
	Port     Port
	Gained   bool // allowed only by the new side; else lost
	Reasons  []Reason
}

// Reason explains one direction of a change: the direction that denies
// on the side that denies (both when both do).
type Reason struct {
	Direction model.Direction
	Pod       string // the pod the direction is checked on
	Before    string // the old side's decision, with its provenance
	Now       string // the new side's
	// Policies are the added, deleted or changed policies among those
	// that decided it on either side: the policy changes that flip it.
	Policies []string
	// Other are the changes to the two pods and their namespaces (labels,
	// ports, addresses) that can flip it without any policy changing.
	Other []string
}

func (r Reason) String() string {
	s := fmt.Sprintf("%s of %s: before %s; now %s", dirName(r.Direction), r.Pod, r.Before, r.Now)
	if len(r.Policies) == 0 && len(r.Other) > 0 {
		s += "; no policy deciding it changed: " + strings.Join(r.Other, ", ")
	}
	return s
}

// dirName is "ingress" or "egress", as explain prints directions.
func dirName(d model.Direction) string { return strings.ToLower(d.String()) }

// Result is what changed between two clusters.
type Result struct {
	Ports   []Port   // the ports compared
	Changes []Change // in pod order (truth.Less), then port
	// OnlyOld and OnlyNew are the pods of one side only: their
	// connections are not compared, since the other side has no such pod.
	OnlyOld, OnlyNew []string
	// Policies added, deleted and changed (spec differs), as keys:
	// NAMESPACE/NAME for a NetworkPolicy, KIND/NAME for a cluster-wide
	// policy (kinds are capitalised, namespaces never are).
	Added, Deleted, Changed []string
}

// Empty reports whether the two sides allow the same connections between
// the same pods (policy edits with no effect on them leave it empty).
func (r *Result) Empty() bool {
	return len(r.Changes) == 0 && len(r.OnlyOld) == 0 && len(r.OnlyNew) == 0
}

// DefaultPort is compared when neither side's pods declare a port and no
// policy names one, as matrix probes by default.
var DefaultPort = Port{80, model.TCP}

// Compare returns the connections between the pods of both clusters that
// old and new decide differently, on the ports the pods declare
// (containerPorts) and the ports the policies name (a range's ends),
// over the pods' addresses of family (netip.IPv4Unspecified() or
// IPv6Unspecified(); pods without addresses by identity, as matrix does).
func Compare(old, new *model.Cluster, family netip.Addr) *Result {
	r := &Result{}
	r.Added, r.Deleted, r.Changed = policyChanges(old, new)
	var keys []model.Key
	for k := range old.Pods {
		if _, ok := new.Pods[k]; ok {
			keys = append(keys, k)
		} else {
			r.OnlyOld = append(r.OnlyOld, k.String())
		}
	}
	for k := range new.Pods {
		if _, ok := old.Pods[k]; !ok {
			r.OnlyNew = append(r.OnlyNew, k.String())
		}
	}
	sortKeys(r.OnlyOld)
	sortKeys(r.OnlyNew)
	r.Ports = ports(old, new, keys)
	oe, ne := engine.FromCluster(old), engine.FromCluster(new)
	oldPods, newPods := make([]*model.Pod, len(keys)), make([]*model.Pod, len(keys))
	for i, k := range keys {
		oldPods[i], newPods[i] = old.Pods[k], new.Pods[k]
	}
	x := explainer{old: old, new: new, oe: oe, ne: ne, family: family, change: map[string]string{}}
	for _, k := range r.Added {
		x.change[k] = "added"
	}
	for _, k := range r.Deleted {
		x.change[k] = "deleted"
	}
	for _, k := range r.Changed {
		x.change[k] = "changed"
	}
	for _, p := range r.Ports {
		og := truth.Predict(oe, oldPods, family, p.Port, p.Protocol)
		ng := truth.Predict(ne, newPods, family, p.Port, p.Protocol)
		for _, d := range truth.Diff(og, ng) {
			c := Change{From: d.From, To: d.To, Port: p, Gained: d.Got}
			c.Reasons = x.explain(parseKey(d.From), parseKey(d.To), p)
			r.Changes = append(r.Changes, c)
		}
	}
	sort.SliceStable(r.Changes, func(i, j int) bool {
		a, b := r.Changes[i], r.Changes[j]
		if a.From != b.From {
			return truth.Less(a.From, b.From)
		}
		if a.To != b.To {
			return truth.Less(a.To, b.To)
		}
		return false // ports stay in r.Ports order
	})
	return r
}

func parseKey(s string) model.Key {
	ns, name, _ := strings.Cut(s, "/")
	return model.Key{Namespace: ns, Name: name}
}

func sortKeys(ks []string) { sort.Slice(ks, func(i, j int) bool { return truth.Less(ks[i], ks[j]) }) }

// policyChanges classifies the policies of both sides, NetworkPolicies
// and cluster-wide ones, by key.
func policyChanges(old, new *model.Cluster) (added, deleted, changed []string) {
	for k, p := range old.ClusterPolicies {
		q, ok := new.ClusterPolicies[k]
		switch {
		case !ok:
			deleted = append(deleted, k.String())
		case !reflect.DeepEqual(p, q):
			changed = append(changed, k.String())
		}
	}
	for k := range new.ClusterPolicies {
		if _, ok := old.ClusterPolicies[k]; !ok {
			added = append(added, k.String())
		}
	}
	for k, p := range old.Policies {
		q, ok := new.Policies[k]
		switch {
		case !ok:
			deleted = append(deleted, k.String())
		case !reflect.DeepEqual(p, q):
			changed = append(changed, k.String())
		}
	}
	for k := range new.Policies {
		if _, ok := old.Policies[k]; !ok {
			added = append(added, k.String())
		}
	}
	sort.Strings(added)
	sort.Strings(deleted)
	sort.Strings(changed)
	return added, deleted, changed
}

// ports collects the ports to compare: every containerPort of the pods of
// both sides, and every port the policies of both sides name, sorted by
// protocol then number; DefaultPort when there is none.
func ports(old, new *model.Cluster, keys []model.Key) []Port {
	set := map[Port]bool{}
	for _, c := range []*model.Cluster{old, new} {
		for _, k := range keys {
			for _, cp := range c.Pods[k].Ports {
				set[Port{cp.Port, cp.Protocol}] = true
			}
		}
		for _, pol := range c.ClusterPolicies {
			for _, rules := range [][]model.ClusterRule{pol.IngressRules, pol.EgressRules} {
				for _, rule := range rules {
					for _, p := range rule.Ports {
						if p.First != 0 {
							set[Port{p.First, p.Protocol}] = true
							set[Port{p.Last, p.Protocol}] = true
						}
					}
				}
			}
		}
		for _, pol := range c.Policies {
			for _, rules := range [][]model.Rule{pol.IngressRules, pol.EgressRules} {
				for _, rule := range rules {
					for _, p := range rule.Ports {
						if p.Port != 0 {
							set[Port{p.Port, p.Protocol}] = true
						}
						if p.EndPort != 0 {
							set[Port{p.EndPort, p.Protocol}] = true
						}
					}
				}
			}
		}
	}
	if len(set) == 0 {
		return []Port{DefaultPort}
	}
	out := make([]Port, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Protocol != out[j].Protocol {
			return out[i].Protocol < out[j].Protocol
		}
		return out[i].Port < out[j].Port
	})
	return out
}

type explainer struct {
	old, new *model.Cluster
	oe, ne   *engine.Engine
	change   map[string]string // policy key (Result's): added, deleted, changed
	family   netip.Addr
}

// explain says why the connection from → to on p flipped: for each
// direction that denies on the side that denies, the decision of both
// sides with the rules and policies behind it.
func (x *explainer) explain(from, to model.Key, p Port) []Reason {
	conn := func(e *engine.Engine) engine.Verdict {
		src, _ := engine.PodEndpoint(e.Pod(from), x.family)
		dst, _ := engine.PodEndpoint(e.Pod(to), x.family)
		return e.Explain(engine.Conn{From: src, To: dst, Protocol: p.Protocol, Port: p.Port})
	}
	ov, nv := conn(x.oe), conn(x.ne)
	other := x.otherChanges(from, to)
	var out []Reason
	for _, pair := range [][2]engine.Decision{{ov.Egress, nv.Egress}, {ov.Ingress, nv.Ingress}} {
		od, nd := pair[0], pair[1]
		if od.Allowed && nd.Allowed {
			continue
		}
		pod := from
		if od.Direction == model.Ingress {
			pod = to
		}
		r := Reason{Direction: od.Direction, Pod: pod.String(), Before: x.describe(od, ov.Shortcut, false), Now: x.describe(nd, nv.Shortcut, true), Other: other}
		seen := map[string]bool{}
		for _, d := range []engine.Decision{od, nd} {
			for _, k := range deciding(d) {
				if x.change[k] != "" && !seen[k] {
					seen[k] = true
					r.Policies = append(r.Policies, k)
				}
			}
		}
		sort.Strings(r.Policies)
		out = append(out, r)
	}
	return out
}

// deciding returns the keys of the policies that took part in d: the
// cluster policies whose rule decided or passed it on, and the
// NetworkPolicies that isolate its pod when NetworkPolicy was consulted.
func deciding(d engine.Decision) []string {
	var out []string
	for _, r := range d.Passed {
		out = append(out, r.Policy.String())
	}
	if d.Cluster != nil {
		out = append(out, d.Cluster.Policy.String())
	}
	for _, k := range d.Isolating {
		out = append(out, k.String())
	}
	return out
}

// describe renders one side's decision: not isolated, allowed or denied
// by which cluster rule, allowed by which NetworkPolicy rule, or isolated
// by which policies with no rule allowing; after the Pass rules that
// handed it down, if any. Policies are marked with their change as seen
// from that side: "new", "changed" now; "deleted since", "changed since"
// before.
func (x *explainer) describe(d engine.Decision, shortcut string, now bool) string {
	switch {
	case shortcut == "loopback":
		return "not subject to policy (a pod to itself)"
	case shortcut != "" && d.Allowed && d.Direction == model.Ingress:
		return "allowed: " + shortcut
	case !d.Applies():
		return "not subject to policy (host network)"
	}
	name := func(k string) string {
		switch c := x.change[k]; {
		case c == "added" && now:
			return "new policy " + k
		case c == "changed" && now:
			return "changed policy " + k
		case c != "" && !now:
			return k + " (" + c + " since)"
		}
		return k
	}
	cluster := func(r engine.ClusterRuleRef) string {
		// The change mark joins the tier: "X (deleted since; Baseline
		// tier, priority 1001)", not two parentheses in a row.
		k, mark := r.Policy.String(), ""
		if c := x.change[k]; c != "" && !now {
			mark = c + " since; "
		} else {
			k = name(k)
		}
		s := fmt.Sprintf("%s (%s%s tier, priority %d) %s rule %d", k, mark, r.Tier, r.Priority, dirName(r.Direction), r.Index)
		if r.Name != "" {
			s += fmt.Sprintf(" %q", r.Name)
		}
		return s + ": " + r.Action.String()
	}
	pass := ""
	for _, r := range d.Passed {
		pass += "passed by " + cluster(r) + ", "
	}
	verb := "denied"
	if d.Allowed {
		verb = "allowed"
	}
	switch {
	case d.Stage == engine.StageAdmin:
		return verb + " by the Admin tier: " + cluster(*d.Cluster)
	case d.Stage == engine.StageBaseline:
		return pass + "not isolated by NetworkPolicy, " + verb + " by the Baseline tier: " + cluster(*d.Cluster)
	case len(d.Isolating) == 0:
		return pass + "not isolated"
	case d.By != nil:
		return fmt.Sprintf("%sallowed by %s %s rule %d", pass, name(d.By.Policy.String()), dirName(d.By.Direction), d.By.Index)
	}
	names := make([]string, len(d.Isolating))
	for i, k := range d.Isolating {
		names[i] = name(k.String())
	}
	return pass + "isolated by " + strings.Join(names, ", ") + " with no rule allowing it"
}

// otherChanges lists what changed in the two pods and their namespaces
// besides policies: what selectors and named ports read.
func (x *explainer) otherChanges(from, to model.Key) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range []model.Key{from, to} {
		if seen[k.String()] {
			continue
		}
		seen[k.String()] = true
		op, np := x.old.Pods[k], x.new.Pods[k]
		if !reflect.DeepEqual(op.Labels, np.Labels) && (len(op.Labels) > 0 || len(np.Labels) > 0) {
			out = append(out, "labels of pod "+k.String()+" changed")
		}
		if !reflect.DeepEqual(op.Ports, np.Ports) {
			out = append(out, "ports of pod "+k.String()+" changed")
		}
		if !reflect.DeepEqual(op.IPs, np.IPs) || op.HostNetwork != np.HostNetwork || op.Node != np.Node {
			out = append(out, "addresses or node of pod "+k.String()+" changed")
		}
		if op.Replicas != np.Replicas {
			// One replica talks to itself; several talk to each other,
			// under policy.
			out = append(out, fmt.Sprintf("replicas of %s changed from %d to %d", k, op.Replicas, np.Replicas))
		}
	}
	for _, ns := range []string{from.Namespace, to.Namespace} {
		if seen["ns "+ns] {
			continue
		}
		seen["ns "+ns] = true
		if !reflect.DeepEqual(nsLabels(x.old, ns), nsLabels(x.new, ns)) {
			out = append(out, "labels of namespace "+ns+" changed")
		}
	}
	return out
}

func nsLabels(c *model.Cluster, ns string) map[string]string {
	if n := c.Namespaces[ns]; n != nil && len(n.Labels) > 0 {
		return n.Labels
	}
	return nil
}

// generated matches the names controllers give pods: NAME-HASH-XXXXX for
// a Deployment's ReplicaSet, NAME-XXXXX for a DaemonSet or Job, with the
// suffix alphabet Kubernetes uses (no vowels, so that words rarely match).
var generated = regexp.MustCompile(`^(.+?)(-[bcdfghjklmnpqrstvwxz2456789]{6,10})?-[bcdfghjklmnpqrstvwxz2456789]{5}$`)

// Workload returns the group a pod key belongs to: a workload read from
// manifests ("ns/name[Kind]") is its own; a pod with a controller's
// generated name groups as "ns/NAME-*"; any other pod is its own.
func Workload(podKey string) string {
	ns, name, _ := strings.Cut(podKey, "/")
	if strings.HasSuffix(name, "]") {
		return podKey
	}
	if m := generated.FindStringSubmatch(name); m != nil {
		return ns + "/" + m[1] + "-*"
	}
	return podKey
}

// Line is the changes of one pair (of pods, or of workloads) that flip
// the same way for the same reasons, with the ports they flip on.
type Line struct {
	From, To string
	Gained   bool
	Ports    []Port
	Pairs    []string // the pod pairs, "from -> to", when grouped by workload
	Reasons  []Reason // said of the workload when grouped
}

// Lines groups r's changes by pair and reasons: pod pairs when byPod,
// else workload pairs (Workload).
func Lines(r *Result, byPod bool) []Line {
	var out []Line
	index := map[string]int{}
	for _, c := range r.Changes {
		from, to := c.From, c.To
		if !byPod {
			from, to = Workload(from), Workload(to)
		}
		var reasons []Reason
		var texts []string
		for _, rs := range c.Reasons {
			if !byPod {
				// Said of the workload, so that its pods' lines merge.
				rs.Pod = Workload(rs.Pod)
			}
			reasons = append(reasons, rs)
			texts = append(texts, rs.String())
		}
		key := fmt.Sprint(from, "\x00", to, "\x00", c.Gained, "\x00", texts)
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, Line{From: from, To: to, Gained: c.Gained, Reasons: reasons})
		}
		l := &out[i]
		if !containsPort(l.Ports, c.Port) {
			l.Ports = append(l.Ports, c.Port)
		}
		if !byPod && (from != c.From || to != c.To) {
			pair := c.From + " -> " + c.To
			if len(l.Pairs) == 0 || l.Pairs[len(l.Pairs)-1] != pair {
				l.Pairs = append(l.Pairs, pair)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Gained != b.Gained {
			return !a.Gained // lost first: what breaks matters most
		}
		if a.From != b.From {
			return truth.Less(a.From, b.From)
		}
		return truth.Less(a.To, b.To)
	})
	return out
}

func containsPort(ps []Port, p Port) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}
