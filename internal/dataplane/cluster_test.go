package dataplane

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// The cluster-policy lab: node-1 (role=lab) runs web and db in shop,
// client in other and mon in mon; node-2 (role=remote) runs far in
// other. web's http port is 80; db's is 81 and its 80 is called web.
const (
	labNodeIP = "10.20.0.1"
	labWeb    = "10.20.0.11"
	labDB     = "10.20.0.12"
	labClient = "10.20.0.13"
	labMon    = "10.20.0.14"
)

func nsSel(name string) *model.Selector {
	return &model.Selector{MatchLabels: map[string]string{model.NamespaceNameLabel: name}}
}

func clusterLab() *model.Cluster {
	c := model.NewCluster()
	c.Nodes["node-1"] = &model.Node{Name: "node-1", Labels: map[string]string{"role": "lab"},
		IPs: []netip.Addr{netip.MustParseAddr(labNodeIP), netip.MustParseAddr(v6(labNodeIP))}}
	c.Nodes["node-2"] = &model.Node{Name: "node-2", Labels: map[string]string{"role": "remote"},
		IPs: []netip.Addr{netip.MustParseAddr("10.30.0.1")}}
	add := func(ns, name, ip, node string, ports ...model.ContainerPort) {
		c.EnsureNamespace(ns)
		p := &model.Pod{Namespace: ns, Name: name, Node: node, Labels: map[string]string{"app": name}, Ports: ports,
			IPs: []netip.Addr{netip.MustParseAddr(ip)}}
		if node == "node-1" {
			p.IPs = append(p.IPs, netip.MustParseAddr(v6(ip)))
		}
		c.Pods[p.Key()] = p
	}
	add("shop", "web", labWeb, "node-1", model.ContainerPort{Name: "http", Port: 80, Protocol: model.TCP})
	add("shop", "db", labDB, "node-1", model.ContainerPort{Name: "http", Port: 81, Protocol: model.TCP}, model.ContainerPort{Name: "web", Port: 80, Protocol: model.TCP})
	add("other", "client", labClient, "node-1")
	add("mon", "mon", labMon, "node-1")
	add("other", "far", "10.30.0.5", "node-2", model.ContainerPort{Name: "http", Port: 80, Protocol: model.TCP})
	return c
}

// cnp is a ClusterNetworkPolicy of tier and priority on the namespace
// subject.
func cnp(name string, tier model.Tier, prio int32, subject string, ingress, egress []model.ClusterRule) *model.ClusterPolicy {
	return &model.ClusterPolicy{Kind: model.KindClusterNetworkPolicy, Name: name, Tier: tier, Priority: prio,
		Subject: model.ClusterSubject{Namespaces: nsSel(subject)}, IngressRules: ingress, EgressRules: egress}
}

func fromNS(action model.Action, ns string, ports ...model.ClusterPort) model.ClusterRule {
	sel := nsSel(ns)
	if ns == "" {
		sel = &model.Selector{}
	}
	return model.ClusterRule{Name: strings.ToLower(action.String()) + "-" + ns, Action: action, Peers: []model.ClusterPeer{{Namespaces: sel}}, Ports: ports}
}

// npAllowFrom lets pods of ns reach app in shop on TCP 80.
func npAllowFrom(app, ns string) *model.Policy {
	return &model.Policy{Namespace: "shop", Name: app + "-from-" + ns,
		PodSelector: model.Selector{MatchLabels: map[string]string{"app": app}}, Ingress: true,
		IngressRules: []model.Rule{{Peers: []model.Peer{{NamespaceSelector: nsSel(ns)}}, Ports: []model.Port{{Protocol: model.TCP, Port: 80}}}}}
}

