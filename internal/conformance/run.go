package conformance

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/truth"
)

// Observer builds a scenario's cluster for real, enforces its policies and
// probes it: the lab implements it.
type Observer interface {
	// Setup builds the cluster (pods, nodes, servers, enforcement).
	Setup(ctx context.Context, c *model.Cluster) error
	// Sync brings pods, labels and policies in line with c after a step's
	// actions.
	Sync(ctx context.Context, c *model.Cluster) error
	// Probe connects between every ordered pair of pods on port/proto.
	// skipped is true when the machine cannot probe proto (no SCTP).
	Probe(ctx context.Context, pods []*model.Pod, fam netip.Addr, port uint16, proto model.Protocol) (g *truth.Grid, skipped bool, err error)
	// Teardown removes everything Setup made.
	Teardown() error
}

// ClusterPolicyEnforcer is implemented by an Observer that enforces
// cluster-wide policies of the kinds (AdminNetworkPolicy,
// BaselineAdminNetworkPolicy, ClusterNetworkPolicy) it answers true for:
// an API server may serve only some of them. Run does not hand a scenario
// that uses any other kind to the observer: the lab would probe without
// that policy, and a probe that happened to agree would be a pass nobody
// observed.
type ClusterPolicyEnforcer interface {
	EnforcesClusterPolicyKind(kind string) bool
}

