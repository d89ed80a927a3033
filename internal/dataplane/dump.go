package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoTable is returned by Read and Dump when the namespace has no
// Palisade table.
var ErrNoTable = errors.New("table inet " + TableName + " not found")

// Dump reads Palisade's table from the kernel of the network namespace at
// netnsPath ("" for the current one) and renders it as nft text, with the
// live counter values, as `nft list table inet palisade` would print it.
// It needs no nft binary.
func Dump(netnsPath string) (string, error) {
	rs, err := Read(netnsPath)
	if err != nil {
		return "", err
	}
	return rs.String(), nil
}

// Read reads Palisade's table back from the kernel into a Ruleset (with
// Live set, so that counters carry their values). Rules of a shape this
// package does not write are kept as Raw text.
func Read(netnsPath string) (*Ruleset, error) { return read(netnsPath, nil, nil) }

// ReadDrops reads only the drop counters back: a Ruleset holding the four
// drops sets (ingress_drops4/6, egress_drops4/6) with their live
// counters, and the two base chains, whose rules carry the unknown-pod
// guard's counters (GuardDrops). A metrics scrape needs no more, and
// reading the whole table at 10k pods costs a few hundred milliseconds.
//
// It asks the kernel for those six objects by name: listing every set's
// and chain's attributes to pick them out (as Read does) costs in
// proportion to the table, and a scrape runs every few seconds.
func ReadDrops(netnsPath string) (*Ruleset, error) {
	return read(netnsPath,
		[]string{ingressDrops + IPv4.suffix(), ingressDrops + IPv6.suffix(), egressDrops + IPv4.suffix(), egressDrops + IPv6.suffix()},
		[]string{forwardChain, inputChain})
}

// GuardDrops returns the packets the unknown-pod guard's rules dropped,
// by family (0: IPv4, 1: IPv6), in a ruleset read back from the kernel
// (Read, ReadDrops). A change of the node's pod CIDRs rewrites the rules,
// which restarts their counters.
func (r *Ruleset) GuardDrops() (out [2]uint64) {
	r.guardRules(func(fi int, x *Rule) { out[fi] += x.Packets })
	return out
}

// Guarded reports, by family (0: IPv4, 1: IPv6), whether the base chains
// have the unknown-pod guard: the node has pod CIDRs of that family (or
// Options.PodCIDRs does) and Options.AllowUnknown is off.
func (r *Ruleset) Guarded() (out [2]bool) {
	r.guardRules(func(fi int, _ *Rule) { out[fi] = true })
	return out
}

// guardRules calls fn with each rule of the unknown-pod guard and the
// index of its family.
func (r *Ruleset) guardRules(fn func(fi int, x *Rule)) {
	for _, c := range r.Chains {
		if c.Hook == HookNone {
			continue
		}
		for i := range c.Rules {
			if x := &c.Rules[i]; x.NotAddr != nil && x.Verdict == VerdictDrop && x.Family != FamilyAny {
				fn(int(x.Family-IPv4), x)
			}
		}
	}
}

