package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
)

// TestPeerWhy: for a denied connection, each rule the engine says missed
// gets one line per peer saying which half, label, address or port
// failed. The lines must also agree with the engine: a rule missed on
// its peers has no peer that "matches", one missed on its port has one.
func TestPeerWhy(t *testing.T) {
	sel := func(s model.Selector) *model.Selector { return &s }
	req := func(k string, op model.Operator, vs ...string) model.Requirement {
		return model.Requirement{Key: k, Operator: op, Values: vs}
	}
	pods := []*model.Pod{
		fixture.Pod("web/srv", "app=web", []string{"10.0.0.1"}, fixture.CPort("http", model.TCP, 8080)),
		fixture.Pod("web/client", "app=client,role=client", []string{"10.0.0.2"}),
		fixture.Pod("prod/client", "role=client", []string{"10.1.0.5"}),
		fixture.Pod("prod/db", "app=db", []string{"10.1.0.6"}),
	}
	srv := "web/srv"
	tests := []struct {
		name     string
		pol      *model.Policy
		from, to string // a pod key or an address
		port     uint16
		want     []string // ingress rule 0's lines, or egress's when the policy is egress-only
	}{
		{name: "seed: pod peer role=backend, client has role=client",
			pol:  fixture.Policy("web/p", fixture.Sel("app=web"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("role=backend")), fixture.Port(model.TCP, 80)))),
			from: "web/client", to: srv, port: 80,
			want: []string{"from[0] pods role=backend in namespace web: pod labels {app=client,role=client} do not match podSelector role=backend: `role=client` not in [backend]"}},
		{name: "podSelector-only peer, source in another namespace",
			pol:  fixture.Policy("web/p", fixture.Sel("app=web"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("role=client"))))),
			from: "prod/client", to: srv, port: 80,
			want: []string{"from[0] pods role=client in namespace web: prod/client is in namespace `prod`; without a namespaceSelector this peer selects only pods in `web`"}},
		{name: "ns+pod peer: the namespace half fails",
			pol:  fixture.Policy("web/p", fixture.Sel("app=web"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.NsPodPeer("team=b", "role=client"))))),
			from: "prod/client", to: srv, port: 80,
			want: []string{"from[0] pods role=client in namespaces team=b: namespace `prod` labels {kubernetes.io/metadata.name=prod,team=a} do not match namespaceSelector team=b: `team=a` not in [b]"}},
		{name: "ns+pod peer: the pod half fails, missing label",
			pol:  fixture.Policy("web/p", fixture.Sel("app=web"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.NsPodPeer("team=a", "role=client,tier=fe"))))),
			from: "prod/client", to: srv, port: 80,
			want: []string{"from[0] pods role=client,tier=fe in namespaces team=a: pod labels {role=client} do not match podSelector role=client,tier=fe: missing label `tier`"}},
		{name: "ns+pod peer: both halves fail; second peer is namespace-only",
			pol: fixture.Policy("web/p", fixture.Sel("app=web"), fixture.Ingress(fixture.Rule(fixture.Peers(
				fixture.NsPodPeer("team=b", "role=backend"), fixture.NsPeer("env=prod"))))),
			from: "prod/client", to: srv, port: 80,
			want: []string{
				"from[0] pods role=backend in namespaces team=b: namespace `prod` labels {kubernetes.io/metadata.name=prod,team=a} do not match namespaceSelector team=b: `team=a` not in [b]; and pod labels {role=client} do not match podSelector role=backend: `role=client` not in [backend]",
				"from[1] every pod in namespaces env=prod: namespace `prod` labels {kubernetes.io/metadata.name=prod,team=a} do not match namespaceSelector env=prod: missing label `env`",
			}},
		{name: "matchExpressions terms",
			pol: fixture.Policy("web/p", fixture.Sel("app=web"), fixture.Ingress(fixture.Rule(fixture.Peers(model.Peer{PodSelector: sel(model.Selector{Exprs: []model.Requirement{
				req("role", model.OpNotIn, "client", "admin"), req("tier", model.OpExists), req("app", model.OpDoesNotExist), req("zone", model.OpIn, "b", "a")}})})))),
			from: "web/client", to: srv, port: 80,
			want: []string{"from[0] pods role notin (admin,client),tier,!app,zone in (a,b) in namespace web: pod labels {app=client,role=client} do not match podSelector role notin (admin,client),tier,!app,zone in (a,b): " +
				"`role=client` is in notin [admin,client], missing label `tier`, has label `app`, which must be absent, missing label `zone`"}},
		{name: "ipBlock: outside, and inside an except",
			pol: fixture.Policy("web/p", fixture.Sel("app=web"), fixture.Ingress(fixture.Rule(fixture.Peers(
				fixture.BlockPeer("192.168.0.0/16"), fixture.BlockPeer("10.1.0.0/16", "10.1.0.0/24"))))),
			from: "prod/client", to: srv, port: 80,
			want: []string{
				"from[0] addresses 192.168.0.0/16: address 10.1.0.5 is outside 192.168.0.0/16",
				"from[1] addresses 10.1.0.0/16 except 10.1.0.0/24: address 10.1.0.5 is in 10.1.0.0/16 but in its except 10.1.0.0/24",
			}},
		{name: "an address that is no pod's against a pod selector",
			pol:  fixture.Policy("web/p", fixture.Sel("app=web"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.NsPeer(""))))),
			from: "172.16.0.1", to: srv, port: 80,
			want: []string{"from[0] every pod in namespaces <all>: 172.16.0.1 is no pod's address: only an ipBlock can match it"}},
		{name: "port mismatch: peer matches, named port resolved to another number",
			pol: fixture.Policy("web/p", fixture.Sel("app=web"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("app=client"), fixture.PodPeer("app=db")),
				fixture.Port(model.TCP, 80), fixture.NamedPort(model.TCP, "http"), fixture.NamedPort(model.UDP, "dns")))),
			from: "web/client", to: srv, port: 81,
			want: []string{
				"from[0] pods app=client in namespace web: matches; port 81/TCP is not one the rule allows: 80/TCP, http/TCP, dns/UDP (http is 8080/TCP on web/srv; dns/UDP is not declared by web/srv)",
				"from[1] pods app=db in namespace web: pod labels {app=client,role=client} do not match podSelector app=db: `app=client` not in [db]",
			}},
		{name: "port mismatch on a rule without peers",
			pol:  fixture.Policy("web/p", fixture.Sel("app=web"), fixture.Ingress(fixture.Rule(nil, fixture.PortRange(model.TCP, 1000, 2000)))),
			from: "web/client", to: srv, port: 80,
			want: []string{"any source: matches; port 80/TCP is not one the rule allows: 1000-2000/TCP"}},
		{name: "egress: destination address, named port with no pod to declare it",
			pol: fixture.Policy("web/p", fixture.Sel("app=client"), fixture.Types(model.Egress), fixture.Egress(fixture.Rule(fixture.Peers(fixture.BlockPeer("172.16.0.0/12")),
				fixture.NamedPort(model.TCP, "http")))),
			from: "web/client", to: "172.16.0.1", port: 80,
			want: []string{"to[0] addresses 172.16.0.0/12: matches; port 80/TCP is not one the rule allows: http/TCP (http: 172.16.0.1 is no pod's address, nothing declares it)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := engine.New()
			e.UpsertNamespace(fixture.Namespace("prod", "team=a"))
			for _, p := range pods {
				e.UpsertPod(p)
			}
			e.UpsertPolicy(tc.pol)
			ep := func(s string) engine.Endpoint {
				if k, err := model.ParseKey(s, ""); err == nil {
					got, _ := engine.PodEndpoint(e.Pod(k), fixture.Addr("0.0.0.0"))
					return got
				}
				return e.EndpointFor(fixture.Addr(s))
			}
			c := engine.Conn{From: ep(tc.from), To: ep(tc.to), Protocol: model.TCP, Port: tc.port}
			v := e.Explain(c)
			d := v.Ingress
			if tc.pol.Egress {
				d = v.Egress
			}
			if v.Allowed || len(d.Misses) != 1 {
				t.Fatalf("want a deny with one missed rule, got %+v", v)
			}
			got := explainDecision(e, c, d).Misses[0].Peers
			if !slices.Equal(got, tc.want) {
				t.Errorf("peer lines:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			onPeer := strings.Contains(d.Misses[0].Reason, "is not a peer")
			matched := slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, ": matches; ") })
			if onPeer == matched {
				t.Errorf("engine says %q, but a peer line matches: %v", d.Misses[0].Reason, matched)
			}
		})
	}
}

