package dataplane

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"go4.org/netipx"
)

// Cluster-wide policies (engine.ClusterPolicies) run before and after
// NetworkPolicy, as engine.decide does. A local pod's direction is
// dispatched to the first of its stages that exists:
//
//   - an Admin chain (`ing-adm-…`), one per list of Admin-tier policies
//     applying to the pod and the stage that follows: their rules in
//     evaluation order, Accept `return` (the direction is allowed, the
//     rest skipped), Deny `goto` the policy's deny chain, Pass `goto` the
//     next stage; the chain ends by going to the next stage too.
//   - the NetworkPolicy chain of the pod's isolating policies (as
//     without cluster policies; final: it allows or drops).
//   - when no NetworkPolicy isolates the pod, a Baseline chain
//     (`ing-base-…`): Accept and Pass `return`, Deny `goto` the deny
//     chain, nothing matched returns (the default: allowed).
//
// A deny chain (`ing-deny-<policy>-…`) counts the drop per pod in the
// drops sets, logs it (its name in the log prefix names the policy) and
// drops. Admin and Baseline chains first return a pod's traffic to
// itself, which no policy governs. A goto returns, at the end of the
// chain it went to, to the base chain, which goes on to the next
// direction.

// clusterApplies returns the policies of tier that apply to pod in dir:
// those it is a subject of that have rules for dir, in evaluation order.
func (c *compiler) clusterApplies(tier model.Tier, pod *model.Pod, dir model.Direction) []*model.ClusterPolicy {
	var out []*model.ClusterPolicy
	for _, p := range c.e.ClusterPolicies() {
		if p.Tier == tier && len(p.Rules(dir)) > 0 && c.e.Subject(p, pod) {
			out = append(out, p)
		}
	}
	return out
}

// stageGroup is the local pods that share a cluster stage chain in one
// direction: the same policies, and (Admin) the same next stage.
type stageGroup struct {
	dir  model.Direction
	tier model.Tier
	key  string
	pols []*model.ClusterPolicy
	next string // the next stage's chain (no family suffix); "" for none
	pods []*model.Pod
	name string
}

func clusterKeys(pols []*model.ClusterPolicy) string {
	keys := make([]string, len(pols))
	for i, p := range pols {
		keys[i] = p.Key().String()
	}
	return strings.Join(keys, ",")
}

// clusterChainName names a stage or deny chain
// `<ing|egr>-<word>-<first policy>[_and_<N>]-<hash of key>`, bounded as
// nameGroups bounds the NetworkPolicy chains.
func clusterChainName(dir model.Direction, word string, pols []*model.ClusterPolicy, key string, taken map[string]bool) string {
	readable := dirPrefix(dir) + "-" + word + "-" + pols[0].Name
	if n := len(pols) - 1; n > 0 {
		readable += fmt.Sprintf("_and_%d", n)
	}
	readable = identifier(readable)
	var name string
	for _, n := range []int{hashLen, 16, 64} {
		h := hashString(word+" "+key, n)
		limit := maxChainName - n - 1 - famSuffixLen
		if n == 64 {
			limit = 255 - n - 1 - famSuffixLen
		}
		r := readable
		if len(r) > limit {
			r = r[:limit]
		}
		name = r + "-" + h
		if !taken[name] {
			break
		}
	}
	taken[name] = true
	return name
}

// denyChain names the chain p's Deny rules in dir go to (no family
// suffix).
func denyChain(p *model.ClusterPolicy, dir model.Direction) string {
	return clusterChainName(dir, "deny", []*model.ClusterPolicy{p}, p.Key().String()+" "+dirWord(dir), map[string]bool{})
}

// clusterStages puts the cluster stages in front of (Admin) and behind
// (Baseline) the NetworkPolicy chains: entry maps each local pod to the
// chain its direction is dispatched to (its NetworkPolicy group's, or
// none), and is updated; the stage and deny chains are returned, with
// their families' rules.
func (c *compiler) clusterStages(local []*model.Pod, entry *[2]map[*model.Pod]string, taken map[string]bool) []*Chain {
	if len(c.e.ClusterPolicies()) == 0 {
		return nil
	}
	var out []*Chain
	denies := map[string]model.Direction{} // deny chains used, by name with family
	for _, dir := range directions {
		// Baseline first: an Admin chain's next stage may be one.
		var groups [2]map[string]*stageGroup
		for _, tier := range []model.Tier{model.BaselineTier, model.AdminTier} {
			groups[tier] = map[string]*stageGroup{}
			for _, p := range local {
				next := entry[dir][p]
				if tier == model.BaselineTier && next != "" {
					continue // NetworkPolicy isolates it: final
				}
				pols := c.clusterApplies(tier, p, dir)
				if len(pols) == 0 {
					continue
				}
				key := clusterKeys(pols)
				if tier == model.AdminTier {
					key += " then " + next
				}
				g := groups[tier][key]
				if g == nil {
					g = &stageGroup{dir: dir, tier: tier, key: key, pols: pols, next: next}
					groups[tier][key] = g
				}
				g.pods = append(g.pods, p)
			}
			word := "adm"
			if tier == model.BaselineTier {
				word = "base"
			}
			for _, k := range slices.Sorted(maps.Keys(groups[tier])) {
				g := groups[tier][k]
				g.name = clusterChainName(dir, word, g.pols, g.key, taken)
				out = append(out, c.stageChains(g, denies)...)
				for _, p := range g.pods {
					entry[dir][p] = g.name
				}
			}
		}
	}
	for _, n := range slices.Sorted(maps.Keys(denies)) {
		fam := IPv4
		if strings.HasSuffix(n, "_"+IPv6.suffix()) {
			fam = IPv6
		}
		ch := &Chain{Name: n, Rules: c.dropRules(denies[n], n, fam)}
		out = append(out, ch)
	}
	return out
}

