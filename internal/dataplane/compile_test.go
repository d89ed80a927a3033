package dataplane

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

var update = flag.Bool("update", false, "rewrite testdata/*.nft from the compiler's output")

// standardCluster is the standard cluster of
// ../../shared/conformance/FORMAT.md, dual-stack, every pod on node-1.
func standardCluster() *model.Cluster {
	c := model.NewCluster()
	c.Nodes["node-1"] = &model.Node{Name: "node-1", IPs: []netip.Addr{
		netip.MustParseAddr("10.10.0.1"), netip.MustParseAddr("fd00:10:10::1"),
	}}
	var ports []model.ContainerPort
	for _, port := range []uint16{80, 81} {
		for _, proto := range model.Protocols {
			ports = append(ports, model.ContainerPort{
				Name: fmt.Sprintf("serve-%d-%s", port, strings.ToLower(proto.String())), Port: port, Protocol: proto,
			})
		}
	}
	for i, ns := range []string{"x", "y", "z"} {
		n := c.EnsureNamespace(ns)
		model.SetNamespaceLabels(n, map[string]string{"ns": ns})
		for j, name := range []string{"a", "b", "c"} {
			p := &model.Pod{
				Namespace: ns, Name: name, Node: "node-1",
				Labels: map[string]string{"pod": name},
				IPs: []netip.Addr{
					netip.AddrFrom4([4]byte{10, 10, byte(i + 1), byte(j + 1)}),
					netip.MustParseAddr(fmt.Sprintf("fd00:10:10:%d::%d", i+1, j+1)),
				},
				Ports: ports,
			}
			c.Pods[p.Key()] = p
		}
	}
	return c
}

