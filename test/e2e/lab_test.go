package e2e

// Traffic tests: a lab (internal/lab, named agentt) gives two pod network
// namespaces routed through a node namespace, where the agent enforces;
// the same pods are registered in the API server, as the lab's kubelet
// mode does.

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/netns"
)

const labName = "agentt"

// echoPort is where the server pod echoes TCP and UDP.
const echoPort = 7000

type agentLab struct {
	t      *testing.T
	l      *lab.Lab
	e      *apiEnv
	node   string // the Kubernetes node name the agent runs as
	nsPath string // the lab node's network namespace
	client model.Key
	server model.Key
	// IPs of the pods, IPv4 and IPv6.
	clientIPs, serverIPs []netip.Addr
}

// upAgentLab builds the lab with a client and a server pod on one node,
// registers them in the API server, and serves echo in the server pod.
// Everything is removed when the test ends.
func upAgentLab(t *testing.T, kubeconfig string) *agentLab {
	t.Helper()
	fixture.RequireRoot(t)
	if err := lab.Down(labName); err != nil { // a crashed run's leftovers
		t.Fatal(err)
	}
	e := newAPIEnv(t, kubeconfig)
	al := &agentLab{t: t, e: e, node: e.ns + "-node1",
		client: model.Key{Namespace: e.ns, Name: "client"}, server: model.Key{Namespace: e.ns, Name: "server"}}
	c := model.NewCluster()
	c.EnsureNamespace(e.ns)
	for _, k := range []model.Key{al.client, al.server} {
		c.Pods[k] = &model.Pod{Namespace: k.Namespace, Name: k.Name, Node: "node1", Labels: map[string]string{"app": k.Name}}
	}
	l, err := lab.Up(context.Background(), labName, c, lab.Options{Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Down(labName); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	al.l = l
	al.nsPath = l.NodeNetNS("node1")
	cl := l.Cluster()
	al.clientIPs, al.serverIPs = cl.Pods[al.client].IPs, cl.Pods[al.server].IPs
	for _, k := range []model.Key{al.client, al.server} {
		var ips []string
		for _, ip := range cl.Pods[k].IPs {
			ips = append(ips, ip.String())
		}
		e.createPod(k.Name, al.node, map[string]string{"app": k.Name}, ips...)
	}
	al.serveEcho()
	return al
}

// serveEcho echoes TCP and UDP on echoPort in the server pod.
func (al *agentLab) serveEcho() {
	t := al.t
	ns, err := al.l.PodNetNS(al.server)
	if err != nil {
		t.Fatal(err)
	}
	var (
		ln net.Listener
		pc net.PacketConn
	)
	err = netns.Do(ns, func() error {
		var err error
		if ln, err = net.Listen("tcp", ":"+strconv.Itoa(echoPort)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", ":"+strconv.Itoa(echoPort))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// dial connects from the client pod to the server's echo port.
func (al *agentLab) dial(network string, ip netip.Addr, timeout time.Duration) (net.Conn, error) {
	return al.dialFrom(netip.Addr{}, network, ip, timeout)
}

// dialFrom dials from the client pod with source address src (any, when
// invalid).
func (al *agentLab) dialFrom(src netip.Addr, network string, ip netip.Addr, timeout time.Duration) (net.Conn, error) {
	ns, err := al.l.PodNetNS(al.client)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: timeout}
	if src.IsValid() {
		switch network {
		case "tcp":
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		case "udp":
			d.LocalAddr = &net.UDPAddr{IP: src.AsSlice()}
		}
	}
	var c net.Conn
	err = netns.Do(ns, func() error {
		var err error
		c, err = d.Dial(network, netip.AddrPortFrom(ip, echoPort).String())
		return err
	})
	return c, err
}

// ping sends a byte on c and waits for its echo.
func ping(c net.Conn, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{'p'}); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if b[0] != 'p' {
		return errors.New("bad echo")
	}
	return nil
}

// --terminate-denied: an established connection that a policy change now
// denies survives without the flag (policy acts on new connections) and
// is cut with it.
func TestTerminateDenied(t *testing.T) {
	srv := needAPIServer(t)
	al := upAgentLab(t, srv.Kubeconfig)
	e := al.e
	server4 := al.serverIPs[0]

	ag := startAgent(t, srv.Kubeconfig, al.node, al.nsPath, agentOpts{})
	ag.waitReady(10 * time.Second)
	conn, err := al.dial("tcp", server4, 2*time.Second)
	if err != nil {
		t.Fatalf("no policy, client -> server: %v", err)
	}
	defer conn.Close()
	if err := ping(conn, time.Second); err != nil {
		t.Fatal(err)
	}

	// Without the flag: the policy denies new connections only.
	e.createPolicy(e.allowFrom("deny-server", "server", ""))
	waitKernel(t, al.nsPath, "the deny policy", 5*time.Second, func(rs *dataplane.Ruleset) bool {
		return setHas(rs, "ingress4", server4.String())
	})
	if c, err := al.dial("tcp", server4, time.Second); err == nil {
		c.Close()
		t.Fatal("a new connection to the isolated server succeeded")
	}
	for range 3 {
		if err := ping(conn, time.Second); err != nil {
			t.Fatalf("without --terminate-denied, the established connection was cut: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ag.stop()

	// With the flag: the policy goes away (the restarted agent opens the
	// door), a connection is made, the policy comes back and cuts it.
	e.deletePolicy("deny-server")
	ag2 := startAgent(t, srv.Kubeconfig, al.node, al.nsPath, agentOpts{terminateDenied: true})
	ag2.waitReady(10 * time.Second)
	waitKernel(t, al.nsPath, "the open door", 5*time.Second, func(rs *dataplane.Ruleset) bool {
		return rs != nil && !setHas(rs, "ingress4", server4.String())
	})
	conn2, err := al.dial("tcp", server4, 2*time.Second)
	if err != nil {
		t.Fatalf("policy gone, client -> server: %v", err)
	}
	defer conn2.Close()
	if err := ping(conn2, time.Second); err != nil {
		t.Fatal(err)
	}
	// Unrelated policy churn does not cut an allowed connection.
	e.createPolicy(e.allowFrom("allow-client", "server", "client"))
	waitKernel(t, al.nsPath, "allow-client", 5*time.Second, func(rs *dataplane.Ruleset) bool {
		return setHas(rs, "ingress4", server4.String())
	})
	if err := ping(conn2, time.Second); err != nil {
		t.Fatalf("an allowed connection was cut: %v", err)
	}
	e.deletePolicy("allow-client")
	e.createPolicy(e.allowFrom("deny-server", "server", ""))
	start := time.Now()
	cut := false
	for time.Since(start) < 5*time.Second {
		if err := ping(conn2, 500*time.Millisecond); err != nil {
			cut = true
			t.Logf("connection cut %s after the policy was created: %v", time.Since(start).Round(time.Millisecond), err)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !cut {
		logConntrack(t, al.nsPath)
		t.Fatal("with --terminate-denied, the denied connection survived")
	}
	// And it stays cut: the server's retransmissions must not revive it
	// (conntrack picking the flow up again from the other side).
	time.Sleep(1500 * time.Millisecond)
	if err := ping(conn2, time.Second); err == nil {
		logConntrack(t, al.nsPath)
		t.Fatal("the cut connection came back")
	}
	if v := ag2.metric("palisade_conntrack_flows_deleted_total"); v == "" || v == "0" {
		t.Errorf("palisade_conntrack_flows_deleted_total = %q", v)
	}
	if v := ag2.metric("palisade_conntrack_errors_total"); v != "0" {
		t.Errorf("palisade_conntrack_errors_total = %q", v)
	}
}

// --log-denied: a denied connection makes one JSON line naming the pods,
// protocol, port, direction and the isolating policies (retransmissions
// are not logged again); also for IPv6 UDP on egress, and for the
// unknown-pod guard's drops.
func TestLogDenied(t *testing.T) {
	srv := needAPIServer(t)
	al := upAgentLab(t, srv.Kubeconfig)
	e := al.e
	server4, server6 := al.serverIPs[0], al.serverIPs[1]
	e.createPolicy(e.allowFrom("deny-server", "server", ""))

	cidrs := []netip.Prefix{netip.PrefixFrom(al.clientIPs[0], 24).Masked(), netip.PrefixFrom(al.clientIPs[1], 64).Masked()}
	ag := startAgent(t, srv.Kubeconfig, al.node, al.nsPath, agentOpts{logDenied: true, podCIDRs: cidrs})
	ag.waitReady(10 * time.Second)
	waitKernel(t, al.nsPath, "the deny policy", 5*time.Second, func(rs *dataplane.Ruleset) bool {
		return setHas(rs, "ingress4", server4.String())
	})

	// TCP over IPv4, denied at the server's ingress: the SYN and its
	// retransmission (after 1 s) make one line.
	if c, err := al.dial("tcp", server4, 2500*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("a connection to the isolated server succeeded")
	}
	waitLines(t, ag, 1)
	time.Sleep(300 * time.Millisecond)
	lines := ag.logs.Lines("connection denied")
	if len(lines) != 1 {
		t.Fatalf("%d deny lines for one connection, want 1:\n%v", len(lines), lines)
	}
	checkLine(t, lines[0], map[string]any{
		"direction":     "ingress",
		"src.namespace": e.ns, "src.pod": "client", "src.ip": al.clientIPs[0].String(),
		"dst.namespace": e.ns, "dst.pod": "server", "dst.ip": server4.String(),
		"protocol": "TCP", "dst_port": float64(echoPort),
		"pod":      e.ns + "/server",
		"policies": []any{e.ns + "/deny-server"},
	})

	// UDP over IPv6, denied at the client's egress.
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "client-no-egress"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		},
	}
	e.createPolicy(np)
	waitKernel(t, al.nsPath, "the egress policy", 5*time.Second, func(rs *dataplane.Ruleset) bool {
		return setHas(rs, "egress6", al.clientIPs[1].String())
	})
	c, err := al.dial("udp", server6, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := ping(c, 500*time.Millisecond); err == nil {
		t.Error("UDP from the egress-isolated client got an answer")
	}
	c.Close()
	waitLines(t, ag, 2)
	checkLine(t, ag.logs.Lines("connection denied")[1], map[string]any{
		"direction":     "egress",
		"src.namespace": e.ns, "src.pod": "client", "src.ip": al.clientIPs[1].String(),
		"dst.pod": "server", "dst.ip": server6.String(),
		"protocol": "UDP", "dst_port": float64(echoPort),
		"pod":      e.ns + "/client",
		"policies": []any{e.ns + "/client-no-egress"},
	})
	if v := ag.metric("palisade_denied_logged_total"); v != "2" {
		t.Errorf("palisade_denied_logged_total = %q", v)
	}
	// The kernel's per-pod drop counters, named by pod on /metrics.
	if v := ag.metric(`palisade_drops_total{direction="ingress",namespace="` + e.ns + `",pod="server"}`); v == "" || v == "0" {
		t.Errorf("palisade_drops_total for the server's ingress = %q", v)
	}

	// An address of the pod CIDR that no pod has (a pod the agent has not
	// heard of yet): the guard drops its connection, and says why.
	a4 := cidrs[0].Addr().As4()
	a4[3] = 200
	stranger := al.addClientAddr(netip.AddrFrom4(a4))
	if c, err := al.dialFrom(stranger, "tcp", server4, 1500*time.Millisecond); err == nil {
		c.Close()
		t.Fatal("a connection from an address no pod has succeeded")
	}
	waitLines(t, ag, 3)
	checkLine(t, ag.logs.Lines("connection denied")[2], map[string]any{
		"direction": "egress",
		"src.ip":    stranger.String(),
		"dst.pod":   "server", "dst.ip": server4.String(),
		"protocol": "TCP", "dst_port": float64(echoPort),
		"reason": "unknown_pod_address",
		"chain":  dataplane.GuardSource,
	})
	// Scrapes read the kernel's counters at most every 5 s: wait for a
	// fresh one.
	deadline := time.Now().Add(8 * time.Second)
	for {
		v := ag.metric(`palisade_unknown_pod_drops_total{family="ipv4"}`)
		if v != "" && v != "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("palisade_unknown_pod_drops_total for IPv4 = %q", v)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// addClientAddr adds ip to the client pod's eth0 (removed with the
// lab's namespaces) and returns it.
func (al *agentLab) addClientAddr(ip netip.Addr) netip.Addr {
	t := al.t
	ns, err := al.l.PodNetNS(al.client)
	if err != nil {
		t.Fatal(err)
	}
	h, err := netns.NewHandle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	link, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatalf("add %s to the client: %v", ip, err)
	}
	return ip
}

func waitLines(t *testing.T, ag *runningAgent, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(ag.logs.Lines("connection denied")) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d deny lines after 5 s; log:\n%s", n, ag.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkLine compares fields of a JSON log line; "a.b" reaches into groups.
func checkLine(t *testing.T, line map[string]any, want map[string]any) {
	t.Helper()
	for path, w := range want {
		var v any = line
		for _, p := range strings.Split(path, ".") {
			m, _ := v.(map[string]any)
			v = m[p]
		}
		if !equalJSON(v, w) {
			t.Errorf("%s = %v, want %v\nline: %v", path, v, w, line)
		}
	}
}

func equalJSON(a, b any) bool {
	as, bs := []any(nil), []any(nil)
	var ok1, ok2 bool
	as, ok1 = a.([]any)
	bs, ok2 = b.([]any)
	if ok1 || ok2 {
		if !ok1 || !ok2 || len(as) != len(bs) {
			return false
		}
		for i := range as {
			if as[i] != bs[i] {
				return false
			}
		}
		return true
	}
	return a == b
}

// logConntrack logs the node's IPv4 conntrack entries (to diagnose a
// failure).
func logConntrack(t *testing.T, nsPath string) {
	h, err := netns.NewHandle(nsPath)
	if err != nil {
		t.Log(err)
		return
	}
	defer h.Close()
	flows, err := h.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	for _, f := range flows {
		t.Logf("conntrack: %s", f)
	}
	if err != nil {
		t.Log(err)
	}
}
