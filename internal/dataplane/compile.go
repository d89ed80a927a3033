package dataplane

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"go4.org/netipx"
)

// Options tune the compiled ruleset.
type Options struct {
	// LogDrops adds, before each pod-group chain's final drop, an NFLOG
	// rule (`log group LogGroup prefix "palisade-drop CHAIN"`) behind a
	// kernel rate limit of LogRate packets per second (default 10).
	LogDrops bool
	LogGroup uint16
	LogRate  uint32

	// AllowUnknown turns the unknown-pod guard off. By default (false),
	// traffic from or to an address inside the node's pod CIDRs that no
	// pod the engine knows has (a pod of this node, normally) is
	// dropped: between the CNI giving a new pod its address and the
	// agent learning of the pod, its traffic would otherwise pass
	// unfiltered, even when a default-deny policy selects it.
	AllowUnknown bool
	// PodCIDRs, when set, are the node's pod CIDRs for the guard in place
	// of the node's (model.Node.PodCIDRs): for CNIs whose IPAM does not
	// follow spec.podCIDR. With neither, a family has no guard.
	PodCIDRs []netip.Prefix
}

// GuardCIDRs returns the pod CIDRs the unknown-pod guard covers for node
// in e, merged, by family (index 0 IPv4, 1 IPv6): opts.PodCIDRs if set,
// else the node's; none when opts.AllowUnknown.
func GuardCIDRs(e *engine.Engine, node string, opts Options) [2][]netip.Prefix {
	var out [2][]netip.Prefix
	if opts.AllowUnknown {
		return out
	}
	cidrs := opts.PodCIDRs
	if len(cidrs) == 0 {
		if n := e.Node(node); n != nil {
			cidrs = n.PodCIDRs
		}
	}
	var b netipx.IPSetBuilder
	for _, p := range cidrs {
		b.AddPrefix(p.Masked())
	}
	set, _ := b.IPSet()
	for _, p := range set.Prefixes() {
		fi := famIndex(p.Addr())
		out[fi] = append(out[fi], p)
	}
	return out
}

var (
	directions = [...]model.Direction{model.Ingress, model.Egress}
	families   = [...]Family{IPv4, IPv6}
)

// Compile turns the engine's IR into the ruleset for node: base chains
// dispatching new connections through verdict maps keyed by the node's
// pods, one chain per distinct set of isolating policies, direction and
// family, and sets of peer addresses and named ports shared by the rules
// that need the same elements; and, unless opts.AllowUnknown, a guard
// that drops what comes from or goes to an address of the node's pod
// CIDRs that no known pod has. It is pure and deterministic.
func Compile(e *engine.Engine, node string, opts Options) *Ruleset {
	c := &compiler{
		e:        e,
		node:     node,
		opts:     opts,
		sets:     map[string]*Set{},
		polRules: map[polDir][]Rule{},
		ranges:   map[string]*[2][]netipx.IPRange{},
		clRules:  map[clusterDir][]Rule{},
	}
	return c.compile()
}

type polDir struct {
	key model.Key
	dir model.Direction
}

// group is the local pods isolated, in one direction, by the same
// policies: they share one chain.
type group struct {
	dir  model.Direction
	key  string // the policy keys, joined
	pols []*engine.Policy
	pods []*model.Pod
	name string
}

type compiler struct {
	inc  *Compiler // nil: the full path, nothing cached
	e    *engine.Engine
	node string
	opts Options
	// fams are the families of the local pods' addresses. Pod-group chains
	// are only entered through maps keyed by those addresses, so rules and
	// sets of another family could never be reached: they are left out.
	fams []Family
	// sets are the policies' shared sets, by name (see shared).
	sets map[string]*Set
	// polRules are the policies' rules of this compile (full path; the
	// incremental one keeps them in used).
	polRules map[polDir][]Rule
	// rec collects the sets made for the policy being compiled, in
	// order, for the Compiler's cache.
	rec []*Set
	// ranges caches peer addresses by peer key (see peerRanges).
	ranges map[string]*[2][]netipx.IPRange
	// used are the cache entries of this compile (incremental path).
	used map[polDir]*polEntry
	// chains are the pod-group chains of this compile (incremental path).
	chains map[string]*keptChain
	// iso are the isolating policies of each local pod (incremental path).
	iso map[model.Key]*[2][]*engine.Policy
	// clRules are the cluster policies' rules by policy and direction
	// (see clusterRulesFor); clUsed their cache entries (incremental path).
	clRules map[clusterDir][]Rule
	clUsed  map[clusterDir]*polEntry
	// pods and nodeAddrs: every pod, and the known nodes' addresses, for
	// the cluster policies' peers; filled when first needed.
	pods      []*model.Pod
	nodeAddrs []netip.Addr
}