// clusterTiers has every stage: an Admin Pass and an Admin Deny on a
// named port in front of web's NetworkPolicy, the Baseline Deny behind
// db (no NetworkPolicy), egress by networks and nodes.
func clusterTiers() *model.Cluster {
	c := clusterLab()
	addPolicy(c, npAllowFrom("web", "other"))
	for _, p := range []*model.ClusterPolicy{
		cnp("pass-other", model.AdminTier, 5, "shop", []model.ClusterRule{fromNS(model.Pass, "other")}, nil),
		cnp("guard-shop", model.AdminTier, 10, "shop",
			[]model.ClusterRule{fromNS(model.Deny, "mon", model.ClusterPort{Name: "http"})},
			[]model.ClusterRule{
				{Name: "no-mon", Action: model.Deny, Peers: []model.ClusterPeer{{Networks: []netip.Prefix{netip.MustParsePrefix(labMon + "/32"), netip.MustParsePrefix(v6(labMon) + "/128")}}}},
				{Name: "nodes", Action: model.Accept, Peers: []model.ClusterPeer{{Nodes: &model.Selector{MatchLabels: map[string]string{"role": "lab"}}}}, Ports: []model.ClusterPort{{Protocol: model.TCP, First: 8080, Last: 8080}}},
				{Name: "http", Action: model.Deny, Peers: []model.ClusterPeer{{Namespaces: nsSel("other")}}, Ports: []model.ClusterPort{{Name: "http"}}},
			}),
		cnp("default-deny", model.BaselineTier, 0, "shop", []model.ClusterRule{fromNS(model.Accept, "mon"), fromNS(model.Deny, "")}, nil),
	} {
		c.ClusterPolicies[p.Key()] = p
	}
	return c
}

