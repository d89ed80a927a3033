package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// syntheticCluster has pods pods over pods/100 namespaces, about local of
// them on node-1, and policies policies: each selects one app in its
// namespace, allows ingress from another app on one TCP port (every 5th
// from that app in every namespace, every 7th also a port range), and
// every 3rd restricts egress to an ipBlock with an exception plus DNS.
func syntheticCluster(pods, policies, local int) *model.Cluster {
	c := model.NewCluster()
	nss := pods / 100
	if nss < 1 {
		nss = 1
	}
	const apps = 50
	for i := 0; i < nss; i++ {
		c.EnsureNamespace(fmt.Sprintf("ns-%d", i))
	}
	for i := 0; i < pods; i++ {
		node := "node-1"
		if (i*7919)%pods >= local { // local pods spread over namespaces and apps
			node = fmt.Sprintf("node-%d", 2+i%50)
		}
		p := &model.Pod{
			Namespace: fmt.Sprintf("ns-%d", i%nss), Name: fmt.Sprintf("pod-%d", i), Node: node,
			Labels: map[string]string{"app": fmt.Sprintf("app-%d", (i/nss)%apps)},
			IPs:    []netip.Addr{netip.AddrFrom4([4]byte{10, byte(1 + i>>16), byte(i >> 8), byte(i)})},
			Ports:  []model.ContainerPort{{Name: "http", Port: 8080, Protocol: model.TCP}},
		}
		c.Pods[p.Key()] = p
	}
	for j := 0; j < policies; j++ {
		c.Policies[syntheticPolicy(j, nss, 0).Key()] = syntheticPolicy(j, nss, 0)
	}
	return c
}

func syntheticPolicy(j, nss, variant int) *model.Policy {
	const apps = 50
	p := &model.Policy{
		Namespace:   fmt.Sprintf("ns-%d", j%nss),
		Name:        fmt.Sprintf("policy-%d", j),
		PodSelector: model.Selector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", (j/nss)%apps)}},
		Ingress:     true,
	}
	peer := model.Peer{PodSelector: &model.Selector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", (j/nss+1)%apps)}}}
	if j%5 == 0 {
		peer.NamespaceSelector = &model.Selector{}
	}
	rule := model.Rule{Peers: []model.Peer{peer}, Ports: []model.Port{{Protocol: model.TCP, Port: uint16(8000 + (j+variant)%100)}}}
	if j%7 == 0 {
		rule.Ports = append(rule.Ports, model.Port{Protocol: model.TCP, Port: 9000, EndPort: 9100}, model.Port{Protocol: model.TCP, Name: "http"})
	}
	p.IngressRules = []model.Rule{rule}
	if j%3 == 0 {
		p.Egress = true
		p.EgressRules = []model.Rule{
			{Peers: []model.Peer{{IPBlock: &model.IPBlock{CIDR: netip.MustParsePrefix("172.16.0.0/12"), Except: []netip.Prefix{netip.MustParsePrefix(fmt.Sprintf("172.16.%d.0/24", j%256))}}}}},
			{Ports: []model.Port{{Protocol: model.UDP, Port: 53}, {Protocol: model.TCP, Port: 53}}},
		}
	}
	return p
}

var scales = []struct {
	name                  string
	pods, policies, local int
}{
	{"1k-pods-1k-policies", 1000, 1000, 100},
	{"10k-pods-10k-policies", 10000, 10000, 100},
	{"10k-pods-10k-policies-all-local", 10000, 10000, 10000},
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
			e := engine.FromCluster(syntheticCluster(sc.pods, sc.policies, sc.local))
			rs := Compile(e, "node-1", Options{})
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				Compile(e, "node-1", Options{})
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
// then applies N one-policy changes (a port change of a policy that
// isolates local pods), each Compile + Apply, and reports p50/p99.
func BenchmarkApply(b *testing.B) {
	for _, sc := range scales {
		b.Run(sc.name, func(b *testing.B) {
			_, en := newEnforcer(b)
			c := syntheticCluster(sc.pods, sc.policies, sc.local)
			e := engine.FromCluster(c)
			ctx := context.Background()
			start := time.Now()
			if _, err := en.Apply(ctx, Compile(e, "node-1", Options{})); err != nil {
				b.Fatal(err)
			}
			fullLoad := time.Since(start)

			// Policies isolating local pods: their changes reach the node.
			var used []int
			for j := 0; j < sc.policies && len(used) < 50; j++ {
				if len(localSelectedPods(e, syntheticPolicy(j, sc.pods/100, 0))) > 0 {
					used = append(used, j)
				}
			}
			var durs []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				j := used[i%len(used)]
				e.UpsertPolicy(syntheticPolicy(j, sc.pods/100, 1+i))
				t0 := time.Now()
				st, err := en.Apply(ctx, Compile(e, "node-1", Options{}))
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

func localSelectedPods(e *engine.Engine, spec *model.Policy) []*model.Pod {
	pol := e.Policy(spec.Key())
	if pol == nil {
		return nil
	}
	var out []*model.Pod
	for _, p := range e.Selected(pol) {
		if p.Node == "node-1" {
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
			rs := Compile(engine.FromCluster(syntheticCluster(sc.pods, sc.policies, sc.local)), "node-1", Options{})
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
