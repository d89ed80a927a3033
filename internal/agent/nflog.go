package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/netns"
)

// DenyLogGroup is the NFLOG group the agent's drop rules log to when
// --log-denied is on (NFLOG groups are per network namespace).
const DenyLogGroup = 100

// DenyLogRate is the kernel's rate limit on logged drops, per pod-group
// chain, in packets per second.
const DenyLogRate = 20

// LogRecord is one packet delivered by NFLOG.
type LogRecord struct {
	// Prefix is the log rule's prefix: "palisade-drop CHAIN ".
	Prefix string
	// Payload is the packet from its network header, as much as was
	// copied.
	Payload []byte
}

// LogReader delivers NFLOG records. Read blocks until records arrive;
// after Close it returns an error.
type LogReader interface {
	Read() ([]LogRecord, error)
	Close() error
}

// ErrLogOverrun is returned by Read when the kernel dropped records
// because the socket's buffer was full; reading may go on.
var ErrLogOverrun = errors.New("nflog: receive buffer overrun, records lost")

// nfnetlink_log constants (linux/netfilter/nfnetlink_log.h).
const (
	nfnlSubsysULOG       = 4
	nfulnlMsgPacket      = 0
	nfulnlMsgConfig      = 1
	nfulaCfgCmd          = 1
	nfulaCfgMode         = 2
	nfulaCfgNlbufsiz     = 3
	nfulnlCfgCmdBind     = 1
	nfulnlCopyPacket     = 2
	nfulaPayload         = 9
	nfulaPrefix          = 10
	nflogCopyRange       = 128 // headers only: IPv6 + extension headers + ports
	nflogSocketBuffer    = 4 << 20
	nflogKernelBufferSiz = 64 << 10
)

// NFLOG reads one nfnetlink_log group in copy-packet mode.
type NFLOG struct {
	conn  *netlink.Conn
	group uint16
}

// OpenNFLOG binds NFLOG group in the network namespace at netnsPath ("" for
// the current one). Only one socket per namespace can bind a group.
func OpenNFLOG(netnsPath string, group uint16) (*NFLOG, error) {
	var conn *netlink.Conn
	dial := func() error {
		var err error
		conn, err = netlink.Dial(unix.NETLINK_NETFILTER, nil)
		return err
	}
	var err error
	if netnsPath != "" {
		err = netns.Do(netnsPath, dial)
	} else {
		err = dial()
	}
	if err != nil {
		return nil, fmt.Errorf("nflog: dial netfilter netlink: %w", err)
	}
	n := &NFLOG{conn: conn, group: group}
	if err := n.bind(); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.SetReadBuffer(nflogSocketBuffer); err != nil {
		conn.Close()
		return nil, fmt.Errorf("nflog: set read buffer: %w", err)
	}
	return n, nil
}

// bind binds the group and sets copy-packet mode, in one message.
func (n *NFLOG) bind() error {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(nfulaCfgCmd, []byte{nfulnlCfgCmdBind})
	mode := make([]byte, 6) // struct nfulnl_msg_config_mode: be32 range, u8 mode, pad
	binary.BigEndian.PutUint32(mode, nflogCopyRange)
	mode[4] = nfulnlCopyPacket
	ae.Bytes(nfulaCfgMode, mode)
	buf := make([]byte, 4)
	binary.BigEndian.PutUint32(buf, nflogKernelBufferSiz)
	ae.Bytes(nfulaCfgNlbufsiz, buf)
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	// struct nfgenmsg: family AF_UNSPEC, version 0, res_id (big endian) = group.
	data := append([]byte{unix.AF_UNSPEC, 0, byte(n.group >> 8), byte(n.group)}, attrs...)
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(nfnlSubsysULOG<<8 | nfulnlMsgConfig),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: data,
	}
	sent, err := n.conn.Send(req)
	if err != nil {
		return fmt.Errorf("nflog: bind group %d: %w", n.group, err)
	}
	// Packets may arrive before the ack: skip them.
	for {
		msgs, err := n.conn.Receive()
		if err != nil {
			return fmt.Errorf("nflog: bind group %d: %w", n.group, err)
		}
		for _, m := range msgs {
			if m.Header.Type == netlink.Error && m.Header.Sequence == sent.Header.Sequence {
				return nil // an ack: errors come back from Receive
			}
		}
	}
}

