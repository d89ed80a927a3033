// Package engine compiles cluster state into the policy IR and answers
// connectivity questions from it. The IR is, for every policy, the pods it
// selects and its rules with resolved peers (pods through shared selectors,
// CIDR sets with exceptions subtracted) and ports; every rule keeps its
// policy and index. check, explain, matrix and the nftables dataplane all
// read this one IR, so they share one semantics.
//
// Updates are incremental: selectors are shared between policies and keep
// their matching pods, so a pod's labels changing re-evaluates each selector
// for that one pod, and a policy changing compiles only that policy.
//
// The package imports only model: it knows nothing of Kubernetes clients,
// netlink or output formats. An Engine is not safe for concurrent use.
package engine

import (
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/palisade-net/palisade/internal/model"
	"go4.org/netipx"
)

// Engine holds the cluster state and the compiled policies.
type Engine struct {
	namespaces map[string]*model.Namespace
	pods       map[model.Key]*model.Pod
	podsByNS   map[string]map[model.Key]*model.Pod
	// podsByNode indexes pods by their node, for PodsOnNode: the
	// dataplane asks on every sync, and scanning every pod of a large
	// cluster for one node's was the engine's largest cost per update.
	podsByNode map[string]map[model.Key]*model.Pod
	byIP       map[netip.Addr]model.Key
	nodes      map[string]*model.Node
	nodeIPs    map[netip.Addr]string

	policies  map[model.Key]*Policy
	selectors map[string]*selector
	// nsScoped indexes selectors bound to one namespace; global ones carry
	// a namespace selector and are re-evaluated when namespace labels change.
	nsScoped map[string]map[*selector]struct{}
	global   map[*selector]struct{}
	// globalFor caches, by namespace, the global selectors that pick
	// it: a pod can be a member of no other global selector, so
	// UpsertPod reselects only these. A namespace's entry goes when its
	// labels change or its last pod goes, all when a global selector
	// comes or goes.
	globalFor map[string][]*selector
	// targets are the target selectors that hold each pod.
	targets map[model.Key]map[*selector]struct{}

	// namedByAddr holds the policies with an egress rule that has named
	// ports and no peers or an ipBlock peer: its named ports resolve on
	// pods chosen by address, not by selector, so a pod coming, going or
	// changing its addresses or ports there may change them. The value is
	// the union of those rules' blocks, nil when a rule has no peers
	// (every pod counts).
	namedByAddr map[model.Key]*netipx.IPSet

	// isolation caches Isolating by pod. A pod's entry depends only on
	// the selectors that hold it and the policies that use them as
	// target: it goes when the pod's selections change (UpsertPod,
	// DeletePod, reselect) or a policy targeting it comes or goes, so
	// that a policy update does not make the dataplane recompute every
	// local pod's.
	isolation map[model.Key]*[2][]*Policy
	dirty     Changes
	// dirtySels are the selectors whose members changed since the last
	// TakeChanges: their users go into Changes.Policies there, once,
	// rather than on every pod (a selector may have hundreds of users).
	dirtySels map[*selector]struct{}

	scratch []model.Key // acquire's, reused

	// clusterPolicies are the cluster-wide policies; clusterOrder holds
	// them in evaluation order (cluster.go).
	clusterPolicies map[model.ClusterKey]*model.ClusterPolicy
	clusterOrder    []*model.ClusterPolicy
}

// Changes names what moved since the last TakeChanges: policies whose
// compiled form or resolved members changed, and pods that were added,
// removed or changed. The dataplane uses it to touch only what changed.
type Changes struct {
	Policies map[model.Key]struct{}
	Pods     map[model.Key]struct{}
	// Namespaces changed labels; Nodes changed addresses.
	Namespaces map[string]struct{}
	Nodes      map[string]struct{}
	// ClusterPolicies: a cluster-wide policy came, changed or went.
	ClusterPolicies bool
}

func newChanges() Changes {
	return Changes{
		Policies:   map[model.Key]struct{}{},
		Pods:       map[model.Key]struct{}{},
		Namespaces: map[string]struct{}{},
		Nodes:      map[string]struct{}{},
	}
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return len(c.Policies) == 0 && len(c.Pods) == 0 && len(c.Namespaces) == 0 && len(c.Nodes) == 0 && !c.ClusterPolicies
}