// read reads the table, or, when sets and chains are not nil, only the
// sets and chains they name (those that exist).
func read(netnsPath string, sets, chains []string) (*Ruleset, error) {
	nsFile, err := openNetNS(netnsPath)
	if err != nil {
		return nil, err
	}
	defer nsFile.Close()
	var opts []nftables.ConnOption
	if nsFile != nil {
		opts = append(opts, nftables.WithNetNSFd(int(nsFile.Fd())))
	}
	// One socket for every request: a socket per set and chain (the
	// library's default) made reading a large table cost seconds.
	conn, err := nftables.New(append(opts, nftables.AsLasting())...)
	if err != nil {
		return nil, err
	}
	defer conn.CloseLasting()
	table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	found, err := hasTable(conn)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrNoTable
	}
	rs := &Ruleset{Table: TableName, Live: true}

	kernelSets, err := readSets(nsFile, sets...)
	if err != nil {
		return nil, err
	}
	for _, s := range kernelSets {
		ns := s.nftSet(table, 0)
		elems, err := conn.GetSetElements(ns)
		if err != nil {
			return nil, fmt.Errorf("list elements of set %s: %w", s.Name, err)
		}
		s.Elems, s.Counters = decodeElems(s, elems)
		rs.Sets = append(rs.Sets, s)
	}

	kernelChains, err := listChains(conn, table, chains)
	if err != nil {
		return nil, err
	}
	for _, nc := range kernelChains {
		if nc.Table.Name != TableName {
			continue
		}
		c := &Chain{Name: nc.Name}
		if nc.Hooknum != nil {
			switch *nc.Hooknum {
			case *nftables.ChainHookForward:
				c.Hook = HookForward
			case *nftables.ChainHookInput:
				c.Hook = HookInput
			}
			c.Foreign = c.Hook == HookNone || !sameBaseChain(nftChain(table, c), nc)
		}
		rules, err := conn.GetRules(table, nc)
		if err != nil {
			return nil, fmt.Errorf("list rules of chain %s: %w", nc.Name, err)
		}
		for _, r := range rules {
			c.Rules = append(c.Rules, decodeRule(r))
		}
		rs.Chains = append(rs.Chains, c)
	}
	sortRuleset(rs)
	return rs, nil
}

// listChains lists the chains of the inet family, or only those of the
// table named in names (those that exist) when names is not nil.
func listChains(conn *nftables.Conn, table *nftables.Table, names []string) ([]*nftables.Chain, error) {
	if names == nil {
		chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			return nil, fmt.Errorf("list chains: %w", err)
		}
		return chains, nil
	}
	var out []*nftables.Chain
	for _, name := range names {
		c, err := conn.ListChain(table, name)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get chain %s: %w", name, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// sortRuleset puts sets and chains in the order Compile produces.
func sortRuleset(rs *Ruleset) {
	rank := func(s *Set) int {
		switch s.Kind {
		case KindDispatch:
			return 0
		case KindDrops:
			return 1
		case KindSelf:
			return 2
		case KindCIDRs:
			return 3
		case KindPods:
			return 4
		}
		return 5
	}
	sort.SliceStable(rs.Sets, func(i, j int) bool {
		a, b := rs.Sets[i], rs.Sets[j]
		if rank(a) != rank(b) {
			return rank(a) < rank(b)
		}
		// The fixed sets: egress before ingress, then 4 before 6, as
		// Compile does; the shared ones by name.
		return a.Name < b.Name
	})
	sort.SliceStable(rs.Chains, func(i, j int) bool {
		a, b := rs.Chains[i], rs.Chains[j]
		if (a.Hook != HookNone) != (b.Hook != HookNone) {
			return a.Hook != HookNone
		}
		if a.Hook != HookNone {
			return a.Hook < b.Hook
		}
		return a.Name < b.Name
	})
}

// openNetNS opens the network namespace at path, or returns nil for ""
// (the current one).
func openNetNS(path string) (*os.File, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace: %w", err)
	}
	return f, nil
}

// generation returns the nftables ruleset generation of the network
// namespace nsFile (nil: the current one) (NFT_MSG_GETGEN): every
// transaction committed in the namespace, on any table, increments it.
func generation(nsFile *os.File) (uint32, error) {
	conn, err := dialNetfilter(nsFile)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	msgs, err := conn.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return 0, fmt.Errorf("get nftables generation: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, err
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_GEN_ID {
				return ad.Uint32(), nil
			}
		}
	}
	return 0, errors.New("get nftables generation: no NFTA_GEN_ID in the reply")
}

// readAtGeneration reads the table (Read) together with the generation
// it was read at: the generation is the same before and after the read,
// so no transaction committed in between (tried a few times).
func readAtGeneration(netnsPath string) (*Ruleset, uint32, error) {
	nsFile, err := openNetNS(netnsPath)
	if err != nil {
		return nil, 0, err
	}
	defer nsFile.Close()
	for range 3 {
		g1, err := generation(nsFile)
		if err != nil {
			return nil, 0, err
		}
		rs, err := Read(netnsPath)
		if err != nil {
			return nil, 0, err
		}
		if g2, err := generation(nsFile); err != nil || g2 != g1 {
			continue
		}
		return rs, g1, nil
	}
	return nil, 0, errors.New("the table kept changing while being read")
}