func (c *compiler) compile() *Ruleset {
	rs := &Ruleset{Table: TableName}

	// Group the local pods by the policies that isolate them.
	var groups [2]map[string]*group
	for _, dir := range directions {
		groups[dir] = map[string]*group{}
	}
	local := c.e.PodsOnNode(c.node)
	var has [2]bool
	for _, p := range local {
		for _, ip := range p.IPs {
			has[famIndex(ip.Unmap())] = true
		}
	}
	for fi, fam := range families {
		if has[fi] {
			c.fams = append(c.fams, fam)
		}
	}
	if c.inc != nil {
		c.inc.prepare(c)
	}
	for _, p := range local {
		for _, dir := range directions {
			pols := c.e.Isolating(p.Key(), dir)
			if c.iso != nil {
				iso := c.iso[p.Key()]
				if iso == nil {
					iso = new([2][]*engine.Policy)
					c.iso[p.Key()] = iso
				}
				iso[dir] = pols
			}
			if len(pols) == 0 {
				continue
			}
			key := groupKey(pols)
			g := groups[dir][key]
			if g == nil {
				g = &group{dir: dir, key: key, pols: pols}
				groups[dir][key] = g
			}
			g.pods = append(g.pods, p)
		}
	}

	// Maps and the per-pod sets, filled below.
	var dispatch, drops [2][2]*Set // [dir][family]
	var self [2]*Set
	for _, dir := range []model.Direction{model.Egress, model.Ingress} {
		for fi, fam := range families {
			dispatch[dir][fi] = &Set{Name: mapName(dir) + fam.suffix(), Kind: KindDispatch, Family: fam}
			rs.Sets = append(rs.Sets, dispatch[dir][fi])
		}
	}
	for _, dir := range []model.Direction{model.Egress, model.Ingress} {
		for fi, fam := range families {
			drops[dir][fi] = &Set{Name: dropsName(dir) + fam.suffix(), Kind: KindDrops, Family: fam}
			rs.Sets = append(rs.Sets, drops[dir][fi])
		}
	}
	for fi, fam := range families {
		self[fi] = &Set{Name: selfSet + fam.suffix(), Kind: KindSelf, Family: fam}
		rs.Sets = append(rs.Sets, self[fi])
	}

	// The unknown-pod guard, in the families with pod CIDRs: the CIDRs,
	// and the addresses in them that known pods have: this node's pods,
	// isolated or not, and any other node's, should the CIDRs hold some
	// (a CNI whose IPAM ignores spec.podCIDR, a --pod-cidr too wide).
	cidrs := GuardCIDRs(c.e, c.node, c.opts)
	var guarded [2]bool
	var known [2]*Set
	for fi, fam := range families {
		if guarded[fi] = len(cidrs[fi]) > 0; guarded[fi] {
			s := &Set{Name: localCIDRs + fam.suffix(), Kind: KindCIDRs, Family: fam, Comment: "pod CIDRs of this node"}
			for _, p := range cidrs[fi] {
				s.Elems = append(s.Elems, Elem{Addr: p.Addr(), End: lastAddr(p)})
			}
			rs.Sets = append(rs.Sets, s)
			known[fi] = &Set{Name: knownPods + fam.suffix(), Kind: KindPods, Family: fam, Comment: "addresses of the pod CIDRs that pods known to the agent have"}
		}
	}
	for fi := range families {
		if known[fi] != nil {
			rs.Sets = append(rs.Sets, known[fi])
		}
	}
	for _, ip := range c.e.PodIPsIn(append(cidrs[0], cidrs[1]...)) {
		s := known[famIndex(ip)]
		s.Elems = append(s.Elems, Elem{Addr: ip})
	}

	rs.Chains = append(rs.Chains, baseChains(guarded, c.opts)...)

	var chains []*Chain
	// entry is the chain (without family suffix) each local pod's
	// direction is dispatched to: its NetworkPolicy group's, or a cluster
	// stage's (clusterStages), or none.
	entry := [2]map[*model.Pod]string{{}, {}}
	taken := map[string]bool{}
	for _, dir := range directions {
		for _, g := range nameGroups(dir, groups[dir]) {
			taken[g.name] = true
			// One chain per address family of the group's pods: a packet
			// walks only its own family's rules (and those of either).
			var has [2]bool
			for _, p := range g.pods {
				for _, ip := range p.IPs {
					has[famIndex(ip.Unmap())] = true
				}
			}
			for _, pol := range g.pols {
				c.rulesFor(pol, dir) // compiled or taken from the cache once
			}
			for fi, fam := range families {
				if has[fi] {
					chains = append(chains, c.groupChain(g, fam))
				}
			}
			for _, p := range g.pods {
				entry[dir][p] = g.name
			}
		}
	}
	chains = append(chains, c.clusterStages(local, &entry, taken)...)
	inSelf := map[netip.Addr]bool{}
	for _, p := range local {
		for _, dir := range directions {
			name := entry[dir][p]
			if name == "" {
				continue
			}
			for _, ip := range p.IPs {
				ip = ip.Unmap()
				fi := famIndex(ip)
				dispatch[dir][fi].Elems = append(dispatch[dir][fi].Elems, Elem{Addr: ip, Jump: famChain(name, families[fi])})
				drops[dir][fi].Elems = append(drops[dir][fi].Elems, Elem{Addr: ip})
				if !inSelf[ip] {
					inSelf[ip] = true
					self[fi].Elems = append(self[fi].Elems, Elem{Addr: ip, Addr2: ip})
				}
			}
		}
	}
	sort.Slice(chains, func(i, j int) bool { return chains[i].Name < chains[j].Name })
	rs.Chains = append(rs.Chains, chains...)

	for _, s := range rs.Sets {
		sortElems(s.Elems)
		s.Elems = dedupElems(s.Elems)
	}
	names := make([]string, 0, len(c.sets))
	for n := range c.sets {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		rs.Sets = append(rs.Sets, c.sets[n])
	}
	if c.inc != nil {
		c.inc.finish(c)
	}
	return rs
}

