package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/palisade-net/palisade/internal/model"
)

// genSpec sizes a synthetic cluster. Its pods exist only in the engine:
// their addresses are never configured anywhere.
type genSpec struct {
	Seed       uint64
	Pods       int
	Namespaces int
	Policies   int
	// LocalNodes host Local pods each (spread over namespaces and apps);
	// the other pods go to synthetic nodes of 100 pods.
	LocalNodes []string
	Local      int
	// Wide keeps the engine benchmark's cluster-wide peers (a tier of a
	// team's namespaces: a tenth of the cluster; every non-dev namespace:
	// two thirds). Otherwise those two kinds select by a namespace label
	// "group" shared by ten neighbouring namespaces.
	Wide bool
}

var (
	envs  = []string{"prod", "staging", "dev"}
	tiers = []string{"web", "api", "db"}
)

// group labels ten neighbouring namespaces alike (a product line).
func group(i int) string { return fmt.Sprintf("group-%d", i/10) }

func nsName(i int) string {
	switch i {
	case 0:
		return "monitoring"
	case 1:
		return "kube-system"
	}
	return fmt.Sprintf("ns-%03d", i)
}

// genCluster builds a cluster of the same realistic shape as the engine's
// benchmarks (internal/engine/scale_test.go, scaleCluster): namespaces per
// team and environment, 8 apps and 3 tiers with named ports, dual-stack
// pods, and per namespace the ten kinds of policy (default deny, allow from
// an app, a tier from a team's namespaces on named ports, monitoring, DNS
// egress, internet egress by ipBlock with except, matchExpressions with a
// port range, load balancer ipBlocks, two-way app rules). Addresses are in
// 10.1.0.0/16-10.2.255.255 and fd00::/104, away from the lab's ranges.
func genCluster(g genSpec) *model.Cluster {
	r := rand.New(rand.NewPCG(g.Seed, g.Seed))
	c := model.NewCluster()
	for i := range g.Namespaces {
		ns := &model.Namespace{Name: nsName(i)}
		model.SetNamespaceLabels(ns, map[string]string{"team": fmt.Sprintf("team-%d", i%10), "env": envs[i%3], "group": group(i)})
		c.Namespaces[ns.Name] = ns
	}
	synNodes := max(1, g.Pods/100)
	for i := range synNodes {
		n := &model.Node{Name: fmt.Sprintf("syn-%d", i), IPs: []netip.Addr{
			netip.AddrFrom4([4]byte{172, 20, byte(i >> 8), byte(i)}),
		}}
		c.Nodes[n.Name] = n
	}
	perNS := g.Local / g.Namespaces // local pods per namespace and local node
	for i := range g.Pods {
		ns := nsName(i % g.Namespaces)
		// The jth pod of a namespace has app j%8, tier j%3, version j%2, so
		// that any 8 consecutive pods of a namespace cover its apps and
		// tiers: local pods (j < perNS on the first node, and so on) are
		// selected by nearly every policy of their namespace.
		j := i / g.Namespaces
		app := fmt.Sprintf("app-%d", j%8)
		node := fmt.Sprintf("syn-%d", i%synNodes)
		if perNS > 0 && j/perNS < len(g.LocalNodes) {
			node = g.LocalNodes[j/perNS]
		} else if perNS == 0 && g.Local > 0 {
			// Fewer local pods than namespaces: a permutation of the pods
			// (7919 is prime) scatters them over namespaces and apps.
			if h := (i * 7919) % g.Pods; h < g.Local*len(g.LocalNodes) {
				node = g.LocalNodes[h/g.Local]
			}
		}
		// Addresses scatter as in a real cluster (not in label order, so
		// that peer sets do not collapse into a few ranges): an odd
		// multiplier permutes 0..2^17-1.
		a := (i * 40503) & (1<<17 - 1)
		p := &model.Pod{
			Namespace: ns,
			Name:      fmt.Sprintf("%s-%d", app, i),
			Labels:    map[string]string{"app": app, "tier": tiers[j%3], "version": fmt.Sprintf("v%d", 1+j%2)},
			Node:      node,
			IPs: []netip.Addr{
				netip.AddrFrom4([4]byte{10, byte(1 + a>>16), byte(a >> 8), byte(a)}),
				netip.AddrFrom16([16]byte{0xfd, 0x00, 13: byte(a >> 16), 14: byte(a >> 8), 15: byte(a)}),
			},
			Ports: []model.ContainerPort{
				{Name: "http", Port: 8080, Protocol: model.TCP},
				{Name: "metrics", Port: 9090, Protocol: model.TCP},
			},
		}
		if r.IntN(4) == 0 {
			p.Ports = append(p.Ports, model.ContainerPort{Name: "grpc", Port: 50051, Protocol: model.TCP})
		}
		if ns == "kube-system" && r.IntN(4) == 0 {
			p.Labels["k8s-app"] = "kube-dns"
			p.Ports = append(p.Ports, model.ContainerPort{Name: "dns", Port: 53, Protocol: model.UDP}, model.ContainerPort{Name: "dns-tcp", Port: 53, Protocol: model.TCP})
		}
		c.Pods[p.Key()] = p
	}
	for i := range g.Policies {
		k := model.Key{Namespace: nsName(i % g.Namespaces), Name: fmt.Sprintf("pol-%d", i)}
		c.Policies[k] = genPolicy(r, k, i/g.Namespaces, g.Namespaces, g.Wide)
	}
	return c
}

