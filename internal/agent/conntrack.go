package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// Flow is a conntrack entry as policy sees it: the original direction's
// source, and its destination after DNAT (the reply's source), so that a
// connection to a Service is judged by the pod that serves it, as the
// forward hook judged its first packet.
type Flow struct {
	Proto   model.Protocol
	Src     netip.Addr
	Dst     netip.Addr
	DstPort uint16
}

// FlowTable is a node's conntrack table.
type FlowTable interface {
	// CutFlows cuts the entries for which doomed returns true, so that
	// the rest of their traffic is judged by policy as new connections
	// again, and returns how many it cut.
	CutFlows(doomed func(Flow) bool) (int, error)
}

// Conntrack is the conntrack table of a network namespace, through
// netlink. CutFlows streams the table: each entry is judged and cut as
// the dump delivers it, so memory does not grow with the table (the
// netlink library's ConntrackTableList holds the whole dump, twice:
// raw and parsed).
type Conntrack struct {
	dump, act *nl.SocketHandle // the dump, and the deletes and updates sent during it
}

// OpenConntrack opens the conntrack table of the network namespace at
// netnsPath ("" for the current one).
func OpenConntrack(netnsPath string) (*Conntrack, error) {
	ns := vnetns.None()
	if netnsPath != "" {
		h, err := vnetns.GetFromPath(netnsPath)
		if err != nil {
			return nil, fmt.Errorf("conntrack: %w", err)
		}
		defer h.Close()
		ns = h
	}
	c := &Conntrack{}
	for _, sh := range []**nl.SocketHandle{&c.dump, &c.act} {
		s, err := nl.GetNetlinkSocketAt(ns, vnetns.None(), unix.NETLINK_NETFILTER)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("conntrack: %w", err)
		}
		tv := unix.NsecToTimeval(int64(10 * time.Second))
		s.SetReceiveTimeout(&tv)
		s.SetSendTimeout(&tv)
		*sh = &nl.SocketHandle{Socket: s}
	}
	return c, nil
}

// Close releases the netlink sockets.
func (c *Conntrack) Close() {
	for _, sh := range []*nl.SocketHandle{c.dump, c.act} {
		if sh != nil {
			sh.Close()
		}
	}
}

// TCP conntrack states (enum tcp_conntrack, linux/netfilter/nf_conntrack_tcp.h).
const (
	tcpNone        = 0
	tcpSynSent     = 1
	tcpSynRecv     = 2
	tcpEstablished = 3
	tcpFinWait     = 4
	tcpCloseWait   = 5
	tcpLastAck     = 6
	tcpTimeWait    = 7
	tcpClose       = 8
)

// cutAction is how a doomed conntrack entry is cut.
type cutAction uint8

const (
	// cutDelete deletes the entry: the next packet of the original
	// direction is a new connection, which policy denies.
	cutDelete cutAction = iota
	// cutBlock keeps a TCP entry but moves it back to SYN_SENT. Deleting
	// it is not enough: with nf_conntrack_tcp_loose (the default), the
	// next packet from the other end (a retransmission, an ACK) starts a
	// new entry in the reverse direction, which policy allows (the
	// responder may reach the initiator), and the initiator's packets
	// then pass as its replies: the connection lives on. In SYN_SENT, the
	// original direction's ACKs and data are invalid for conntrack, so
	// they are judged by policy as new connections and dropped; the
	// entry, still there, prevents the pickup. It expires with the
	// timeout it had, since invalid or ignored packets do not refresh it.
	cutBlock
	// cutSkip leaves the entry: a TCP entry in SYN_SENT is one this
	// agent blocked, or a handshake whose SYN passed the old rules.
	cutSkip
)