// dialNetfilter opens a netfilter netlink socket in the network namespace
// nsFile (nil: the current one).
func dialNetfilter(nsFile *os.File) (*netlink.Conn, error) {
	cfg := &netlink.Config{}
	if nsFile != nil {
		cfg.NetNS = int(nsFile.Fd())
	}
	return netlink.Dial(unix.NETLINK_NETFILTER, cfg)
}

// hasTable reports whether the namespace conn talks to has Palisade's
// table.
func hasTable(conn *nftables.Conn) (bool, error) {
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == TableName {
			return true, nil
		}
	}
	return false, nil
}

// readSets lists the table's sets with a GETSET dump of our own
// (google/nftables v0.3.0 does not decode set comments or expressions),
// or, when names are given, gets those sets one by one (those that
// exist).
func readSets(nsFile *os.File, names ...string) ([]*Set, error) {
	conn, err := dialNetfilter(nsFile)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	get := func(name string) ([]netlink.Message, error) {
		a := []netlink.Attribute{{Type: unix.NFTA_SET_TABLE, Data: []byte(TableName + "\x00")}}
		flags := netlink.Request | netlink.Dump
		if name != "" {
			a = append(a, netlink.Attribute{Type: unix.NFTA_SET_NAME, Data: []byte(name + "\x00")})
			flags = netlink.Request
		}
		attrs, err := netlink.MarshalAttributes(a)
		if err != nil {
			return nil, err
		}
		return conn.Execute(netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSET), Flags: flags},
			Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
		})
	}
	var msgs []netlink.Message
	if len(names) == 0 {
		if msgs, err = get(""); err != nil {
			return nil, fmt.Errorf("list sets: %w", err)
		}
	}
	for _, name := range names {
		m, err := get(name)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get set %s: %w", name, err)
		}
		msgs = append(msgs, m...)
	}
	var out []*Set
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, err
		}
		ad.ByteOrder = binary.BigEndian
		s := &Set{}
		var flags, keyType uint32
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_SET_NAME:
				s.Name = ad.String()
			case unix.NFTA_SET_FLAGS:
				flags = ad.Uint32()
			case unix.NFTA_SET_KEY_TYPE:
				keyType = ad.Uint32()
			case unix.NFTA_SET_USERDATA:
				if c, ok := userdata.GetString(ad.Bytes(), userdata.NFTNL_UDATA_SET_COMMENT); ok {
					s.Comment = c
				}
			}
		}
		if err := ad.Err(); err != nil {
			return nil, err
		}
		// A concatenation's type packs its fields' types in 6 bits each,
		// the first field highest.
		switch {
		case flags&unix.NFT_SET_MAP != 0:
			s.Kind = KindDispatch
		case s.Name == localCIDRs+IPv4.suffix() || s.Name == localCIDRs+IPv6.suffix():
			s.Kind = KindCIDRs
		case s.Name == knownPods+IPv4.suffix() || s.Name == knownPods+IPv6.suffix():
			s.Kind = KindPods
		case flags&unix.NFT_SET_INTERVAL != 0:
			s.Kind = KindPeers
		case keyType>>12 != 0:
			s.Kind = KindNamed
			keyType >>= 12
		case keyType>>6 != 0:
			s.Kind = KindSelf
			keyType >>= 6
		default:
			s.Kind = KindDrops
		}
		s.Family = familyOfType(keyType)
		out = append(out, s)
	}
	return out, nil
}

func familyOfType(magic uint32) Family {
	if magic&nftables.SetConcatTypeMask == nftables.TypeIP6Addr.GetNFTMagic() {
		return IPv6
	}
	return IPv4
}

