package engine_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/palisade-net/palisade/internal/model"
)

// scaleCluster generates a cluster of realistic shape at DESIGN's scale
// points, for the benchmarks: namespaces owned by teams and environments,
// pods of a few apps and tiers with named ports, spread over nodes (100
// pods a node), and policies of the kinds clusters carry: default deny,
// allow from an app of the namespace, allow a tier of another team's
// namespaces on a named port, monitoring scrapes, DNS egress, egress to
// the internet by ipBlock with except, load balancer ipBlocks, port
// ranges and matchExpressions. The same seed gives the same cluster.
//
// Namespace 0 is "monitoring" and 1 is "kube-system" (with kube-dns pods).
func scaleCluster(seed uint64, pods, namespaces, policies int) *model.Cluster {
	r := rand.New(rand.NewPCG(seed, seed))
	c := model.NewCluster()
	envs := []string{"prod", "staging", "dev"}
	tiers := []string{"web", "api", "db"}
	nsNames := make([]string, namespaces)
	for i := range nsNames {
		name := fmt.Sprintf("ns-%03d", i)
		switch i {
		case 0:
			name = "monitoring"
		case 1:
			name = "kube-system"
		}
		nsNames[i] = name
		ns := &model.Namespace{Name: name}
		model.SetNamespaceLabels(ns, map[string]string{"team": fmt.Sprintf("team-%d", i%10), "env": envs[i%3]})
		c.Namespaces[name] = ns
	}
	nodes := max(1, pods/100)
	for i := range nodes {
		n := &model.Node{Name: fmt.Sprintf("node-%d", i), IPs: []netip.Addr{
			netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}),
			netip.AddrFrom16([16]byte{0xfd, 0x01, 14: byte(i >> 8), 15: byte(i)}),
		}}
		c.Nodes[n.Name] = n
	}
	for i := range pods {
		ns := nsNames[i%namespaces]
		app := fmt.Sprintf("app-%d", r.IntN(8))
		p := &model.Pod{
			Namespace: ns,
			Name:      fmt.Sprintf("%s-%d", app, i),
			Labels:    map[string]string{"app": app, "tier": tiers[r.IntN(3)], "version": fmt.Sprintf("v%d", 1+r.IntN(2))},
			Node:      fmt.Sprintf("node-%d", i%nodes),
			IPs: []netip.Addr{
				netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}),
				netip.AddrFrom16([16]byte{0xfd, 0x00, 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)}),
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
	for i := range policies {
		ns := nsNames[i%namespaces]
		k := model.Key{Namespace: ns, Name: fmt.Sprintf("pol-%d", i)}
		c.Policies[k] = scalePolicy(r, k, i/namespaces, namespaces)
	}
	return c
}

func scalePolicy(r *rand.Rand, k model.Key, nth, namespaces int) *model.Policy {
	p := &model.Policy{Namespace: k.Namespace, Name: k.Name}
	app := func() *model.Selector {
		return &model.Selector{MatchLabels: map[string]string{"app": fmt.Sprintf("app-%d", r.IntN(8))}}
	}
	tier := func() *model.Selector {
		return &model.Selector{MatchLabels: map[string]string{"tier": []string{"web", "api", "db"}[r.IntN(3)]}}
	}
	tcp := func(port uint16) model.Port { return model.Port{Protocol: model.TCP, Port: port} }
	named := func(name string) model.Port { return model.Port{Protocol: model.TCP, Name: name} }
	kind := nth % 10
	if nth >= 10 {
		kind = 1 + r.IntN(9) // the first policy of a namespace is its default deny
	}
	switch kind {
	case 0: // default deny ingress
		applyTypes(p, nil)
	case 1, 2: // allow from another app of the namespace
		p.PodSelector = *app()
		p.IngressRules = []model.Rule{{Peers: []model.Peer{{PodSelector: app()}}, Ports: []model.Port{tcp(8080)}}}
		applyTypes(p, nil)
	case 3: // a tier, from a tier of a team's namespaces, on a named port
		p.PodSelector = *tier()
		team := &model.Selector{MatchLabels: map[string]string{"team": fmt.Sprintf("team-%d", r.IntN(10))}}
		p.IngressRules = []model.Rule{{Peers: []model.Peer{{NamespaceSelector: team, PodSelector: tier()}}, Ports: []model.Port{named("http"), named("grpc")}}}
		applyTypes(p, nil)
	case 4: // monitoring scrapes everything
		mon := &model.Selector{MatchLabels: map[string]string{model.NamespaceNameLabel: "monitoring"}}
		p.IngressRules = []model.Rule{{Peers: []model.Peer{{NamespaceSelector: mon}}, Ports: []model.Port{named("metrics")}}}
		applyTypes(p, []model.Direction{model.Ingress})
	case 5: // DNS egress
		p.PodSelector = *app()
		sys := &model.Selector{MatchLabels: map[string]string{model.NamespaceNameLabel: "kube-system"}}
		dns := &model.Selector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}}
		p.EgressRules = []model.Rule{
			{Peers: []model.Peer{{NamespaceSelector: sys, PodSelector: dns}}, Ports: []model.Port{{Protocol: model.UDP, Port: 53}, {Protocol: model.TCP, Port: 53}}},
			{Peers: []model.Peer{{PodSelector: &model.Selector{}}}},
		}
		applyTypes(p, []model.Direction{model.Egress})
	case 6: // egress to the internet and the own namespace
		p.PodSelector = *app()
		p.EgressRules = []model.Rule{
			{Peers: []model.Peer{{IPBlock: &model.IPBlock{
				CIDR:   netip.MustParsePrefix("0.0.0.0/0"),
				Except: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12")},
			}}}, Ports: []model.Port{tcp(443)}},
			{Peers: []model.Peer{{PodSelector: &model.Selector{}}}, Ports: []model.Port{named("http")}},
		}
		applyTypes(p, nil)
	case 7: // matchExpressions and a port range
		p.PodSelector = model.Selector{Exprs: []model.Requirement{{Key: "tier", Operator: model.OpIn, Values: []string{"api", "db"}}}}
		p.IngressRules = []model.Rule{{
			Peers: []model.Peer{{
				NamespaceSelector: &model.Selector{Exprs: []model.Requirement{{Key: "env", Operator: model.OpNotIn, Values: []string{"dev"}}}},
				PodSelector:       &model.Selector{Exprs: []model.Requirement{{Key: "version", Operator: model.OpExists}}},
			}},
			Ports: []model.Port{{Protocol: model.TCP, Port: 8000, EndPort: 8100}},
		}}
		applyTypes(p, nil)
	case 8: // a load balancer's addresses
		p.PodSelector = *tier()
		p.IngressRules = []model.Rule{{
			Peers: []model.Peer{{IPBlock: &model.IPBlock{CIDR: netip.MustParsePrefix("192.0.2.0/24"), Except: []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25")}}}},
			Ports: []model.Port{tcp(8080), tcp(8443)},
		}}
		applyTypes(p, nil)
	default: // both directions between two apps of the namespace
		p.PodSelector = *app()
		p.IngressRules = []model.Rule{{Peers: []model.Peer{{PodSelector: app()}, {PodSelector: app()}}}}
		p.EgressRules = []model.Rule{{Peers: []model.Peer{{PodSelector: app()}}, Ports: []model.Port{named("http")}}}
		applyTypes(p, nil)
	}
	return p
}