// New returns an empty engine.
func New() *Engine {
	return &Engine{
		namespaces:  map[string]*model.Namespace{},
		pods:        map[model.Key]*model.Pod{},
		podsByNS:    map[string]map[model.Key]*model.Pod{},
		podsByNode:  map[string]map[model.Key]*model.Pod{},
		byIP:        map[netip.Addr]model.Key{},
		nodes:       map[string]*model.Node{},
		nodeIPs:     map[netip.Addr]string{},
		policies:    map[model.Key]*Policy{},
		selectors:   map[string]*selector{},
		nsScoped:    map[string]map[*selector]struct{}{},
		global:      map[*selector]struct{}{},
		globalFor:   map[string][]*selector{},
		targets:     map[model.Key]map[*selector]struct{}{},
		namedByAddr: map[model.Key]*netipx.IPSet{},
		dirty:       newChanges(),
		dirtySels:   map[*selector]struct{}{},
	}
}

// FromCluster builds an engine holding all of c.
func FromCluster(c *model.Cluster) *Engine {
	e := New()
	for _, ns := range c.Namespaces {
		e.UpsertNamespace(ns)
	}
	for _, n := range c.Nodes {
		e.UpsertNode(n)
	}
	for _, p := range c.Pods {
		e.UpsertPod(p)
	}
	for _, p := range c.Policies {
		e.UpsertPolicy(p)
	}
	for _, p := range c.ClusterPolicies {
		e.UpsertClusterPolicy(p)
	}
	e.TakeChanges()
	return e
}

// TakeChanges returns what changed since the last call and starts afresh.
func (e *Engine) TakeChanges() Changes {
	// A selector's current users: a policy that stopped using it since is
	// in Changes anyway (UpsertPolicy, DeletePolicy).
	for sel := range e.dirtySels {
		for pk := range sel.users {
			e.dirty.Policies[pk] = struct{}{}
		}
	}
	clear(e.dirtySels)
	c := e.dirty
	e.dirty = newChanges()
	return c
}

// nsLabels returns a namespace's labels; a namespace nobody declared still
// carries its name label, as the API server guarantees.
func (e *Engine) nsLabels(name string) map[string]string {
	if ns := e.namespaces[name]; ns != nil {
		return ns.Labels
	}
	return map[string]string{model.NamespaceNameLabel: name}
}

// UpsertNamespace adds or replaces a namespace.
func (e *Engine) UpsertNamespace(ns *model.Namespace) {
	e.namespaces[ns.Name] = ns
	e.dirty.Namespaces[ns.Name] = struct{}{}
	e.reselectNamespace(ns.Name)
}

// DeleteNamespace removes a namespace's labels; its pods, if any remain,
// keep only the name label.
func (e *Engine) DeleteNamespace(name string) {
	delete(e.namespaces, name)
	e.dirty.Namespaces[name] = struct{}{}
	e.reselectNamespace(name)
}

func (e *Engine) reselectNamespace(name string) {
	delete(e.globalFor, name)
	for s := range e.global {
		delete(s.nsOK, name)
	}
	for k, p := range e.podsByNS[name] {
		in := e.targets[k]
		for s := range e.global {
			e.reselect(s, p, k, in, false)
		}
	}
}

// UpsertNode adds or replaces a node.
func (e *Engine) UpsertNode(n *model.Node) {
	e.DeleteNode(n.Name)
	e.nodes[n.Name] = n
	for _, ip := range n.IPs {
		e.nodeIPs[ip] = n.Name
	}
	e.dirty.Nodes[n.Name] = struct{}{}
}

// DeleteNode removes a node.
func (e *Engine) DeleteNode(name string) {
	if old := e.nodes[name]; old != nil {
		for _, ip := range old.IPs {
			if e.nodeIPs[ip] == name {
				delete(e.nodeIPs, ip)
			}
		}
		delete(e.nodes, name)
		e.dirty.Nodes[name] = struct{}{}
	}
}

// UpsertPod adds or replaces a pod and re-evaluates every selector for it.
func (e *Engine) UpsertPod(p *model.Pod) {
	k := p.Key()
	old := e.pods[k]
	if old != nil {
		e.unindexIPs(old)
		e.unindexNode(old)
	}
	changed := old == nil || memberChanged(old, p)
	e.pods[k] = p
	byNS := e.podsByNS[p.Namespace]
	if byNS == nil {
		byNS = map[model.Key]*model.Pod{}
		e.podsByNS[p.Namespace] = byNS
	}
	byNS[k] = p
	byNode := e.podsByNode[p.Node]
	if byNode == nil {
		byNode = map[model.Key]*model.Pod{}
		e.podsByNode[p.Node] = byNode
	}
	byNode[k] = p
	if !p.HostNetwork {
		for _, ip := range p.IPs {
			e.byIP[ip] = k
		}
	}
	e.dirty.Pods[k] = struct{}{}
	delete(e.isolation, k)
	if changed {
		e.dirtyNamedByAddr(old, p)
	}
	in := e.targets[k] // nil for a new pod: it is in no selector
	for s := range e.nsScoped[p.Namespace] {
		e.reselect(s, p, k, in, changed)
	}
	for _, s := range e.globalsFor(p.Namespace) {
		e.reselect(s, p, k, in, changed)
	}
}