func sel(kv ...string) *model.Selector {
	s := &model.Selector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// goldenCases are the clusters whose rulesets are checked in as
// testdata/NAME.nft, and applied to the kernel by the kernel tests.
func goldenCases() []struct {
	name    string
	cluster func() *model.Cluster
	opts    Options
} {
	return []struct {
		name    string
		cluster func() *model.Cluster
		opts    Options
	}{
		{"seed-frontend-access", seedCluster, Options{}},
		{"cluster-tiers", clusterTiers, Options{LogDrops: true, LogGroup: 2}},
		// With the unknown-pod guard: its drops are logged too.
		{"seed-default-deny-all", func() *model.Cluster {
			c := seedCluster()
			addPolicy(c, defaultDenyAll("default"))
			c.Nodes["node-1"].PodCIDRs = []netip.Prefix{prefix("10.20.0.0/24")}
			return c
		}, Options{LogDrops: true, LogGroup: 7}},
		// ingress-on-one-named-port and egress-on-one-named-port together.
		{"named-ports", func() *model.Cluster {
			c := standardCluster()
			addPolicy(c, &model.Policy{
				Namespace: "x", Name: "allow-all", Ingress: true,
				IngressRules: []model.Rule{{Ports: []model.Port{{Protocol: model.TCP, Name: "serve-81-tcp"}}}},
			})
			addPolicy(c, &model.Policy{
				Namespace: "y", Name: "allow-egress", Egress: true,
				PodSelector: *sel("pod", "a"),
				EgressRules: []model.Rule{{Ports: []model.Port{{Protocol: model.TCP, Name: "serve-80-tcp"}}}},
			})
			// A named port on selector peers: resolved on the peers.
			addPolicy(c, &model.Policy{
				Namespace: "z", Name: "egress-named-to-x", Egress: true,
				PodSelector: *sel("pod", "b"),
				EgressRules: []model.Rule{{
					Peers: []model.Peer{{NamespaceSelector: sel("ns", "x")}},
					Ports: []model.Port{{Protocol: model.UDP, Name: "serve-81-udp"}},
				}},
			})
			// A named egress port on ipBlock peers: resolved on the pods
			// whose addresses are inside the blocks (not the excepted one).
			addPolicy(c, &model.Policy{
				Namespace: "z", Name: "egress-named-to-block", Egress: true,
				PodSelector: *sel("pod", "c"),
				EgressRules: []model.Rule{{
					Peers: []model.Peer{
						{IPBlock: &model.IPBlock{CIDR: netip.MustParsePrefix("10.10.1.0/24"), Except: []netip.Prefix{netip.MustParsePrefix("10.10.1.3/32")}}},
						{IPBlock: &model.IPBlock{CIDR: netip.MustParsePrefix("fd00:10:10:2::/64")}},
					},
					Ports: []model.Port{{Protocol: model.TCP, Name: "serve-81-tcp"}},
				}},
			})
			// Ingress on a named port from selector peers: the rule looks
			// the named set up before the peers.
			addPolicy(c, &model.Policy{
				Namespace: "y", Name: "ingress-named-from-b", Ingress: true,
				PodSelector: *sel("pod", "c"),
				IngressRules: []model.Rule{{
					Peers: []model.Peer{{PodSelector: sel("pod", "b")}},
					Ports: []model.Port{{Protocol: model.TCP, Name: "serve-80-tcp"}},
				}},
			})
			return c
		}, Options{}},
		// endport-ingress-port-range and cidr-and-except-overlap, with an
		// IPv6 block beside the IPv4 one.
		{"endport-and-ipblock", func() *model.Cluster {
			c := standardCluster()
			addPolicy(c, &model.Policy{
				Namespace: "x", Name: "allow-tcp-81-to-1000", Ingress: true,
				IngressRules: []model.Rule{{Ports: []model.Port{{Protocol: model.TCP, Port: 81, EndPort: 1000}}}},
			})
			addPolicy(c, &model.Policy{
				Namespace: "x", Name: "allow-client-a-via-cidr-egress-rule", Egress: true,
				PodSelector: *sel("pod", "a"),
				EgressRules: []model.Rule{{Peers: []model.Peer{
					{IPBlock: &model.IPBlock{CIDR: prefix("0.0.0.0/4"), Except: []netip.Prefix{prefix("10.10.1.2/32")}}},
					{IPBlock: &model.IPBlock{CIDR: prefix("fd00:10:10::/48"), Except: []netip.Prefix{prefix("fd00:10:10:1::/64")}}},
				}}},
			})
			addPolicy(c, &model.Policy{
				Namespace: "y", Name: "ipv6-only-block", Ingress: true,
				IngressRules: []model.Rule{{
					Peers: []model.Peer{{IPBlock: &model.IPBlock{CIDR: prefix("::/0"), Except: []netip.Prefix{prefix("fd00:10:10:3::/64")}}}},
					Ports: []model.Port{{Protocol: model.UDP, Port: 80}, {Protocol: model.SCTP}},
				}},
			})
			return c
		}, Options{}},
		// podselector-and-nsselector, and stacked policies sharing chains.
		{"selectors-and-stacking", func() *model.Cluster {
			c := standardCluster()
			addPolicy(c, &model.Policy{
				Namespace: "x", Name: "allow-ns-y-podselector-and-nsselector", Ingress: true,
				PodSelector: *sel("pod", "a"),
				IngressRules: []model.Rule{{Peers: []model.Peer{{
					NamespaceSelector: &model.Selector{Exprs: []model.Requirement{
						{Key: model.NamespaceNameLabel, Operator: model.OpNotIn, Values: []string{"x"}},
					}},
					PodSelector: sel("pod", "b"),
				}}}},
			})
			addPolicy(c, defaultDenyAll("x"))
			addPolicy(c, &model.Policy{
				Namespace: "x", Name: "allow-dns", Egress: true,
				EgressRules: []model.Rule{{
					Peers: []model.Peer{{NamespaceSelector: &model.Selector{}, PodSelector: sel("pod", "c")}},
					Ports: []model.Port{{Protocol: model.UDP, Port: 53}, {Protocol: model.TCP, Port: 53}},
				}},
			})
			return c
		}, Options{}},
		// The unknown-pod guard: the node's pod CIDRs (two IPv4 ones that
		// merge, one IPv6), every local pod in known_pods4/6 whether a
		// policy isolates it or not; a pod of another node only if it is
		// inside the CIDRs.
		{"unknown-pod-guard", func() *model.Cluster {
			c := standardCluster()
			c.Nodes["node-1"].PodCIDRs = []netip.Prefix{prefix("10.10.0.0/17"), prefix("10.10.128.0/17"), prefix("fd00:10:10::/56")}
			for i, ip := range []string{"10.11.0.5", "10.10.200.5"} {
				p := &model.Pod{Namespace: "y", Name: fmt.Sprint("elsewhere-", i), Node: "node-2", Labels: map[string]string{"pod": "a"},
					IPs: []netip.Addr{netip.MustParseAddr(ip)}}
				c.Pods[p.Key()] = p
			}
			addPolicy(c, defaultDenyAll("x"))
			return c
		}, Options{}},
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := Compile(engine.FromCluster(tc.cluster()), "node-1", tc.opts).String()
			path := filepath.Join("testdata", tc.name+".nft")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("Compile(%s) differs from %s (-want +got):\n%s", tc.name, path, diff)
			}
		})
	}
}

