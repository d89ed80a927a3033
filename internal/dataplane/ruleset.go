package dataplane

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// Family is an IP family, as the inet table tells them apart with
// `meta nfproto`.
type Family uint8

// Families. FamilyAny means a rule does not look at addresses.
const (
	FamilyAny Family = iota
	IPv4
	IPv6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return "any"
}

// suffix is the digit set and map names end with.
func (f Family) suffix() string {
	if f == IPv6 {
		return "6"
	}
	return "4"
}

// ipKeyword is the nft payload protocol for addresses of f.
func (f Family) ipKeyword() string {
	if f == IPv6 {
		return "ip6"
	}
	return "ip"
}

// Field is the address a rule looks at.
type Field uint8

// Address fields.
const (
	Saddr Field = iota
	Daddr
)

func (f Field) String() string {
	if f == Daddr {
		return "daddr"
	}
	return "saddr"
}

// Verdict ends a rule.
type Verdict uint8

// Verdicts. VerdictNone lets the packet go on to the next rule.
const (
	VerdictNone Verdict = iota
	VerdictAccept
	VerdictDrop
	VerdictReturn
	// VerdictGoto continues in Rule.Chain, which returns (or falls off
	// its end) to the chain that jumped here: the cluster-policy chains
	// hand a packet down a tier with it.
	VerdictGoto
)

func (v Verdict) String() string {
	switch v {
	case VerdictAccept:
		return "accept"
	case VerdictDrop:
		return "drop"
	case VerdictReturn:
		return "return"
	case VerdictGoto:
		return "goto"
	}
	return ""
}

// SetKind is what a named set or map holds. The kind fixes the key type,
// the flags, and how elements render.
type SetKind uint8

// Set kinds.
const (
	// KindPeers: addresses and ranges (`flags interval`) of a rule's peers.
	KindPeers SetKind = iota
	// KindNamed: `addr . inet_proto . inet_service` of resolved named ports.
	KindNamed
	// KindSelf: `addr . addr` of local pods, for a pod's traffic to itself.
	KindSelf
	// KindDrops: local isolated pods' addresses with a counter each.
	KindDrops
	// KindDispatch: verdict map from a pod's address to its chain.
	KindDispatch
	// KindCIDRs: the node's pod CIDRs (`flags interval`), for the
	// unknown-pod guard.
	KindCIDRs
	// KindPods: the addresses of the node's pod CIDRs that pods the
	// agent knows have, for the unknown-pod guard.
	KindPods
)

// Elem is one element of a set or map. Which fields are used depends on
// the set's kind: Addr (and End, the inclusive last address of a range)
// for peers; Addr, Proto, Port for named ports; Addr and Addr2 for self;
// Addr for drops; Addr and Jump for dispatch maps.
type Elem struct {
	Addr  netip.Addr
	End   netip.Addr
	Addr2 netip.Addr
	Proto model.Protocol
	Port  uint16
	Jump  string
}

// Set is a named set or verdict map of the table.
type Set struct {
	Name    string
	Kind    SetKind
	Family  Family
	Comment string
	// Elems are sorted and free of duplicates; peer ranges never overlap
	// or touch.
	Elems []Elem
	// Counters holds, for a drops set read back from the kernel, each
	// element's counter (parallel to Elems); nil otherwise.
	Counters []Counter
	// key says what a compiled shared set holds (peers, or named ports
	// and where they resolve); not in the kernel.
	key string
}

// Counter is a packet and byte count read back from the kernel.
type Counter struct {
	Packets, Bytes uint64
}

// sameDef reports whether s and o are the same set apart from elements.
func (s *Set) sameDef(o *Set) bool {
	return s.Name == o.Name && s.Kind == o.Kind && s.Family == o.Family && s.Comment == o.Comment
}

// IsMap reports whether s is a verdict map.
func (s *Set) IsMap() bool { return s.Kind == KindDispatch }

// interval reports whether s is an interval set: its elements are ranges.
func (s *Set) interval() bool { return s.Kind == KindPeers || s.Kind == KindCIDRs }

