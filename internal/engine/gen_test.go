package engine_test

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// A generator of small random clusters, policies and edits, for the
// differential test and the fuzzer. Choices come from a source: a seeded
// math/rand for the differential test, the fuzzer's bytes for FuzzEvaluate.
// Everything generated is valid as the API converter would pass it.

// source makes choices; IntN returns a number in [0, n).
type source interface{ IntN(n int) int }

// byteSource reads choices from fuzz bytes, then zeros.
type byteSource struct {
	b []byte
	i int
}

func (s *byteSource) IntN(n int) int {
	if s.i >= len(s.b) {
		return 0
	}
	v := int(s.b[s.i])
	s.i++
	return v % n
}

type gen struct {
	src  source
	next int // for fresh names
	// namedBlocks biases peers to ipBlocks and ports to names.
	namedBlocks bool
}

func (g *gen) n(n int) int            { return g.src.IntN(n) }
func (g *gen) chance(pct int) bool    { return g.src.IntN(100) < pct }
func pickOne[T any](g *gen, xs []T) T { return xs[g.n(len(xs))] }

var (
	genKeys      = []string{"app", "tier", "env"}
	genValues    = []string{"a", "b", "c"}
	genPortNames = []string{"http", "dns", "metrics"}
	genPortNums  = []uint16{53, 80, 81, 8080}
	genProtos    = []model.Protocol{model.TCP, model.TCP, model.UDP, model.SCTP}
	genOps       = []model.Operator{model.OpIn, model.OpNotIn, model.OpExists, model.OpDoesNotExist}
)

func (g *gen) labels() map[string]string {
	m := map[string]string{}
	for _, k := range genKeys {
		if g.chance(50) {
			m[k] = pickOne(g, genValues)
		}
	}
	return m
}

func (g *gen) selector() model.Selector {
	var s model.Selector
	if g.chance(25) {
		return s
	}
	for range g.n(3) {
		if s.MatchLabels == nil {
			s.MatchLabels = map[string]string{}
		}
		s.MatchLabels[pickOne(g, genKeys)] = pickOne(g, genValues)
	}
	for range g.n(3) {
		r := model.Requirement{Key: pickOne(g, genKeys), Operator: pickOne(g, genOps)}
		if r.Operator == model.OpIn || r.Operator == model.OpNotIn {
			for range 1 + g.n(2) {
				r.Values = append(r.Values, pickOne(g, genValues))
			}
		}
		s.Exprs = append(s.Exprs, r)
	}
	return s
}

// nsSelector sometimes selects by the metadata.name label.
func (g *gen) nsSelector(nss []string) model.Selector {
	if g.chance(20) {
		return model.Selector{MatchLabels: map[string]string{model.NamespaceNameLabel: pickOne(g, nss)}}
	}
	return g.selector()
}

// genNamespaces are the namespaces pods and policies live in; the last is
// never declared, so it has only its name label.
var genNamespaces = []string{"ns0", "ns1", "ns2", "undeclared"}

func (g *gen) namespace(name string) *model.Namespace {
	ns := &model.Namespace{Name: name}
	model.SetNamespaceLabels(ns, g.labels())
	return ns
}

func (g *gen) node(i int) *model.Node {
	n := &model.Node{Name: fmt.Sprintf("n%d", i)}
	n.IPs = []netip.Addr{
		netip.AddrFrom4([4]byte{192, 168, 0, byte(1 + i + 10*g.n(2))}),
		netip.MustParseAddr(fmt.Sprintf("fd01::%d", 1+i)),
	}
	return n
}

// pod makes a pod named by g.next in a random namespace, on one of nodes.
func (g *gen) pod(c *model.Cluster) *model.Pod {
	g.next++
	nsIdx := g.n(len(genNamespaces))
	p := &model.Pod{Namespace: genNamespaces[nsIdx], Name: fmt.Sprintf("p%d", g.next), Labels: g.labels()}
	nodes := sortedNodes(c)
	if len(nodes) > 0 && !g.chance(10) {
		p.Node = pickOne(g, nodes).Name
	}
	g.setAddrs(c, p, nsIdx)
	for _, name := range genPortNames {
		if g.chance(40) {
			p.Ports = append(p.Ports, model.ContainerPort{Name: name, Port: pickOne(g, genPortNums), Protocol: pickOne(g, genProtos)})
		}
	}
	return p
}

// setAddrs gives p addresses: its node's when on the host network, else
// unique ones (10.0.NS.N, fd00::NS:N) in one or both families.
func (g *gen) setAddrs(c *model.Cluster, p *model.Pod, nsIdx int) {
	p.IPs = nil
	if n := c.Nodes[p.Node]; n != nil && g.chance(10) {
		p.HostNetwork = true
		p.IPs = append(p.IPs, n.IPs...)
		return
	}
	p.HostNetwork = false
	g.next++
	fam := g.n(5) // 0-2 dual, 3 IPv4, 4 IPv6
	if fam != 4 {
		p.IPs = append(p.IPs, netip.AddrFrom4([4]byte{10, 0, byte(nsIdx), byte(g.next)}))
	}
	if fam != 3 {
		p.IPs = append(p.IPs, netip.MustParseAddr(fmt.Sprintf("fd00::%d:%d", nsIdx, g.next)))
	}
}

