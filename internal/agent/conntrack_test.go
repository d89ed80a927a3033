package agent

import (
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"

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
// the connection to the pod that serves it.
func TestFlowOf(t *testing.T) {
	cf := &netlink.ConntrackFlow{
		FamilyType: 2,
		Forward:    netlink.IPTuple{Protocol: 6, SrcIP: net.ParseIP("10.0.1.1"), DstIP: net.ParseIP("10.96.0.10"), SrcPort: 40000, DstPort: 80},
		Reverse:    netlink.IPTuple{Protocol: 6, SrcIP: net.ParseIP("10.0.0.1"), DstIP: net.ParseIP("10.0.1.1"), SrcPort: 8080, DstPort: 40000},
	}
	f, ok := flowOf(cf)
	want := Flow{model.TCP, netip.MustParseAddr("10.0.1.1"), netip.MustParseAddr("10.0.0.1"), 8080}
	if !ok || f != want {
		t.Errorf("flowOf = %+v, %v; want %+v", f, ok, want)
	}
	cf.Forward.Protocol = 1 // ICMP: not policy's
	if _, ok := flowOf(cf); ok {
		t.Error("ICMP flow accepted")
	}
	k := keyOf(&netlink.ConntrackFlow{Forward: netlink.IPTuple{Protocol: 17, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2"), SrcPort: 1, DstPort: 2}, Zone: 3})
	if k != (tupleKey{netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2"), 17, 1, 2, 3}) {
		t.Errorf("keyOf = %+v", k)
	}
}