// Hook is where a base chain is attached; HookNone is a regular chain.
type Hook uint8

// Hooks used by the table.
const (
	HookNone Hook = iota
	HookForward
	HookInput
)

func (h Hook) String() string {
	switch h {
	case HookForward:
		return "forward"
	case HookInput:
		return "input"
	}
	return ""
}

// Chain is a chain and its rules, in order.
type Chain struct {
	Name  string
	Hook  Hook // base chains: priority filter, policy accept
	Rules []Rule
	// Foreign marks a base chain read from the kernel that is not one of
	// Palisade's (another hook, type, priority or policy): Apply replaces
	// it.
	Foreign bool
}

// Log is an NFLOG statement behind a kernel rate limit.
type Log struct {
	Prefix string
	Group  uint16
	Rate   uint32 // packets per second
}

// AddrMatch matches an address of the packet against a named set.
type AddrMatch struct {
	Field Field
	Set   string
}

// PortMatch is an inclusive range of destination ports; First 0 matches
// the protocol alone.
type PortMatch struct {
	Proto       model.Protocol
	First, Last uint16
}

// Rule is one nft rule, in the closed shape the table uses. The parts
// match in the order of the fields; zero parts are absent.
type Rule struct {
	// Family adds `meta nfproto`: any address match needs it in an inet
	// table (nft elides it from listings, since the address implies it).
	Family Family
	// CtEstablished matches `ct state established,related`.
	CtEstablished bool
	// Addr matches one address against a set.
	Addr *AddrMatch
	// NotAddr matches an address that is not in a set (`!= @set`).
	NotAddr *AddrMatch
	// Self matches `saddr . daddr` against a set.
	Self string
	// Port matches protocol and destination port.
	Port *PortMatch
	// ICMPv6 matches an ICMPv6 message type (`icmpv6 type T`).
	ICMPv6 uint8
	// Named matches `daddr . meta l4proto . th dport` against a set.
	Named string
	// Dispatch jumps through a verdict map keyed by the address.
	Dispatch *AddrMatch
	Counter  bool
	Log      *Log
	Verdict  Verdict
	// Chain is where VerdictGoto continues.
	Chain   string
	Comment string

	// Packets and Bytes are the counter's values, for rules read back
	// from the kernel (see Read); Compile leaves them zero.
	Packets, Bytes uint64
	// Raw stands for a rule read back from the kernel in a shape this
	// package does not write; it renders as is.
	Raw string
}

// Ruleset is the desired content of one table, as plain data. It is
// produced by Compile and must not be modified once handed to Apply.
type Ruleset struct {
	Table string
	// Live marks a ruleset read back from the kernel: String shows the
	// counters' values, as nft does.
	Live bool
	// Sets in rendering order: dispatch maps, the self and drops sets,
	// then the peer and named-port sets by name.
	Sets []*Set
	// Chains in rendering order: base chains, then the others by name.
	Chains []*Chain
}