// cutActionFor returns how to cut an entry of proto, in TCP state
// tcpState (for TCP).
func cutActionFor(proto model.Protocol, tcpState uint8) cutAction {
	if proto != model.TCP {
		// UDP and SCTP: deleted. A UDP entry restarted by the other end
		// is a flow that policy allows in that direction, with replies;
		// SCTP entries start only from an INIT.
		return cutDelete
	}
	switch tcpState {
	case tcpSynSent:
		return cutSkip
	case tcpSynRecv, tcpEstablished, tcpFinWait, tcpCloseWait, tcpLastAck:
		return cutBlock
	}
	return cutDelete // closing or closed: nothing to pick up
}

// maxPasses bounds the dumps of one CutFlows per family. A dump that
// deletes entries as it goes may skip some (the kernel resumes a dump
// after the last entry it sent, which may be gone), and a dump may be
// interrupted (NLM_F_DUMP_INTR: the table changed under it; EINTR): the
// table is dumped again until a pass deletes nothing and completes.
const maxPasses = 4

// CutFlows cuts the TCP, UDP and SCTP entries, of both families, for
// which doomed returns true (see cutAction). It streams the table: doomed
// is called as entries arrive, and may take locks.
func (c *Conntrack) CutFlows(doomed func(Flow) bool) (int, error) {
	return cutPasses(func(fam uint8) (sweepStats, error) { return c.sweep(fam, doomed) })
}

// cutPasses runs sweep on each family until a pass completes without
// deleting anything (maxPasses at most), and sums what they cut.
func cutPasses(sweep func(fam uint8) (sweepStats, error)) (int, error) {
	var (
		n    int
		errs []error
	)
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		for pass := 1; ; pass++ {
			st, err := sweep(fam)
			n += st.cut
			errs = append(errs, st.errs...)
			interrupted := errors.Is(err, netlink.ErrDumpInterrupted) || errors.Is(err, unix.EINTR)
			if err != nil && !interrupted {
				errs = append(errs, fmt.Errorf("conntrack: dump: %w", err))
				break
			}
			if !interrupted && st.deleted == 0 {
				break
			}
			if pass == maxPasses {
				if err != nil {
					errs = append(errs, fmt.Errorf("conntrack: dump, %d passes: %w", pass, err))
				}
				break
			}
		}
	}
	return n, errors.Join(errs...)
}

// sweepStats are what one pass did.
type sweepStats struct {
	cut, deleted int
	errs         []error
}

// maxSweepErrors bounds the errors one pass keeps.
const maxSweepErrors = 8

// sweep dumps the table of family fam once, cutting the doomed entries as
// they come.
func (c *Conntrack) sweep(fam uint8, doomed func(Flow) bool) (sweepStats, error) {
	var st sweepStats
	fail := func(err error) {
		if len(st.errs) < maxSweepErrors {
			st.errs = append(st.errs, err)
		}
	}
	req := ctRequest(nl.IPCTNL_MSG_CT_GET, unix.NLM_F_DUMP, fam)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_NETFILTER: c.dump}
	err := req.ExecuteIter(unix.NETLINK_NETFILTER, 0, func(msg []byte) bool {
		e, ok := parseEntry(msg)
		if !ok || !doomed(e.flow) {
			return true
		}
		switch cutActionFor(e.flow.Proto, e.tcpState) {
		case cutSkip:
			return true
		case cutBlock:
			err := c.send(nl.IPCTNL_MSG_CT_NEW, fam, e, true)
			if err == nil {
				st.cut++
				return true
			}
			if errors.Is(err, unix.ENOENT) {
				return true // gone meanwhile
			}
			// Not updatable (an old kernel): delete it, which cuts it
			// unless the other end talks first.
			fail(fmt.Errorf("conntrack: blocking %s: %w", e.flow, err))
		}
		switch err := c.send(nl.IPCTNL_MSG_CT_DELETE, fam, e, false); {
		case err == nil:
			st.cut++
			st.deleted++
		case errors.Is(err, unix.ENOENT):
		default:
			fail(fmt.Errorf("conntrack: deleting %s: %w", e.flow, err))
		}
		return true
	})
	return st, err
}