// stageChains returns g's chain for each family its pods have: a pod's
// traffic to itself returns, then the policies' rules in order, Pass
// going to the next stage; an Admin chain ends by going there too.
func (c *compiler) stageChains(g *stageGroup, denies map[string]model.Direction) []*Chain {
	var has [2]bool
	for _, p := range g.pods {
		for _, ip := range p.IPs {
			has[famIndex(ip.Unmap())] = true
		}
	}
	var rules []Rule
	for _, p := range g.pols {
		rules = append(rules, c.clusterRulesFor(p, g.dir)...)
	}
	var out []*Chain
	for fi, fam := range families {
		if !has[fi] {
			continue
		}
		ch := &Chain{Name: famChain(g.name, fam)}
		ch.Rules = append(ch.Rules, Rule{Family: fam, Self: selfSet + fam.suffix(), Verdict: VerdictReturn, Comment: "a pod's traffic to itself"})
		pass := Rule{Verdict: VerdictReturn}
		if g.next != "" {
			pass = Rule{Verdict: VerdictGoto, Chain: famChain(g.next, fam)}
		}
		for _, r := range rules {
			if r.Family != fam {
				continue
			}
			switch {
			case r.Verdict == VerdictGoto && r.Chain == "": // Pass
				r.Verdict, r.Chain = pass.Verdict, pass.Chain
			case r.Verdict == VerdictGoto: // Deny
				denies[r.Chain] = g.dir
			}
			ch.Rules = append(ch.Rules, r)
		}
		if g.next != "" {
			end := pass
			end.Comment = "no Admin tier rule matched"
			ch.Rules = append(ch.Rules, end)
		}
		out = append(out, ch)
	}
	return out
}

// dropRules are a deny chain's: the drop counted per pod (set elements
// with counters), optionally logged with the chain's name, counted and
// dropped. tail ends the NetworkPolicy chains the same way.
func (c *compiler) dropRules(dir model.Direction, chain string, fam Family) []Rule {
	rules := c.tail(dir, chain, fam)
	return rules[1:] // not the self rule: the stage chain returned it first
}

