package dataplane

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
)

// The benchmarks' clusters are fixture.Scale's (the shape BENCHMARKS.md
// describes), with local pods on the measured node, localNode: the
// clusters, and so the tables, of bench/dataplane's scales of the same
// names (1k, 10k, 10k-local).
const localNode = "node-0"

var scales = []struct {
	name                              string
	pods, namespaces, policies, local int
}{
	{"1k-pods-1k-policies", 1000, 50, 1000, 100},
	{"10k-pods-10k-policies", 10000, 200, 10000, 100},
	{"10k-pods-10k-policies-all-local", 10000, 200, 10000, 10000},
}

func scaleCluster(pods, namespaces, policies, local int) *model.Cluster {
	return fixture.Scale(fixture.Spec{Seed: 2, Pods: pods, Namespaces: namespaces, Policies: policies,
		LocalNodes: []string{localNode}, Local: local})
}

// variant is p with one more ingress rule, on a port of its own per i.
func variant(p *model.Policy, i int) *model.Policy {
	q := *p
	q.IngressRules = append(slices.Clip(p.IngressRules), fixture.Rule(nil, fixture.Port(model.TCP, uint16(7000+i%1000))))
	return &q
}

func rulesetSize(rs *Ruleset) (chains, rules, sets, elems int) {
	for _, c := range rs.Chains {
		rules += len(c.Rules)
	}
	for _, s := range rs.Sets {
		elems += len(s.Elems)
	}
	return len(rs.Chains), rules, len(rs.Sets), elems
}

func BenchmarkCompile(b *testing.B) {
	for _, sc := range scales {
		b.Run(sc.name, func(b *testing.B) {
			e := engine.FromCluster(scaleCluster(sc.pods, sc.namespaces, sc.policies, sc.local))
			rs := Compile(e, localNode, Options{})
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				Compile(e, localNode, Options{})
			}
			chains, rules, sets, elems := rulesetSize(rs)
			b.ReportMetric(float64(chains), "chains")
			b.ReportMetric(float64(rules), "rules")
			b.ReportMetric(float64(sets), "sets")
			b.ReportMetric(float64(elems), "elements")
		})
	}
}

// BenchmarkApply loads the ruleset into a fresh netns (full load time),
// then applies N one-policy changes (a rule on a new port added to a
// policy that isolates local pods), each Compile + Apply, and reports
// p50/p99.
func BenchmarkApply(b *testing.B) {
	for _, sc := range scales {
		b.Run(sc.name, func(b *testing.B) {
			_, en := newEnforcer(b)
			c := scaleCluster(sc.pods, sc.namespaces, sc.policies, sc.local)
			e := engine.FromCluster(c)
			ctx := context.Background()
			start := time.Now()
			if _, err := en.Apply(ctx, Compile(e, localNode, Options{})); err != nil {
				b.Fatal(err)
			}
			fullLoad := time.Since(start)

			used := isolatingLocal(c, e)
			var durs []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e.UpsertPolicy(variant(used[i%len(used)], i))
				t0 := time.Now()
				st, err := en.Apply(ctx, Compile(e, localNode, Options{}))
				if err != nil {
					b.Fatal(err)
				}
				if st.Full || st.ChainsFlushed == 0 {
					b.Fatalf("change %d: %s, want an incremental chain refill", i, st)
				}
				durs = append(durs, time.Since(t0))
			}
			b.StopTimer()
			sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
			b.ReportMetric(float64(fullLoad.Microseconds())/1000, "full-load-ms")
			b.ReportMetric(float64(durs[len(durs)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(durs[len(durs)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// isolatingLocal returns 50 policies isolating local pods for ingress:
// their changes reach the node.
func isolatingLocal(c *model.Cluster, e *engine.Engine) []*model.Policy {
	var used []*model.Policy
	for _, p := range c.SortedPolicies() {
		if p.Ingress && len(localSelectedPods(e, p)) > 0 {
			used = append(used, p)
		}
		if len(used) == 50 {
			break
		}
	}
	return used
}

func localSelectedPods(e *engine.Engine, spec *model.Policy) []*model.Pod {
	pol := e.Policy(spec.Key())
	if pol == nil {
		return nil
	}
	var out []*model.Pod
	for _, p := range e.Selected(pol) {
		if p.Node == localNode {
			out = append(out, p)
		}
	}
	return out
}

// BenchmarkRead reads a loaded table back (an agent's restart, `lab
// rules`, a metrics scrape of the drop counters).
func BenchmarkRead(b *testing.B) {
	for _, sc := range scales[:2] {
		b.Run(sc.name, func(b *testing.B) {
			_, en := newEnforcer(b)
			rs := Compile(engine.FromCluster(scaleCluster(sc.pods, sc.namespaces, sc.policies, sc.local)), localNode, Options{})
			if _, err := en.Apply(context.Background(), rs); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := Read(en.nsPath); err != nil {
					b.Fatal(err)
				}
			}
			_, _, sets, elems := rulesetSize(rs)
			b.ReportMetric(float64(sets), "sets")
			b.ReportMetric(float64(elems), "elements")
		})
	}
}

// BenchmarkCompileChanges is the agent's path for one policy update: the
// engine takes the change and the incremental Compiler recompiles what it
// names. Its allocations drive the agent's GC between events. The
// updates add a rule on a port of its own (variant), or a team's
// namespaces on the named port metrics (bench/agent's update).
func BenchmarkCompileChanges(b *testing.B) {
	updates := []struct {
		name string
		edit func(p *model.Policy, i int) *model.Policy
	}{
		{"port", variant},
		{"team-named-port", func(p *model.Policy, i int) *model.Policy {
			q := *p
			q.IngressRules = append(slices.Clip(p.IngressRules), fixture.Rule(
				fixture.Peers(fixture.NsPeer(fmt.Sprintf("team=team-%d", i%10))), fixture.NamedPort(model.TCP, "metrics")))
			return &q
		}},
	}
	for _, sc := range scales[:2] {
		for _, up := range updates {
			b.Run(sc.name+"/"+up.name, func(b *testing.B) {
				c := scaleCluster(sc.pods, sc.namespaces, sc.policies, sc.local)
				e := engine.FromCluster(c)
				cc := NewCompiler(localNode, Options{})
				cc.Compile(e, e.TakeChanges())
				used := isolatingLocal(c, e)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					e.UpsertPolicy(up.edit(used[i%len(used)], i))
					cc.Compile(e, e.TakeChanges())
				}
			})
		}
	}
}