// TestClusterStages checks the shape clusterTiers compiles to: where
// each pod is dispatched, and what each stage chain does.
func TestClusterStages(t *testing.T) {
	rs := Compile(engine.FromCluster(clusterTiers()), "node-1", Options{LogDrops: true, LogGroup: 2})
	jump := func(m, ip string) *Chain {
		t.Helper()
		for _, el := range rs.Set(m).Elems {
			if el.Addr == netip.MustParseAddr(ip) {
				return rs.Chain(el.Jump)
			}
		}
		return nil
	}
	web, db := jump("ingress4", labWeb), jump("ingress4", labDB)
	if web == nil || db == nil || !strings.HasPrefix(web.Name, "ing-adm-pass-other_and_1-") || !strings.HasPrefix(db.Name, "ing-adm-pass-other_and_1-") || web == db {
		t.Fatalf("web and db go to %v and %v, want two Admin chains (their next stages differ)", web, db)
	}
	if c := jump("ingress4", labClient); c != nil {
		t.Errorf("client (nothing applies) is dispatched to %s", c.Name)
	}
	if c := jump("egress4", labWeb); c == nil || !strings.HasPrefix(c.Name, "egr-adm-guard-shop-") {
		t.Errorf("web's egress goes to %v, want the Admin chain of guard-shop", c)
	}
	// The rules in evaluation order, each naming its policy and rule;
	// the next stage (web: its NetworkPolicy chain; db: the Baseline).
	want := func(ch *Chain, next string) {
		t.Helper()
		var got []string
		for _, r := range ch.Rules {
			got = append(got, r.String())
		}
		if len(got) != 4 ||
			!strings.HasPrefix(got[0], "ip saddr . ip daddr @self4 return") ||
			!strings.Contains(got[1], `goto `+next) || !strings.Contains(got[1], `"ClusterNetworkPolicy/pass-other ingress[0] (pass-other): Pass"`) ||
			!strings.Contains(got[2], "ip daddr . meta l4proto . th dport @local.http-") || !strings.Contains(got[2], "goto ing-deny-guard-shop-") ||
			!strings.HasPrefix(got[3], "goto "+next) || !strings.HasSuffix(got[3], `_4 comment "no Admin tier rule matched"`) {
			t.Errorf("chain %s:\n%s\nwant self, Pass to %s, Deny on named port http, then %s", ch.Name, strings.Join(got, "\n"), next, next)
		}
	}
	want(web, "ing-shop-web-from-other-")
	want(db, "ing-base-default-deny-")
	base := rs.Chain(db.Rules[3].Chain)
	if n := len(base.Rules); n != 3 || base.Rules[1].Verdict != VerdictReturn || base.Rules[2].Verdict != VerdictGoto {
		t.Errorf("baseline chain %s: %v, want self, Accept (return), Deny (goto)", base.Name, base.Rules)
	}
	deny := rs.Chain(base.Rules[2].Chain)
	e := engine.FromCluster(clusterTiers())
	if k, dir, ok := DenyChainPolicy(e, deny.Name); !ok || k.Name != "default-deny" || dir != model.Ingress {
		t.Errorf("DenyChainPolicy(%s) = %v %v %v, want default-deny ingress", deny.Name, k, dir, ok)
	}
	if k, dir, ok := DenyChainPolicy(e, web.Name); ok {
		t.Errorf("DenyChainPolicy(%s) = %v %v, want none (an Admin chain)", web.Name, k, dir)
	}
	if deny == nil || len(deny.Rules) != 3 || deny.Rules[0].Addr.Set != "ingress_drops4" || deny.Rules[1].Log == nil ||
		deny.Rules[1].Log.Prefix != "palisade-drop "+deny.Name+" " || deny.Rules[2].Verdict != VerdictDrop {
		t.Errorf("deny chain %v: want the drop counted per pod, logged with its name, dropped", deny)
	}

	// Peer and named-port sets: namespaces by their pods, nodes by their
	// addresses, networks as they are; an egress named port resolves on
	// the peer pods (far's http is 80; client has none).
	elems := func(prefix string, fam Family) []string {
		t.Helper()
		for _, s := range rs.Sets {
			if strings.HasPrefix(s.Name, prefix) && s.Family == fam {
				var out []string
				for _, e := range s.Elems {
					out = append(out, s.elemString(e))
				}
				return out
			}
		}
		t.Errorf("no set %s*%s", prefix, fam.suffix())
		return nil
	}
	for _, tc := range []struct {
		prefix string
		fam    Family
		want   []string
	}{
		{"nodes.role_lab-", IPv4, []string{labNodeIP}},
		{"nodes.role_lab-", IPv6, []string{v6(labNodeIP)}},
		{"ns.kubernetes.io/metadata.name_other-", IPv4, []string{labClient, "10.30.0.5"}},
		{"nets.10.20.0.14/32-", IPv6, []string{v6(labMon)}},
		{"local.http-", IPv4, []string{labWeb + " . tcp . 80", labDB + " . tcp . 81"}},
		{"ns.kubernetes.io/metadata.name_other.http-", IPv4, []string{"10.30.0.5 . tcp . 80"}},
	} {
		if got := elems(tc.prefix, tc.fam); !slices.Equal(got, tc.want) {
			t.Errorf("set %s*%s: %v, want %v", tc.prefix, tc.fam.suffix(), got, tc.want)
		}
	}

	// A node that runs no pod is still a node: a nodes peer selects it.
	c := clusterTiers()
	c.Nodes["node-3"] = &model.Node{Name: "node-3", Labels: map[string]string{"role": "lab"}, IPs: []netip.Addr{netip.MustParseAddr("10.40.0.1")}}
	rs = Compile(engine.FromCluster(c), "node-1", Options{})
	if got, want := elems("nodes.role_lab-", IPv4), []string{labNodeIP, "10.40.0.1"}; !slices.Equal(got, want) {
		t.Errorf("with node-3 (no pods, role=lab): set nodes.role_lab-*4 %v, want %v", got, want)
	}
}

