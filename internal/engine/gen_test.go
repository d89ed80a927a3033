package engine_test

import (
	"net/netip"
	"slices"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
)

// The random cluster generator is fixture.Gen; this adds its edits and
// the ends and ports the differential test and the fuzzer probe.

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
func edit(g *fixture.Gen, c *model.Cluster, e *engine.Engine) string {
	if g.ClusterPolicies && g.Chance(30) {
		return editClusterPolicy(g, c, e)
	}
	pods := c.SortedPods()
	pols := sortedPolicyKeys(c)
	switch g.N(10) {
	case 0: // pod labels
		if len(pods) == 0 {
			break
		}
		p := *fixture.PickOne(g, pods)
		p.Labels = g.Labels()
		c.Pods[p.Key()] = &p
		e.UpsertPod(&p)
		return "relabel pod " + p.Key().String()
	case 1: // pod addresses, host network or ports
		if len(pods) == 0 {
			break
		}
		p := *fixture.PickOne(g, pods)
		if g.Chance(50) {
			g.SetAddrs(c, &p, slices.Index(fixture.GenNamespaces, p.Namespace))
		} else {
			p.Ports = nil
			for _, name := range fixture.GenPortNames {
				if g.Chance(50) {
					p.Ports = append(p.Ports, model.ContainerPort{Name: name, Port: fixture.PickOne(g, fixture.GenPortNums), Protocol: fixture.PickOne(g, fixture.GenProtos)})
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
		k := fixture.PickOne(g, pods).Key()
		delete(c.Pods, k)
		e.DeletePod(k)
		return "delete pod " + k.String()
	case 3: // namespace labels
		name := fixture.PickOne(g, fixture.GenNamespaces[:len(fixture.GenNamespaces)-1])
		ns := g.Namespace(name)
		c.Namespaces[name] = ns
		e.UpsertNamespace(ns)
		return "relabel namespace " + name
	case 4: // namespace delete
		name := fixture.PickOne(g, fixture.GenNamespaces)
		delete(c.Namespaces, name)
		e.DeleteNamespace(name)
		return "delete namespace " + name
	case 5: // policy replace
		if len(pols) == 0 {
			break
		}
		k := fixture.PickOne(g, pols)
		p := g.Policy(k)
		c.Policies[k] = p
		e.UpsertPolicy(p)
		return "replace policy " + k.String()
	case 6: // policy delete
		if len(pols) == 0 {
			break
		}
		k := fixture.PickOne(g, pols)
		delete(c.Policies, k)
		e.DeletePolicy(k)
		return "delete policy " + k.String()
	case 7: // node addresses
		n := g.Node(g.N(2))
		c.Nodes[n.Name] = n
		e.UpsertNode(n)
		return "readdress node " + n.Name
	case 8: // policy add
		k := g.PolicyKey()
		p := g.Policy(k)
		c.Policies[k] = p
		e.UpsertPolicy(p)
		return "add policy " + k.String()
	}
	p := g.Pod(c)
	c.Pods[p.Key()] = p
	e.UpsertPod(p)
	return "add pod " + p.Key().String()
}

// editClusterPolicy adds, replaces or deletes a cluster-wide policy, or
// relabels a node (which nodes peers select on).
func editClusterPolicy(g *fixture.Gen, c *model.Cluster, e *engine.Engine) string {
	keys := make([]model.ClusterKey, 0, len(c.ClusterPolicies))
	for _, p := range c.SortedClusterPolicies() {
		keys = append(keys, p.Key())
	}
	switch g.N(4) {
	case 0:
		if len(keys) > 0 {
			k := fixture.PickOne(g, keys)
			delete(c.ClusterPolicies, k)
			e.DeleteClusterPolicy(k)
			return "delete " + k.String()
		}
	case 1:
		if len(keys) > 0 {
			k := fixture.PickOne(g, keys)
			p := g.ClusterPolicy()
			p.Kind, p.Name = k.Kind, k.Name
			if p.Kind == model.KindBaselineAdminNetworkPolicy {
				p.Tier, p.Priority = model.BaselineTier, model.BaselinePriority
			}
			c.ClusterPolicies[k] = p
			e.UpsertClusterPolicy(p)
			return "replace " + k.String()
		}
	case 2:
		n := g.Node(g.N(2))
		c.Nodes[n.Name] = n
		e.UpsertNode(n)
		return "relabel node " + n.Name
	}
	p := g.ClusterPolicy()
	c.ClusterPolicies[p.Key()] = p
	e.UpsertClusterPolicy(p)
	return "add " + p.Key().String()
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
	for _, n := range fixture.SortedNodes(c) {
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
		for _, p := range append([]uint16{90}, fixture.GenPortNums...) {
			out = append(out, struct {
				proto model.Protocol
				port  uint16
			}{proto, p})
		}
	}
	return out
}()