// Read returns the next records.
func (n *NFLOG) Read() ([]LogRecord, error) {
	msgs, err := n.conn.Receive()
	if err != nil {
		if errors.Is(err, unix.ENOBUFS) {
			return nil, ErrLogOverrun
		}
		return nil, err
	}
	return logRecords(msgs), nil
}

// logRecords returns the records of the NFULNL_MSG_PACKET messages in msgs
// (after each one's struct nfgenmsg), skipping anything else.
func logRecords(msgs []netlink.Message) []LogRecord {
	var out []LogRecord
	for _, m := range msgs {
		if m.Header.Type != netlink.HeaderType(nfnlSubsysULOG<<8|nfulnlMsgPacket) || len(m.Data) < 4 {
			continue
		}
		if rec, ok := parseLogAttrs(m.Data[4:]); ok {
			out = append(out, rec)
		}
	}
	return out
}

func parseLogAttrs(b []byte) (LogRecord, bool) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return LogRecord{}, false
	}
	var rec LogRecord
	for ad.Next() {
		switch ad.Type() {
		case nfulaPrefix:
			rec.Prefix = strings.TrimRight(string(ad.Bytes()), "\x00")
		case nfulaPayload:
			rec.Payload = ad.Bytes()
		}
	}
	return rec, ad.Err() == nil && rec.Payload != nil
}

// Close closes the socket, which unbinds the group.
func (n *NFLOG) Close() error { return n.conn.Close() }

// packet is what the deny log reads from a logged packet's headers.
type packet struct {
	Src, Dst         netip.Addr
	Proto            model.Protocol
	SrcPort, DstPort uint16 // 0 for other protocols, and non-first fragments
}

// parsePacket reads the IPv4 or IPv6 header and the TCP, UDP or SCTP
// ports (the first four bytes of each) from b.
func parsePacket(b []byte) (packet, bool) {
	var (
		p  packet
		l4 []byte
	)
	if len(b) < 1 {
		return p, false
	}
	switch b[0] >> 4 {
	case 4:
		ihl := int(b[0]&0x0f) * 4
		if len(b) < 20 || ihl < 20 {
			return p, false
		}
		p.Proto = model.Protocol(b[9])
		p.Src = netip.AddrFrom4([4]byte(b[12:16]))
		p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
		if binary.BigEndian.Uint16(b[6:8])&0x1fff == 0 && len(b) >= ihl {
			l4 = b[ihl:]
		}
	case 6:
		if len(b) < 40 {
			return p, false
		}
		p.Src = netip.AddrFrom16([16]byte(b[8:24]))
		p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
		next, off := b[6], 40
	ext:
		for range 8 {
			switch next {
			case 0, 43, 60: // hop-by-hop, routing, destination options
				if len(b) < off+2 {
					break ext
				}
				next, off = b[off], off+(int(b[off+1])+1)*8
			case 44: // fragment
				if len(b) < off+8 {
					break ext
				}
				if binary.BigEndian.Uint16(b[off+2:off+4])&0xfff8 != 0 {
					next, off = 255, len(b) // not the first fragment: no ports
					break ext
				}
				next, off = b[off], off+8
			case 51: // authentication header
				if len(b) < off+2 {
					break ext
				}
				next, off = b[off], off+(int(b[off+1])+2)*4
			default:
				break ext
			}
		}
		p.Proto = model.Protocol(next)
		if off <= len(b) {
			l4 = b[off:]
		}
	default:
		return p, false
	}
	switch p.Proto {
	case model.TCP, model.UDP, model.SCTP:
		if len(l4) >= 4 {
			p.SrcPort = binary.BigEndian.Uint16(l4[0:2])
			p.DstPort = binary.BigEndian.Uint16(l4[2:4])
		}
	}
	return p, true
}

// logPrefix is how the dataplane starts its NFLOG prefixes.
const logPrefix = "palisade-drop "

// chainOf returns the chain a log prefix names, and the direction its
// name says (ing-… or egr-…); or the unknown-pod guard's name for its
// drops, with the direction of the unknown address's traffic.
func chainOf(prefix string) (string, model.Direction, bool) {
	rest, ok := strings.CutPrefix(prefix, logPrefix)
	if !ok {
		return "", 0, false
	}
	chain, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
	switch {
	case strings.HasPrefix(chain, "ing-"), chain == dataplane.GuardDestination:
		return chain, model.Ingress, true
	case strings.HasPrefix(chain, "egr-"), chain == dataplane.GuardSource:
		return chain, model.Egress, true
	}
	return "", 0, false
}