// Set returns the set called name, or nil.
func (r *Ruleset) Set(name string) *Set {
	for _, s := range r.Sets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// PeerSet returns the set of peer addresses of family fam that the nft
// rules of one policy rule match (found by their comment), or nil. Rules
// with the same peers share the set.
func (r *Ruleset) PeerSet(ref engine.RuleRef, fam Family) *Set {
	comment := ruleComment(ref)
	for _, c := range r.Chains {
		for _, x := range c.Rules {
			if x.Comment == comment && x.Family == fam && x.Addr != nil {
				if s := r.Set(x.Addr.Set); s != nil && s.Kind == KindPeers {
					return s
				}
			}
		}
	}
	return nil
}

// Chain returns the chain called name, or nil.
func (r *Ruleset) Chain(name string) *Chain {
	for _, c := range r.Chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// String renders the ruleset as `nft list table inet NAME` prints it
// (counter values left out).
func (r *Ruleset) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", r.Table)
	first := true
	sep := func() {
		if !first {
			b.WriteString("\n")
		}
		first = false
	}
	for _, s := range r.Sets {
		sep()
		s.render(&b, r.Live)
	}
	for _, c := range r.Chains {
		sep()
		c.render(&b, r.Live)
	}
	b.WriteString("}\n")
	return b.String()
}

func (s *Set) keyType() string {
	ip := "ipv4_addr"
	if s.Family == IPv6 {
		ip = "ipv6_addr"
	}
	switch s.Kind {
	case KindNamed:
		return ip + " . inet_proto . inet_service"
	case KindSelf:
		return ip + " . " + ip
	case KindDispatch:
		return ip + " : verdict"
	}
	return ip
}

func (s *Set) render(b *strings.Builder, live bool) {
	word := "set"
	if s.IsMap() {
		word = "map"
	}
	fmt.Fprintf(b, "\t%s %s {\n\t\ttype %s\n", word, s.Name, s.keyType())
	if s.interval() {
		b.WriteString("\t\tflags interval\n")
	}
	if s.Kind == KindDrops {
		b.WriteString("\t\tcounter\n")
	}
	if s.Comment != "" {
		fmt.Fprintf(b, "\t\tcomment %q\n", s.Comment)
	}
	if len(s.Elems) > 0 {
		b.WriteString("\t\telements = { ")
		// nft puts two IPv4 keys on a line, and one of anything else.
		perLine := 1
		if s.Family == IPv4 && s.Kind != KindNamed && s.Kind != KindSelf {
			perLine = 2
		}
		for i, e := range s.Elems {
			if i > 0 {
				if i%perLine == 0 {
					b.WriteString(",\n\t\t\t     ")
				} else {
					b.WriteString(", ")
				}
			}
			b.WriteString(s.elemString(e))
			if live && s.Kind == KindDrops && i < len(s.Counters) {
				fmt.Fprintf(b, " counter packets %d bytes %d", s.Counters[i].Packets, s.Counters[i].Bytes)
			}
		}
		b.WriteString(" }\n")
	}
	b.WriteString("\t}\n")
}

// elemString renders one element as nft does.
func (s *Set) elemString(e Elem) string {
	switch s.Kind {
	case KindPeers, KindCIDRs:
		return rangeString(e.Addr, e.End)
	case KindNamed:
		return fmt.Sprintf("%s . %s . %d", e.Addr, protoName(e.Proto), e.Port)
	case KindSelf:
		return e.Addr.String() + " . " + e.Addr2.String()
	case KindDispatch:
		return e.Addr.String() + " : jump " + e.Jump
	}
	return e.Addr.String()
}

// rangeString renders [from, to] as an address, a prefix, or a range.
func rangeString(from, to netip.Addr) string {
	if !to.IsValid() || from == to {
		return from.String()
	}
	if p, ok := rangePrefix(from, to); ok {
		return p.String()
	}
	return from.String() + "-" + to.String()
}

// rangePrefix returns the prefix that is exactly [from, to], if any.
func rangePrefix(from, to netip.Addr) (netip.Prefix, bool) {
	for bits := 0; bits <= from.BitLen(); bits++ {
		p := netip.PrefixFrom(from, bits).Masked()
		if p.Addr() != from {
			continue
		}
		if lastAddr(p) == to {
			return p, true
		}
		if lastAddr(p).Less(to) {
			return netip.Prefix{}, false
		}
	}
	return netip.Prefix{}, false
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func modelProto(b byte) model.Protocol { return model.Protocol(b) }

func protoName(p model.Protocol) string {
	switch p {
	case model.TCP:
		return "tcp"
	case model.UDP:
		return "udp"
	case model.SCTP:
		return "sctp"
	}
	return fmt.Sprint(uint8(p))
}

// ICMPv6 neighbour discovery (RFC 4861) message types.
const (
	ndSolicit uint8 = 135
	ndAdvert  uint8 = 136
)

// icmpv6Name names an ICMPv6 type as nft does.
func icmpv6Name(t uint8) string {
	switch t {
	case ndSolicit:
		return "nd-neighbor-solicit"
	case ndAdvert:
		return "nd-neighbor-advert"
	}
	return fmt.Sprint(t)
}

func (c *Chain) render(b *strings.Builder, live bool) {
	fmt.Fprintf(b, "\tchain %s {\n", c.Name)
	if c.Hook != HookNone {
		fmt.Fprintf(b, "\t\ttype filter hook %s priority filter; policy accept;\n", c.Hook)
	}
	for i := range c.Rules {
		b.WriteString("\t\t")
		b.WriteString(c.Rules[i].text(live))
		b.WriteString("\n")
	}
	b.WriteString("\t}\n")
}

// String renders the port match as nft lists it.
func (pm *PortMatch) String() string {
	switch {
	case pm.First == 0:
		return "meta l4proto " + protoName(pm.Proto)
	case pm.First == pm.Last:
		return fmt.Sprintf("%s dport %d", protoName(pm.Proto), pm.First)
	}
	return fmt.Sprintf("%s dport %d-%d", protoName(pm.Proto), pm.First, pm.Last)
}

// String renders the rule as nft lists it (a counter without values).
func (r *Rule) String() string { return r.text(false) }

func (r *Rule) text(live bool) string {
	if r.Raw != "" {
		return r.Raw
	}
	var parts []string
	ip := r.Family.ipKeyword()
	if r.CtEstablished {
		parts = append(parts, "ct state established,related")
	}
	if r.Port != nil && r.Addr != nil {
		parts = append(parts, r.Port.String()) // port before peers: see exprs
	}
	if r.Named != "" { // before the peers: see exprs
		parts = append(parts, fmt.Sprintf("%s daddr . meta l4proto . th dport @%s", ip, r.Named))
	}
	if r.Addr != nil {
		parts = append(parts, fmt.Sprintf("%s %s @%s", ip, r.Addr.Field, r.Addr.Set))
	}
	if r.NotAddr != nil {
		parts = append(parts, fmt.Sprintf("%s %s != @%s", ip, r.NotAddr.Field, r.NotAddr.Set))
	}
	if r.Self != "" {
		parts = append(parts, fmt.Sprintf("%s saddr . %s daddr @%s", ip, ip, r.Self))
	}
	if r.Port != nil && r.Addr == nil {
		parts = append(parts, r.Port.String())
	}
	if r.ICMPv6 != 0 {
		parts = append(parts, "icmpv6 type "+icmpv6Name(r.ICMPv6))
	}
	if r.Dispatch != nil {
		parts = append(parts, fmt.Sprintf("%s %s vmap @%s", ip, r.Dispatch.Field, r.Dispatch.Set))
	}
	if r.Log != nil {
		parts = append(parts, fmt.Sprintf("limit rate %d/second log prefix %q group %d", r.Log.Rate, r.Log.Prefix, r.Log.Group))
	}
	if r.Counter && live {
		parts = append(parts, fmt.Sprintf("counter packets %d bytes %d", r.Packets, r.Bytes))
	} else if r.Counter {
		parts = append(parts, "counter")
	}
	if r.Verdict == VerdictGoto {
		parts = append(parts, "goto "+r.Chain)
	} else if r.Verdict != VerdictNone {
		parts = append(parts, r.Verdict.String())
	}
	if r.Comment != "" {
		parts = append(parts, fmt.Sprintf("comment %q", r.Comment))
	}
	return strings.Join(parts, " ")
}

// sortElems sorts elements by address, then the other fields.
func sortElems(es []Elem) {
	sort.Slice(es, func(i, j int) bool { return elemLess(es[i], es[j]) })
}

func elemLess(a, b Elem) bool {
	if a.Addr != b.Addr {
		return a.Addr.Less(b.Addr)
	}
	if a.End != b.End {
		return a.End.Less(b.End)
	}
	if a.Addr2 != b.Addr2 {
		return a.Addr2.Less(b.Addr2)
	}
	if a.Proto != b.Proto {
		return a.Proto < b.Proto
	}
	if a.Port != b.Port {
		return a.Port < b.Port
	}
	return a.Jump < b.Jump
}