// TestClusterIncremental: a NetworkPolicy change alone recompiles no
// cluster policy; a cluster policy's change recompiles them; the output
// equals Compile's throughout.
func TestClusterIncremental(t *testing.T) {
	e := engine.FromCluster(clusterTiers())
	cc := NewCompiler("node-1", Options{})
	steps := []struct {
		name  string
		edit  func()
		wantN func(int) bool
	}{
		{"first", func() {}, func(n int) bool { return n > 0 }},
		{"NetworkPolicy added", func() { e.UpsertPolicy(npAllowFrom("db", "mon")) }, func(n int) bool { return n == 0 }},
		{"cluster policy changed", func() {
			e.UpsertClusterPolicy(cnp("pass-other", model.AdminTier, 50, "shop", []model.ClusterRule{fromNS(model.Deny, "other")}, nil))
		}, func(n int) bool { return n > 0 }},
		// The Baseline policy, unused while NetworkPolicy isolated web and
		// db, is compiled again for web, alone.
		{"NetworkPolicy deleted", func() { e.DeletePolicy(model.Key{Namespace: "shop", Name: "web-from-other"}) }, func(n int) bool { return n == 1 }},
	}
	for _, st := range steps {
		st.edit()
		inc := cc.Compile(e, e.TakeChanges())
		if got, want := inc.String(), Compile(e, "node-1", Options{}).String(); got != want {
			t.Fatalf("%s: incremental differs from Compile:\n%s\n---\n%s", st.name, got, want)
		}
		if !st.wantN(cc.ClusterRecompiled) {
			t.Errorf("%s: %d cluster policy-directions recompiled", st.name, cc.ClusterRecompiled)
		}
	}
}

