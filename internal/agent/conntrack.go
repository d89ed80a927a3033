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
	// DeleteFlows deletes the entries for which doomed returns true and
	// returns how many it deleted.
	DeleteFlows(doomed func(Flow) bool) (int, error)
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

// DeleteFlows deletes the TCP, UDP and SCTP entries, of both families,
// for which doomed returns true.
func (c *Conntrack) DeleteFlows(doomed func(Flow) bool) (int, error) {
	f := flowFilter(doomed)
	var (
		n    uint
		errs []error
	)
	for _, fam := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		k, err := c.h.ConntrackDeleteFilters(netlink.ConntrackTable, fam, f)
		n += k
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			errs = append(errs, err)
		}
	}
	return int(n), errors.Join(errs...)
}

type flowFilter func(Flow) bool

func (f flowFilter) MatchConntrackFlow(cf *netlink.ConntrackFlow) bool {
	fl, ok := flowOf(cf)
	return ok && f(fl)
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

// sweepFlows deletes the flows that policy now denies and that involve a
// pod of this node. It runs in the loop, after a successful sync.
func (a *Agent) sweepFlows() {
	a.mu.Lock()
	defer a.mu.Unlock()
	n, err := a.opts.Flows.DeleteFlows(func(f Flow) bool { return a.deniedFlow(a.e, f) })
	if err != nil {
		a.m.flowErrors.Inc()
		a.log.Error("conntrack: deleting denied flows", "error", err.Error())
	}
	if n > 0 {
		a.m.flowsDeleted.Add(float64(n))
		a.log.Info("conntrack: deleted established flows that policy now denies", "flows", n)
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