// decodeElems turns kernel elements back into the ruleset's, with their
// counters when they have them.
func decodeElems(s *Set, kes []nftables.SetElement) ([]Elem, []Counter) {
	var out []Elem
	counters := map[Elem]Counter{}
	if s.interval() {
		type point struct {
			a   netip.Addr
			end bool
		}
		var pts []point
		for _, ke := range kes {
			a, ok := addrFromKey(ke.Key, s.Family)
			if ok {
				pts = append(pts, point{a, ke.IntervalEnd})
			}
		}
		sort.Slice(pts, func(i, j int) bool {
			if pts[i].a != pts[j].a {
				return pts[i].a.Less(pts[j].a)
			}
			return pts[i].end // an end sorts before a start at the same address
		})
		for i := 0; i < len(pts); i++ {
			if pts[i].end {
				continue // a leading end element (nft writes one at 0)
			}
			e := Elem{Addr: pts[i].a, End: lastOfFamily(s.Family)}
			if i+1 < len(pts) && pts[i+1].end {
				e.End = pts[i+1].a.Prev()
				i++
			}
			out = append(out, e)
		}
		return out, nil
	}
	for _, ke := range kes {
		a, ok := addrFromKey(ke.Key, s.Family)
		if !ok {
			continue
		}
		e := Elem{Addr: a}
		n := a.BitLen() / 8
		switch s.Kind {
		case KindNamed:
			if len(ke.Key) >= n+8 {
				e.Proto = modelProto(ke.Key[n])
				e.Port = binary.BigEndian.Uint16(ke.Key[n+4 : n+6])
			}
		case KindSelf:
			e.Addr2, _ = addrFromKey(ke.Key[n:], s.Family)
		case KindDispatch:
			e.Jump = VerdictChain(ke.Val)
		}
		if ke.Counter != nil {
			counters[e] = Counter{Packets: ke.Counter.Packets, Bytes: ke.Counter.Bytes}
		}
		out = append(out, e)
	}
	sortElems(out)
	var cs []Counter
	if s.Kind == KindDrops {
		cs = make([]Counter, len(out))
		for i, e := range out {
			cs[i] = counters[e]
		}
	}
	return out, cs
}

func lastOfFamily(f Family) netip.Addr {
	if f == IPv6 {
		return netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
	}
	return netip.MustParseAddr("255.255.255.255")
}

// VerdictChain returns the chain of a jump or goto verdict, from a verdict
// map element's data (its NFTA_DATA_VERDICT attributes, as google/nftables
// gives them in SetElement.Val), or "".
func VerdictChain(b []byte) string {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return ""
	}
	for ad.Next() {
		if ad.Type() == unix.NFTA_VERDICT_CHAIN {
			return ad.String()
		}
	}
	return ""
}

