package dataplane

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/google/nftables"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// randWorld makes random edits to an engine: pods added, removed,
// relabelled, moved between nodes, readdressed, given named ports;
// namespaces relabelled and deleted; policies added, replaced and
// deleted; nodes readdressed and given pod CIDRs.
type randWorld struct {
	r *rand.Rand
	e *engine.Engine
}

var (
	rwNS    = []string{"ns0", "ns1", "ns2", "ns3"}
	rwNodes = []string{"n0", "n1", "n2"}
	rwApps  = []string{"a", "b", "c"}
	rwNames = []string{"http", "dns", "metrics"}
)

func (w *randWorld) pick(xs []string) string { return xs[w.r.IntN(len(xs))] }

func (w *randWorld) selector() *model.Selector {
	switch w.r.IntN(5) {
	case 0:
		return &model.Selector{}
	case 1:
		return &model.Selector{Exprs: []model.Requirement{{Key: "app", Operator: model.OpIn, Values: []string{w.pick(rwApps), w.pick(rwApps)}}}}
	case 2:
		return &model.Selector{MatchLabels: map[string]string{"app": w.pick(rwApps), "ver": fmt.Sprint(w.r.IntN(2))}}
	default:
		return &model.Selector{MatchLabels: map[string]string{"app": w.pick(rwApps)}}
	}
}

func (w *randWorld) nsSelector() *model.Selector {
	switch w.r.IntN(3) {
	case 0:
		return &model.Selector{}
	case 1:
		return &model.Selector{MatchLabels: map[string]string{model.NamespaceNameLabel: w.pick(rwNS)}}
	default:
		return &model.Selector{MatchLabels: map[string]string{"team": w.pick([]string{"x", "y"})}}
	}
}

func (w *randWorld) addrs(i int) []netip.Addr {
	v4 := netip.AddrFrom4([4]byte{10, byte(w.r.IntN(3)), byte(i), byte(1 + w.r.IntN(3))})
	v6 := netip.MustParseAddr(fmt.Sprintf("fd00::%x:%x", w.r.IntN(3), i*16+w.r.IntN(3)))
	switch w.r.IntN(10) {
	case 0:
		return nil
	case 1, 2:
		return []netip.Addr{v4, v6}
	case 3:
		return []netip.Addr{v6}
	default:
		return []netip.Addr{v4}
	}
}

// podCIDRs are a node's: none, IPv4, IPv6 or both, covering some of the
// pod addresses addrs makes (10.R.I.x, fd00::R:x).
func (w *randWorld) podCIDRs() []netip.Prefix {
	var out []netip.Prefix
	if w.r.IntN(3) != 0 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(w.r.IntN(3)), 0, 0}), 16))
	}
	if w.r.IntN(2) == 0 {
		out = append(out, netip.MustParsePrefix(fmt.Sprintf("fd00::%x:0/112", w.r.IntN(3))))
	}
	return out
}

func (w *randWorld) pod() *model.Pod {
	i := w.r.IntN(30)
	p := &model.Pod{
		Namespace: w.pick(rwNS),
		Name:      fmt.Sprintf("p%d", i),
		Labels:    map[string]string{"app": w.pick(rwApps), "ver": fmt.Sprint(w.r.IntN(2))},
		Node:      w.pick(rwNodes),
		IPs:       w.addrs(i),
	}
	if w.r.IntN(15) == 0 {
		p.HostNetwork = true
	}
	for _, n := range rwNames {
		if w.r.IntN(3) == 0 {
			proto := model.TCP
			if w.r.IntN(3) == 0 {
				proto = model.UDP
			}
			p.Ports = append(p.Ports, model.ContainerPort{Name: n, Port: uint16(8000 + w.r.IntN(4)), Protocol: proto})
		}
	}
	return p
}