// ClusterPolicyKinds returns the kinds of cluster-wide policy that sc's
// cluster holds or its actions apply or delete, sorted; none for a
// scenario without any.
func ClusterPolicyKinds(sc *Scenario) []string {
	seen := map[string]bool{}
	for k := range sc.Cluster.ClusterPolicies {
		seen[k.Kind] = true
	}
	for _, st := range sc.Steps {
		for _, a := range st.Do {
			if a.Apply != nil {
				if p, ok := a.Apply.Model.(*model.ClusterPolicy); ok {
					seen[p.Kind] = true
				}
			}
			if a.Delete != nil && clusterKind(a.Delete.Kind) {
				seen[a.Delete.Kind] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// unobservedKinds returns those of kinds that obs does not enforce.
func unobservedKinds(obs Observer, kinds []string) []string {
	ce, ok := obs.(ClusterPolicyEnforcer)
	if !ok {
		return kinds
	}
	var out []string
	for _, k := range kinds {
		if !ce.EnforcesClusterPolicyKind(k) {
			out = append(out, k)
		}
	}
	return out
}

// clusterKind reports whether kind is one of the cluster-wide policy kinds.
func clusterKind(kind string) bool {
	switch kind {
	case model.KindClusterNetworkPolicy, model.KindAdminNetworkPolicy, model.KindBaselineAdminNetworkPolicy:
		return true
	}
	return false
}

// Result is the outcome of one scenario.
type Result struct {
	Name      string
	Pass      bool
	Skipped   int      // probes that could not be observed
	Failures  []string // one line per differing pair, or an error
	Expected  truth.Document
	Predicted truth.Document
	Observed  *truth.Document
	// Checks are the pairs of the scenario's checks, judged by the
	// engine on the cluster before any step.
	Checks []CheckResult
}

// Run runs sc: predicted by the engine, updated incrementally step by step
// as the agent would be, and observed through obs when it is not nil.
func Run(ctx context.Context, sc *Scenario, obs Observer) (res Result) {
	res = Result{Name: sc.Name, Expected: truth.Document{Scenario: sc.Name}, Predicted: truth.Document{Scenario: sc.Name}}
	fail := func(format string, args ...any) {
		res.Failures = append(res.Failures, fmt.Sprintf(format, args...))
	}
	defer func() { res.Pass = len(res.Failures) == 0 }()
	c := sc.Cluster.Clone()
	e := engine.FromCluster(c)
	if obs != nil {
		if kinds := unobservedKinds(obs, ClusterPolicyKinds(sc)); len(kinds) > 0 {
			fail("observed: not run: the observer (%T) does not enforce %s, which this scenario uses", obs, strings.Join(kinds, ", "))
			obs = nil
		}
	}
	if obs != nil {
		res.Observed = &truth.Document{Scenario: sc.Name}
		if err := obs.Setup(ctx, c); err != nil {
			fail("lab setup: %v", err)
			_ = obs.Teardown()
			return res
		}
		defer func() {
			if err := obs.Teardown(); err != nil {
				fail("lab teardown: %v", err)
			}
		}()
	}
	if len(sc.Checks) > 0 {
		res.Checks = runChecks(e, c.SortedPods(), sc.Checks)
		for i := range res.Checks {
			r := &res.Checks[i]
			if r.Pass {
				continue
			}
			ck := r.Check
			r.Line = fmt.Sprintf("checks[%d]: %s -> %s %d/%s", r.Index, r.From, r.To, ck.Port, ck.Protocol)
			if ck.Family.Is6() {
				r.Line += " IPv6"
			}
			if r.Err != "" {
				r.Line += ": " + r.Err
			} else {
				r.Line += fmt.Sprintf(": want %s, got %s", verdictName(ck.Allow), verdictName(r.Verdict.Allowed))
			}
			fail("%s", r.Line)
		}
	}
	for i, st := range sc.Steps {
		for j, a := range st.Do {
			if err := apply(c, e, a); err != nil {
				fail("step %d: do[%d]: %v", i+1, j, err)
				return res
			}
		}
		if obs != nil && len(st.Do) > 0 {
			if err := obs.Sync(ctx, c); err != nil {
				fail("step %d: lab sync: %v", i+1, err)
				return res
			}
		}
		pods := c.SortedPods()
		var exp, pred, seen truth.Step
		for _, pr := range st.Probes {
			want := Expected(pods, pr)
			got := truth.Predict(e, pods, pr.Family, pr.Port, pr.Protocol)
			exp.Probes = append(exp.Probes, familyTable(want, pr.Family))
			pred.Probes = append(pred.Probes, familyTable(got, pr.Family))
			where := fmt.Sprintf("step %d, %d/%s", i+1, pr.Port, pr.Protocol)
			if pr.Family.Is6() {
				where += " IPv6"
			}
			for _, d := range truth.Diff(want, got) {
				fail("%s, predicted: %s", where, d)
			}
			if obs == nil {
				continue
			}
			obsGrid, skipped, err := obs.Probe(ctx, pods, pr.Family, pr.Port, pr.Protocol)
			switch {
			case err != nil:
				fail("%s, observed: %v", where, err)
			case skipped:
				res.Skipped++
			default:
				seen.Probes = append(seen.Probes, familyTable(obsGrid, pr.Family))
				for _, d := range truth.Diff(want, obsGrid) {
					fail("%s, observed: %s", where, d)
				}
			}
		}
		res.Expected.Steps = append(res.Expected.Steps, exp)
		res.Predicted.Steps = append(res.Predicted.Steps, pred)
		if obs != nil {
			res.Observed.Steps = append(res.Observed.Steps, seen)
		}
	}
	return res
}

func verdictName(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

// familyTable is g's table, marked IPv6 when the probe was.
func familyTable(g *truth.Grid, fam netip.Addr) truth.Table {
	t := g.Table()
	if fam.Is6() {
		t.Family = "IPv6"
	}
	return t
}

// Expected builds the table a probe expects: the default, then each rule in
// order; a pod to itself is always allowed. Each rule's patterns are looked
// up once in an index of the pods, so that a rule costs the cells it sets:
// an expectation written as tens of thousands of explicit pairs is then as
// cheap as the matrix, where scanning every pair for every rule took
// minutes.
func Expected(pods []*model.Pod, pr Probe) *truth.Grid {
	keys := make([]string, len(pods))
	for i, p := range pods {
		keys[i] = p.Key().String()
	}
	g := truth.NewGrid(keys, pr.Port, pr.Protocol)
	for _, row := range g.Allow {
		for j := range row {
			row[j] = pr.Default
		}
	}
	idx := newPodIndex(g.Pods)
	for _, r := range pr.Rules {
		to := idx.match(r.To)
		for _, i := range idx.match(r.From) {
			for _, j := range to {
				g.Allow[i][j] = r.Allow
			}
		}
	}
	for i := range g.Allow {
		g.Allow[i][i] = true
	}
	return g
}

// podIndex finds the pods an ns/pod pattern names, by their index in a
// list of pod keys.
type podIndex struct {
	all                 []int
	byKey, byNS, byName map[string][]int
}

func newPodIndex(keys []string) *podIndex {
	x := &podIndex{byKey: map[string][]int{}, byNS: map[string][]int{}, byName: map[string][]int{}}
	for i, k := range keys {
		ns, name, _ := strings.Cut(k, "/")
		x.all = append(x.all, i)
		x.byKey[k] = append(x.byKey[k], i)
		x.byNS[ns] = append(x.byNS[ns], i)
		x.byName[name] = append(x.byName[name], i)
		// A workload's pod, NAME[KIND] (read from a user's manifests),
		// also answers to NAME, as palisade check finds it.
		if base, _, ok := strings.Cut(name, "["); ok && strings.HasSuffix(name, "]") {
			x.byKey[ns+"/"+base] = append(x.byKey[ns+"/"+base], i)
			x.byName[base] = append(x.byName[base], i)
		}
	}
	return x
}

// match returns the pods a pattern names (FORMAT.md: ns/pod where either
// side may be *; an empty pattern or * is every pod), in the order of the
// keys the index was built from.
func (x *podIndex) match(pattern string) []int {
	if pattern == "" || pattern == "*" {
		return x.all
	}
	ns, name, ok := strings.Cut(pattern, "/")
	switch {
	case !ok:
		return nil
	case ns == "*" && name == "*":
		return x.all
	case ns == "*":
		return x.byName[name]
	case name == "*":
		return x.byNS[ns]
	}
	return x.byKey[pattern]
}

func apply(c *model.Cluster, e *engine.Engine, a Action) error {
	switch {
	case a.Apply != nil:
		switch obj := a.Apply.Model.(type) {
		case *model.Policy:
			c.EnsureNamespace(obj.Namespace)
			c.Policies[obj.Key()] = obj
			e.UpsertPolicy(obj)
		case *model.ClusterPolicy:
			c.ClusterPolicies[obj.Key()] = obj
			e.UpsertClusterPolicy(obj)
		case *model.Namespace:
			c.Namespaces[obj.Name] = obj
			e.UpsertNamespace(obj)
		case *model.Pod:
			if len(obj.IPs) == 0 {
				return fmt.Errorf("apply pod %s: status.podIP: required in a scenario", obj.Key())
			}
			if obj.Node == "" {
				obj.Node = "node1"
			}
			if c.Namespaces[obj.Namespace] == nil {
				e.UpsertNamespace(c.EnsureNamespace(obj.Namespace))
			}
			c.Pods[obj.Key()] = obj
			e.UpsertPod(obj)
		default:
			return fmt.Errorf("apply: %s %s: scenarios apply NetworkPolicy, a cluster-wide policy, Namespace or Pod", a.Apply.Kind, a.Apply.Key)
		}
	case a.Delete != nil:
		k := model.Key{Namespace: a.Delete.Namespace, Name: a.Delete.Name}
		switch a.Delete.Kind {
		case "NetworkPolicy":
			if c.Policies[k] == nil {
				return fmt.Errorf("delete: no NetworkPolicy %s", k)
			}
			delete(c.Policies, k)
			e.DeletePolicy(k)
		case "Pod":
			if c.Pods[k] == nil {
				return fmt.Errorf("delete: no Pod %s", k)
			}
			delete(c.Pods, k)
			e.DeletePod(k)
		case model.KindClusterNetworkPolicy, model.KindAdminNetworkPolicy, model.KindBaselineAdminNetworkPolicy:
			ck := model.ClusterKey{Kind: a.Delete.Kind, Name: a.Delete.Name}
			if c.ClusterPolicies[ck] == nil {
				return fmt.Errorf("delete: no %s %s", ck.Kind, ck.Name)
			}
			delete(c.ClusterPolicies, ck)
			e.DeleteClusterPolicy(ck)
		default:
			return fmt.Errorf("delete: kind %q: want NetworkPolicy, Pod, %s, %s or %s", a.Delete.Kind,
				model.KindClusterNetworkPolicy, model.KindAdminNetworkPolicy, model.KindBaselineAdminNetworkPolicy)
		}
	case a.Label != nil:
		l := a.Label
		switch l.Kind {
		case "Namespace":
			old := c.Namespaces[l.Name]
			if old == nil {
				return fmt.Errorf("label: no Namespace %s", l.Name)
			}
			ns := &model.Namespace{Name: l.Name}
			model.SetNamespaceLabels(ns, l.Labels)
			c.Namespaces[l.Name] = ns
			e.UpsertNamespace(ns)
		case "Pod":
			k := model.Key{Namespace: l.Namespace, Name: l.Name}
			old := c.Pods[k]
			if old == nil {
				return fmt.Errorf("label: no Pod %s", k)
			}
			p := *old
			p.Labels = l.Labels
			c.Pods[k] = &p
			e.UpsertPod(&p)
		default:
			return fmt.Errorf("label: kind %q: want Namespace or Pod", l.Kind)
		}
	}
	return nil
}
