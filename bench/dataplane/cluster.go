package main

import (
	"net/netip"

	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
)

// The synthetic clusters are fixture.Scale's (the shape of every
// benchmark of BENCHMARKS.md): their pods exist only in the engine, their
// addresses are never configured anywhere. The measured node's pods are
// Spec.Local pods of fixture's local nodes, selected by nearly every
// policy of their namespaces.

func tcp(port uint16) model.Port   { return fixture.Port(model.TCP, port) }
func named(name string) model.Port { return fixture.NamedPort(model.TCP, name) }

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
	client = &model.Pod{Namespace: fixture.ScaleNamespace(clientNSIndex), Name: "bench-client", Node: "node1",
		Labels: map[string]string{"app": "bench-client", "tier": "web", "version": "v1", "bench": "client"}, Ports: ports}
	server = &model.Pod{Namespace: fixture.ScaleNamespace(serverNSIndex), Name: "bench-server", Node: "node2",
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
	cns, sns := fixture.ScaleNamespace(clientNSIndex), fixture.ScaleNamespace(serverNSIndex)
	probe := named("http")
	if *flagAllowBy == "number" {
		probe = tcp(benchPort)
	}
	return []*model.Policy{
		{ // the client's usual egress: DNS and the internet, not the server
			Namespace: cns, Name: "bench-egress-base", PodSelector: *fixture.Sel("bench=client"), Egress: true,
			EgressRules: []model.Rule{
				{Peers: []model.Peer{{NamespaceSelector: fixture.Sel(model.NamespaceNameLabel + "=kube-system"), PodSelector: fixture.Sel("k8s-app=kube-dns")}},
					Ports: []model.Port{{Protocol: model.UDP, Port: 53}, {Protocol: model.TCP, Port: 53}}},
				{Peers: []model.Peer{{IPBlock: &model.IPBlock{CIDR: netip.MustParsePrefix("0.0.0.0/0"),
					Except: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12")}}}},
					Ports: []model.Port{tcp(443)}},
				{Peers: []model.Peer{{PodSelector: &model.Selector{}}}, Ports: []model.Port{named("http")}},
			},
		},
		{
			Namespace: cns, Name: "zz-bench-egress-api", PodSelector: *fixture.Sel("bench=client"), Egress: true,
			EgressRules: []model.Rule{{
				Peers: []model.Peer{{NamespaceSelector: fixture.Sel("env=prod"), PodSelector: fixture.Sel("tier=api")}},
				Ports: []model.Port{tcp(streamPort), probe},
			}},
		},
		{
			Namespace: sns, Name: "zz-bench-ingress-web", PodSelector: *fixture.Sel("bench=server"), Ingress: true,
			IngressRules: []model.Rule{{
				Peers: []model.Peer{{NamespaceSelector: &model.Selector{}, PodSelector: fixture.Sel("tier=web")}},
				Ports: []model.Port{tcp(streamPort), probe},
			}},
		},
	}
}
