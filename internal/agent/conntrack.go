package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/lab/netns"
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
// netlink.
type Conntrack struct {
	h     *netlink.Handle
	close func()
}

// OpenConntrack opens the conntrack table of the network namespace at
// netnsPath ("" for the current one).
func OpenConntrack(netnsPath string) (*Conntrack, error) {
	if netnsPath == "" {
		h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
		if err != nil {
			return nil, fmt.Errorf("conntrack: %w", err)
		}
		return &Conntrack{h: h, close: h.Close}, nil
	}
	nh, err := netns.NewHandle(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("conntrack: %w", err)
	}
	return &Conntrack{h: nh.Handle, close: nh.Close}, nil
}

// Close releases the netlink sockets.
func (c *Conntrack) Close() { c.close() }

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

// tupleKey identifies a conntrack entry by its original tuple and zone.
type tupleKey struct {
	src, dst     netip.Addr
	proto        uint8
	sport, dport uint16
	zone         uint16
}

func keyOf(cf *netlink.ConntrackFlow) tupleKey {
	src, _ := addrOf(cf.Forward.SrcIP)
	dst, _ := addrOf(cf.Forward.DstIP)
	return tupleKey{src, dst, cf.Forward.Protocol, cf.Forward.SrcPort, cf.Forward.DstPort, cf.Zone}
}

// CutFlows cuts the TCP, UDP and SCTP entries, of both families, for
// which doomed returns true (see cutAction).
func (c *Conntrack) CutFlows(doomed func(Flow) bool) (int, error) {
	var (
		n    int
		errs []error
	)
	for _, fam := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		flows, err := c.h.ConntrackTableList(netlink.ConntrackTable, fam)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			errs = append(errs, err)
			continue
		}
		del := map[tupleKey]bool{}
		for _, cf := range flows {
			f, ok := flowOf(cf)
			if !ok || !doomed(f) {
				continue
			}
			var state uint8
			if p, ok := cf.ProtoInfo.(*netlink.ProtoInfoTCP); ok {
				state = p.State
			}
			switch cutActionFor(f.Proto, state) {
			case cutSkip:
				continue
			case cutBlock:
				upd := *cf
				upd.ProtoInfo = &netlink.ProtoInfoTCP{State: tcpSynSent}
				err := c.h.ConntrackUpdate(netlink.ConntrackTable, fam, &upd)
				if err == nil {
					n++
					continue
				}
				if errors.Is(err, unix.ENOENT) {
					continue // gone meanwhile
				}
				// Not updatable (a zone, an old kernel): delete it,
				// which cuts it unless the other end talks first.
				errs = append(errs, fmt.Errorf("conntrack: blocking %s: %w", f, err))
			}
			del[keyOf(cf)] = true
		}
		if len(del) == 0 {
			continue
		}
		k, err := c.h.ConntrackDeleteFilters(netlink.ConntrackTable, fam, tupleFilter(del))
		n += int(k)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// tupleFilter matches the entries of a set of original tuples.
type tupleFilter map[tupleKey]bool

func (f tupleFilter) MatchConntrackFlow(cf *netlink.ConntrackFlow) bool { return f[keyOf(cf)] }

func (f Flow) String() string {
	return fmt.Sprintf("%s %s -> %s", f.Proto, f.Src, netip.AddrPortFrom(f.Dst, f.DstPort))
}

func flowOf(cf *netlink.ConntrackFlow) (Flow, bool) {
	proto := model.Protocol(cf.Forward.Protocol)
	switch proto {
	case model.TCP, model.UDP, model.SCTP:
	default:
		return Flow{}, false
	}
	src, ok1 := addrOf(cf.Forward.SrcIP)
	dst, ok2 := addrOf(cf.Reverse.SrcIP)
	if !ok1 || !ok2 {
		return Flow{}, false
	}
	return Flow{Proto: proto, Src: src, Dst: dst, DstPort: cf.Reverse.SrcPort}, true
}

func addrOf(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// sweepFlows cuts the flows that policy now denies and that involve a
// pod of this node. It runs in the loop, after a successful sync.
func (a *Agent) sweepFlows() {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, err := a.opts.Flows.CutFlows(func(f Flow) bool { return a.deniedFlow(a.e, f) })
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