// TestCompileDeterministic compiles the same state twice, from engines
// built in different orders.
func TestCompileDeterministic(t *testing.T) {
	for _, tc := range goldenCases() {
		a := Compile(engine.FromCluster(tc.cluster()), "node-1", tc.opts).String()
		for i := 0; i < 5; i++ {
			if b := Compile(engine.FromCluster(tc.cluster()), "node-1", tc.opts).String(); a != b {
				t.Fatalf("%s: Compile is not deterministic:\n%s", tc.name, cmp.Diff(a, b))
			}
		}
	}
}

// TestOtherNodeHasNoPolicyChains: pods of another node are not in the
// maps, and policies that isolate none of this node's pods add nothing.
func TestOtherNodeHasNoPolicyChains(t *testing.T) {
	rs := Compile(seedEngine(), "node-2", Options{})
	if len(rs.Chains) != 2 {
		t.Errorf("Compile(node-2) has %d chains, want only the 2 base chains", len(rs.Chains))
	}
	for _, s := range rs.Sets {
		if len(s.Elems) > 0 {
			t.Errorf("Compile(node-2): set %s has elements %v, want none", s.Name, s.Elems)
		}
	}
}

// TestChainsSharedByPolicySet: pods isolated by the same policies share a
// chain, so the chain count follows the policy sets, not the pods.
func TestChainsSharedByPolicySet(t *testing.T) {
	c := standardCluster()
	addPolicy(c, defaultDenyAll("x"))
	addPolicy(c, defaultDenyAll("y"))
	rs := Compile(engine.FromCluster(c), "node-1", Options{})
	var names []string
	for _, ch := range rs.Chains[2:] {
		names = append(names, ch.Name)
	}
	// x and y: one ingress and one egress chain each, per family (the
	// pods are dual-stack).
	if len(names) != 8 {
		t.Fatalf("chains = %v, want 8", names)
	}
	if got := len(rs.Set("ingress4").Elems); got != 6 {
		t.Errorf("ingress4 has %d elements, want 6", got)
	}
}

func TestNamesBounded(t *testing.T) {
	long := strings.Repeat("n", 63)
	pol := strings.Repeat("p", 253)
	c := standardCluster()
	c.EnsureNamespace(long)
	p := &model.Pod{Namespace: long, Name: "a", Node: "node-1", IPs: []netip.Addr{netip.MustParseAddr("10.99.0.1")}}
	c.Pods[p.Key()] = p
	addPolicy(c, &model.Policy{Namespace: long, Name: pol, Ingress: true, IngressRules: []model.Rule{{Peers: []model.Peer{{PodSelector: &model.Selector{}}}}}})
	addPolicy(c, &model.Policy{Namespace: long, Name: pol + "x", Ingress: true, IngressRules: []model.Rule{{Peers: []model.Peer{{PodSelector: &model.Selector{}}}}}})
	rs := Compile(engine.FromCluster(c), "node-1", Options{LogDrops: true})
	seen := map[string]bool{}
	for _, s := range rs.Sets {
		if len(s.Name) > maxSetName || seen[s.Name] {
			t.Errorf("set name %q: too long or duplicate", s.Name)
		}
		seen[s.Name] = true
	}
	for _, ch := range rs.Chains {
		if len(ch.Name) > maxChainName || seen[ch.Name] {
			t.Errorf("chain name %q: too long or duplicate", ch.Name)
		}
		seen[ch.Name] = true
		for _, r := range ch.Rules {
			if r.Log != nil && len(r.Log.Prefix) > maxLogPrefix {
				t.Errorf("log prefix %q too long", r.Log.Prefix)
			}
			if len(r.Comment) > maxComment {
				t.Errorf("rule comment %q too long", r.Comment)
			}
		}
	}
}