// groupChain returns the chain of group g in family fam: its policies'
// rules of that family, cheapest first, then the tail. On the incremental
// path a chain built from the same cache entries as last time is the same
// *Chain, which spares the allocation and lets Enforcer.Apply skip it.
func (c *compiler) groupChain(g *group, fam Family) *Chain {
	name := famChain(g.name, fam)
	if c.inc != nil {
		if k := c.inc.chains[name]; k != nil && c.builtFrom(k, g) {
			c.chains[name] = k
			return k.chain
		}
	}
	ch := &Chain{Name: name}
	for _, pol := range g.pols {
		for _, r := range c.rulesFor(pol, g.dir) {
			if r.Family == FamilyAny || r.Family == fam {
				ch.Rules = append(ch.Rules, r)
			}
		}
	}
	cheapFirst(ch.Rules)
	ch.Rules = append(ch.Rules, c.tail(g.dir, ch.Name, fam)...)
	if c.inc != nil {
		from := make([]*polEntry, len(g.pols))
		for i, pol := range g.pols {
			from[i] = c.used[polDir{pol.Key, g.dir}]
		}
		c.chains[name] = &keptChain{chain: ch, from: from}
	}
	return ch
}

// builtFrom reports whether k was built from the cache entries that g's
// policies have in this compile.
func (c *compiler) builtFrom(k *keptChain, g *group) bool {
	if len(k.from) != len(g.pols) {
		return false
	}
	for i, pol := range g.pols {
		if c.used[polDir{pol.Key, g.dir}] != k.from[i] {
			return false
		}
	}
	return true
}