// TestPeerWhyOnlyDenyingDirection: the direction that allows gets no peer
// lines, nor does a policy that has no rules in the direction.
func TestPeerWhyOnlyDenyingDirection(t *testing.T) {
	e := engine.New()
	e.UpsertPod(fixture.Pod("web/a", "app=a", []string{"10.0.0.1"}))
	e.UpsertPod(fixture.Pod("web/b", "app=b", []string{"10.0.0.2"}))
	e.UpsertPolicy(fixture.Policy("web/deny", fixture.Sel("app=b"), fixture.Ingress()))
	e.UpsertPolicy(fixture.Policy("web/out", fixture.Sel("app=a"), fixture.Types(model.Egress),
		fixture.Egress(fixture.Rule(fixture.Peers(fixture.PodPeer("app=b"))))))
	a, _ := engine.PodEndpoint(e.Pod(model.Key{Namespace: "web", Name: "a"}), fixture.Addr("0.0.0.0"))
	b, _ := engine.PodEndpoint(e.Pod(model.Key{Namespace: "web", Name: "b"}), fixture.Addr("0.0.0.0"))
	c := engine.Conn{From: a, To: b, Protocol: model.TCP, Port: 80}
	v := e.Explain(c)
	if eg := explainDecision(e, c, v.Egress); !eg.Allowed || eg.Misses != nil {
		t.Errorf("egress allows, want no misses: %+v", eg)
	}
	in := explainDecision(e, c, v.Ingress)
	if in.Allowed || len(in.Misses) != 1 || in.Misses[0].Index != -1 || in.Misses[0].Peers != nil {
		t.Errorf("ingress: want one policy-level miss without peer lines: %+v", in)
	}
}
