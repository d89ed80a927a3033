package engine

import (
	"slices"
	"sort"
	"strings"

	"github.com/palisade-net/palisade/internal/model"
	"go4.org/netipx"
)

// RuleRef names one rule of one policy: the provenance of every allow.
type RuleRef struct {
	Policy    model.Key
	Direction model.Direction
	Index     int
}

// PortRange is an inclusive range of ports of one protocol. First 0 means
// every port of the protocol.
type PortRange struct {
	Protocol    model.Protocol
	First, Last uint16
}

// NamedPort is a port given by container port name, resolved on the pod
// that receives the traffic.
type NamedPort struct {
	Protocol model.Protocol
	Name     string
}

// Policy is a compiled NetworkPolicy.
type Policy struct {
	Key    model.Key
	Spec   *model.Policy
	target *selector
	// Rules holds the compiled rules, indexed by direction.
	Rules [2][]*Rule
}

// Target identifies and describes the pods the policy selects (its
// shared target selector), as PeerID does for peers: policies with the
// same Target.Key select the same pods at every moment.
func (p *Policy) Target() PeerID { return p.target.id() }

// Rule is a compiled ingress or egress rule.
type Rule struct {
	Ref RuleRef
	// AllPeers: the rule has no from/to, so every source or destination,
	// in the cluster or not, matches.
	AllPeers bool
	peerSels []*selector
	// Blocks is the union of the rule's ipBlocks, exceptions subtracted
	// from their own block only; nil when it has none.
	Blocks *netipx.IPSet
	// AllPorts: the rule has no ports, so every port and protocol matches.
	AllPorts bool
	Ports    []PortRange
	Named    []NamedPort
	spec     *model.Rule
	// peers identify and describe the rule's distinct peers, sorted by
	// key; peerKey joins their keys (see PeerKey).
	peers   []PeerID
	peerKey string
}

// PeerID is one distinct peer of a rule: a shared selector, or an ipBlock
// as written (exceptions sorted).
type PeerID struct {
	Key string
	// Short is a compact name ("prod.app=db", "all-ns.app=db",
	// "cidr-10.0.0.0/8"); Desc says it in words ("pods app=db in prod").
	Short, Desc string
}

// Spec returns the rule as written.
func (r *Rule) Spec() *model.Rule { return r.spec }

// PeerKey identifies the addresses a rule's peers cover: rules with the
// same key, in any policy, cover the same addresses at every moment
// (their selectors are the same shared selectors, their ipBlocks the same
// text), so the dataplane can give them one set. Empty for AllPeers.
func (r *Rule) PeerKey() string { return r.peerKey }

// PeerIDs returns the rule's distinct peers in PeerKey's order.
func (r *Rule) PeerIDs() []PeerID { return r.peers }

// id names and describes the pods a selector picks.
func (s *selector) id() PeerID {
	if s.pid == nil {
		id := s.makeID()
		s.pid = &id
	}
	return *s.pid
}

func (s *selector) makeID() PeerID {
	pods, short := "all pods", "all"
	if s.podSel != nil && s.podSel.String() != "<all>" {
		pods, short = "pods "+s.podSel.String(), s.podSel.String()
	}
	id := PeerID{Key: s.key}
	switch {
	case s.nsSel == nil:
		id.Short, id.Desc = s.ns+"."+short, pods+" in "+s.ns
	case s.nsSel.String() == "<all>":
		id.Short, id.Desc = "all-ns."+short, pods+" in all namespaces"
	case len(s.nsSel.Exprs) == 0 && len(s.nsSel.MatchLabels) == 1 && s.nsSel.MatchLabels[model.NamespaceNameLabel] != "":
		ns := s.nsSel.MatchLabels[model.NamespaceNameLabel]
		id.Short, id.Desc = ns+"."+short, pods+" in "+ns
	default:
		id.Short, id.Desc = "ns:"+s.nsSel.String()+"."+short, pods+" in namespaces "+s.nsSel.String()
	}
	return id
}

func blockText(b *model.IPBlock) string {
	ex := make([]string, len(b.Except))
	for i, p := range b.Except {
		ex[i] = p.String()
	}
	sort.Strings(ex)
	if len(ex) == 0 {
		return b.CIDR.String()
	}
	return b.CIDR.String() + " except " + strings.Join(ex, ", ")
}

