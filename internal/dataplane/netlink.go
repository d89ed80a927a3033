package dataplane

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// This file translates the ruleset's plain objects into google/nftables
// objects and bytecode, following ../../shared/notes/google-nftables.md:
// `meta nfproto` before every address load, concatenated keys padded to
// registers, interval sets as start and end elements, native-endian
// ct state, log with its key bits, comments as userdata.

// Registers as nft numbers them: 1 is the first 128-bit register, 9 and
// up the 32-bit ones (9 is the second 32-bit word of register 1).
const (
	reg1   = 1
	reg2   = 2
	reg32b = 9  // second 32-bit word
	reg32c = 10 // third 32-bit word
	reg32f = 13 // second word of register 2
)

func nfproto(f Family) byte {
	if f == IPv6 {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}

// addrPayload loads an address of the packet into reg.
func addrPayload(fam Family, field Field, reg uint32) *expr.Payload {
	p := &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
	if fam == IPv6 {
		p.Offset, p.Len = 8, 16
	}
	if field == Daddr {
		p.Offset += p.Len
	}
	return p
}

func be16(v uint16) []byte {
	b := make([]byte, 2)
	binary.BigEndian.PutUint16(b, v)
	return b
}

// exprs returns the port match's bytecode: `meta l4proto P` and, for a
// port or range, `th dport`.
func (pm *PortMatch) exprs() []expr.Any {
	out := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{byte(pm.Proto)}},
	}
	if pm.First == 0 {
		return out
	}
	out = append(out, &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
	if pm.First == pm.Last {
		return append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(pm.First)})
	}
	return append(out,
		&expr.Cmp{Op: expr.CmpOpGte, Register: reg1, Data: be16(pm.First)},
		&expr.Cmp{Op: expr.CmpOpLte, Register: reg1, Data: be16(pm.Last)},
	)
}

// exprs returns the rule's bytecode, in the order nft writes for the
// rule's text (String), so that `nft list` shows exactly that text.
func (r *Rule) exprs() []expr.Any {
	var out []expr.Any
	if r.Port != nil && r.Addr != nil {
		// The port first: a cheap comparison that fails for most rules of
		// a chain (each allows its own ports) before the set lookup.
		out = append(out, r.Port.exprs()...)
	}
	if r.Family != FamilyAny {
		out = append(out,
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{nfproto(r.Family)}},
		)
	}
	if r.CtEstablished {
		mask := make([]byte, 4)
		binary.NativeEndian.PutUint32(mask, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
		out = append(out,
			&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
		)
	}
	if r.Named != "" {
		// The named ports before the peers (ingress rules have both): the
		// set of this node's target pods and their ports is small and
		// exact, and most packets miss it, while a peer set can be large
		// and an interval set costs a binary search.
		protoReg, portReg := uint32(reg32b), uint32(reg32c)
		if r.Family == IPv6 {
			protoReg, portReg = reg2, reg32f
		}
		out = append(out,
			addrPayload(r.Family, Daddr, reg1),
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: protoReg},
			&expr.Payload{DestRegister: portReg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: reg1, SetName: r.Named},
		)
	}
	if r.Addr != nil {
		out = append(out,
			addrPayload(r.Family, r.Addr.Field, reg1),
			&expr.Lookup{SourceRegister: reg1, SetName: r.Addr.Set},
		)
	}
	if r.NotAddr != nil {
		out = append(out,
			addrPayload(r.Family, r.NotAddr.Field, reg1),
			&expr.Lookup{SourceRegister: reg1, SetName: r.NotAddr.Set, Invert: true},
		)
	}
	if r.Self != "" {
		second := uint32(reg32b)
		if r.Family == IPv6 {
			second = reg2
		}
		out = append(out,
			addrPayload(r.Family, Saddr, reg1),
			addrPayload(r.Family, Daddr, second),
			&expr.Lookup{SourceRegister: reg1, SetName: r.Self},
		)
	}
	if r.Port != nil && r.Addr == nil {
		out = append(out, r.Port.exprs()...)
	}
	if r.ICMPv6 != 0 {
		out = append(out,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.IPPROTO_ICMPV6}},
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{r.ICMPv6}},
		)
	}
	if r.Dispatch != nil {
		out = append(out,
			addrPayload(r.Family, r.Dispatch.Field, reg1),
			&expr.Lookup{SourceRegister: reg1, SetName: r.Dispatch.Set, DestRegister: 0, IsDestRegSet: true},
		)
	}
	if r.Log != nil {
		out = append(out,
			&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(r.Log.Rate), Unit: expr.LimitTimeSecond, Burst: 5},
			&expr.Log{Key: 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_GROUP, Group: r.Log.Group, Data: []byte(r.Log.Prefix)},
		)
	}
	if r.Counter {
		out = append(out, &expr.Counter{})
	}
	switch r.Verdict {
	case VerdictAccept:
		out = append(out, &expr.Verdict{Kind: expr.VerdictAccept})
	case VerdictDrop:
		out = append(out, &expr.Verdict{Kind: expr.VerdictDrop})
	case VerdictReturn:
		out = append(out, &expr.Verdict{Kind: expr.VerdictReturn})
	case VerdictGoto:
		out = append(out, &expr.Verdict{Kind: expr.VerdictGoto, Chain: r.Chain})
	}
	return out
}