func setTypes(p *model.Policy, types ...model.Direction) {
	if types == nil {
		p.Ingress, p.Egress = true, len(p.EgressRules) > 0
		return
	}
	for _, d := range types {
		if d == model.Egress {
			p.Egress = true
		} else {
			p.Ingress = true
		}
	}
}

func tcp(port uint16) model.Port   { return model.Port{Protocol: model.TCP, Port: port} }
func named(name string) model.Port { return model.Port{Protocol: model.TCP, Name: name} }
func labels(kv ...string) *model.Selector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &model.Selector{MatchLabels: m}
}

// genPolicy is scalePolicy of the engine's benchmarks: the nth policy of a
// namespace is of kind nth (0: default deny), later ones of a random kind.
func genPolicy(r *rand.Rand, k model.Key, nth, namespaces int, wide bool) *model.Policy {
	p := &model.Policy{Namespace: k.Namespace, Name: k.Name}
	app := func() *model.Selector { return labels("app", fmt.Sprintf("app-%d", r.IntN(8))) }
	tier := func() *model.Selector { return labels("tier", tiers[r.IntN(3)]) }
	kind := nth % 10
	if nth >= 10 {
		kind = 1 + r.IntN(9)
	}
	switch kind {
	case 0:
		setTypes(p)
	case 1, 2:
		p.PodSelector = *app()
		p.IngressRules = []model.Rule{{Peers: []model.Peer{{PodSelector: app()}}, Ports: []model.Port{tcp(8080)}}}
		setTypes(p)
	case 3:
		p.PodSelector = *tier()
		team := labels("team", fmt.Sprintf("team-%d", r.IntN(10)))
		if !wide {
			team = labels("group", group(r.IntN(namespaces)))
		}
		p.IngressRules = []model.Rule{{Peers: []model.Peer{{NamespaceSelector: team, PodSelector: tier()}}, Ports: []model.Port{named("http"), named("grpc")}}}
		setTypes(p)
	case 4:
		p.IngressRules = []model.Rule{{Peers: []model.Peer{{NamespaceSelector: labels(model.NamespaceNameLabel, "monitoring")}}, Ports: []model.Port{named("metrics")}}}
		setTypes(p, model.Ingress)
	case 5:
		p.PodSelector = *app()
		p.EgressRules = []model.Rule{
			{Peers: []model.Peer{{NamespaceSelector: labels(model.NamespaceNameLabel, "kube-system"), PodSelector: labels("k8s-app", "kube-dns")}},
				Ports: []model.Port{{Protocol: model.UDP, Port: 53}, {Protocol: model.TCP, Port: 53}}},
			{Peers: []model.Peer{{PodSelector: &model.Selector{}}}},
		}
		setTypes(p, model.Egress)
	case 6:
		p.PodSelector = *app()
		p.EgressRules = []model.Rule{
			{Peers: []model.Peer{{IPBlock: &model.IPBlock{
				CIDR:   netip.MustParsePrefix("0.0.0.0/0"),
				Except: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12")},
			}}}, Ports: []model.Port{tcp(443)}},
			{Peers: []model.Peer{{PodSelector: &model.Selector{}}}, Ports: []model.Port{named("http")}},
		}
		setTypes(p)
	case 7:
		p.PodSelector = model.Selector{Exprs: []model.Requirement{{Key: "tier", Operator: model.OpIn, Values: []string{"api", "db"}}}}
		nsSel := &model.Selector{Exprs: []model.Requirement{{Key: "env", Operator: model.OpNotIn, Values: []string{"dev"}}}}
		if !wide {
			nsSel.Exprs = append(nsSel.Exprs, model.Requirement{Key: "group", Operator: model.OpIn, Values: []string{group(r.IntN(namespaces))}})
		}
		p.IngressRules = []model.Rule{{
			Peers: []model.Peer{{
				NamespaceSelector: nsSel,
				PodSelector:       &model.Selector{Exprs: []model.Requirement{{Key: "version", Operator: model.OpExists}}},
			}},
			Ports: []model.Port{{Protocol: model.TCP, Port: 8000, EndPort: 8100}},
		}}
		setTypes(p)
	case 8:
		p.PodSelector = *tier()
		p.IngressRules = []model.Rule{{
			Peers: []model.Peer{{IPBlock: &model.IPBlock{CIDR: netip.MustParsePrefix("192.0.2.0/24"), Except: []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25")}}}},
			Ports: []model.Port{tcp(8080), tcp(8443)},
		}}
		setTypes(p)
	default:
		p.PodSelector = *app()
		p.IngressRules = []model.Rule{{Peers: []model.Peer{{PodSelector: app()}, {PodSelector: app()}}}}
		p.EgressRules = []model.Rule{{Peers: []model.Peer{{PodSelector: app()}}, Ports: []model.Port{named("http")}}}
		setTypes(p)
	}
	return p
}

// Real lab pods: the client in a staging namespace of team 3, the server
// in a prod namespace of team 2. Their own label bench=… is used only by
// the policies below, so the random policies select them by tier only.
const (
	clientNSIndex = 13
	serverNSIndex = 12
	benchPort     = 8080
)

func realPods() (client, server *model.Pod) {
	ports := []model.ContainerPort{{Name: "http", Port: benchPort, Protocol: model.TCP}}
	client = &model.Pod{Namespace: nsName(clientNSIndex), Name: "bench-client", Node: "node1",
		Labels: map[string]string{"app": "bench-client", "tier": "web", "version": "v1", "bench": "client"}, Ports: ports}
	server = &model.Pod{Namespace: nsName(serverNSIndex), Name: "bench-server", Node: "node2",
		Labels: map[string]string{"app": "bench-server", "tier": "api", "version": "v1", "bench": "server"}, Ports: ports}
	return client, server
}

// benchPolicies isolate the real pods and allow client → server:8080 only
// through the last policy of each chain (names sort after "pol-"), whose
// peers are big sets: every tier=api pod of the prod namespaces (egress,
// named port http resolved on ~1/9 of the cluster) and every tier=web pod
// of the cluster (ingress). They also allow the throughput stream's port
// (a rule before the named port's, so the probe on 8080 walks past it).
// With -allow-by number they allow 8080 by number instead of by name.
func benchPolicies() []*model.Policy {
	cns, sns := nsName(clientNSIndex), nsName(serverNSIndex)
	probe := named("http")
	if *flagAllowBy == "number" {
		probe = tcp(benchPort)
	}
	return []*model.Policy{
		{ // the client's usual egress: DNS and the internet, not the server
			Namespace: cns, Name: "bench-egress-base", PodSelector: *labels("bench", "client"), Egress: true,
			EgressRules: []model.Rule{
				{Peers: []model.Peer{{NamespaceSelector: labels(model.NamespaceNameLabel, "kube-system"), PodSelector: labels("k8s-app", "kube-dns")}},
					Ports: []model.Port{{Protocol: model.UDP, Port: 53}, {Protocol: model.TCP, Port: 53}}},
				{Peers: []model.Peer{{IPBlock: &model.IPBlock{CIDR: netip.MustParsePrefix("0.0.0.0/0"),
					Except: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12")}}}},
					Ports: []model.Port{tcp(443)}},
				{Peers: []model.Peer{{PodSelector: &model.Selector{}}}, Ports: []model.Port{named("http")}},
			},
		},
		{
			Namespace: cns, Name: "zz-bench-egress-api", PodSelector: *labels("bench", "client"), Egress: true,
			EgressRules: []model.Rule{{
				Peers: []model.Peer{{NamespaceSelector: labels("env", "prod"), PodSelector: labels("tier", "api")}},
				Ports: []model.Port{tcp(streamPort), probe},
			}},
		},
		{
			Namespace: sns, Name: "zz-bench-ingress-web", PodSelector: *labels("bench", "server"), Ingress: true,
			IngressRules: []model.Rule{{
				Peers: []model.Peer{{NamespaceSelector: &model.Selector{}, PodSelector: labels("tier", "web")}},
				Ports: []model.Port{tcp(streamPort), probe},
			}},
		},
	}
}
