package agent

import (
	"net"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/palisade-net/palisade/internal/netns"
)

// ctFlow is a conntrack entry to create: proto from src:sport to dst:dport,
// replied by dst (no NAT).
func ctFlow(proto uint8, src, dst string, sport, dport uint16, tcpState uint8) *netlink.ConntrackFlow {
	s, d := net.ParseIP(src), net.ParseIP(dst)
	fam := uint8(unix.AF_INET)
	if s.To4() == nil {
		fam = unix.AF_INET6
	}
	f := &netlink.ConntrackFlow{
		FamilyType: fam,
		Forward:    netlink.IPTuple{Protocol: proto, SrcIP: s, DstIP: d, SrcPort: sport, DstPort: dport},
		Reverse:    netlink.IPTuple{Protocol: proto, SrcIP: d, DstIP: s, SrcPort: dport, DstPort: sport},
		TimeOut:    600,
	}
	if proto == unix.IPPROTO_TCP {
		f.ProtoInfo = &netlink.ProtoInfoTCP{State: tcpState}
	}
	return f
}

// CutFlows on a real conntrack table of 20,000 entries: the doomed TCP
// entry is moved to SYN_SENT, the doomed UDP entries (both families) are
// deleted, the rest is left alone; the table is streamed, so the heap in
// the middle of the sweep does not hold the table; a second sweep finds
// nothing more to cut (the blocked entry is skipped).
func TestKernelConntrackCutFlows(t *testing.T) {
	_, path := kernelNetns(t)
	h, err := netns.NewHandle(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	create := func(f *netlink.ConntrackFlow) {
		t.Helper()
		if err := h.ConntrackCreate(netlink.ConntrackTable, netlink.InetFamily(f.FamilyType), f); err != nil {
			t.Skipf("conntrack create (nf_conntrack not loaded?): %v", err)
		}
	}
	create(ctFlow(unix.IPPROTO_TCP, "10.0.1.1", "10.0.0.1", 40000, 81, tcpEstablished)) // doomed: blocked
	create(ctFlow(unix.IPPROTO_TCP, "10.0.1.1", "10.0.0.1", 40001, 80, tcpEstablished)) // allowed
	create(ctFlow(unix.IPPROTO_UDP, "10.0.1.1", "10.0.0.1", 40002, 81, 0))              // doomed: deleted
	create(ctFlow(unix.IPPROTO_UDP, "fd00::1", "fd00::2", 40003, 81, 0))                // doomed: deleted
	const bulk = 20000
	for i := range bulk {
		create(ctFlow(unix.IPPROTO_UDP, "10.1.0.1", "10.2.0.1", uint16(1024+i%50000), 53, 0))
	}
	ct, err := OpenConntrack(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var seen int
	var mid uint64
	n, err := ct.CutFlows(func(f Flow) bool {
		seen++
		if seen == bulk/2 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			mid = ms.HeapAlloc
		}
		return f.DstPort == 81
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("cut %d flows, want 3", n)
	}
	t.Logf("%d entries judged; heap %d KiB before, %d KiB halfway through the dump", seen, base>>10, mid>>10)
	if mid > base+2<<20 {
		t.Errorf("heap grew by %d KiB halfway through a dump of %d entries: not streamed", (mid-base)>>10, bulk)
	}

	var tcp []uint8
	var udp81, rest int
	for _, fam := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		flows, err := h.ConntrackTableList(netlink.ConntrackTable, fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range flows {
			switch {
			case f.Forward.Protocol == unix.IPPROTO_TCP && f.Forward.DstPort == 81:
				tcp = append(tcp, f.ProtoInfo.(*netlink.ProtoInfoTCP).State)
			case f.Forward.Protocol == unix.IPPROTO_UDP && f.Forward.DstPort == 81:
				udp81++
			default:
				rest++
			}
		}
	}
	if len(tcp) != 1 || tcp[0] != tcpSynSent {
		t.Errorf("doomed TCP entry: states %v, want one in SYN_SENT (%d)", tcp, tcpSynSent)
	}
	if udp81 != 0 {
		t.Errorf("%d doomed UDP entries left", udp81)
	}
	if rest != bulk+1 {
		t.Errorf("%d other entries, want %d", rest, bulk+1)
	}
	n, err = ct.CutFlows(func(f Flow) bool { return f.DstPort == 81 })
	if err != nil || n != 0 {
		t.Errorf("second sweep: cut %d, %v; want 0", n, err)
	}
	// For scale: the library's ConntrackTableList holds the whole table.
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	all, _ := h.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("ConntrackTableList of the same table holds %d KiB (%d entries)", (ms.HeapAlloc-before)>>10, len(all))
	runtime.KeepAlive(all)
}
