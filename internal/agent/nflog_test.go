package agent

import (
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
)

// ipv4TCP builds an IPv4 header (with options when ihl > 5) and a TCP
// header.
func ipv4TCP(src, dst string, sport, dport uint16, ihl int) []byte {
	b := make([]byte, ihl*4+20)
	b[0] = 0x40 | byte(ihl)
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	binary.BigEndian.PutUint16(b[6:8], 0x4000) // DF, offset 0
	b[8] = 64
	b[9] = byte(unix.IPPROTO_TCP)
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	l4 := b[ihl*4:]
	binary.BigEndian.PutUint16(l4[0:2], sport)
	binary.BigEndian.PutUint16(l4[2:4], dport)
	l4[13] = 0x02 // SYN
	return b
}

// ipv6 builds an IPv6 header followed by the extension headers exts
// (each: next header is filled in) and an L4 header of proto with ports.
func ipv6(src, dst string, proto uint8, sport, dport uint16, exts ...[]byte) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	b[7] = 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	next := &b[6]
	for _, e := range exts {
		*next = e[0] // the caller puts the extension's own type in e[0] ...
		e = append([]byte(nil), e...)
		b = append(b, e...)
		next = &b[len(b)-len(e)] // ... which becomes its next-header field
	}
	*next = proto
	l4 := make([]byte, 8)
	binary.BigEndian.PutUint16(l4[0:2], sport)
	binary.BigEndian.PutUint16(l4[2:4], dport)
	b = append(b, l4...)
	binary.BigEndian.PutUint16(b[4:6], uint16(len(b)-40))
	return b
}

