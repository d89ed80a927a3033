package agent

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

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