// blocks are ipBlocks and the exceptions that may go with each.
var genBlocks = []struct {
	cidr   string
	except []string
}{
	{"10.0.0.0/8", []string{"10.0.1.0/24", "10.0.0.0/16"}},
	{"10.0.0.0/16", []string{"10.0.1.0/24", "10.0.0.0/25", "10.0.2.4/30"}},
	{"10.0.1.0/24", []string{"10.0.1.0/26", "10.0.1.5/32"}},
	{"10.0.2.0/24", []string{"10.0.2.128/25"}},
	{"192.168.0.0/24", []string{"192.168.0.1/32", "192.168.0.10/31"}},
	{"203.0.113.0/24", []string{"203.0.113.128/25"}},
	{"0.0.0.0/0", []string{"10.0.0.0/8", "192.168.0.0/16"}},
	{"fd00::/16", []string{"fd00::1:0/112", "fd00::/64"}},
	{"fd00::/64", []string{"fd00::2:0/112", "fd00::1:4/126"}},
	{"fd01::/64", []string{"fd01::1/128"}},
	{"::/0", []string{"fd00::/16"}},
}

func (g *gen) peer(nss []string) model.Peer {
	kind := g.n(4)
	if g.namedBlocks && g.chance(60) {
		kind = 3
	}
	switch kind {
	case 0:
		s := g.selector()
		return model.Peer{PodSelector: &s}
	case 1:
		s := g.nsSelector(nss)
		return model.Peer{NamespaceSelector: &s}
	case 2:
		ns, pod := g.nsSelector(nss), g.selector()
		return model.Peer{NamespaceSelector: &ns, PodSelector: &pod}
	}
	b := pickOne(g, genBlocks)
	blk := &model.IPBlock{CIDR: netip.MustParsePrefix(b.cidr)}
	for _, ex := range b.except {
		if g.chance(40) {
			blk.Except = append(blk.Except, netip.MustParsePrefix(ex))
		}
	}
	return model.Peer{IPBlock: blk}
}

func (g *gen) port() model.Port {
	proto := pickOne(g, genProtos)
	kind := g.n(4)
	if g.namedBlocks && g.chance(60) {
		kind = 2
	}
	switch kind {
	case 0:
		return model.Port{Protocol: proto, Port: pickOne(g, genPortNums)}
	case 1:
		first := pickOne(g, genPortNums)
		return model.Port{Protocol: proto, Port: first, EndPort: first + uint16(g.n(30))}
	case 2:
		return model.Port{Protocol: proto, Name: pickOne(g, append([]string{"nope"}, genPortNames...))}
	}
	return model.Port{Protocol: proto}
}

func (g *gen) rules(nss []string) []model.Rule {
	if g.chance(25) {
		return nil
	}
	rs := make([]model.Rule, g.n(3))
	for i := range rs {
		if !g.chance(25) {
			for range 1 + g.n(2) {
				rs[i].Peers = append(rs[i].Peers, g.peer(nss))
			}
		}
		if !g.chance(35) {
			for range 1 + g.n(2) {
				rs[i].Ports = append(rs[i].Ports, g.port())
			}
		}
	}
	return rs
}

// policy makes a policy called k: random selector, rules both ways and
// policyTypes absent (defaulted) or given.
func (g *gen) policy(k model.Key) *model.Policy {
	p := &model.Policy{Namespace: k.Namespace, Name: k.Name, PodSelector: g.selector()}
	p.IngressRules = g.rules(genNamespaces)
	p.EgressRules = g.rules(genNamespaces)
	switch g.n(5) {
	case 0, 1:
		applyTypes(p, nil)
	case 2:
		applyTypes(p, []model.Direction{model.Ingress})
	case 3:
		applyTypes(p, []model.Direction{model.Egress})
	default:
		applyTypes(p, []model.Direction{model.Ingress, model.Egress})
	}
	return p
}

func (g *gen) policyKey() model.Key {
	g.next++
	return model.Key{Namespace: pickOne(g, genNamespaces), Name: fmt.Sprintf("pol%d", g.next)}
}

// cluster makes a small cluster: up to 3 declared namespaces, 1-2 nodes,
// up to 8 pods and up to 5 policies.
func (g *gen) cluster() *model.Cluster {
	c := model.NewCluster()
	for _, name := range genNamespaces[:len(genNamespaces)-1] {
		if g.chance(85) {
			c.Namespaces[name] = g.namespace(name)
		}
	}
	for i := range 1 + g.n(2) {
		n := g.node(i)
		c.Nodes[n.Name] = n
	}
	for range g.n(9) {
		p := g.pod(c)
		c.Pods[p.Key()] = p
	}
	for range g.n(6) {
		k := g.policyKey()
		c.Policies[k] = g.policy(k)
	}
	return c
}