// TestEnforcementClusterPolicies: real TCP through a node netns, for
// each way the tiers decide; every connection's outcome in the kernel
// must be engine.Allowed's for it (and the one the scenario means).
// Scenarios replace one another on one Enforcer, as incremental Applies.
func TestEnforcementClusterPolicies(t *testing.T) {
	node, en, check := echoNode(t, labNodeIP, labWeb, labDB, labClient, labMon)
	ctx := context.Background()
	e := engine.FromCluster(clusterLab())
	cc := NewCompiler("node-1", Options{LogDrops: true})
	shopDenyIngress := &model.Policy{Namespace: "shop", Name: "deny-ingress", Ingress: true}
	lab := &model.Selector{MatchLabels: map[string]string{"role": "lab"}}
	type conn struct {
		from, to string
		port     int
		want     bool
	}
	for _, sc := range []struct {
		name    string
		nps     []*model.Policy
		cluster []*model.ClusterPolicy
		conns   []conn
	}{
		{"admin Deny overrides a NetworkPolicy allow",
			[]*model.Policy{npAllowFrom("web", "other")},
			[]*model.ClusterPolicy{cnp("deny-other", model.AdminTier, 10, "shop", []model.ClusterRule{fromNS(model.Deny, "other")}, nil)},
			[]conn{{labClient, labWeb, 80, false}, {labClient, labDB, 80, false}, {labMon, labDB, 80, true}, {labMon, labWeb, 80, false}}},
		{"admin Accept overrides a NetworkPolicy default deny",
			[]*model.Policy{shopDenyIngress},
			[]*model.ClusterPolicy{cnp("accept-mon", model.AdminTier, 10, "shop", []model.ClusterRule{fromNS(model.Accept, "mon")}, nil)},
			[]conn{{labMon, labWeb, 80, true}, {labMon, labDB, 80, true}, {labClient, labWeb, 80, false}}},
		{"Pass hands the decision to NetworkPolicy",
			[]*model.Policy{npAllowFrom("web", "other")},
			[]*model.ClusterPolicy{
				cnp("pass-other", model.AdminTier, 5, "shop", []model.ClusterRule{fromNS(model.Pass, "other")}, nil),
				cnp("deny-all", model.AdminTier, 10, "shop", []model.ClusterRule{fromNS(model.Deny, "")}, nil)},
			[]conn{{labClient, labWeb, 80, true}, {labClient, labDB, 80, true}, {labMon, labWeb, 80, false}, {labMon, labDB, 80, false}}},
		{"Pass with no NetworkPolicy falls to the Baseline Deny",
			nil,
			[]*model.ClusterPolicy{
				cnp("pass-other", model.AdminTier, 5, "shop", []model.ClusterRule{fromNS(model.Pass, "other")}, nil),
				cnp("baseline", model.BaselineTier, 0, "shop", []model.ClusterRule{fromNS(model.Accept, "mon"), fromNS(model.Deny, "")}, nil)},
			[]conn{{labClient, labDB, 80, false}, {labClient, labWeb, 80, false}, {labMon, labWeb, 80, true}, {labWeb, labDB, 80, false}}},
		{"a NetworkPolicy that allows overrides the Baseline Deny",
			[]*model.Policy{npAllowFrom("web", "other")},
			[]*model.ClusterPolicy{cnp("baseline", model.BaselineTier, 0, "shop", []model.ClusterRule{fromNS(model.Deny, "")}, nil)},
			[]conn{{labClient, labWeb, 80, true}, {labMon, labWeb, 80, false}, {labClient, labDB, 80, false}}},
		{"egress to a networks peer and a nodes peer",
			nil,
			[]*model.ClusterPolicy{cnp("client-out", model.AdminTier, 10, "other", nil, []model.ClusterRule{
				{Action: model.Deny, Peers: []model.ClusterPeer{{Networks: []netip.Prefix{netip.MustParsePrefix(labDB + "/32"), netip.MustParsePrefix(v6(labDB) + "/128")}}}},
				{Action: model.Deny, Peers: []model.ClusterPeer{{Nodes: lab}}, Ports: []model.ClusterPort{{Protocol: model.TCP, First: 8000, Last: 9000}}},
			})},
			[]conn{{labClient, labDB, 80, false}, {labClient, labWeb, 80, true}, {labClient, labNodeIP, 8080, false}, {labMon, labNodeIP, 8080, true}, {labMon, labDB, 80, true}}},
		{"named ports resolve on the destination pod",
			nil,
			[]*model.ClusterPolicy{
				cnp("in-http", model.AdminTier, 10, "shop", []model.ClusterRule{fromNS(model.Deny, "other", model.ClusterPort{Name: "http"})}, nil),
				cnp("out-http", model.AdminTier, 10, "mon", nil, []model.ClusterRule{{Action: model.Deny, Peers: []model.ClusterPeer{{Namespaces: nsSel("shop")}}, Ports: []model.ClusterPort{{Name: "http"}}}}),
			},
			[]conn{{labClient, labWeb, 80, false}, {labClient, labDB, 80, true}, {labMon, labWeb, 80, false}, {labMon, labDB, 80, true}}},
		{"the lower priority decides first: Deny at 10",
			[]*model.Policy{shopDenyIngress},
			[]*model.ClusterPolicy{
				cnp("a-accept", model.AdminTier, 20, "shop", []model.ClusterRule{fromNS(model.Accept, "other")}, nil),
				cnp("b-deny", model.AdminTier, 10, "shop", []model.ClusterRule{fromNS(model.Deny, "other")}, nil)},
			[]conn{{labClient, labWeb, 80, false}}},
		{"the lower priority decides first: Accept at 20",
			[]*model.Policy{shopDenyIngress},
			[]*model.ClusterPolicy{
				cnp("a-accept", model.AdminTier, 20, "shop", []model.ClusterRule{fromNS(model.Accept, "other")}, nil),
				cnp("b-deny", model.AdminTier, 30, "shop", []model.ClusterRule{fromNS(model.Deny, "other")}, nil)},
			[]conn{{labClient, labWeb, 80, true}}},
	} {
		for _, p := range e.Policies() {
			e.DeletePolicy(p.Key)
		}
		for _, p := range slices.Clone(e.ClusterPolicies()) {
			e.DeleteClusterPolicy(p.Key())
		}
		for _, p := range sc.nps {
			e.UpsertPolicy(p)
		}
		for _, p := range sc.cluster {
			e.UpsertClusterPolicy(p)
		}
		if _, err := en.Apply(ctx, cc.Compile(e, e.TakeChanges())); err != nil {
			t.Fatalf("%s: %v", sc.name, err)
		}
		var wg sync.WaitGroup
		for _, c := range sc.conns {
			for _, fam := range []func(string) string{func(s string) string { return s }, v6} {
				from, to := fam(c.from), fam(c.to)
				ec := engine.Conn{From: e.EndpointFor(netip.MustParseAddr(from)), To: e.EndpointFor(netip.MustParseAddr(to)), Protocol: model.TCP, Port: uint16(c.port)}
				if got := e.Allowed(ec); got != c.want {
					t.Errorf("%s: engine.Allowed(%s -> %s:%d) = %v, the scenario means %v", sc.name, from, to, c.port, got, c.want)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if conn := check(sc.name, from, to, c.port, e.Allowed(ec)); conn != nil {
						conn.Close()
					}
				}()
			}
		}
		wg.Wait()
		// A Deny counts the drop on the pod, as NetworkPolicy's do.
		for _, d := range []struct{ scenario, set, pod string }{
			{"admin Deny overrides a NetworkPolicy allow", "ingress_drops4", labWeb},
			{"egress to a networks peer and a nodes peer", "egress_drops4", labClient},
		} {
			if d.scenario != sc.name {
				continue
			}
			rs, err := ReadDrops("/run/netns/" + node)
			if err != nil {
				t.Fatal(err)
			}
			s := rs.Set(d.set)
			if i := slices.IndexFunc(s.Elems, func(e Elem) bool { return e.Addr == netip.MustParseAddr(d.pod) }); i < 0 || s.Counters[i].Packets == 0 {
				t.Errorf("%s: %s has no drops counted for %s: %v %v", sc.name, d.set, d.pod, s.Elems, s.Counters)
			}
		}
	}
}