// selector is a pod selection shared by every policy that uses the same
// one: a fixed namespace or a namespace selector, and an optional pod
// selector. It keeps its matching pods up to date.
type selector struct {
	key     string
	ns      string          // fixed namespace, when nsSel is nil
	nsSel   *model.Selector // nil: only pods of ns
	podSel  *model.Selector // nil: every pod of the namespaces
	members map[model.Key]struct{}
	users   map[model.Key]int // policy -> number of uses
	// nsOK caches, for a selector with nsSel, whether nsSel picks each
	// namespace that has pods: every pod would otherwise match the
	// namespace's labels again. A namespace's entry goes when its labels
	// change (reselectNamespace) or its last pod does (DeletePod).
	nsOK map[string]bool
	pid  *PeerID // id(), made on first use
}

func (e *Engine) matches(s *selector, p *model.Pod) bool {
	if p.HostNetwork {
		// A host-network pod's traffic is the node's: no selector can
		// pick it out, so it is neither isolated nor a pod peer.
		return false
	}
	if s.nsSel == nil {
		if p.Namespace != s.ns {
			return false
		}
	} else if !e.nsMatches(s, p.Namespace) {
		return false
	}
	return s.podSel == nil || s.podSel.Matches(p.Labels)
}

// nsMatches reports whether s's namespace selector picks namespace ns.
func (e *Engine) nsMatches(s *selector, ns string) bool {
	ok, known := s.nsOK[ns]
	if !known {
		ok = s.nsSel.Matches(e.nsLabels(ns))
		s.nsOK[ns] = ok
	}
	return ok
}

// reselect re-evaluates s for pod p and marks s's users dirty when the
// membership changed, or when p stays a member and changed in what the IR
// resolves from it (memberChanged: addresses, ports, node). A label
// change that leaves the membership as it was changes no policy.
//
// in is the set of selectors that held p before the caller's first
// reselect of it (e.targets[k], read once): a lookup in a large
// selector's members misses the CPU's caches, one in the pod's few
// selectors does not. The caller visits each selector once, so in
// stays right for the selectors it has not visited yet.
func (e *Engine) reselect(s *selector, p *model.Pod, k model.Key, in map[*selector]struct{}, memberChanged bool) {
	_, was := in[s]
	now := e.matches(s, p)
	switch {
	case now && !was:
		s.members[k] = struct{}{}
		e.addTarget(s, k)
		delete(e.isolation, k)
	case was && !now:
		delete(s.members, k)
		e.dropTarget(s, k)
		delete(e.isolation, k)
	}
	if was != now || now && memberChanged {
		e.dirtySels[s] = struct{}{}
	}
}

func (e *Engine) drop(s *selector, k model.Key) {
	if _, ok := s.members[k]; ok {
		delete(s.members, k)
		e.dropTarget(s, k)
		delete(e.isolation, k)
		e.dirtySels[s] = struct{}{}
	}
}

// targets are tracked for every selector, target or peer; Isolating
// filters for the policies that use the selector as their target.
func (e *Engine) addTarget(s *selector, k model.Key) {
	t := e.targets[k]
	if t == nil {
		t = map[*selector]struct{}{}
		e.targets[k] = t
	}
	t[s] = struct{}{}
}

func (e *Engine) dropTarget(s *selector, k model.Key) {
	if t := e.targets[k]; t != nil {
		delete(t, s)
		if len(t) == 0 {
			delete(e.targets, k)
		}
	}
}

// acquire returns the shared selector for (ns, nsSel, podSel), creating
// and populating it on first use, and counts policy pk as a user.
func (e *Engine) acquire(pk model.Key, ns string, nsSel, podSel *model.Selector) *selector {
	key := "ns=" + ns
	if nsSel != nil {
		key = "nssel=" + nsSel.String()
	}
	if podSel != nil {
		key += "|pod=" + podSel.String()
	}
	s := e.selectors[key]
	if s == nil {
		s = &selector{key: key, nsSel: nsSel, podSel: podSel, users: map[model.Key]int{}}
		// The members are gathered first, so that their map is made at
		// its size instead of growing (and rehashing) as they come.
		found := e.scratch[:0]
		if nsSel == nil {
			s.ns = ns
			idx := e.nsScoped[ns]
			if idx == nil {
				idx = map[*selector]struct{}{}
				e.nsScoped[ns] = idx
			}
			idx[s] = struct{}{}
			for k, p := range e.podsByNS[ns] {
				if e.matches(s, p) {
					found = append(found, k)
				}
			}
		} else {
			s.nsOK = map[string]bool{}
			e.global[s] = struct{}{}
			clear(e.globalFor)
			for ns, pods := range e.podsByNS {
				if !e.nsMatches(s, ns) {
					continue // one test for the namespace's pods
				}
				for k, p := range pods {
					if e.matches(s, p) {
						found = append(found, k)
					}
				}
			}
		}
		s.members = make(map[model.Key]struct{}, len(found))
		for _, k := range found {
			s.members[k] = struct{}{}
			e.addTarget(s, k)
		}
		clear(found) // no strings kept alive
		e.scratch = found[:0]
		e.selectors[key] = s
	}
	s.users[pk]++
	return s
}