func famIndex(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

func dedupElems(es []Elem) []Elem {
	if len(es) < 2 {
		return es
	}
	out := es[:1]
	for _, e := range es[1:] {
		if e != out[len(out)-1] {
			out = append(out, e)
		}
	}
	return out
}

func groupKey(pols []*engine.Policy) string {
	keys := make([]string, len(pols))
	for i, p := range pols {
		keys[i] = p.Key.String()
	}
	return strings.Join(keys, ",")
}

func mapName(dir model.Direction) string {
	if dir == model.Egress {
		return egressMap
	}
	return ingressMap
}

func dropsName(dir model.Direction) string {
	if dir == model.Egress {
		return egressDrops
	}
	return ingressDrops
}

func dirPrefix(dir model.Direction) string {
	if dir == model.Egress {
		return egressPrefix
	}
	return ingressPrefix
}

func dirWord(dir model.Direction) string {
	if dir == model.Egress {
		return "egress"
	}
	return "ingress"
}

// famChain names a group's chain for one family: `<group>_4`, `<group>_6`.
func famChain(group string, fam Family) string { return group + "_" + fam.suffix() }

// famSuffixLen is what famChain adds to a group's name.
var famSuffixLen = len(famChain("", IPv4))

// nameGroups names each group `ing-<ns>-<policy>[_and_<N>]-<hash>`
// (the first policy in order, how many more, a hash of them all) and
// returns the groups sorted by key. Names stay under maxChainName; a
// clash of hashes falls back to a longer hash.
func nameGroups(dir model.Direction, groups map[string]*group) []*group {
	out := make([]*group, 0, len(groups))
	for _, g := range groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	taken := map[string]bool{}
	for _, g := range out {
		first := g.pols[0].Key
		readable := dirPrefix(dir) + "-" + first.Namespace + "-" + first.Name
		if n := len(g.pols) - 1; n > 0 {
			readable += fmt.Sprintf("_and_%d", n)
		}
		readable = identifier(readable)
		for _, n := range []int{hashLen, 16, 64} {
			h := hashString(g.key, n)
			max := maxChainName - n - 1 - famSuffixLen
			if n == 64 {
				max = 255 - n - 1 - famSuffixLen
			}
			r := readable
			if len(r) > max {
				r = r[:max]
			}
			g.name = r + "-" + h
			if !taken[g.name] {
				break
			}
		}
		taken[g.name] = true
	}
	return out
}

// sharedSetName names a set shared by every rule that needs the same
// elements: `<readable>-<hash>_<kind><family>`, bounded, with hashLen hex
// digits of a hash of its key (64 on a clash of short names).
func sharedSetName(key, readable, kind string, fam Family, hashLen int) string {
	suffix := "-" + hashString(key, hashLen) + "_" + kind + fam.suffix()
	readable = identifier(readable)
	if room := max(maxSetName-len(suffix), 1); len(readable) > room {
		readable = readable[:room]
	}
	return readable + suffix
}

// readable names a list of peers by the first and how many more.
func readable(ids []engine.PeerID) string {
	if len(ids) == 0 {
		return "_"
	}
	out := ids[0].Short
	if n := len(ids) - 1; n > 0 {
		out += fmt.Sprintf("_and_%d", n)
	}
	return out
}

func ruleComment(ref engine.RuleRef) string {
	return boundComment(fmt.Sprintf("%s %s[%d]", ref.Policy, dirWord(ref.Direction), ref.Index))
}

// boundComment cuts s to maxComment bytes (on a rune boundary), ending
// it with "..." when cut: nft refuses longer comments.
func boundComment(s string) string {
	if len(s) <= maxComment {
		return s
	}
	cut := maxComment - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// cheapFirst orders a chain's policy rules by what it costs a packet
// that they do not allow, keeping the policies' order within each kind:
// rules that match anything, then rules that compare a port first, then
// rules that must look a set up whatever the packet (named ports, peers
// on all ports). The order is free, since each rule returns on allow and
// only the chain's tail drops; this one spares a new connection the
// lookups of the rules it skips on their port (BENCHMARKS.md).
func cheapFirst(rules []Rule) {
	cost := func(r *Rule) int {
		switch {
		case r.Port == nil && r.Addr == nil && r.Named == "":
			return 0
		case r.Port != nil:
			return 1
		}
		return 2
	}
	sort.SliceStable(rules, func(i, j int) bool { return cost(&rules[i]) < cost(&rules[j]) })
}

// rulesFor returns the nft rules of one policy in one direction: rules
// that return when one of its rules allows the packet. Every chain that
// includes the policy shares them, and the sets they name.
func (c *compiler) rulesFor(pol *engine.Policy, dir model.Direction) []Rule {
	pk := polDir{pol.Key, dir}
	if c.inc != nil {
		if ent := c.used[pk]; ent != nil {
			return ent.rules // already in this compile
		}
		if ent := c.inc.cache[pk]; ent != nil {
			// Its sets are shared: another policy may have put them in
			// already (with the same elements, or both would be dirty).
			for _, s := range ent.sets {
				if _, ok := c.sets[s.Name]; !ok {
					c.sets[s.Name] = s
				}
			}
			c.used[pk] = ent
			return ent.rules
		}
	} else if rules, ok := c.polRules[pk]; ok {
		return rules
	}
	c.rec = c.rec[:0]
	var out []Rule
	for _, r := range pol.Rules[dir] {
		out = append(out, c.ruleRules(pol, r)...)
	}
	if c.inc != nil {
		c.used[pk] = &polEntry{rules: out, sets: append([]*Set(nil), c.rec...)}
	} else {
		c.polRules[pk] = out
	}
	return out
}

func (c *compiler) ruleRules(pol *engine.Policy, r *engine.Rule) []Rule {
	ref := r.Ref
	dir := ref.Direction
	comment := ruleComment(ref)
	peerField := Saddr
	if dir == model.Egress {
		peerField = Daddr
	}
	var out []Rule
	add := func(x Rule) {
		x.Verdict = VerdictReturn
		x.Comment = comment
		out = append(out, x)
	}
	portRules := func(base Rule) {
		for _, pr := range r.Ports {
			x := base
			x.Port = &PortMatch{Proto: pr.Protocol, First: pr.First, Last: pr.Last}
			add(x)
		}
	}

	if r.AllPeers {
		if r.AllPorts {
			add(Rule{})
			return out
		}
		portRules(Rule{})
		if len(r.Named) > 0 {
			for _, fam := range c.fams {
				add(Rule{Family: fam, Named: c.namedSet(pol, r, fam)})
			}
		}
		return out
	}

	hasSelectors := false
	for _, p := range r.Spec().Peers {
		if p.IPBlock == nil {
			hasSelectors = true
		}
	}
	var ranges *[2][]netipx.IPRange // computed once per compile and peer key, when needed
	for _, fam := range c.fams {
		fi := int(fam - IPv4)
		var peer *AddrMatch // nil for egress named ports alone: see below
		if !hasSelectors {
			if ranges == nil {
				ranges = c.peerRanges(r)
			}
			if len(ranges[fi]) == 0 {
				// Only ipBlocks, none of this family: nothing can match,
				// and no pod coming or going can change that.
				continue
			}
		}
		if r.AllPorts || len(r.Ports) > 0 || dir == model.Ingress {
			peer = &AddrMatch{Field: peerField, Set: c.peerSet(r, fam)}
		}
		if r.AllPorts {
			add(Rule{Family: fam, Addr: peer})
			continue
		}
		portRules(Rule{Family: fam, Addr: peer})
		if len(r.Named) > 0 {
			if dir == model.Ingress {
				add(Rule{Family: fam, Addr: peer, Named: c.namedSet(pol, r, fam)})
			} else {
				// The named set holds only the peers' pod addresses (of
				// selected pods, and of pods inside the ipBlocks): it
				// matches the peer and the port in one lookup.
				add(Rule{Family: fam, Named: c.namedSet(pol, r, fam)})
			}
		}
	}
	return out
}

// peerSet returns the name of the set of r's peer addresses in family
// fam, shared by every rule with the same peers (engine.Rule.PeerKey):
// `prod.app_db-1a2b3c4d_peers4`, comment "pods app=db in prod".
func (c *compiler) peerSet(r *engine.Rule, fam Family) string {
	key, ids := r.PeerKey(), r.PeerIDs()
	name := func(n int) string { return sharedSetName(key, readable(ids), "peers", fam, n) }
	return c.shared(key, name, func(name string) *Set {
		descs := make([]string, len(ids))
		for i, id := range ids {
			descs[i] = id.Desc
		}
		s := &Set{Name: name, Kind: KindPeers, Family: fam, Comment: boundComment(strings.Join(descs, "; "))}
		for _, rg := range c.peerRanges(r)[fam-IPv4] {
			s.Elems = append(s.Elems, Elem{Addr: rg.From(), End: rg.To()})
		}
		return s
	})
}

// namedSet returns the name of the set of `addr . proto . port` that r's
// named ports resolve to in family fam. An ingress rule resolves them on
// the pods of this node that pol selects, an egress rule on its peer
// pods (every pod when it has no peers), so the set is shared by every
// rule with the same named ports and the same target (ingress) or peers
// (egress): `shop.app_web-1a2b3c4d_named4`, comment "TCP/http on pods
// app=web in shop".
func (c *compiler) namedSet(pol *engine.Policy, r *engine.Rule, fam Family) string {
	ports := make([]string, len(r.Named))
	for i, np := range r.Named {
		ports[i] = np.Protocol.String() + "/" + np.Name
	}
	sort.Strings(ports)
	ports = slices.Compact(ports)
	var key, short, desc string
	switch {
	case r.Ref.Direction == model.Ingress:
		t := pol.Target()
		// Not the same elements as an egress rule's set for the same
		// selector: only this node's pods. The key says so.
		key, short, desc = "local "+t.Key, t.Short, "on "+t.Desc+" (this node)"
	case r.AllPeers:
		key, short, desc = "to any pod", "any", "on any pod"
	default:
		ids := r.PeerIDs()
		descs := make([]string, len(ids))
		for i, id := range ids {
			descs[i] = id.Desc
			if strings.HasPrefix(id.Key, "cidr=") {
				descs[i] = "pods in " + id.Desc
			}
		}
		key, short, desc = "to "+r.PeerKey(), readable(ids), "on "+strings.Join(descs, "; ")
	}
	key += " ports " + strings.Join(ports, ",")
	name := func(n int) string { return sharedSetName(key, short, "named", fam, n) }
	return c.shared(key, name, func(name string) *Set {
		var on []*model.Pod
		if r.Ref.Direction == model.Ingress {
			on = c.localSelected(pol)
		}
		s := &Set{Name: name, Kind: KindNamed, Family: fam, Comment: boundComment(strings.Join(ports, ",") + " " + desc)}
		for _, ap := range c.e.NamedTargets(r, on) {
			if a := ap.Addr.Unmap(); famIndex(a) == int(fam-IPv4) {
				s.Elems = append(s.Elems, Elem{Addr: a, Proto: ap.Protocol, Port: ap.Port})
			}
		}
		sortElems(s.Elems)
		s.Elems = dedupElems(s.Elems)
		return s
	})
}

// shared returns the name of the set for key, adding it (made by build)
// on its first use in this compile. name gives the set's name with n hex
// digits of hash: a short one unless another key's set already has it.
// The incremental compiler keeps the previous compile's *Set when the
// elements are the same, which lets Apply skip it.
func (c *compiler) shared(key string, name func(n int) string, build func(name string) *Set) string {
	n := name(hashLen)
	if s, ok := c.sets[n]; ok && s.key != key {
		n = name(64)
	}
	if s, ok := c.sets[n]; ok {
		c.rec = append(c.rec, s)
		return n
	}
	s := build(n)
	s.key = key
	if c.inc != nil {
		if old := c.inc.shared[n]; old != nil && old.key == key && old.sameDef(s) && slices.Equal(old.Elems, s.Elems) {
			s = old
		}
	}
	c.sets[n] = s
	c.rec = append(c.rec, s)
	return n
}

// peerRanges returns r's peer addresses by family, computed once per
// compile for each peer key.
func (c *compiler) peerRanges(r *engine.Rule) *[2][]netipx.IPRange {
	key := r.PeerKey()
	if rg, ok := c.ranges[key]; ok {
		return rg
	}
	rg := new([2][]netipx.IPRange)
	if set := c.e.PeerIPs(r); set != nil {
		for _, x := range set.Ranges() {
			rg[famIndex(x.From())] = append(rg[famIndex(x.From())], x)
		}
	}
	c.ranges[key] = rg
	return rg
}

// localSelected returns the pods of this node that pol selects.
func (c *compiler) localSelected(pol *engine.Policy) []*model.Pod {
	var out []*model.Pod
	for _, p := range c.e.Selected(pol) {
		if p.Node == c.node && !p.HostNetwork && len(p.IPs) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// tail ends a pod-group chain of family fam: a pod's traffic to itself
// returns, then the drop is counted per pod (set elements with counters),
// optionally logged, counted per chain and dropped.
func (c *compiler) tail(dir model.Direction, chain string, fam Family) []Rule {
	podField := Daddr
	if dir == model.Egress {
		podField = Saddr
	}
	out := []Rule{
		{Family: fam, Self: selfSet + fam.suffix(), Verdict: VerdictReturn},
		{Family: fam, Addr: &AddrMatch{Field: podField, Set: dropsName(dir) + fam.suffix()}},
	}
	if c.opts.LogDrops {
		out = append(out, Rule{Log: c.opts.log(chain)})
	}
	out = append(out, Rule{Counter: true, Verdict: VerdictDrop})
	return out
}

// log is the NFLOG action of a drop in chain, or in one of the guard's
// rules (GuardSource, GuardDestination): "palisade-drop NAME ".
func (o Options) log(name string) *Log {
	rate := o.LogRate
	if rate == 0 {
		rate = 10
	}
	prefix := logPrefix + name + " "
	if len(prefix) > maxLogPrefix {
		prefix = prefix[:maxLogPrefix]
	}
	return &Log{Prefix: prefix, Group: o.LogGroup, Rate: rate}
}

// baseChains are the hooked chains: replies pass, new connections go to
// the source pod's egress chain and then the destination pod's ingress
// chain (forward), or only the egress chain (input: a pod to its node).
// In the guarded families, a new connection from (forward, input) or to
// (forward) an address of the node's pod CIDRs that is no known pod's is
// dropped first. Not to one on input: the CNI's gateway address (cni0's
// 10.244.0.1) is in the pod CIDR and is the node's own.
func baseChains(guarded [2]bool, opts Options) []*Chain {
	est := Rule{CtEstablished: true, Verdict: VerdictAccept}
	guard := func(fields ...Field) []Rule {
		var out []Rule
		for _, field := range fields {
			for fi, fam := range families {
				if !guarded[fi] {
					continue
				}
				what, name := "source", GuardSource
				if field == Daddr {
					what, name = "destination", GuardDestination
				}
				unknown := Rule{
					Family:  fam,
					Addr:    &AddrMatch{Field: field, Set: localCIDRs + fam.suffix()},
					NotAddr: &AddrMatch{Field: field, Set: knownPods + fam.suffix()},
				}
				if opts.LogDrops {
					// Its own rule: over the rate limit, it does not
					// match, and the drop below must still.
					log := unknown
					log.Log = opts.log(name)
					out = append(out, log)
				}
				drop := unknown
				drop.Counter, drop.Verdict = true, VerdictDrop
				drop.Comment = what + ": pod address not known to the agent yet"
				out = append(out, drop)
			}
		}
		return out
	}
	dispatch := func(dir model.Direction) []Rule {
		field := Daddr
		if dir == model.Egress {
			field = Saddr
		}
		var out []Rule
		for _, fam := range families {
			out = append(out, Rule{Family: fam, Dispatch: &AddrMatch{Field: field, Set: mapName(dir) + fam.suffix()}})
		}
		return out
	}
	// IPv6 neighbour discovery is ICMPv6 that conntrack never marks
	// established. Judged as a pod's traffic it would be dropped: a pod
	// isolated for egress (or not yet known to the guard) could not answer
	// the node's solicitation, nor resolve its gateway (input), nor a pod on
	// the same bridge when br_netfilter hands bridged frames to forward.
	// NetworkPolicy is about TCP, UDP and SCTP; link-layer resolution must pass.
	var nd []Rule
	for _, t := range []uint8{ndSolicit, ndAdvert} {
		nd = append(nd, Rule{Family: IPv6, ICMPv6: t, Verdict: VerdictAccept, Comment: "neighbour discovery: never established, never judged as a pod's traffic"})
	}
	fwd := &Chain{Name: forwardChain, Hook: HookForward, Rules: append([]Rule{est}, nd...)}
	fwd.Rules = append(fwd.Rules, guard(Saddr, Daddr)...)
	fwd.Rules = append(fwd.Rules, dispatch(model.Egress)...)
	fwd.Rules = append(fwd.Rules, dispatch(model.Ingress)...)
	in := &Chain{Name: inputChain, Hook: HookInput, Rules: append([]Rule{est}, nd...)}
	in.Rules = append(in.Rules, guard(Saddr)...)
	in.Rules = append(in.Rules, dispatch(model.Egress)...)
	return []*Chain{fwd, in}
}