// globalsFor returns the global selectors that pick namespace ns.
func (e *Engine) globalsFor(ns string) []*selector {
	if l, ok := e.globalFor[ns]; ok {
		return l
	}
	l := []*selector{}
	for s := range e.global {
		if e.nsMatches(s, ns) {
			l = append(l, s)
		}
	}
	e.globalFor[ns] = l
	return l
}

// memberChanged reports whether a pod changed in what policies resolve
// from their member pods: addresses, named ports, node, host network.
func memberChanged(old, p *model.Pod) bool {
	return old.HostNetwork != p.HostNetwork || old.Node != p.Node ||
		!slices.Equal(old.IPs, p.IPs) || !slices.Equal(old.Ports, p.Ports)
}

// DeletePod removes a pod from the state and from every selector.
func (e *Engine) DeletePod(k model.Key) {
	p := e.pods[k]
	if p == nil {
		return
	}
	e.unindexIPs(p)
	e.unindexNode(p)
	delete(e.pods, k)
	delete(e.podsByNS[k.Namespace], k)
	if len(e.podsByNS[k.Namespace]) == 0 {
		delete(e.podsByNS, k.Namespace)
		delete(e.globalFor, k.Namespace)
		for s := range e.global {
			delete(s.nsOK, k.Namespace)
		}
	}
	e.dirty.Pods[k] = struct{}{}
	delete(e.isolation, k)
	e.dirtyNamedByAddr(p, nil)
	for s := range e.nsScoped[k.Namespace] {
		e.drop(s, k)
	}
	for s := range e.global {
		e.drop(s, k)
	}
}

func (e *Engine) unindexNode(p *model.Pod) {
	delete(e.podsByNode[p.Node], p.Key())
	if len(e.podsByNode[p.Node]) == 0 {
		delete(e.podsByNode, p.Node)
	}
}

func (e *Engine) unindexIPs(p *model.Pod) {
	for _, ip := range p.IPs {
		if e.byIP[ip] == p.Key() {
			delete(e.byIP, ip)
		}
	}
}

// UpsertPolicy compiles p, replacing any policy of the same name.
func (e *Engine) UpsertPolicy(p *model.Policy) {
	k := p.Key()
	// Compiled before the old version is released, so that selectors
	// both use stay (their users counted twice for a moment) instead of
	// being dropped and built again, a scan of the cluster's pods each.
	pol := e.compile(p)
	if old := e.policies[k]; old != nil {
		e.forgetIsolation(old.target)
		e.release(old)
	}
	e.policies[k] = pol
	e.forgetIsolation(pol.target)
	delete(e.namedByAddr, k)
	var blocks netipx.IPSetBuilder
	named, anyPod := false, false
	for _, r := range pol.Rules[model.Egress] {
		if len(r.Named) > 0 && (r.AllPeers || r.Blocks != nil) {
			named = true
			anyPod = anyPod || r.AllPeers
			if r.Blocks != nil {
				blocks.AddSet(r.Blocks)
			}
		}
	}
	if named {
		e.namedByAddr[k] = nil
		if !anyPod {
			e.namedByAddr[k], _ = blocks.IPSet()
		}
	}
	e.dirty.Policies[k] = struct{}{}
}

// forgetIsolation drops the cached isolation of the pods s holds: a
// policy with s as its target came or went.
func (e *Engine) forgetIsolation(s *selector) {
	if len(e.isolation) < len(s.members) {
		for k := range e.isolation {
			if _, ok := s.members[k]; ok {
				delete(e.isolation, k)
			}
		}
		return
	}
	for k := range s.members {
		delete(e.isolation, k)
	}
}

// dirtyNamedByAddr marks the policies whose named ports resolve on pods
// chosen by address, when a pod comes, goes or changes (old and p, either
// may be nil): those with no peers always, those with blocks when one of
// the pod's addresses, before or after, is inside them.
func (e *Engine) dirtyNamedByAddr(old, p *model.Pod) {
	for k, blocks := range e.namedByAddr {
		if blocks == nil || inBlocks(blocks, old) || inBlocks(blocks, p) {
			e.dirty.Policies[k] = struct{}{}
		}
	}
}

func inBlocks(blocks *netipx.IPSet, p *model.Pod) bool {
	return p != nil && slices.ContainsFunc(p.IPs, blocks.Contains)
}