// nflogMessage builds one NFULNL_MSG_PACKET message as the kernel sends
// it: struct nfgenmsg, then attributes (packet header, prefix, payload).
func nflogMessage(t *testing.T, family uint8, group uint16, prefix string, payload []byte) netlink.Message {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	hdr := make([]byte, 4) // struct nfulnl_msg_packet_hdr: be16 hw_protocol, u8 hook, u8 pad
	binary.BigEndian.PutUint16(hdr, 0x0800)
	hdr[2] = 2 // NF_INET_FORWARD
	ae.Bytes(1, hdr)
	mark := make([]byte, 4)
	ae.Bytes(2, mark)
	ae.Bytes(nfulaPrefix, append([]byte(prefix), 0))
	ae.Bytes(nfulaPayload, payload)
	attrs, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	data := append([]byte{family, 0, byte(group >> 8), byte(group)}, attrs...)
	m := netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysULOG<<8 | nfulnlMsgPacket), Length: uint32(16 + len(data))},
		Data:   data,
	}
	// Through the wire format and back, as Receive delivers it.
	raw, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var out netlink.Message
	if err := out.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParseNFLOG(t *testing.T) {
	hopByHop := []byte{0, 0, 0, 0, 0, 0, 0, 0}                         // 8 bytes, type 0
	frag0 := []byte{44, 0, 0, 0, 0, 0, 0, 1}                           // fragment, offset 0: ports readable
	fragN := []byte{44, 0, 0x05, 0x00, 0, 0, 0, 1}                     // fragment, offset 160: no ports
	dstOpts := []byte{60, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // 16 bytes (len 1)
	for _, tc := range []struct {
		name    string
		family  uint8
		prefix  string
		payload []byte
		want    packet
		chain   string
		dir     model.Direction
	}{
		{
			name: "IPv4 TCP", family: unix.AF_INET, prefix: "palisade-drop ing-shop-web-0badcafe ",
			payload: ipv4TCP("10.0.1.1", "10.0.0.1", 40000, 80, 5),
			want:    packet{Src: netip.MustParseAddr("10.0.1.1"), Dst: netip.MustParseAddr("10.0.0.1"), Proto: model.TCP, SrcPort: 40000, DstPort: 80},
			chain:   "ing-shop-web-0badcafe", dir: model.Ingress,
		},
		{
			name: "IPv4 TCP with options", family: unix.AF_INET, prefix: "palisade-drop egr-a-b-12345678 ",
			payload: ipv4TCP("10.0.1.1", "192.0.2.7", 1234, 443, 7),
			want:    packet{Src: netip.MustParseAddr("10.0.1.1"), Dst: netip.MustParseAddr("192.0.2.7"), Proto: model.TCP, SrcPort: 1234, DstPort: 443},
			chain:   "egr-a-b-12345678", dir: model.Egress,
		},
		{
			name: "IPv6 UDP", family: unix.AF_INET6, prefix: "palisade-drop egr-shop-dns-1a2b3c4d ",
			payload: ipv6("fd00::1:1", "fd00::53", unix.IPPROTO_UDP, 5353, 53),
			want:    packet{Src: netip.MustParseAddr("fd00::1:1"), Dst: netip.MustParseAddr("fd00::53"), Proto: model.UDP, SrcPort: 5353, DstPort: 53},
			chain:   "egr-shop-dns-1a2b3c4d", dir: model.Egress,
		},
		{
			name: "IPv6 UDP behind hop-by-hop, destination options and a first fragment", family: unix.AF_INET6, prefix: "palisade-drop ing-x-y-00000000 ",
			payload: ipv6("fd00::1", "fd00::2", unix.IPPROTO_UDP, 7, 9, hopByHop, dstOpts, frag0),
			want:    packet{Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2"), Proto: model.UDP, SrcPort: 7, DstPort: 9},
			chain:   "ing-x-y-00000000", dir: model.Ingress,
		},
		{
			name: "IPv6 later fragment: no ports", family: unix.AF_INET6, prefix: "palisade-drop ing-x-y-00000000 ",
			payload: ipv6("fd00::1", "fd00::2", unix.IPPROTO_UDP, 7, 9, fragN),
			want:    packet{Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2"), Proto: 255},
			chain:   "ing-x-y-00000000", dir: model.Ingress,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs := []netlink.Message{
				{Header: netlink.Header{Type: netlink.Done}}, // not a packet: skipped
				nflogMessage(t, tc.family, DenyLogGroup, tc.prefix, tc.payload),
			}
			recs := logRecords(msgs)
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			if recs[0].Prefix != strings.TrimRight(tc.prefix, "\x00") {
				t.Errorf("prefix %q", recs[0].Prefix)
			}
			p, ok := parsePacket(recs[0].Payload)
			if !ok || p != tc.want {
				t.Errorf("parsePacket = %+v, %v; want %+v", p, ok, tc.want)
			}
			chain, dir, ok := chainOf(recs[0].Prefix)
			if !ok || chain != tc.chain || dir != tc.dir {
				t.Errorf("chainOf = %q, %v, %v", chain, dir, ok)
			}
		})
	}
	// Garbage is refused, not a panic.
	for _, b := range [][]byte{nil, {0x45}, {0x60, 0, 0}, {0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7}, {0x15}} {
		if _, ok := parsePacket(b); ok {
			t.Errorf("parsePacket(%x) accepted", b)
		}
	}
	if _, _, ok := chainOf("other-prefix ing-a"); ok {
		t.Error("chainOf accepted a foreign prefix")
	}
	// A packet message without a payload is no record.
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(nfulaPrefix, []byte("palisade-drop ing-a \x00"))
	attrs, _ := ae.Encode()
	if recs := logRecords([]netlink.Message{{Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysULOG<<8 | nfulnlMsgPacket)}, Data: append([]byte{2, 0, 0, 100}, attrs...)}}); len(recs) != 0 {
		t.Errorf("records without payload: %+v", recs)
	}
}

// fakeLog is a LogReader delivering prepared records.
type fakeLog struct {
	recs   chan []LogRecord
	closed chan struct{}
}

func (f *fakeLog) Read() ([]LogRecord, error) {
	select {
	case r := <-f.recs:
		return r, nil
	case <-f.closed:
		return nil, net.ErrClosed
	}
}

func (f *fakeLog) Close() error {
	select {
	case <-f.closed:
	default:
		close(f.closed)
	}
	return nil
}

