package agent

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/palisade-net/palisade/internal/model"
)

func TestCutAction(t *testing.T) {
	for _, tc := range []struct {
		proto model.Protocol
		state uint8
		want  cutAction
	}{
		{model.TCP, tcpEstablished, cutBlock},
		{model.TCP, tcpSynRecv, cutBlock},
		{model.TCP, tcpFinWait, cutBlock},
		{model.TCP, tcpCloseWait, cutBlock},
		{model.TCP, tcpLastAck, cutBlock},
		{model.TCP, tcpSynSent, cutSkip}, // blocked already
		{model.TCP, tcpTimeWait, cutDelete},
		{model.TCP, tcpClose, cutDelete},
		{model.TCP, tcpNone, cutDelete},
		{model.UDP, 0, cutDelete},
		{model.SCTP, 0, cutDelete},
	} {
		if got := cutActionFor(tc.proto, tc.state); got != tc.want {
			t.Errorf("cutActionFor(%s, %d) = %d, want %d", tc.proto, tc.state, got, tc.want)
		}
	}
}

// A flow is judged by its original source and its destination after
// DNAT (the reply's source): a connection to a Service's ClusterIP is
// the connection to the pod that serves it. The dump message is parsed
// as ctnetlink encodes it (nested attributes, ports big-endian).
func TestParseEntry(t *testing.T) {
	be16 := func(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
	tuple := func(typ uint16, src, dst string, proto uint8, sport, dport uint16) []byte {
		s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
		srcT, dstT := uint16(ctaIPv4Src), uint16(ctaIPv4Dst)
		if s.Is6() {
			srcT, dstT = ctaIPv6Src, ctaIPv6Dst
		}
		return nlattr(typ|nlaNested,
			nlattr(ctaTupleIP|nlaNested, nlattr(srcT, s.AsSlice()), nlattr(dstT, d.AsSlice())),
			nlattr(ctaTupleProto|nlaNested, nlattr(ctaProtoNum, []byte{proto}), nlattr(ctaProtoSrcPort, be16(sport)), nlattr(ctaProtoDstPort, be16(dport))))
	}
	orig := tuple(ctaTupleOrig, "10.0.1.1", "10.96.0.10", 6, 40000, 80)
	zone := nlattr(ctaZone, be16(3))
	msg := slices.Concat([]byte{2, 0, 0, 0}, orig,
		tuple(ctaTupleReply, "10.0.0.1", "10.0.1.1", 6, 8080, 40000),
		nlattr(ctaProtoinfo|nlaNested, nlattr(ctaProtoinfoTCP|nlaNested, nlattr(ctaProtoinfoTCPState, []byte{tcpEstablished}))),
		zone)
	e, ok := parseEntry(msg)
	want := Flow{model.TCP, netip.MustParseAddr("10.0.1.1"), netip.MustParseAddr("10.0.0.1"), 8080}
	if !ok || e.flow != want || e.tcpState != tcpEstablished {
		t.Fatalf("parseEntry = %+v, %v; want %+v, state %d", e, ok, want, tcpEstablished)
	}
	if !bytes.Equal(e.orig, orig) || !bytes.Equal(e.zone, zone) {
		t.Errorf("orig/zone attributes not kept as encoded")
	}
	icmp := slices.Concat([]byte{2, 0, 0, 0}, tuple(ctaTupleOrig, "10.0.1.1", "10.0.0.1", 1, 0, 0),
		tuple(ctaTupleReply, "10.0.0.1", "10.0.1.1", 1, 0, 0))
	if _, ok := parseEntry(icmp); ok {
		t.Error("ICMP flow accepted")
	}
	v6 := slices.Concat([]byte{10, 0, 0, 0}, tuple(ctaTupleOrig, "fd00::1", "fd00::2", 17, 1, 53),
		tuple(ctaTupleReply, "fd00::2", "fd00::1", 17, 53, 1))
	if e, ok := parseEntry(v6); !ok || e.flow != (Flow{model.UDP, netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2"), 53}) || e.zone != nil {
		t.Errorf("v6 UDP: %+v %v", e, ok)
	}
	// Truncated or garbage messages are skipped, not a panic.
	for i := range msg {
		parseEntry(msg[:i])
	}
}

// The passes of one CutFlows, per family: an interrupted dump
// (NLM_F_DUMP_INTR, EINTR) or one that deleted entries (the dump may
// have skipped some) is done again; a complete pass that deleted nothing
// ends it; maxPasses bounds it, and a dump still interrupted then is an
// error; another error ends the family's passes.
func TestCutPasses(t *testing.T) {
	type step struct {
		st  sweepStats
		err error
	}
	for _, tc := range []struct {
		name    string
		steps   []step // for AF_INET; AF_INET6 has one empty pass
		passes  int
		cut     int
		wantErr string
	}{
		{"clean", []step{{}}, 1, 0, ""},
		{"deleted, then clean", []step{{st: sweepStats{cut: 3, deleted: 2}}, {}}, 2, 3, ""},
		{"blocked only", []step{{st: sweepStats{cut: 2}}}, 1, 2, ""},
		{"interrupted, then clean", []step{{st: sweepStats{cut: 1, deleted: 1}, err: netlink.ErrDumpInterrupted}, {}}, 2, 1, ""},
		{"EINTR, then clean", []step{{err: unix.EINTR}, {st: sweepStats{cut: 1}}}, 2, 1, ""},
		{"always interrupted", []step{{err: netlink.ErrDumpInterrupted}, {err: netlink.ErrDumpInterrupted}, {err: netlink.ErrDumpInterrupted}, {err: netlink.ErrDumpInterrupted}}, maxPasses, 0, "4 passes"},
		{"other error", []step{{err: unix.ENOBUFS}}, 1, 0, "no buffer space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var passes int
			n, err := cutPasses(func(fam uint8) (sweepStats, error) {
				if fam != unix.AF_INET {
					return sweepStats{}, nil
				}
				s := tc.steps[passes]
				passes++
				return s.st, s.err
			})
			if passes != tc.passes || n != tc.cut {
				t.Errorf("%d passes, cut %d; want %d, %d", passes, n, tc.passes, tc.cut)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}