func (w *randWorld) rule() model.Rule {
	var r model.Rule
	for n := w.r.IntN(3); n > 0; n-- {
		var p model.Peer
		switch w.r.IntN(5) {
		case 0:
			p.PodSelector = w.selector()
		case 1:
			p.NamespaceSelector = w.nsSelector()
		case 2:
			p.PodSelector, p.NamespaceSelector = w.selector(), w.nsSelector()
		case 3:
			p.IPBlock = &model.IPBlock{CIDR: netip.MustParsePrefix("10.0.0.0/16"), Except: []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")}}
		default:
			p.IPBlock = &model.IPBlock{CIDR: netip.MustParsePrefix("fd00::/64")}
		}
		r.Peers = append(r.Peers, p)
	}
	for n := w.r.IntN(3); n > 0; n-- {
		switch w.r.IntN(4) {
		case 0:
			r.Ports = append(r.Ports, model.Port{Protocol: model.TCP, Port: uint16(80 + w.r.IntN(3))})
		case 1:
			r.Ports = append(r.Ports, model.Port{Protocol: model.UDP, Port: 53, EndPort: 60})
		default:
			r.Ports = append(r.Ports, model.Port{Protocol: model.TCP, Name: w.pick(rwNames)})
		}
	}
	return r
}

func (w *randWorld) policy() *model.Policy {
	p := &model.Policy{Namespace: w.pick(rwNS), Name: fmt.Sprintf("pol%d", w.r.IntN(8)), PodSelector: *w.selector()}
	p.Ingress = w.r.IntN(4) != 0
	p.Egress = w.r.IntN(2) == 0
	if !p.Ingress && !p.Egress {
		p.Ingress = true
	}
	if p.Ingress {
		for n := w.r.IntN(3); n > 0; n-- {
			p.IngressRules = append(p.IngressRules, w.rule())
		}
	}
	if p.Egress {
		for n := w.r.IntN(3); n > 0; n-- {
			p.EgressRules = append(p.EgressRules, w.rule())
		}
	}
	return p
}

// clusterPolicy makes a cluster policy of either tier: a subject by
// namespace or pods, rules with every action, peers of every kind, and
// ports by number, range, protocol or name.
func (w *randWorld) clusterPolicy() *model.ClusterPolicy {
	p := &model.ClusterPolicy{Kind: model.KindClusterNetworkPolicy, Name: fmt.Sprintf("cnp%d", w.r.IntN(5)), Priority: int32(w.r.IntN(3))}
	if w.r.IntN(3) == 0 {
		p.Tier = model.BaselineTier
	}
	if w.r.IntN(2) == 0 {
		p.Subject.Namespaces = w.nsSelector()
	} else {
		p.Subject.Pods = &model.NamespacedPods{NamespaceSelector: *w.nsSelector(), PodSelector: *w.selector()}
	}
	rule := func(dir model.Direction) model.ClusterRule {
		r := model.ClusterRule{Name: fmt.Sprint("r", w.r.IntN(3)), Action: model.Action(1 + w.r.IntN(3))}
		if p.Tier == model.BaselineTier && r.Action == model.Pass {
			r.Action = model.Deny
		}
		for n := 1 + w.r.IntN(2); n > 0; n-- {
			var pr model.ClusterPeer
			switch k := w.r.IntN(5); {
			case k == 0:
				pr.Namespaces = w.nsSelector()
			case k == 1:
				pr.Pods = &model.NamespacedPods{NamespaceSelector: *w.nsSelector(), PodSelector: *w.selector()}
			case k == 2 && dir == model.Egress:
				pr.Nodes = &model.Selector{MatchLabels: map[string]string{"zone": w.pick([]string{"a", "b"})}}
			case k == 3 && dir == model.Egress:
				pr.Networks = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::1:0/112")}
			case dir == model.Egress:
				pr.Networks = []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24")}
			default:
				pr.Namespaces = &model.Selector{}
			}
			r.Peers = append(r.Peers, pr)
		}
		for n := w.r.IntN(3); n > 0; n-- {
			switch w.r.IntN(4) {
			case 0:
				r.Ports = append(r.Ports, model.ClusterPort{Protocol: model.TCP, First: 80, Last: 80})
			case 1:
				r.Ports = append(r.Ports, model.ClusterPort{Protocol: model.UDP})
			default:
				r.Ports = append(r.Ports, model.ClusterPort{Name: w.pick(rwNames)})
			}
		}
		return r
	}
	for n := w.r.IntN(3); n > 0; n-- {
		p.IngressRules = append(p.IngressRules, rule(model.Ingress))
	}
	for n := w.r.IntN(3); n > 0; n-- {
		p.EgressRules = append(p.EgressRules, rule(model.Egress))
	}
	return p
}

func (w *randWorld) edit() {
	e := w.e
	if w.r.IntN(10) == 0 {
		if pols := e.ClusterPolicies(); len(pols) > 2 && w.r.IntN(3) == 0 {
			e.DeleteClusterPolicy(pols[w.r.IntN(len(pols))].Key())
		} else {
			e.UpsertClusterPolicy(w.clusterPolicy())
		}
		return
	}
	switch k := w.r.IntN(20); {
	case w.r.IntN(3) == 0 && k == 19:
		n := w.pick(rwNodes)
		if w.r.IntN(4) == 0 {
			e.DeleteNode(n)
		} else {
			e.UpsertNode(&model.Node{Name: n, IPs: []netip.Addr{netip.AddrFrom4([4]byte{192, 168, 0, byte(w.r.IntN(5))})}, PodCIDRs: w.podCIDRs(),
				Labels: map[string]string{"zone": w.pick([]string{"a", "b"})}})
		}
	case k < 7:
		e.UpsertPod(w.pod())
	case k < 9:
		// An existing pod, changed in one way.
		pods := e.Pods()
		if len(pods) == 0 {
			return
		}
		old := pods[w.r.IntN(len(pods))]
		p := *old
		switch w.r.IntN(4) {
		case 0:
			p.Node = w.pick(rwNodes)
		case 1:
			p.Labels = map[string]string{"app": w.pick(rwApps), "ver": fmt.Sprint(w.r.IntN(2))}
		case 2:
			p.IPs = w.addrs(w.r.IntN(30))
		default:
			p.Ports = w.pod().Ports
		}
		e.UpsertPod(&p)
	case k < 11:
		pods := e.Pods()
		if len(pods) > 0 {
			e.DeletePod(pods[w.r.IntN(len(pods))].Key())
		}
	case k < 12:
		ns := w.pick(rwNS)
		e.UpsertNamespace(&model.Namespace{Name: ns, Labels: map[string]string{model.NamespaceNameLabel: ns, "team": w.pick([]string{"x", "y"})}})
	case k < 13:
		e.DeleteNamespace(w.pick(rwNS))
	case k < 17:
		e.UpsertPolicy(w.policy())
	case k < 19:
		pols := e.Policies()
		if len(pols) > 0 {
			e.DeletePolicy(pols[w.r.IntN(len(pols))].Key)
		}
	default:
		e.UpsertPolicy(w.policy())
	}
}

// diffOps returns the operations Apply would send to go from old to new.
func diffOps(t *testing.T, old, new *Ruleset) []string {
	t.Helper()
	en := &Enforcer{table: &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}}
	tx := en.newTxn()
	if !tx.diff(old, new) {
		return []string{"full"}
	}
	return tx.ops
}