// unknownPod is the reason of a deny line for the unknown-pod guard's
// drops: no policy decided.
const unknownPod = "unknown_pod_address"

// repeatWindow is how long a logged connection's retransmissions (TCP
// SYN retries, further UDP datagrams) stay out of the log.
const repeatWindow = 10 * time.Second

type flowKey struct {
	src, dst         netip.Addr
	proto            model.Protocol
	srcPort, dstPort uint16
	dir              model.Direction
}

// denyLog turns NFLOG records into log lines, one per denied connection.
type denyLog struct {
	a    *Agent
	seen map[flowKey]time.Time
}

func (a *Agent) denyLogLoop(ctx context.Context, r LogReader) {
	stop := context.AfterFunc(ctx, func() { r.Close() })
	defer stop()
	d := &denyLog{a: a, seen: map[flowKey]time.Time{}}
	for {
		recs, err := r.Read()
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrLogOverrun) {
			a.m.deniedLost.Inc()
			continue
		}
		if err != nil {
			a.log.Error("deny log: reading NFLOG", "error", err.Error())
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		for _, rec := range recs {
			d.record(ctx, rec)
		}
	}
}

// record logs one NFLOG record, unless it repeats a connection logged
// within repeatWindow.
func (d *denyLog) record(ctx context.Context, rec LogRecord) {
	a := d.a
	chain, dir, ok1 := chainOf(rec.Prefix)
	p, ok2 := parsePacket(rec.Payload)
	if !ok1 || !ok2 {
		a.m.deniedDropped.Inc()
		return
	}
	now := a.now()
	k := flowKey{p.Src, p.Dst, p.Proto, p.SrcPort, p.DstPort, dir}
	if t, ok := d.seen[k]; ok && now.Sub(t) < repeatWindow {
		a.m.deniedDropped.Inc()
		return
	}
	if len(d.seen) >= 4096 {
		for fk, t := range d.seen {
			if now.Sub(t) >= repeatWindow {
				delete(d.seen, fk)
			}
		}
	}
	d.seen[k] = now

	var (
		src, dst endpointInfo
		pods     model.Key
		policies []string
		cluster  string
	)
	a.withEngine(func(e *engine.Engine) {
		src, dst = endpointOf(e, p.Src), endpointOf(e, p.Dst)
		self := src
		if dir == model.Ingress {
			self = dst
		}
		if self.pod != nil {
			pods = self.pod.Key()
		}
		// A cluster policy's Deny rule drops in that policy's own chain:
		// it decided, not the NetworkPolicies isolating the pod.
		if k, _, ok := dataplane.DenyChainPolicy(e, chain); ok {
			cluster = k.String()
		} else if self.pod != nil {
			for _, pol := range e.Isolating(pods, dir) {
				policies = append(policies, pol.Key.String())
			}
		}
	})
	attrs := []slog.Attr{
		slog.String("direction", dirWord(dir)),
		src.attr("src"),
		dst.attr("dst"),
		slog.String("protocol", p.Proto.String()),
		slog.Int("dst_port", int(p.DstPort)),
	}
	if pods != (model.Key{}) {
		attrs = append(attrs, slog.String("pod", pods.String()))
	}
	switch {
	case chain == dataplane.GuardSource || chain == dataplane.GuardDestination:
		attrs = append(attrs, slog.String("reason", unknownPod))
	case cluster != "":
		attrs = append(attrs, slog.String("cluster_policy", cluster))
	default:
		attrs = append(attrs, slog.Any("policies", policies))
	}
	attrs = append(attrs, slog.String("chain", chain))
	a.log.LogAttrs(ctx, slog.LevelInfo, "connection denied", attrs...)
	a.m.denied.Inc()
}

type endpointInfo struct {
	ip  netip.Addr
	pod *model.Pod
}

func endpointOf(e *engine.Engine, ip netip.Addr) endpointInfo {
	return endpointInfo{ip: ip, pod: e.PodByIP(ip)}
}

// attr renders an endpoint as a group: namespace and pod when it is a
// pod, and its IP.
func (ep endpointInfo) attr(name string) slog.Attr {
	var as []any
	if ep.pod != nil {
		as = append(as, slog.String("namespace", ep.pod.Namespace), slog.String("pod", ep.pod.Name))
	}
	as = append(as, slog.String("ip", ep.ip.String()))
	return slog.Group(name, as...)
}