func (r *Rule) userData() []byte {
	if r.Comment == "" {
		return nil
	}
	return userdata.AppendString(nil, userdata.TypeComment, r.Comment)
}

// nftSet returns the set's google/nftables definition.
func (s *Set) nftSet(t *nftables.Table, id uint32) *nftables.Set {
	ip := nftables.TypeIPAddr
	if s.Family == IPv6 {
		ip = nftables.TypeIP6Addr
	}
	ns := &nftables.Set{Table: t, ID: id, Name: s.Name, KeyType: ip, Comment: s.Comment}
	switch s.Kind {
	case KindPeers, KindCIDRs:
		ns.Interval = true
	case KindNamed:
		ns.KeyType = nftables.MustConcatSetType(ip, nftables.TypeInetProto, nftables.TypeInetService)
		ns.Concatenation = true
	case KindSelf:
		ns.KeyType = nftables.MustConcatSetType(ip, ip)
		ns.Concatenation = true
	case KindDrops:
		ns.Counter = true
	case KindDispatch:
		ns.IsMap = true
		ns.DataType = nftables.TypeVerdict
	}
	return ns
}

// nftElems returns the kernel elements for es: one each, except peer
// ranges, which are a start element and (unless the range runs to the
// last address) an interval-end element at the address after it.
// For deletes, map elements go without their data (the key names them).
//
// The keys are cut from one buffer: an allocation per key was a tenth of
// what an agent allocated per policy change.
func (s *Set) nftElems(es []Elem, forDelete bool) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(es))
	buf := make([]byte, 0, 32*len(es)) // the longest: two IPv6 addresses
	key := func(start int) []byte { return buf[start:len(buf):len(buf)] }
	for _, e := range es {
		start := len(buf)
		switch s.Kind {
		case KindPeers, KindCIDRs:
			buf = appendAddr(buf, e.Addr)
			out = append(out, nftables.SetElement{Key: key(start)})
			end := e.End
			if !end.IsValid() {
				end = e.Addr
			}
			if next := end.Next(); next.IsValid() {
				start = len(buf)
				buf = appendAddr(buf, next)
				out = append(out, nftables.SetElement{Key: key(start), IntervalEnd: true})
			}
		case KindNamed:
			buf = appendAddr(buf, e.Addr)
			buf = append(buf, byte(e.Proto), 0, 0, 0, byte(e.Port>>8), byte(e.Port), 0, 0)
			out = append(out, nftables.SetElement{Key: key(start)})
		case KindSelf:
			buf = appendAddr(appendAddr(buf, e.Addr), e.Addr2)
			out = append(out, nftables.SetElement{Key: key(start)})
		case KindDispatch:
			buf = appendAddr(buf, e.Addr)
			el := nftables.SetElement{Key: key(start)}
			if !forDelete {
				el.VerdictData = &expr.Verdict{Kind: expr.VerdictJump, Chain: e.Jump}
			}
			out = append(out, el)
		default:
			buf = appendAddr(buf, e.Addr)
			out = append(out, nftables.SetElement{Key: key(start)})
		}
	}
	return out
}

// appendAddr appends a's bytes as AsSlice gives them (4 for IPv4, 16
// otherwise).
func appendAddr(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		x := a.As4()
		return append(b, x[:]...)
	}
	x := a.As16()
	return append(b, x[:]...)
}

func nftChain(t *nftables.Table, c *Chain) *nftables.Chain {
	nc := &nftables.Chain{Name: c.Name, Table: t}
	switch c.Hook {
	case HookForward, HookInput:
		nc.Type = nftables.ChainTypeFilter
		nc.Priority = nftables.ChainPriorityFilter
		nc.Hooknum = nftables.ChainHookForward
		if c.Hook == HookInput {
			nc.Hooknum = nftables.ChainHookInput
		}
		accept := nftables.ChainPolicyAccept
		nc.Policy = &accept
	}
	return nc
}

// addrFromKey reads an address of family fam from the start of b.
func addrFromKey(b []byte, fam Family) (netip.Addr, bool) {
	n := 4
	if fam == IPv6 {
		n = 16
	}
	if len(b) < n {
		return netip.Addr{}, false
	}
	return netip.AddrFromSlice(b[:n])
}