// TestCompilerMatchesCompile: after every random edit, the incremental
// Compiler's ruleset equals the full Compile's, and Apply's diff from the
// previous ruleset sends the same operations either way.
func TestCompilerMatchesCompile(t *testing.T) {
	steps := 3000
	if testing.Short() {
		steps = 500
	}
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			opts := Options{}
			if seed%2 == 0 {
				opts = Options{LogDrops: true, LogGroup: 3}
			}
			switch seed {
			case 3: // the guard's CIDRs from the flag, not the node
				opts.PodCIDRs = []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00::/64")}
			case 4:
				opts.AllowUnknown = true
			}
			w := &randWorld{r: rand.New(rand.NewPCG(seed, 42)), e: engine.New()}
			cc := NewCompiler("n0", opts)
			var prevInc, prevFull *Ruleset
			recompiled, cached, guarded, keptChains := 0, 0, 0, 0
			for step := 0; step < steps; step++ {
				for n := 1 + w.r.IntN(3); n > 0; n-- {
					w.edit()
				}
				if w.r.IntN(10) == 0 {
					// Sometimes the compile below sees nothing change.
					cc.Compile(w.e, w.e.TakeChanges())
				}
				inc := cc.Compile(w.e, w.e.TakeChanges())
				full := Compile(w.e, "n0", opts)
				if is, fs := inc.String(), full.String(); is != fs {
					t.Fatalf("step %d: incremental compile differs from the full one\n--- incremental\n%s\n--- full\n%s", step, is, fs)
				}
				if !reflect.DeepEqual(inc, full) {
					t.Fatalf("step %d: incremental compile structurally differs from the full one", step)
				}
				if prevInc != nil {
					if a, b := diffOps(t, prevInc, inc), diffOps(t, prevFull, full); !slices.Equal(a, b) {
						t.Fatalf("step %d: Apply's diff differs:\nincremental %q\nfull %q", step, a, b)
					}
					for _, c := range inc.Chains {
						if slices.Contains(prevInc.Chains, c) {
							keptChains++
						}
					}
				}
				recompiled += cc.Recompiled
				cached += len(cc.cache)
				for _, name := range []string{"known_pods4", "known_pods6"} {
					if s := inc.Set(name); s != nil && len(s.Elems) > 0 {
						guarded++
					}
				}
				prevInc, prevFull = inc, full
			}
			t.Logf("%d steps: %d policy-directions recompiled, %d in use summed over compiles; %d pod-group chains kept; %d guard sets with pods", steps, recompiled, cached, keptChains, guarded)
			if recompiled >= cached {
				t.Errorf("nothing came from the cache")
			}
			if keptChains == 0 {
				t.Errorf("no pod-group chain was kept from one compile to the next")
			}
			if (guarded == 0) != opts.AllowUnknown {
				t.Errorf("%d guard sets with pods, AllowUnknown %v", guarded, opts.AllowUnknown)
			}
		})
	}
}