// TestPeerSetsShared: rules with the same peers, in any policy, order or
// repetition, match one set per family; other peers get their own.
func TestPeerSetsShared(t *testing.T) {
	c := standardCluster()
	fromB := func(name string, peers ...model.Peer) *model.Policy {
		return &model.Policy{Namespace: "x", Name: name, Ingress: true, IngressRules: []model.Rule{{Peers: peers}}}
	}
	b := model.Peer{PodSelector: sel("pod", "b")}
	cidr := model.Peer{IPBlock: &model.IPBlock{CIDR: prefix("10.0.0.0/8"), Except: []netip.Prefix{prefix("10.9.0.0/16"), prefix("10.8.0.0/16")}}}
	cidr2 := model.Peer{IPBlock: &model.IPBlock{CIDR: prefix("10.0.0.0/8"), Except: []netip.Prefix{prefix("10.8.0.0/16"), prefix("10.9.0.0/16")}}}
	addPolicy(c, fromB("p1", b, cidr))
	addPolicy(c, fromB("p2", cidr2, b, b))
	addPolicy(c, fromB("p3", b))
	addPolicy(c, fromB("p4", model.Peer{PodSelector: sel("pod", "c")}))
	rs := Compile(engine.FromCluster(c), "node-1", Options{})
	set := func(pol string) string {
		s := rs.PeerSet(engine.RuleRef{Policy: model.Key{Namespace: "x", Name: pol}, Direction: model.Ingress}, IPv4)
		if s == nil {
			t.Fatalf("no peer set for x/%s:\n%s", pol, rs)
		}
		return s.Name
	}
	if set("p1") != set("p2") {
		t.Errorf("p1 and p2 have the same peers but sets %s and %s", set("p1"), set("p2"))
	}
	if set("p1") == set("p3") || set("p3") == set("p4") {
		t.Errorf("different peers share a set: p1 %s, p3 %s, p4 %s", set("p1"), set("p3"), set("p4"))
	}
	s := rs.Set(set("p1"))
	if want := "10.0.0.0/8 except 10.8.0.0/16, 10.9.0.0/16; pods pod=b in x"; s.Comment != want {
		t.Errorf("comment = %q, want %q", s.Comment, want)
	}
	if !strings.HasPrefix(s.Name, "cidr-10.0.0.0/8_and_1-") {
		t.Errorf("name = %q", s.Name)
	}
	n := 0
	for _, s := range rs.Sets {
		if s.Kind == KindPeers {
			n++
		}
	}
	if n != 6 { // three distinct peer lists, two families
		t.Errorf("%d peer sets, want 6:\n%s", n, rs)
	}
}

// TestNamedSetsShared: rules with the same named ports resolved on the
// same pods (the policy's target for ingress, the peers for egress) match
// one set; another target, other ports or another direction get their own.
func TestNamedSetsShared(t *testing.T) {
	c := standardCluster()
	http := model.Port{Protocol: model.TCP, Name: "serve-80-tcp"}
	dns := model.Port{Protocol: model.UDP, Name: "serve-81-udp"}
	b := model.Peer{PodSelector: sel("pod", "b")}
	in := func(name string, target *model.Selector, ports ...model.Port) *model.Policy {
		return &model.Policy{Namespace: "x", Name: name, PodSelector: *target, Ingress: true,
			IngressRules: []model.Rule{{Peers: []model.Peer{b}, Ports: ports}}}
	}
	addPolicy(c, in("i1", sel("pod", "a"), http))
	addPolicy(c, in("i2", sel("pod", "a"), http, http))
	addPolicy(c, in("i3", sel("pod", "c"), http))
	addPolicy(c, in("i4", sel("pod", "a"), dns, http))
	// i5's target is e1's peers: only this node's pods, not all of them.
	addPolicy(c, in("i5", sel("pod", "b"), http))
	addPolicy(c, &model.Policy{Namespace: "x", Name: "e1", PodSelector: *sel("pod", "a"), Egress: true,
		EgressRules: []model.Rule{{Peers: []model.Peer{b}, Ports: []model.Port{http}}}})
	rs := Compile(engine.FromCluster(c), "node-1", Options{})
	named := func(pol string, dir model.Direction) string {
		comment := ruleComment(engine.RuleRef{Policy: model.Key{Namespace: "x", Name: pol}, Direction: dir})
		for _, ch := range rs.Chains {
			for _, r := range ch.Rules {
				if r.Comment == comment && r.Family == IPv4 && r.Named != "" {
					return r.Named
				}
			}
		}
		t.Fatalf("no named-port rule for x/%s:\n%s", pol, rs)
		return ""
	}
	if named("i1", model.Ingress) != named("i2", model.Ingress) {
		t.Errorf("i1 and i2: same ports on the same target, sets %s and %s", named("i1", model.Ingress), named("i2", model.Ingress))
	}
	seen := map[string]string{}
	for _, pol := range []string{"i1", "i3", "i4", "i5", "e1"} {
		dir := model.Ingress
		if pol == "e1" {
			dir = model.Egress
		}
		n := named(pol, dir)
		if other, dup := seen[n]; dup {
			t.Errorf("%s and %s resolve on different pods or ports but share %s", other, pol, n)
		}
		seen[n] = pol
	}
	if s := rs.Set(named("i1", model.Ingress)); s.Comment != "TCP/serve-80-tcp on pods pod=a in x (this node)" || len(s.Elems) != 1 {
		t.Errorf("set %s: comment %q, %d elements", s.Name, s.Comment, len(s.Elems))
	}
}