// NFLOG records become one JSON line per denied connection, naming the
// pods, protocol, port, direction and the isolating policies; repeats of
// the same connection (SYN retransmissions) are not logged again.
func TestDenyLogLines(t *testing.T) {
	out := &fixture.LogBuffer{}
	fl := &fakeLog{recs: make(chan []LogRecord, 10), closed: make(chan struct{})}
	h := startAgent(t, Options{Logger: slog.New(slog.NewJSONHandler(out, nil)), DenyLog: fl})
	web := pod("shop", "web", testNode, "10.0.0.1", "app", "web")
	web.IPs = append(web.IPs, netip.MustParseAddr("fd00::1"))
	client := pod("shop", "client", "n2", "10.0.1.1", "app", "client")
	client.IPs = append(client.IPs, netip.MustParseAddr("fd00::1:1"))
	h.push(nsEv("shop"))
	h.push(podEv(web))
	h.push(podEv(client))
	h.push(polEv(allowFrom("shop", "a-web", map[string]string{"app": "web"}, "nobody")))
	h.push(polEv(&model.Policy{Namespace: "shop", Name: "b-deny-all", Ingress: true, Egress: true}))
	h.synced()
	h.settle()

	syn := ipv4TCP("10.0.1.1", "10.0.0.1", 40000, 80, 5)
	fl.recs <- []LogRecord{
		{Prefix: "palisade-drop ing-shop-a-web-b-deny-all-12345678 ", Payload: syn},
		{Prefix: "palisade-drop ing-shop-a-web-b-deny-all-12345678 ", Payload: syn}, // retransmission
		{Prefix: "palisade-drop egr-shop-b-deny-all-87654321 ", Payload: ipv6("fd00::1", "fd00::1:1", unix.IPPROTO_UDP, 5000, 53)},
		{Prefix: "palisade-drop egr-shop-b-deny-all-87654321 ", Payload: []byte{0x99}}, // garbage
	}
	eventually(t, "two deny lines", func() bool { return len(out.Lines("connection denied")) >= 2 })
	time.Sleep(20 * time.Millisecond)
	lines := out.Lines("connection denied")
	if len(lines) != 2 {
		t.Fatalf("%d deny lines, want 2: %v", len(lines), lines)
	}
	check := func(l map[string]any, path string, want any) {
		t.Helper()
		var v any = l
		for _, p := range strings.Split(path, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[p]
		}
		if got, _ := json.Marshal(v); string(got) != mustJSON(want) {
			t.Errorf("%s = %s, want %s (line %v)", path, got, mustJSON(want), l)
		}
	}
	in := lines[0]
	check(in, "direction", "ingress")
	check(in, "src.namespace", "shop")
	check(in, "src.pod", "client")
	check(in, "src.ip", "10.0.1.1")
	check(in, "dst.namespace", "shop")
	check(in, "dst.pod", "web")
	check(in, "dst.ip", "10.0.0.1")
	check(in, "protocol", "TCP")
	check(in, "dst_port", 80)
	check(in, "pod", "shop/web")
	check(in, "policies", []string{"shop/a-web", "shop/b-deny-all"})
	check(in, "chain", "ing-shop-a-web-b-deny-all-12345678")
	if _, ok := in["time"]; !ok {
		t.Error("no time")
	}
	eg := lines[1]
	check(eg, "direction", "egress")
	check(eg, "src.pod", "web")
	check(eg, "dst.pod", "client")
	check(eg, "dst.ip", "fd00::1:1")
	check(eg, "protocol", "UDP")
	check(eg, "dst_port", 53)
	check(eg, "pod", "shop/web")
	check(eg, "policies", []string{"shop/b-deny-all"})

	if g := gauge(t, h.a, "palisade_denied_logged_total"); g != 2 {
		t.Errorf("denied_logged_total = %v", g)
	}
	if g := gauge(t, h.a, "palisade_denied_log_repeats_total"); g != 2 {
		t.Errorf("denied_log_repeats_total = %v (a repeat and a garbage record)", g)
	}

	// An address that is no pod's: the IP alone.
	fl.recs <- []LogRecord{{Prefix: "palisade-drop egr-shop-b-deny-all-87654321 ", Payload: ipv4TCP("10.0.0.1", "198.51.100.9", 1, 443, 5)}}
	eventually(t, "a third line", func() bool { return len(out.Lines("connection denied")) == 3 })
	ext := out.Lines("connection denied")[2]
	check(ext, "dst", map[string]any{"ip": "198.51.100.9"})
	check(ext, "src.pod", "web")

	// A drop in a cluster policy's deny chain names that policy, not the
	// NetworkPolicies: its Deny decided before them.
	guard := &model.ClusterPolicy{Kind: model.KindClusterNetworkPolicy, Name: "guard", Tier: model.AdminTier, Priority: 5,
		Subject: model.ClusterSubject{Namespaces: &model.Selector{}},
		IngressRules: []model.ClusterRule{{Name: "no-client", Action: model.Deny, Peers: []model.ClusterPeer{
			{Pods: &model.NamespacedPods{PodSelector: model.Selector{MatchLabels: map[string]string{"app": "client"}}}}}}}}
	h.push(clusterEv(guard))
	h.settle()
	var chain string
	h.a.withEngine(func(e *engine.Engine) {
		for _, c := range dataplane.Compile(e, testNode, dataplane.Options{}).Chains {
			if k, _, ok := dataplane.DenyChainPolicy(e, c.Name); ok && k == guard.Key() && strings.HasSuffix(c.Name, "_4") {
				chain = c.Name
			}
		}
	})
	if chain == "" {
		t.Fatal("no IPv4 deny chain of ClusterNetworkPolicy/guard in the compiled ruleset")
	}
	fl.recs <- []LogRecord{{Prefix: "palisade-drop " + chain + " ", Payload: ipv4TCP("10.0.1.1", "10.0.0.1", 40001, 80, 5)}}
	eventually(t, "a fourth line", func() bool { return len(out.Lines("connection denied")) == 4 })
	cl := out.Lines("connection denied")[3]
	check(cl, "cluster_policy", "ClusterNetworkPolicy/guard")
	check(cl, "policies", nil)
	check(cl, "pod", "shop/web")
	check(cl, "chain", chain)

	// The unknown-pod guard's drops: the address no pod known to the agent
	// has, and why; no policy decided.
	fl.recs <- []LogRecord{
		{Prefix: "palisade-drop " + dataplane.GuardSource + " ", Payload: ipv4TCP("10.0.0.77", "10.0.1.1", 40002, 8080, 5)},
		{Prefix: "palisade-drop " + dataplane.GuardDestination + " ", Payload: ipv4TCP("10.0.1.1", "10.0.0.78", 40003, 80, 5)},
	}
	eventually(t, "two guard lines", func() bool { return len(out.Lines("connection denied")) == 6 })
	src, dst := out.Lines("connection denied")[4], out.Lines("connection denied")[5]
	check(src, "direction", "egress")
	check(src, "src", map[string]any{"ip": "10.0.0.77"})
	check(src, "dst.pod", "client")
	check(src, "reason", "unknown_pod_address")
	check(src, "policies", nil)
	check(src, "pod", nil)
	check(src, "chain", dataplane.GuardSource)
	check(dst, "direction", "ingress")
	check(dst, "dst", map[string]any{"ip": "10.0.0.78"})
	check(dst, "reason", "unknown_pod_address")
	check(dst, "chain", dataplane.GuardDestination)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// The conntrack sweep's decision: a flow is cut when policy denies it as
// a new connection and one of its ends is a pod of this node.
func TestDeniedFlow(t *testing.T) {
	a := New(newFakeSource(), newFakeDP(), Options{NodeName: testNode})
	e := a.e
	e.UpsertNamespace(&model.Namespace{Name: "shop", Labels: map[string]string{model.NamespaceNameLabel: "shop"}})
	for _, p := range []*model.Pod{
		pod("shop", "web", testNode, "10.0.0.1", "app", "web"),
		pod("shop", "db", testNode, "10.0.0.2", "app", "db"),
		pod("shop", "client", "n2", "10.0.1.1", "app", "client"),
		pod("shop", "intruder", "n2", "10.0.1.2", "app", "intruder"),
		pod("shop", "remote-web", "n2", "10.0.1.3", "app", "web"),
		{Namespace: "shop", Name: "hostnet", Node: testNode, HostNetwork: true, IPs: []netip.Addr{netip.MustParseAddr("192.168.0.1")}},
	} {
		e.UpsertPod(p)
	}
	e.UpsertNode(&model.Node{Name: testNode, IPs: []netip.Addr{netip.MustParseAddr("192.168.0.1")}})
	// web: ingress only from client on TCP 80. db: egress only to web.
	e.UpsertPolicy(&model.Policy{Namespace: "shop", Name: "web", PodSelector: model.Selector{MatchLabels: map[string]string{"app": "web"}}, Ingress: true,
		IngressRules: []model.Rule{{
			Peers: []model.Peer{{PodSelector: &model.Selector{MatchLabels: map[string]string{"app": "client"}}}},
			Ports: []model.Port{{Protocol: model.TCP, Port: 80}},
		}}})
	e.UpsertPolicy(&model.Policy{Namespace: "shop", Name: "db", PodSelector: model.Selector{MatchLabels: map[string]string{"app": "db"}}, Egress: true,
		EgressRules: []model.Rule{{Peers: []model.Peer{{PodSelector: &model.Selector{MatchLabels: map[string]string{"app": "web"}}}}}}})
	ip := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		f    Flow
		cut  bool
	}{
		{"allowed: client to web:80", Flow{model.TCP, ip("10.0.1.1"), ip("10.0.0.1"), 80}, false},
		{"denied: client to web:81", Flow{model.TCP, ip("10.0.1.1"), ip("10.0.0.1"), 81}, true},
		{"denied: client to web UDP 80", Flow{model.UDP, ip("10.0.1.1"), ip("10.0.0.1"), 80}, true},
		{"denied: intruder to web", Flow{model.TCP, ip("10.0.1.2"), ip("10.0.0.1"), 80}, true},
		{"denied, not local: intruder to remote web", Flow{model.TCP, ip("10.0.1.2"), ip("10.0.1.3"), 80}, false},
		{"denied: db egress to the outside", Flow{model.TCP, ip("10.0.0.2"), ip("198.51.100.1"), 443}, true},
		{"allowed: db egress to web (db's egress ok, but web's ingress denies)", Flow{model.TCP, ip("10.0.0.2"), ip("10.0.0.1"), 80}, true},
		{"denied egress, remote destination pod: db to client", Flow{model.TCP, ip("10.0.0.2"), ip("10.0.1.1"), 80}, true},
		{"allowed: the node to its own pod", Flow{model.TCP, ip("192.168.0.1"), ip("10.0.0.1"), 8080}, false},
		{"allowed: unisolated local pod from anywhere", Flow{model.TCP, ip("198.51.100.1"), ip("10.0.0.2"), 5432}, false},
		{"neither end a pod", Flow{model.TCP, ip("198.51.100.1"), ip("203.0.113.1"), 80}, false},
		{"a pod to itself", Flow{model.TCP, ip("10.0.0.1"), ip("10.0.0.1"), 9}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := a.deniedFlow(e, tc.f); got != tc.cut {
				t.Errorf("deniedFlow(%+v) = %v, want %v", tc.f, got, tc.cut)
			}
		})
	}
}