func sortedNodes(c *model.Cluster) []*model.Node {
	out := make([]*model.Node, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *model.Node) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

func sortedPolicyKeys(c *model.Cluster) []model.Key {
	out := make([]model.Key, 0, len(c.Policies))
	for k := range c.Policies {
		out = append(out, k)
	}
	model.SortKeys(out)
	return out
}

// edit applies one random change to both the cluster and the engine, and
// describes it. Objects are replaced, never mutated: the engine keeps
// pointers.
func (g *gen) edit(c *model.Cluster, e *engine.Engine) string {
	pods := c.SortedPods()
	pols := sortedPolicyKeys(c)
	switch g.n(10) {
	case 0: // pod labels
		if len(pods) == 0 {
			break
		}
		p := *pickOne(g, pods)
		p.Labels = g.labels()
		c.Pods[p.Key()] = &p
		e.UpsertPod(&p)
		return "relabel pod " + p.Key().String()
	case 1: // pod addresses, host network or ports
		if len(pods) == 0 {
			break
		}
		p := *pickOne(g, pods)
		if g.chance(50) {
			g.setAddrs(c, &p, slices.Index(genNamespaces, p.Namespace))
		} else {
			p.Ports = nil
			for _, name := range genPortNames {
				if g.chance(50) {
					p.Ports = append(p.Ports, model.ContainerPort{Name: name, Port: pickOne(g, genPortNums), Protocol: pickOne(g, genProtos)})
				}
			}
		}
		c.Pods[p.Key()] = &p
		e.UpsertPod(&p)
		return "readdress pod " + p.Key().String()
	case 2: // pod delete
		if len(pods) == 0 {
			break
		}
		k := pickOne(g, pods).Key()
		delete(c.Pods, k)
		e.DeletePod(k)
		return "delete pod " + k.String()
	case 3: // namespace labels
		name := pickOne(g, genNamespaces[:len(genNamespaces)-1])
		ns := g.namespace(name)
		c.Namespaces[name] = ns
		e.UpsertNamespace(ns)
		return "relabel namespace " + name
	case 4: // namespace delete
		name := pickOne(g, genNamespaces)
		delete(c.Namespaces, name)
		e.DeleteNamespace(name)
		return "delete namespace " + name
	case 5: // policy replace
		if len(pols) == 0 {
			break
		}
		k := pickOne(g, pols)
		p := g.policy(k)
		c.Policies[k] = p
		e.UpsertPolicy(p)
		return "replace policy " + k.String()
	case 6: // policy delete
		if len(pols) == 0 {
			break
		}
		k := pickOne(g, pols)
		delete(c.Policies, k)
		e.DeletePolicy(k)
		return "delete policy " + k.String()
	case 7: // node addresses
		n := g.node(g.n(2))
		c.Nodes[n.Name] = n
		e.UpsertNode(n)
		return "readdress node " + n.Name
	case 8: // policy add
		k := g.policyKey()
		p := g.policy(k)
		c.Policies[k] = p
		e.UpsertPolicy(p)
		return "add policy " + k.String()
	}
	p := g.pod(c)
	c.Pods[p.Key()] = p
	e.UpsertPod(p)
	return "add pod " + p.Key().String()
}

// externalAddrs are addresses no pod has, some inside the ipBlocks above.
var externalAddrs = []netip.Addr{
	netip.MustParseAddr("203.0.113.5"),
	netip.MustParseAddr("203.0.113.200"),
	netip.MustParseAddr("10.0.1.5"),
	netip.MustParseAddr("10.0.9.9"),
	netip.MustParseAddr("2001:db8::1"),
	netip.MustParseAddr("fd00::2:2"),
}

// endpoints lists every end worth probing: each pod in each of its
// families (host-network ones included), node addresses and external
// addresses. Node and external addresses resolve through the engine, as a
// packet's address would.
func endpoints(c *model.Cluster, e *engine.Engine) []engine.Endpoint {
	var out []engine.Endpoint
	for _, p := range c.SortedPods() {
		for _, ip := range p.IPs {
			out = append(out, engine.Endpoint{Pod: p, IP: ip})
		}
	}
	for _, n := range sortedNodes(c) {
		for _, ip := range n.IPs {
			out = append(out, e.EndpointFor(ip))
		}
	}
	for _, ip := range externalAddrs {
		out = append(out, e.EndpointFor(ip))
	}
	return out
}

// probePorts are the protocol and port combinations probed.
var probePorts = func() []struct {
	proto model.Protocol
	port  uint16
} {
	var out []struct {
		proto model.Protocol
		port  uint16
	}
	for _, proto := range model.Protocols {
		for _, p := range append([]uint16{90}, genPortNums...) {
			out = append(out, struct {
				proto model.Protocol
				port  uint16
			}{proto, p})
		}
	}
	return out
}()