func TestBoundComment(t *testing.T) {
	long := strings.Repeat("a", 200)
	for _, tc := range []struct{ in, want string }{
		{"x/p ingress[0]", "x/p ingress[0]"},
		{long[:maxComment], long[:maxComment]},
		{long, long[:maxComment-3] + "..."},
		{long[:maxComment-4] + "ééé", long[:maxComment-4] + "..."}, // never cuts a rune
	} {
		if got := boundComment(tc.in); got != tc.want || len(got) > maxComment {
			t.Errorf("boundComment(%d bytes) = %q, want %q", len(tc.in), got, tc.want)
		}
	}
}

func TestRangeString(t *testing.T) {
	for _, tc := range []struct{ from, to, want string }{
		{"10.0.0.1", "10.0.0.1", "10.0.0.1"},
		{"10.0.0.0", "10.0.0.255", "10.0.0.0/24"},
		{"10.0.0.1", "10.0.0.9", "10.0.0.1-10.0.0.9"},
		{"0.0.0.0", "255.255.255.255", "0.0.0.0/0"},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0"},
		{"fd00::", "fd00::1", "fd00::/127"},
	} {
		if got := rangeString(netip.MustParseAddr(tc.from), netip.MustParseAddr(tc.to)); got != tc.want {
			t.Errorf("rangeString(%s, %s) = %s, want %s", tc.from, tc.to, got, tc.want)
		}
	}
}

// TestCheapRulesFirst: in a pod group's chain, a rule that matches
// anything comes first, then rules that compare a port before any lookup,
// then rules that look a set up for every packet (named ports, peers on
// all ports), each kind in the policies' order.
func TestCheapRulesFirst(t *testing.T) {
	c := standardCluster()
	b := model.Peer{PodSelector: sel("pod", "b")}
	in := func(name string, rules ...model.Rule) {
		addPolicy(c, &model.Policy{Namespace: "x", Name: name, PodSelector: *sel("pod", "a"), Ingress: true, IngressRules: rules})
	}
	in("p1-named", model.Rule{Peers: []model.Peer{b}, Ports: []model.Port{{Protocol: model.TCP, Name: "serve-80-tcp"}}})
	in("p2-all-ports", model.Rule{Peers: []model.Peer{b}})
	in("p3-port", model.Rule{Peers: []model.Peer{b}, Ports: []model.Port{{Protocol: model.TCP, Port: 8080}}})
	in("p4-anything", model.Rule{})
	in("p5-port", model.Rule{Ports: []model.Port{{Protocol: model.UDP, Port: 53}}})
	rs := Compile(engine.FromCluster(c), "node-1", Options{})
	var got []string
	for _, ch := range rs.Chains {
		if !strings.HasPrefix(ch.Name, "ing-") || !strings.HasSuffix(ch.Name, "_4") {
			continue
		}
		for _, r := range ch.Rules {
			if r.Comment != "" {
				got = append(got, strings.TrimSuffix(strings.TrimPrefix(r.Comment, "x/"), " ingress[0]"))
			}
		}
	}
	want := []string{"p4-anything", "p3-port", "p5-port", "p1-named", "p2-all-ports"}
	if !slices.Equal(got, want) {
		t.Errorf("rules in order %v, want %v:\n%s", got, want, rs)
	}
}