// scaleClusterPolicies adds n cluster policies to a fixture.Scale
// cluster: half Admin (by team: Pass from the team's group, Deny from
// dev namespaces on the named port http; egress Accept to 10/8 on 443,
// Deny to every node), half Baseline (by env: Deny from everywhere).
func scaleClusterPolicies(c *model.Cluster, n int) {
	for i := range n {
		var p *model.ClusterPolicy
		if i%2 == 0 {
			p = &model.ClusterPolicy{Kind: model.KindClusterNetworkPolicy, Name: fmt.Sprint("admin-", i), Tier: model.AdminTier, Priority: int32(i),
				Subject: model.ClusterSubject{Namespaces: &model.Selector{MatchLabels: map[string]string{"team": fmt.Sprint("team-", i%10)}}},
				IngressRules: []model.ClusterRule{
					{Action: model.Pass, Peers: []model.ClusterPeer{{Namespaces: &model.Selector{MatchLabels: map[string]string{"group": "a"}}}}},
					{Action: model.Deny, Peers: []model.ClusterPeer{{Namespaces: &model.Selector{MatchLabels: map[string]string{"env": "dev"}}}}, Ports: []model.ClusterPort{{Name: "http"}}},
				},
				EgressRules: []model.ClusterRule{
					{Action: model.Accept, Peers: []model.ClusterPeer{{Networks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}, Ports: []model.ClusterPort{{Protocol: model.TCP, First: 443, Last: 443}}},
					{Action: model.Deny, Peers: []model.ClusterPeer{{Nodes: &model.Selector{}}}},
				}}
		} else {
			p = cnp(fmt.Sprint("baseline-", i), model.BaselineTier, int32(i), "", []model.ClusterRule{fromNS(model.Deny, "")}, nil)
			p.Subject.Namespaces = &model.Selector{MatchLabels: map[string]string{"env": "prod"}}
		}
		c.ClusterPolicies[p.Key()] = p
	}
}

// BenchmarkCompileCluster: the cost of 20 cluster policies (and of none,
// for comparison) on the benchmark scales: a full Compile, and an incremental one after a
// NetworkPolicy's change (cluster parts kept) and after a pod's (cluster
// parts recompiled).
func BenchmarkCompileCluster(b *testing.B) {
	for _, run := range []struct {
		name string
		n    int
	}{{"10k-pods-10k-policies", 0}, {"10k-pods-10k-policies", 20}, {"1k-pods-1k-policies", 20}} {
		sc := scales[0]
		if run.name == scales[1].name {
			sc = scales[1]
		}
		c := scaleCluster(sc.pods, sc.namespaces, sc.policies, sc.local)
		scaleClusterPolicies(c, run.n)
		sc.name = fmt.Sprintf("%s-%d-cluster", sc.name, run.n)
		b.Run(sc.name+"/full", func(b *testing.B) {
			e := engine.FromCluster(c)
			for b.Loop() {
				Compile(e, localNode, Options{})
			}
			chains, rules, sets, elems := rulesetSize(Compile(e, localNode, Options{}))
			b.ReportMetric(float64(chains), "chains")
			b.ReportMetric(float64(rules), "rules")
			b.ReportMetric(float64(sets), "sets")
			b.ReportMetric(float64(elems), "elements")
		})
		for _, change := range []string{"policy", "pod"} {
			b.Run(sc.name+"/after-"+change, func(b *testing.B) {
				e := engine.FromCluster(c)
				cc := NewCompiler(localNode, Options{})
				cc.Compile(e, e.TakeChanges())
				pol := e.Policies()[0].Spec
				pod := *e.PodsOnNode(localNode)[0]
				i := 0
				for b.Loop() {
					i++
					if change == "policy" {
						e.UpsertPolicy(variant(pol, i))
					} else {
						pod.Labels = map[string]string{"app": "x", "n": fmt.Sprint(i)}
						q := pod
						e.UpsertPod(&q)
					}
					cc.Compile(e, e.TakeChanges())
				}
			})
		}
	}
}

// TestEnforcementClusterRandom: random cluster policies of both tiers
// (and a random NetworkPolicy or two) on the lab; every pod to every
// other pod on TCP 80 and to the node on 8080, in both families, must
// connect in the kernel exactly when engine.Allowed says
// (-cluster.rounds=N).
func TestEnforcementClusterRandom(t *testing.T) {
	_, en, check := echoNode(t, labNodeIP, labWeb, labDB, labClient, labMon)
	ctx := context.Background()
	e := engine.FromCluster(clusterLab())
	cc := NewCompiler("node-1", Options{})
	r := rand.New(rand.NewPCG(*clusterSeed, 14))
	nss := []string{"shop", "other", "mon", ""}
	apps := []string{"web", "db", "client", "mon"}
	ns := func() *model.Selector {
		if n := nss[r.IntN(len(nss))]; n != "" {
			return nsSel(n)
		}
		return &model.Selector{}
	}
	peer := func(dir model.Direction) model.ClusterPeer {
		switch k := r.IntN(5); {
		case k == 0:
			return model.ClusterPeer{Namespaces: ns()}
		case k == 1 || dir == model.Ingress:
			return model.ClusterPeer{Pods: &model.NamespacedPods{NamespaceSelector: *ns(), PodSelector: model.Selector{MatchLabels: map[string]string{"app": apps[r.IntN(len(apps))]}}}}
		case k == 2:
			return model.ClusterPeer{Nodes: &model.Selector{MatchLabels: map[string]string{"role": []string{"lab", "remote"}[r.IntN(2)]}}}
		default:
			ip := []string{labWeb, labDB, labClient, labMon}[r.IntN(4)]
			return model.ClusterPeer{Networks: []netip.Prefix{netip.MustParsePrefix(ip + "/31"), netip.MustParsePrefix(v6(ip) + "/127")}}
		}
	}
	ports := func() []model.ClusterPort {
		switch r.IntN(6) {
		case 0:
			return []model.ClusterPort{{Protocol: model.TCP, First: 80, Last: 80}}
		case 1:
			return []model.ClusterPort{{Protocol: model.TCP, First: 81, Last: 9000}}
		case 2:
			return []model.ClusterPort{{Name: "http"}}
		case 3:
			return []model.ClusterPort{{Name: "web"}, {Protocol: model.UDP}}
		}
		return nil
	}
	policy := func(i int) *model.ClusterPolicy {
		p := &model.ClusterPolicy{Kind: model.KindClusterNetworkPolicy, Name: fmt.Sprint("p", i), Priority: int32(r.IntN(3))}
		if r.IntN(3) == 0 {
			p.Tier = model.BaselineTier
		}
		if r.IntN(2) == 0 {
			p.Subject.Namespaces = ns()
		} else {
			p.Subject.Pods = &model.NamespacedPods{NamespaceSelector: *ns(), PodSelector: model.Selector{MatchLabels: map[string]string{"app": apps[r.IntN(len(apps))]}}}
		}
		for _, dir := range directions {
			for n := 1 + r.IntN(3); n > 0; n-- {
				a := []model.Action{model.Accept, model.Deny, model.Deny, model.Pass}[r.IntN(4)]
				if p.Tier == model.BaselineTier && a == model.Pass {
					a = model.Deny
				}
				rule := model.ClusterRule{Action: a, Peers: []model.ClusterPeer{peer(dir)}, Ports: ports()}
				if dir == model.Egress {
					p.EgressRules = append(p.EgressRules, rule)
				} else {
					p.IngressRules = append(p.IngressRules, rule)
				}
			}
		}
		return p
	}
	pods := []string{labWeb, labDB, labClient, labMon}
	for round := 0; round < *clusterRounds; round++ {
		for _, p := range e.Policies() {
			e.DeletePolicy(p.Key)
		}
		for _, p := range slices.Clone(e.ClusterPolicies()) {
			e.DeleteClusterPolicy(p.Key())
		}
		for i := range 1 + r.IntN(4) {
			e.UpsertClusterPolicy(policy(i))
		}
		switch r.IntN(3) {
		case 0:
			e.UpsertPolicy(npAllowFrom(apps[r.IntN(2)], nss[r.IntN(3)]))
		case 1:
			e.UpsertPolicy(&model.Policy{Namespace: "shop", Name: "deny-ingress", Ingress: true})
		}
		if _, err := en.Apply(ctx, cc.Compile(e, e.TakeChanges())); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var wg sync.WaitGroup
		allowed := 0
		for _, from := range pods {
			for _, to := range append(slices.Clone(pods), labNodeIP) {
				if from == to {
					continue
				}
				port := 80
				if to == labNodeIP {
					port = 8080
				}
				for _, fam := range []func(string) string{func(s string) string { return s }, v6} {
					ec := engine.Conn{From: e.EndpointFor(netip.MustParseAddr(fam(from))), To: e.EndpointFor(netip.MustParseAddr(fam(to))), Protocol: model.TCP, Port: uint16(port)}
					want := e.Allowed(ec)
					if want {
						allowed++
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						if conn := check(fmt.Sprint("round ", round), fam(from), fam(to), port, want); conn != nil {
							conn.Close()
						}
					}()
				}
			}
		}
		wg.Wait()
		if t.Failed() {
			for _, p := range e.ClusterPolicies() {
				t.Logf("round %d: %s %+v", round, p.Key(), *p)
			}
			t.Fatalf("round %d: the kernel and the engine disagree; ruleset:\n%s", round, en.Last())
		}
		t.Logf("round %d: %d cluster policies, %d of 32 connections allowed", round, len(e.ClusterPolicies()), allowed)
	}
}

var (
	clusterRounds = flag.Int("cluster.rounds", 15, "rounds of TestEnforcementClusterRandom")
	clusterSeed   = flag.Uint64("cluster.seed", 1, "seed of TestEnforcementClusterRandom")
)