// fakeFlows is a FlowTable over a list of flows. during, when set, runs
// after the first flow is judged.
type fakeFlows struct {
	mu     sync.Mutex
	flows  []Flow
	calls  int
	during func()
}

func (f *fakeFlows) CutFlows(doomed func(Flow) bool) (int, error) {
	f.mu.Lock()
	f.calls++
	flows, during := slices.Clone(f.flows), f.during
	f.mu.Unlock()
	var keep []Flow
	n := 0
	for i, fl := range flows {
		if doomed(fl) {
			n++
		} else {
			keep = append(keep, fl)
		}
		if i == 0 && during != nil {
			during()
		}
	}
	f.mu.Lock()
	f.flows = keep
	f.mu.Unlock()
	return n, nil
}

func (f *fakeFlows) get() ([]Flow, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.flows), f.calls
}

func (f *fakeFlows) add(fl Flow) {
	f.mu.Lock()
	f.flows = append(f.flows, fl)
	f.mu.Unlock()
}

// sweepsDone waits until the sweeps asked for so far are done.
func (h *harness) sweepsDone() {
	h.t.Helper()
	eventually(h.t, "the conntrack sweeps", func() bool { return h.a.sweepsPending.Load() == 0 })
}

// The sweep runs after syncs that changed policy, and only then: a
// policy, a peer's labels, a local pod's labels that bring it under a
// policy.
func TestSweepAfterPolicyChange(t *testing.T) {
	ip := netip.MustParseAddr
	flows := &fakeFlows{flows: []Flow{
		{model.TCP, ip("10.0.1.1"), ip("10.0.0.1"), 80},
		{model.TCP, ip("10.0.1.2"), ip("10.0.0.1"), 80},
	}}
	h := startAgent(t, Options{Flows: flows})
	h.push(nsEv("shop"))
	h.push(podEv(pod("shop", "web", testNode, "10.0.0.1", "app", "web")))
	h.push(podEv(pod("shop", "client", "n2", "10.0.1.1", "app", "client")))
	h.push(podEv(pod("shop", "other", "n2", "10.0.1.2", "app", "other")))
	h.synced()
	h.settle()
	h.sweepsDone()
	if got, _ := flows.get(); len(got) != 2 {
		t.Fatalf("no policy, flows cut: %+v", got)
	}
	h.push(polEv(allowFrom("shop", "web", map[string]string{"app": "web"}, "client")))
	h.settle()
	h.sweepsDone()
	if got, _ := flows.get(); len(got) != 1 || got[0].Src != ip("10.0.1.1") {
		t.Errorf("after the policy: %+v", got)
	}
	if g := gauge(t, h.a, "palisade_conntrack_flows_deleted_total"); g != 1 {
		t.Errorf("flows_deleted_total = %v", g)
	}
	// A pod label change that moves client out of the peers is a policy
	// change too.
	flows.add(Flow{model.TCP, ip("10.0.1.2"), ip("10.0.0.1"), 80})
	_, n := flows.get()
	h.push(podEv(pod("shop", "client", "n2", "10.0.1.1", "app", "gone")))
	h.settle()
	h.sweepsDone()
	if got, calls := flows.get(); calls == n || len(got) != 0 {
		t.Errorf("after the relabel: %+v (sweeps %d -> %d)", got, n, calls)
	}
	// A local pod relabelled under the policy: its flows from others are
	// cut.
	h.push(podEv(pod("shop", "db", testNode, "10.0.0.2", "app", "db")))
	h.settle()
	h.sweepsDone()
	flows.add(Flow{model.TCP, ip("10.0.1.2"), ip("10.0.0.2"), 5432})
	h.push(podEv(pod("shop", "db", testNode, "10.0.0.2", "app", "web")))
	h.settle()
	h.sweepsDone()
	if got, _ := flows.get(); len(got) != 0 {
		t.Errorf("after the local relabel: %+v", got)
	}
}

