package engine_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
)

// The fixture builders are package fixture's; these name the protocols
// short for the tables.

const (
	TCP  = model.TCP
	UDP  = model.UDP
	SCTP = model.SCTP
)

// baseCluster is the cluster most semantics cases run in, the shape of the
// upstream conformance suites: namespaces x, y, z, each with pods a, b, c,
// dual-stack, on two nodes; every pod serves "http" on TCP, a and b on
// different numbers, and "dns" on UDP 53.
//
//	x/a 10.0.1.1 fd00::1:1 node n1 http=80  dns=53   pod=a
//	x/b 10.0.1.2 fd00::1:2 node n1 http=8080 dns=53  pod=b
//	x/c 10.0.1.3 fd00::1:3 node n2 (no http) dns=53  pod=c
//	(y: 10.0.2.x, z: 10.0.3.x likewise)
//	node n1 192.168.0.1 fd01::1; node n2 192.168.0.2 fd01::2
//	x/host: host network on n1, 192.168.0.1.
func baseCluster() *model.Cluster {
	c := model.NewCluster()
	for i, ns := range []string{"x", "y", "z"} {
		c.Namespaces[ns] = fixture.Namespace(ns, "team="+ns)
		for j, name := range []string{"a", "b", "c"} {
			node := "n1"
			tweaks := []fixture.PodTweak{fixture.CPort("dns", UDP, 53), fixture.CPort("sctp", SCTP, 9000)}
			switch name {
			case "a":
				tweaks = append(tweaks, fixture.CPort("http", TCP, 80))
			case "b":
				tweaks = append(tweaks, fixture.CPort("http", TCP, 8080))
			case "c":
				node = "n2"
			}
			p := fixture.Pod(ns+"/"+name, "pod="+name,
				[]string{fmt.Sprintf("10.0.%d.%d", i+1, j+1), fmt.Sprintf("fd00::%d:%d", i+1, j+1)},
				append(tweaks, fixture.OnNode(node))...)
			c.Pods[p.Key()] = p
		}
	}
	c.Nodes["n1"] = &model.Node{Name: "n1", IPs: []netip.Addr{fixture.Addr("192.168.0.1"), fixture.Addr("fd01::1")}}
	c.Nodes["n2"] = &model.Node{Name: "n2", IPs: []netip.Addr{fixture.Addr("192.168.0.2"), fixture.Addr("fd01::2")}}
	h := fixture.Pod("x/host", "pod=host", []string{"192.168.0.1", "fd01::1"}, fixture.HostNetwork(), fixture.OnNode("n1"))
	c.Pods[h.Key()] = h
	return c
}

// probe is one connection to check: from and to are "ns/pod" (IPv4),
// "ns/pod@6" (IPv6) or a bare address (resolved to a pod if it is one).
type probe struct {
	from, to string
	proto    model.Protocol
	port     uint16
	want     bool
	// by, when set, is the rule expected to allow in the direction of
	// its Direction.
	by *engine.RuleRef
	// miss, when set, must appear in a reason of Explain's misses.
	miss string
}

func allow(from, to string, proto model.Protocol, p uint16) probe {
	return probe{from: from, to: to, proto: proto, port: p, want: true}
}

func deny(from, to string, proto model.Protocol, p uint16) probe {
	return probe{from: from, to: to, proto: proto, port: p}
}

func (p probe) byRule(pol string, dir model.Direction, i int) probe {
	k, _ := model.ParseKey(pol, "")
	p.by = &engine.RuleRef{Policy: k, Direction: dir, Index: i}
	return p
}

func (p probe) missing(reason string) probe { p.miss = reason; return p }

func (p probe) String() string {
	return fmt.Sprintf("%s -> %s %d/%s", p.from, p.to, p.port, p.proto)
}

// endpoint resolves a probe end.
func endpoint(t testing.TB, e *engine.Engine, s string) engine.Endpoint {
	t.Helper()
	if ip, err := netip.ParseAddr(s); err == nil {
		return e.EndpointFor(ip)
	}
	fam := fixture.Addr("0.0.0.0")
	if name, ok := strings.CutSuffix(s, "@6"); ok {
		s, fam = name, fixture.Addr("::")
	}
	k, err := model.ParseKey(s, "")
	if err != nil {
		t.Fatalf("bad probe end %q: %v", s, err)
	}
	p := e.Pod(k)
	if p == nil {
		t.Fatalf("probe end %q: no such pod", s)
	}
	ep, ok := engine.PodEndpoint(p, fam)
	if !ok {
		t.Fatalf("probe end %q: pod has no address of that family", s)
	}
	return ep
}

// semCase is one named case of a semantics table.
type semCase struct {
	name     string
	cluster  func(*model.Cluster) // tweaks to baseCluster; may be nil
	policies []*model.Policy
	probes   []probe
}

func runSemCases(t *testing.T, cases []semCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := baseCluster()
			if tc.cluster != nil {
				tc.cluster(c)
			}
			for _, p := range tc.policies {
				c.Policies[p.Key()] = p
			}
			e := engine.FromCluster(c)
			for _, pr := range tc.probes {
				checkProbe(t, c, e, pr)
			}
		})
	}
}

func checkProbe(t *testing.T, c *model.Cluster, e *engine.Engine, pr probe) {
	t.Helper()
	conn := engine.Conn{From: endpoint(t, e, pr.from), To: endpoint(t, e, pr.to), Protocol: pr.proto, Port: pr.port}
	if got := e.Allowed(conn); got != pr.want {
		t.Errorf("Allowed(%v) = %v, want %v\n%s", pr, got, pr.want, describeVerdict(e.Explain(conn)))
	}
	v := e.Explain(conn)
	if v.Allowed != pr.want {
		t.Errorf("Explain(%v).Allowed = %v, want %v", pr, v.Allowed, pr.want)
	}
	if got := naiveAllowed(c, conn); got != pr.want {
		t.Errorf("naiveAllowed(%v) = %v, want %v (the oracle disagrees with the case)", pr, got, pr.want)
	}
	if pr.by != nil {
		d := v.Ingress
		if pr.by.Direction == model.Egress {
			d = v.Egress
		}
		if d.By == nil || *d.By != *pr.by {
			t.Errorf("Explain(%v).%s.By = %v, want %v", pr, pr.by.Direction, d.By, *pr.by)
		}
	}
	if pr.miss != "" {
		found := false
		for _, m := range append(append([]engine.Miss{}, v.Egress.Misses...), v.Ingress.Misses...) {
			if strings.Contains(m.Reason, pr.miss) {
				found = true
			}
		}
		if !found {
			t.Errorf("Explain(%v) misses lack %q:\n%s", pr, pr.miss, describeVerdict(v))
		}
	}
}

func describeVerdict(v engine.Verdict) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  allowed=%v shortcut=%q\n", v.Allowed, v.Shortcut)
	for _, d := range []engine.Decision{v.Egress, v.Ingress} {
		fmt.Fprintf(&b, "  %s on %v: allowed=%v stage=%v cluster=%v passed=%v isolating=%v by=%v\n", d.Direction, d.Pod, d.Allowed, d.Stage, d.Cluster, d.Passed, d.Isolating, d.By)
		for _, m := range d.ClusterMisses {
			fmt.Fprintf(&b, "    cluster miss %v: %s\n", m.Rule, m.Reason)
		}
		for _, m := range d.Misses {
			fmt.Fprintf(&b, "    miss %v: %s\n", m.Rule, m.Reason)
		}
	}
	return b.String()
}