// TestUnknownPodGuardCIDRs: the guard covers the flag's CIDRs if given,
// else the node's, and nothing with AllowUnknown or without CIDRs;
// known_pods holds the addresses in them of every pod, local or not,
// whatever isolates it (not host-network pods').
func TestUnknownPodGuardCIDRs(t *testing.T) {
	c := seedCluster()
	c.Nodes["node-1"].PodCIDRs = []netip.Prefix{prefix("10.20.0.0/24")}
	host := &model.Pod{Namespace: "default", Name: "host", Node: "node-1", HostNetwork: true, IPs: []netip.Addr{netip.MustParseAddr("10.20.0.1")}}
	other := &model.Pod{Namespace: "default", Name: "other", Node: "node-2", IPs: []netip.Addr{netip.MustParseAddr("10.20.0.50")}}
	c.Pods[host.Key()], c.Pods[other.Key()] = host, other
	e := engine.FromCluster(c)
	elems := func(rs *Ruleset, name string) []string {
		s := rs.Set(name)
		if s == nil {
			return nil
		}
		var out []string
		for _, el := range s.Elems {
			out = append(out, s.elemString(el))
		}
		return out
	}
	guardRules := func(rs *Ruleset) (n int) {
		for _, ch := range rs.Chains[:2] {
			for _, r := range ch.Rules {
				if r.NotAddr != nil {
					n++
				}
			}
		}
		return n
	}
	for _, tc := range []struct {
		name       string
		opts       Options
		cidrs4     []string
		cidrs6     []string
		rules      int // guard rules in forward and input
		knownPods4 []string
		noPodsSet6 bool
	}{
		{"node's", Options{}, []string{"10.20.0.0/24"}, nil, 3, []string{"10.20.0.11", "10.20.0.12", "10.20.0.13", "10.20.0.50"}, true},
		{"flag's", Options{PodCIDRs: []netip.Prefix{prefix("10.20.0.0/28"), prefix("fd00:20::/64")}}, []string{"10.20.0.0/28"}, []string{"fd00:20::/64"}, 6, []string{"10.20.0.11", "10.20.0.12", "10.20.0.13"}, false},
		{"off", Options{AllowUnknown: true, PodCIDRs: []netip.Prefix{prefix("10.20.0.0/16")}}, nil, nil, 0, nil, true},
		// Each drop follows a log rule of the same matches.
		{"logged", Options{LogDrops: true, LogGroup: 4}, []string{"10.20.0.0/24"}, nil, 6, []string{"10.20.0.11", "10.20.0.12", "10.20.0.13", "10.20.0.50"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := Compile(e, "node-1", tc.opts)
			if diff := cmp.Diff(tc.cidrs4, elems(rs, "local_cidrs4")); diff != "" {
				t.Errorf("local_cidrs4 (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.cidrs6, elems(rs, "local_cidrs6")); diff != "" {
				t.Errorf("local_cidrs6 (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.knownPods4, elems(rs, "known_pods4")); diff != "" {
				t.Errorf("known_pods4 (-want +got):\n%s", diff)
			}
			if got := rs.Set("known_pods6") == nil; got != tc.noPodsSet6 {
				t.Errorf("known_pods6 absent = %v, want %v", got, tc.noPodsSet6)
			}
			if got := guardRules(rs); got != tc.rules {
				t.Errorf("%d guard rules, want %d:\n%s", got, tc.rules, rs)
			}
			for _, ch := range rs.Chains[:2] {
				for i, r := range ch.Rules {
					if !tc.opts.LogDrops || r.NotAddr == nil || r.Log != nil {
						continue
					}
					want := "palisade-drop " + GuardSource + " "
					if r.Addr.Field == Daddr {
						want = "palisade-drop " + GuardDestination + " "
					}
					if i == 0 || ch.Rules[i-1].Log == nil || ch.Rules[i-1].Log.Prefix != want ||
						!ptrEqual(ch.Rules[i-1].Addr, r.Addr) || !ptrEqual(ch.Rules[i-1].NotAddr, r.NotAddr) || ch.Rules[i-1].Verdict != VerdictNone {
						t.Errorf("%s: guard drop %d is not preceded by its log rule (prefix %q):\n%s", ch.Name, i, want, rs)
					}
				}
			}
		})
	}
	// A node without CIDRs: no guard, the base chains as before.
	c.Nodes["node-1"].PodCIDRs = nil
	if rs := Compile(engine.FromCluster(c), "node-1", Options{}); rs.Set("local_cidrs4") != nil || guardRules(rs) != 0 {
		t.Errorf("no pod CIDR: guard present:\n%s", rs)
	}
}