// decodeRule recognises the rule shapes exprs() writes; anything else is
// kept as Raw text, so that a foreign rule shows instead of vanishing.
func decodeRule(nr *nftables.Rule) Rule {
	var r Rule
	if c, ok := userdata.GetString(nr.UserData, userdata.TypeComment); ok {
		r.Comment = c
	}
	var loads []*expr.Payload // network header loads not yet consumed
	var l4 bool               // meta l4proto loaded (for a lookup)
	var limit *expr.Limit
	fail := func(why string) Rule {
		return Rule{Raw: fmt.Sprintf("# rule palisade cannot read (%s): %d expressions", why, len(nr.Exprs)), Comment: r.Comment}
	}
	ex := nr.Exprs
	for i := 0; i < len(ex); i++ {
		switch e := ex[i].(type) {
		case *expr.Meta:
			switch {
			case e.Key == expr.MetaKeyNFPROTO && i+1 < len(ex):
				cmp, ok := ex[i+1].(*expr.Cmp)
				if !ok || len(cmp.Data) != 1 {
					return fail("nfproto")
				}
				r.Family = IPv4
				if cmp.Data[0] == unix.NFPROTO_IPV6 {
					r.Family = IPv6
				}
				i++
			case e.Key == expr.MetaKeyL4PROTO && e.Register == reg1 && i+1 < len(ex):
				cmp, ok := ex[i+1].(*expr.Cmp)
				if !ok || len(cmp.Data) != 1 {
					return fail("l4proto")
				}
				r.Port = &PortMatch{Proto: modelProto(cmp.Data[0])}
				i++
			case e.Key == expr.MetaKeyL4PROTO:
				l4 = true
			default:
				return fail("meta")
			}
		case *expr.Ct:
			if e.Key != expr.CtKeySTATE || i+2 >= len(ex) {
				return fail("ct")
			}
			r.CtEstablished = true
			i += 2
		case *expr.Payload:
			if e.Base == expr.PayloadBaseNetworkHeader {
				loads = append(loads, e)
				continue
			}
			if e.Base == expr.PayloadBaseTransportHeader && e.Offset == 0 && e.Len == 1 &&
				r.Port != nil && r.Port.Proto == unix.IPPROTO_ICMPV6 && r.Port.First == 0 && i+1 < len(ex) {
				c, ok := ex[i+1].(*expr.Cmp)
				if !ok || c.Op != expr.CmpOpEq || len(c.Data) != 1 {
					return fail("icmpv6 type")
				}
				r.Port, r.ICMPv6 = nil, c.Data[0]
				i++
				continue
			}
			if e.Base != expr.PayloadBaseTransportHeader || e.Offset != 2 {
				return fail("payload")
			}
			if l4 { // part of a named-port key
				continue
			}
			if r.Port == nil || i+1 >= len(ex) {
				return fail("port")
			}
			c1, ok := ex[i+1].(*expr.Cmp)
			if !ok || len(c1.Data) != 2 {
				return fail("port")
			}
			r.Port.First = binary.BigEndian.Uint16(c1.Data)
			r.Port.Last = r.Port.First
			i++
			if c1.Op == expr.CmpOpGte && i+1 < len(ex) {
				if c2, ok := ex[i+1].(*expr.Cmp); ok && len(c2.Data) == 2 {
					r.Port.Last = binary.BigEndian.Uint16(c2.Data)
					i++
				}
			}
		case *expr.Lookup:
			switch {
			case e.IsDestRegSet && len(loads) == 1:
				r.Dispatch = &AddrMatch{Field: fieldOf(loads[0]), Set: e.SetName}
			case e.Invert && len(loads) == 1:
				r.NotAddr = &AddrMatch{Field: fieldOf(loads[0]), Set: e.SetName}
			case l4 && len(loads) == 1:
				r.Named = e.SetName
			case len(loads) == 2:
				r.Self = e.SetName
			case len(loads) == 1:
				r.Addr = &AddrMatch{Field: fieldOf(loads[0]), Set: e.SetName}
			default:
				return fail("lookup")
			}
			loads, l4 = nil, false
		case *expr.Limit:
			limit = e
		case *expr.Log:
			rate := uint32(0)
			if limit != nil {
				rate = uint32(limit.Rate)
			}
			r.Log = &Log{Prefix: string(e.Data), Group: e.Group, Rate: rate}
		case *expr.Counter:
			r.Counter = true
			r.Packets, r.Bytes = e.Packets, e.Bytes
		case *expr.Verdict:
			switch e.Kind {
			case expr.VerdictAccept:
				r.Verdict = VerdictAccept
			case expr.VerdictDrop:
				r.Verdict = VerdictDrop
			case expr.VerdictReturn:
				r.Verdict = VerdictReturn
			case expr.VerdictGoto:
				r.Verdict, r.Chain = VerdictGoto, e.Chain
			default:
				return fail("verdict")
			}
		case *expr.Bitwise, *expr.Cmp:
			return fail("stray comparison")
		default:
			return fail(strings.TrimPrefix(fmt.Sprintf("%T", e), "*expr."))
		}
	}
	return r
}

func fieldOf(p *expr.Payload) Field {
	if p.Offset == 16 || p.Offset == 24 {
		return Daddr
	}
	return Saddr
}