func ctRequest(op, flags int, fam uint8) *nl.NetlinkRequest {
	req := nl.NewNetlinkRequest(int(netlink.ConntrackTable)<<8|op, flags)
	req.AddData(&nl.Nfgenmsg{NfgenFamily: fam, Version: nl.NFNETLINK_V0})
	return req
}

// send deletes entry e, or with block moves it (TCP) to SYN_SENT: the
// request names it by its original tuple and zone, and carries nothing
// else to change.
func (c *Conntrack) send(op int, fam uint8, e *ctEntry, block bool) error {
	req := ctRequest(op, unix.NLM_F_ACK, fam)
	req.AddRawData(e.orig)
	if e.zone != nil {
		req.AddRawData(e.zone)
	}
	if block {
		req.AddRawData(synSentProtoinfo)
	}
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_NETFILTER: c.act}
	_, err := req.Execute(unix.NETLINK_NETFILTER, 0)
	return err
}

func (f Flow) String() string {
	return fmt.Sprintf("%s %s -> %s", f.Proto, f.Src, netip.AddrPortFrom(f.Dst, f.DstPort))
}

// ctnetlink attributes (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctaTupleOrig  = 1
	ctaTupleReply = 2
	ctaProtoinfo  = 4
	ctaZone       = 18

	ctaTupleIP    = 1
	ctaTupleProto = 2

	ctaIPv4Src = 1
	ctaIPv4Dst = 2
	ctaIPv6Src = 3
	ctaIPv6Dst = 4

	ctaProtoNum     = 1
	ctaProtoSrcPort = 2
	ctaProtoDstPort = 3

	ctaProtoinfoTCP      = 1
	ctaProtoinfoTCPState = 1

	nlaNested   = 1 << 15
	nlaTypeMask = 1<<14 - 1
)