// A sweep does not hold the engine: events are applied, and synced,
// while it reads the table.
func TestSweepOffTheLock(t *testing.T) {
	ip := netip.MustParseAddr
	applied := make(chan bool, 1)
	var h *harness
	var once sync.Once
	flows := &fakeFlows{flows: []Flow{
		{model.TCP, ip("10.0.1.1"), ip("10.0.0.1"), 80},
		{model.TCP, ip("10.0.1.2"), ip("10.0.0.1"), 80},
	}}
	flows.during = func() {
		once.Do(func() {
			// Mid-sweep: a new pod reaches the engine and the kernel.
			h.push(podEv(pod("shop", "late", testNode, "10.0.0.9", "app", "web"))) // isolated: in the maps
			ok := false
			deadline := time.Now().Add(3 * time.Second)
			for !ok && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
				if rs := h.dp.last(); rs != nil && strings.Contains(rs.String(), "10.0.0.9") {
					ok = true
				}
			}
			applied <- ok
		})
	}
	h = startAgent(t, Options{Flows: flows})
	h.push(nsEv("shop"))
	h.push(podEv(pod("shop", "web", testNode, "10.0.0.1", "app", "web")))
	h.push(polEv(allowFrom("shop", "web", map[string]string{"app": "web"}, "client")))
	h.synced()
	select {
	case ok := <-applied:
		if !ok {
			t.Fatal("an event pushed during a sweep did not reach the kernel before the sweep ended")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no sweep")
	}
	h.sweepsDone()
	if got, _ := flows.get(); len(got) != 0 {
		t.Errorf("flows left: %+v", got)
	}
}