func (e *Engine) unacquire(pk model.Key, s *selector) {
	s.users[pk]--
	if s.users[pk] > 0 {
		return
	}
	delete(s.users, pk)
	if len(s.users) > 0 {
		return
	}
	for k := range s.members {
		e.dropTarget(s, k)
	}
	delete(e.selectors, s.key)
	if s.nsSel == nil {
		delete(e.nsScoped[s.ns], s)
		if len(e.nsScoped[s.ns]) == 0 {
			delete(e.nsScoped, s.ns)
		}
	} else {
		delete(e.global, s)
		clear(e.globalFor)
	}
}

func (e *Engine) release(p *Policy) {
	e.unacquire(p.Key, p.target)
	for _, rules := range p.Rules {
		for _, r := range rules {
			for _, s := range r.peerSels {
				e.unacquire(p.Key, s)
			}
		}
	}
}

func (e *Engine) compile(spec *model.Policy) *Policy {
	pk := spec.Key()
	podSel := spec.PodSelector
	p := &Policy{Key: pk, Spec: spec}
	p.target = e.acquire(pk, spec.Namespace, nil, &podSel)
	for _, dir := range [...]model.Direction{model.Ingress, model.Egress} {
		if !spec.Affects(dir) {
			// Rules of a direction the policy does not affect are ignored,
			// as the API says.
			continue
		}
		specRules := spec.Rules(dir)
		for i := range specRules {
			p.Rules[dir] = append(p.Rules[dir], e.compileRule(pk, RuleRef{pk, dir, i}, &specRules[i]))
		}
	}
	return p
}

func (e *Engine) compileRule(pk model.Key, ref RuleRef, spec *model.Rule) *Rule {
	r := &Rule{Ref: ref, spec: spec, AllPeers: len(spec.Peers) == 0, AllPorts: len(spec.Ports) == 0}
	var blocks netipx.IPSetBuilder
	hasBlocks := false
	for _, peer := range spec.Peers {
		if peer.IPBlock != nil {
			var b netipx.IPSetBuilder
			b.AddPrefix(peer.IPBlock.CIDR)
			for _, ex := range peer.IPBlock.Except {
				b.RemovePrefix(ex)
			}
			one, _ := b.IPSet()
			blocks.AddSet(one)
			hasBlocks = true
			t := blockText(peer.IPBlock)
			r.peers = append(r.peers, PeerID{"cidr=" + t, "cidr-" + peer.IPBlock.CIDR.String(), t})
			continue
		}
		s := e.acquire(pk, ref.Policy.Namespace, peer.NamespaceSelector, peer.PodSelector)
		r.peerSels = append(r.peerSels, s)
		r.peers = append(r.peers, s.id())
	}
	sort.Slice(r.peers, func(i, j int) bool { return r.peers[i].Key < r.peers[j].Key })
	r.peers = slices.CompactFunc(r.peers, func(a, b PeerID) bool { return a.Key == b.Key })
	keys := make([]string, len(r.peers))
	for i, p := range r.peers {
		keys[i] = p.Key
	}
	r.peerKey = strings.Join(keys, " ; ")
	if hasBlocks {
		r.Blocks, _ = blocks.IPSet()
	}
	for _, port := range spec.Ports {
		switch {
		case port.Name != "":
			r.Named = append(r.Named, NamedPort{port.Protocol, port.Name})
		case port.Port == 0:
			r.Ports = append(r.Ports, PortRange{Protocol: port.Protocol})
		case port.EndPort != 0:
			r.Ports = append(r.Ports, PortRange{port.Protocol, port.Port, port.EndPort})
		default:
			r.Ports = append(r.Ports, PortRange{port.Protocol, port.Port, port.Port})
		}
	}
	return r
}