// nlattr encodes a netlink attribute of type typ whose payload is the
// concatenation of payload.
func nlattr(typ uint16, payload ...[]byte) []byte {
	n := 4
	for _, p := range payload {
		n += len(p)
	}
	b := make([]byte, 4, (n+3)&^3)
	nl.NativeEndian().PutUint16(b[0:], uint16(n))
	nl.NativeEndian().PutUint16(b[2:], typ)
	for _, p := range payload {
		b = append(b, p...)
	}
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// synSentProtoinfo sets a TCP entry's state to SYN_SENT.
var synSentProtoinfo = nlattr(ctaProtoinfo|nlaNested,
	nlattr(ctaProtoinfoTCP|nlaNested, nlattr(ctaProtoinfoTCPState, []byte{tcpSynSent})))

// eachAttr calls fn with the type (flags masked off), the whole encoded
// attribute (with its padding, to be sent on as is) and its payload, for
// every attribute in b.
func eachAttr(b []byte, fn func(typ uint16, attr, val []byte)) {
	for len(b) >= 4 {
		n := int(nl.NativeEndian().Uint16(b[0:]))
		if n < 4 || n > len(b) {
			return
		}
		padded := min((n+3)&^3, len(b))
		fn(nl.NativeEndian().Uint16(b[2:])&nlaTypeMask, b[:padded], b[4:n])
		b = b[padded:]
	}
}

// ctEntry is what the sweep reads of a conntrack entry. orig and zone are
// the encoded attributes, valid while the message is.
type ctEntry struct {
	flow       Flow
	tcpState   uint8
	orig, zone []byte
}

// tuple is one direction of an entry.
type tuple struct {
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16
}

func parseTuple(b []byte) (t tuple) {
	eachAttr(b, func(typ uint16, _, val []byte) {
		switch typ {
		case ctaTupleIP:
			eachAttr(val, func(typ uint16, _, v []byte) {
				switch typ {
				case ctaIPv4Src, ctaIPv6Src:
					t.src, _ = netip.AddrFromSlice(v)
				case ctaIPv4Dst, ctaIPv6Dst:
					t.dst, _ = netip.AddrFromSlice(v)
				}
			})
		case ctaTupleProto:
			eachAttr(val, func(typ uint16, _, v []byte) {
				switch {
				case typ == ctaProtoNum && len(v) >= 1:
					t.proto = v[0]
				case typ == ctaProtoSrcPort && len(v) >= 2:
					t.sport = binary.BigEndian.Uint16(v)
				case typ == ctaProtoDstPort && len(v) >= 2:
					t.dport = binary.BigEndian.Uint16(v)
				}
			})
		}
	})
	return t
}

// parseEntry reads a dump message (nfgenmsg, then attributes): the flow
// as policy sees it (the original direction's source, and its
// destination after DNAT: the reply's source), for TCP, UDP and SCTP.
func parseEntry(msg []byte) (*ctEntry, bool) {
	if len(msg) < 4 {
		return nil, false
	}
	var (
		e          ctEntry
		orig, repl tuple
	)
	eachAttr(msg[4:], func(typ uint16, attr, val []byte) {
		switch typ {
		case ctaTupleOrig:
			e.orig, orig = attr, parseTuple(val)
		case ctaTupleReply:
			repl = parseTuple(val)
		case ctaZone:
			e.zone = attr
		case ctaProtoinfo:
			eachAttr(val, func(typ uint16, _, v []byte) {
				if typ == ctaProtoinfoTCP {
					eachAttr(v, func(typ uint16, _, s []byte) {
						if typ == ctaProtoinfoTCPState && len(s) >= 1 {
							e.tcpState = s[0]
						}
					})
				}
			})
		}
	})
	proto := model.Protocol(orig.proto)
	switch proto {
	case model.TCP, model.UDP, model.SCTP:
	default:
		return nil, false
	}
	if e.orig == nil || !orig.src.IsValid() || !repl.src.IsValid() {
		return nil, false
	}
	e.flow = Flow{Proto: proto, Src: orig.src.Unmap(), Dst: repl.src.Unmap(), DstPort: repl.sport}
	return &e, true
}

// sweepLoop runs the conntrack sweeps the loop asks for (sweepNow), one
// at a time, outside the loop: a sweep reads the whole table, which must
// hold neither the loop nor the engine. Requests made while a sweep runs
// coalesce into one more sweep after it.
func (a *Agent) sweepLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.sweepReq:
		}
		a.sweepFlows()
		a.sweepsPending.Add(-1)
	}
}

// sweepNow asks sweepLoop for a sweep.
func (a *Agent) sweepNow() {
	a.sweepsPending.Add(1)
	select {
	case a.sweepReq <- struct{}{}:
	default: // one is pending already
		a.sweepsPending.Add(-1)
	}
}

// sweepFlows cuts the flows that policy now denies and that involve a
// pod of this node. The engine is locked for each entry's decision only,
// so the loop goes on applying events during a sweep; an entry is judged
// by the state of that moment, and a change during the sweep asks for
// another one.
func (a *Agent) sweepFlows() {
	n, err := a.opts.Flows.CutFlows(func(f Flow) bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.deniedFlow(a.e, f)
	})
	if err != nil {
		a.m.flowErrors.Inc()
		a.log.Error("conntrack: deleting denied flows", "error", err.Error())
	}
	if n > 0 {
		a.m.flowsDeleted.Add(float64(n))
		a.log.Info("conntrack: cut established flows that policy now denies", "flows", n)
	}
}

// deniedFlow reports whether policy denies f as a new connection and f
// involves a pod of this node (whose dataplane would have judged it).
func (a *Agent) deniedFlow(e *engine.Engine, f Flow) bool {
	from, to := e.EndpointFor(f.Src), e.EndpointFor(f.Dst)
	if !a.isLocal(from.Pod) && !a.isLocal(to.Pod) {
		return false
	}
	return !e.Allowed(engine.Conn{From: from, To: to, Protocol: f.Proto, Port: f.DstPort})
}