// DeletePolicy removes a policy.
func (e *Engine) DeletePolicy(k model.Key) {
	if old := e.policies[k]; old != nil {
		e.forgetIsolation(old.target)
		e.release(old)
		delete(e.policies, k)
		delete(e.namedByAddr, k)
		e.dirty.Policies[k] = struct{}{}
	}
}

// Pod returns the pod named k, or nil.
func (e *Engine) Pod(k model.Key) *model.Pod { return e.pods[k] }

// PodByIP returns the (non host-network) pod that owns ip, or nil.
func (e *Engine) PodByIP(ip netip.Addr) *model.Pod {
	if k, ok := e.byIP[ip]; ok {
		return e.pods[k]
	}
	return nil
}

// NodeOf returns the node that owns ip, or "".
func (e *Engine) NodeOf(ip netip.Addr) string { return e.nodeIPs[ip] }

// Node returns the node called name, or nil.
func (e *Engine) Node(name string) *model.Node { return e.nodes[name] }

// Nodes returns every node, sorted by name: nodes peers of cluster-wide
// policies select among all of them, pods or not.
func (e *Engine) Nodes() []*model.Node {
	out := make([]*model.Node, 0, len(e.nodes))
	for _, n := range e.nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *model.Node) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Pods returns every pod, sorted by key.
func (e *Engine) Pods() []*model.Pod {
	out := make([]*model.Pod, 0, len(e.pods))
	for _, p := range e.pods {
		out = append(out, p)
	}
	sortPods(out)
	return out
}

// Policy returns the compiled policy named k, or nil.
func (e *Engine) Policy(k model.Key) *Policy { return e.policies[k] }

// Policies returns every compiled policy, sorted by key.
func (e *Engine) Policies() []*Policy {
	out := make([]*Policy, 0, len(e.policies))
	for _, p := range e.policies {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.Less(out[j].Key) })
	return out
}

// Isolating returns the policies that isolate pod k for dir, sorted by key.
// None means the pod is not isolated in that direction: everything is
// allowed. Host-network pods are never isolated.
func (e *Engine) Isolating(k model.Key, dir model.Direction) []*Policy {
	if e.isolation == nil {
		e.isolation = map[model.Key]*[2][]*Policy{}
	}
	if iso, ok := e.isolation[k]; ok {
		return iso[dir]
	}
	iso := new([2][]*Policy)
	for s := range e.targets[k] {
		for pk := range s.users {
			pol := e.policies[pk]
			if pol == nil || pol.target != s {
				continue // the selector serves this policy only as a peer
			}
			for _, d := range [...]model.Direction{model.Ingress, model.Egress} {
				if pol.Spec.Affects(d) {
					iso[d] = append(iso[d], pol)
				}
			}
		}
	}
	for d := range iso {
		sort.Slice(iso[d], func(i, j int) bool { return iso[d][i].Key.Less(iso[d][j].Key) })
	}
	e.isolation[k] = iso
	return iso[dir]
}

// Selected returns the pods a policy selects, sorted.
func (e *Engine) Selected(p *Policy) []*model.Pod { return e.members(p.target) }

func (e *Engine) members(s *selector) []*model.Pod {
	out := make([]*model.Pod, 0, len(s.members))
	for k := range s.members {
		out = append(out, e.pods[k])
	}
	sortPods(out)
	return out
}

func sortPods(ps []*model.Pod) {
	sort.Slice(ps, func(i, j int) bool { return ps[i].Key().Less(ps[j].Key()) })
}

// PeerPods returns the pods a rule's selector peers resolve to, sorted.
// AllPeers rules return nil: they are not limited to pods.
func (e *Engine) PeerPods(r *Rule) []*model.Pod {
	seen := map[model.Key]struct{}{}
	var out []*model.Pod
	for _, s := range r.peerSels {
		for k := range s.members {
			if _, dup := seen[k]; !dup {
				seen[k] = struct{}{}
				out = append(out, e.pods[k])
			}
		}
	}
	sortPods(out)
	return out
}

// PeerIPs returns the addresses a rule's peers cover: the IPs of the pods
// its selectors resolve to, and its ipBlocks minus their exceptions.
// AllPeers rules cover everything and return nil.
func (e *Engine) PeerIPs(r *Rule) *netipx.IPSet {
	if r.AllPeers {
		return nil
	}
	var b netipx.IPSetBuilder
	if r.Blocks != nil {
		b.AddSet(r.Blocks)
	}
	for _, s := range r.peerSels {
		for k := range s.members {
			for _, ip := range e.pods[k].IPs {
				b.Add(ip)
			}
		}
	}
	set, _ := b.IPSet() // the builder only errors on invalid input, which never gets here
	return set
}