// clusterRulesFor returns the nft rules of p in dir, in order, for every
// family of the local pods: each rule matches its peers and ports and
// returns (Accept), goes to p's deny chain (Deny) or has VerdictGoto with
// no chain (Pass: stageChains fills in the next stage). Every stage chain
// that includes p shares them, and the sets they name.
func (c *compiler) clusterRulesFor(p *model.ClusterPolicy, dir model.Direction) []Rule {
	k := clusterDir{p.Key(), dir}
	if rules, ok := c.clRules[k]; ok {
		return rules
	}
	if c.inc != nil {
		if ent := c.inc.cl[k]; ent != nil {
			for _, s := range ent.sets {
				if _, ok := c.sets[s.Name]; !ok {
					c.sets[s.Name] = s
				}
			}
			c.clRules[k] = ent.rules
			c.clUsed[k] = ent
			return ent.rules
		}
	}
	c.rec = c.rec[:0]
	var out []Rule
	deny := denyChain(p, dir)
	for i := range p.Rules(dir) {
		r := &p.Rules(dir)[i]
		comment := fmt.Sprintf("%s %s[%d]", p.Key(), dirWord(dir), i)
		if r.Name != "" {
			// Quotes and backslashes would come back escaped from nft.
			comment += " (" + strings.NewReplacer(`"`, "'", `\`, "/").Replace(r.Name) + ")"
		}
		comment = boundComment(comment + ": " + r.Action.String())
		for _, fam := range c.fams {
			for _, x := range c.clusterRuleRules(r, dir, fam) {
				x.Comment = comment
				switch r.Action {
				case model.Accept:
					x.Verdict = VerdictReturn
				case model.Deny:
					x.Verdict, x.Chain = VerdictGoto, famChain(deny, fam)
				default:
					x.Verdict = VerdictGoto // Pass: the next stage, filled in later
				}
				out = append(out, x)
			}
		}
	}
	c.clRules[k] = out
	if c.inc != nil {
		c.clUsed[k] = &polEntry{rules: out, sets: append([]*Set(nil), c.rec...)}
	}
	return out
}

type clusterDir struct {
	key model.ClusterKey
	dir model.Direction
}

// clusterRuleRules returns the matches of one cluster rule in family fam
// (verdicts left to the caller): the peers, then one rule per entry of
// its ports. A named port resolves on the pod that receives the
// traffic: for ingress the local pod (a set of this node's pods' ports
// by that name), for egress the peer pods (a set of their addresses and
// ports, which matches the peer as well).
func (c *compiler) clusterRuleRules(r *model.ClusterRule, dir model.Direction, fam Family) []Rule {
	if len(r.Peers) == 0 {
		return nil // matches nothing (engine.clusterMatch)
	}
	onlyNets := true
	for _, pr := range r.Peers {
		if pr.Networks == nil {
			onlyNets = false
		}
	}
	key, short, desc := clusterPeersKey(r.Peers)
	if onlyNets && len(c.clusterRanges(r.Peers, key)[fam-IPv4]) == 0 {
		return nil // no network of this family: nothing can match
	}
	field := Saddr
	if dir == model.Egress {
		field = Daddr
	}
	peer := &AddrMatch{Field: field, Set: c.clusterPeerSet(r.Peers, key, short, desc, fam)}
	if r.Ports == nil {
		return []Rule{{Family: fam, Addr: peer}}
	}
	var out []Rule
	for _, pt := range r.Ports {
		switch {
		case pt.Name != "" && dir == model.Ingress:
			out = append(out, Rule{Family: fam, Addr: peer, Named: c.clusterNamedSet(pt.Name, nil, "", "", "", fam)})
		case pt.Name != "":
			out = append(out, Rule{Family: fam, Named: c.clusterNamedSet(pt.Name, r.Peers, key, short, desc, fam)})
		default:
			out = append(out, Rule{Family: fam, Addr: peer, Port: &PortMatch{Proto: pt.Protocol, First: pt.First, Last: pt.Last}})
		}
	}
	return out
}

// clusterPeersKey says what a cluster rule's peers hold: a key for
// sharing sets, a short name and a description.
func clusterPeersKey(peers []model.ClusterPeer) (key, short, desc string) {
	var keys, shorts, descs []string
	for _, pr := range peers {
		var k, sh, d string
		switch {
		case pr.Namespaces != nil:
			k, sh, d = "namespaces="+pr.Namespaces.String(), "ns."+pr.Namespaces.String(), "pods in namespaces "+pr.Namespaces.String()
		case pr.Pods != nil:
			k = "pods=" + pr.Pods.NamespaceSelector.String() + "/" + pr.Pods.PodSelector.String()
			sh = pr.Pods.NamespaceSelector.String() + "." + pr.Pods.PodSelector.String()
			d = "pods " + pr.Pods.PodSelector.String() + " in namespaces " + pr.Pods.NamespaceSelector.String()
		case pr.Nodes != nil:
			k, sh, d = "nodes="+pr.Nodes.String(), "nodes."+pr.Nodes.String(), "nodes "+pr.Nodes.String()
		default:
			nets := make([]string, len(pr.Networks))
			for i, n := range pr.Networks {
				nets[i] = n.String()
			}
			k, d = "networks="+strings.Join(nets, ","), "networks "+strings.Join(nets, ",")
			sh = "nets"
			if len(nets) > 0 {
				sh += "." + nets[0]
			}
		}
		keys, shorts, descs = append(keys, k), append(shorts, sh), append(descs, d)
	}
	short = shorts[0]
	if n := len(keys) - 1; n > 0 {
		short += fmt.Sprintf("_and_%d", n)
	}
	return "cluster " + strings.Join(keys, ";"), short, strings.Join(descs, "; ")
}

// clusterPeerSet returns the name of the interval set of the peers'
// addresses in fam, shared by every cluster rule with the same peers.
func (c *compiler) clusterPeerSet(peers []model.ClusterPeer, key, short, desc string, fam Family) string {
	name := func(n int) string { return sharedSetName(key, short, "cpeers", fam, n) }
	return c.shared(key, name, func(name string) *Set {
		s := &Set{Name: name, Kind: KindPeers, Family: fam, Comment: boundComment(desc)}
		for _, rg := range c.clusterRanges(peers, key)[fam-IPv4] {
			s.Elems = append(s.Elems, Elem{Addr: rg.From(), End: rg.To()})
		}
		return s
	})
}

// clusterRanges returns the addresses the peers match, by family, as
// engine.ClusterPeerMatch decides: the pods (not on the host network)
// that namespaces and pods peers select, the addresses of the nodes that
// nodes peers select, the networks. Computed once per compile and key.
func (c *compiler) clusterRanges(peers []model.ClusterPeer, key string) *[2][]netipx.IPRange {
	if rg, ok := c.ranges[key]; ok {
		return rg
	}
	var b netipx.IPSetBuilder
	for i := range peers {
		pr := &peers[i]
		switch {
		case pr.Namespaces != nil, pr.Pods != nil:
			for _, p := range c.allPods() {
				if p.HostNetwork {
					continue
				}
				for _, ip := range p.IPs {
					if c.e.ClusterPeerMatch(pr, engine.Endpoint{Pod: p, IP: ip}) {
						b.Add(ip.Unmap())
					}
				}
			}
		case pr.Nodes != nil:
			for _, ip := range c.nodeIPs() {
				if c.e.ClusterPeerMatch(pr, engine.Endpoint{IP: ip}) {
					b.Add(ip.Unmap())
				}
			}
		default:
			for _, n := range pr.Networks {
				b.AddPrefix(netip.PrefixFrom(n.Addr().Unmap(), n.Bits()-unmapBits(n)).Masked())
			}
		}
	}
	rg := new([2][]netipx.IPRange)
	if set, err := b.IPSet(); err == nil {
		for _, x := range set.Ranges() {
			rg[famIndex(x.From())] = append(rg[famIndex(x.From())], x)
		}
	}
	c.ranges[key] = rg
	return rg
}

// unmapBits is what a 4-in-6 prefix loses to its IPv4 form.
func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return 96
	}
	return 0
}

// clusterNamedSet returns the name of the set of `addr . proto . port`
// where the named port resolves: with peers nil (ingress), on this
// node's pods; else (egress) on the peer pods (those the peers match).
func (c *compiler) clusterNamedSet(port string, peers []model.ClusterPeer, peersKey, short, desc string, fam Family) string {
	key := "cluster to " + peersKey + " port " + port
	desc = "named port " + port + " on " + desc
	if peers == nil {
		key, short, desc = "cluster local port "+port, "local", "named port "+port+" on pods of this node"
	}
	name := func(n int) string { return sharedSetName(key, short+"."+port, "cnamed", fam, n) }
	return c.shared(key, name, func(name string) *Set {
		pods := c.localPods()
		if peers != nil {
			pods = c.allPods()
		}
		s := &Set{Name: name, Kind: KindNamed, Family: fam, Comment: boundComment(desc)}
		for _, p := range pods {
			if p.HostNetwork {
				continue
			}
			for _, ip := range p.IPs {
				ip = ip.Unmap()
				if famIndex(ip) != int(fam-IPv4) || (peers != nil && !c.anyPeer(peers, engine.Endpoint{Pod: p, IP: ip})) {
					continue
				}
				for _, cp := range p.Ports {
					if cp.Name == port {
						s.Elems = append(s.Elems, Elem{Addr: ip, Proto: cp.Protocol, Port: cp.Port})
					}
				}
			}
		}
		sortElems(s.Elems)
		s.Elems = dedupElems(s.Elems)
		return s
	})
}

func (c *compiler) anyPeer(peers []model.ClusterPeer, ep engine.Endpoint) bool {
	for i := range peers {
		if c.e.ClusterPeerMatch(&peers[i], ep) {
			return true
		}
	}
	return false
}

func (c *compiler) allPods() []*model.Pod {
	if c.pods == nil {
		c.pods = c.e.Pods()
	}
	return c.pods
}

func (c *compiler) localPods() []*model.Pod { return c.e.PodsOnNode(c.node) }

// nodeIPs returns the addresses of every node the engine knows.
func (c *compiler) nodeIPs() []netip.Addr {
	if c.nodeAddrs != nil {
		return c.nodeAddrs
	}
	c.nodeAddrs = []netip.Addr{}
	for _, n := range c.e.Nodes() {
		c.nodeAddrs = append(c.nodeAddrs, n.IPs...)
	}
	return c.nodeAddrs
}

// DenyChainPolicy returns the cluster policy whose deny chain is chain
// (as a drop's log prefix names it, "palisade-drop CHAIN "), and the
// direction, or false when chain is no deny chain of e's policies.
func DenyChainPolicy(e *engine.Engine, chain string) (model.ClusterKey, model.Direction, bool) {
	for _, p := range e.ClusterPolicies() {
		for _, dir := range directions {
			if !strings.HasPrefix(chain, dirPrefix(dir)+"-deny-") {
				continue
			}
			for _, fam := range families {
				if famChain(denyChain(p, dir), fam) == chain {
					return p.Key(), dir, true
				}
			}
		}
	}
	return model.ClusterKey{}, 0, false
}
