package dataplane

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"golang.org/x/sys/unix"
)

// inNetns runs fn on a locked OS thread switched into the network
// namespace at path. The thread is thrown away afterwards (the goroutine
// exits locked), so no other code ever runs in the wrong namespace.
// Sockets fn opens stay in that namespace.
func inNetns(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// labNode builds a node netns with one pod netns per address, joined by
// veth pairs and /32 routes (the routed model), each pod also getting
// the IPv6 address v6(ip), and returns the node's netns name and the
// pods' netns paths by address (both families).
func labNode(t *testing.T, nodeIP string, podIPs ...string) (string, map[string]string) {
	t.Helper()
	node, _ := newNetns(t)
	run(t, "ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	run(t, "ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	// No duplicate address detection: addresses (link-local ones too, which
	// neighbour discovery needs) are usable at once.
	noDAD := func(ns string) {
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	}
	noDAD(node)
	pods := map[string]string{}
	for i, ip := range podIPs {
		pod, path := newNetns(t)
		noDAD(pod)
		pods[ip], pods[v6(ip)] = path, path
		veth := "p" + strconv.Itoa(i)
		run(t, "ip", "-n", node, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", pod)
		run(t, "ip", "-n", node, "link", "set", veth, "up")
		run(t, "ip", "-n", node, "addr", "add", nodeIP+"/32", "dev", veth)
		run(t, "ip", "-n", node, "route", "add", ip+"/32", "dev", veth)
		run(t, "ip", "-n", pod, "link", "set", "eth0", "up")
		run(t, "ip", "-n", pod, "addr", "add", ip+"/32", "dev", "eth0")
		run(t, "ip", "-n", pod, "route", "add", nodeIP, "dev", "eth0")
		run(t, "ip", "-n", pod, "route", "add", "default", "via", nodeIP, "dev", "eth0")
		run(t, "ip", "-n", node, "-6", "addr", "add", v6(nodeIP)+"/128", "dev", veth, "nodad")
		run(t, "ip", "-n", node, "-6", "route", "add", v6(ip)+"/128", "dev", veth)
		run(t, "ip", "-n", pod, "-6", "addr", "add", v6(ip)+"/128", "dev", "eth0", "nodad")
		run(t, "ip", "-n", pod, "-6", "route", "add", v6(nodeIP), "dev", "eth0")
		run(t, "ip", "-n", pod, "-6", "route", "add", "default", "via", v6(nodeIP), "dev", "eth0")
	}
	return node, pods
}

// v6 maps 10.20.0.N to fd00:20::N.
func v6(ip4 string) string {
	a := netip.MustParseAddr(ip4).As4()
	return fmt.Sprintf("fd00:20::%d", a[3])
}

// serveEcho listens on addr inside the netns at path and echoes.
func serveEcho(t *testing.T, path, addr string) {
	t.Helper()
	var ln net.Listener
	if err := inNetns(path, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
}

const dialTimeout = 400 * time.Millisecond

// dial connects from the netns at path; nil means the policy let it in.
func dial(path, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(path, func() (err error) { c, err = net.DialTimeout("tcp", addr, dialTimeout); return err })
	return c, err
}

// echoes reports whether an open connection still carries data.
func echoes(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(dialTimeout))
	if _, err := c.Write([]byte("ping")); err != nil {
		return false
	}
	buf := make([]byte, 4)
	_, err := io.ReadFull(c, buf)
	return err == nil && string(buf) == "ping"
}

// echoNode is labNode with an echo server on port 80 of every pod
// address (both families) and on port 8080 of the node's, and an
// Enforcer for the node's netns (closed at cleanup). check dials from a
// pod, or from the node at nodeIP or v6(nodeIP), and reports whether the
// connection carries data as want says; the connection is returned open.
func echoNode(t *testing.T, nodeIP string, podIPs ...string) (node string, en *Enforcer, check func(step, from, to string, port int, want bool) net.Conn) {
	t.Helper()
	node, pods := labNode(t, nodeIP, podIPs...)
	for _, ip := range podIPs {
		serveEcho(t, pods[ip], ip+":80")
		serveEcho(t, pods[ip], "["+v6(ip)+"]:80")
	}
	nodePath := "/run/netns/" + node
	serveEcho(t, nodePath, nodeIP+":8080")
	serveEcho(t, nodePath, "["+v6(nodeIP)+"]:8080")
	en, err := New(nodePath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { en.Close() })
	check = func(step, from, to string, port int, want bool) net.Conn {
		t.Helper()
		path := pods[from]
		if from == nodeIP || from == v6(nodeIP) {
			path = nodePath
		}
		conn, err := dial(path, net.JoinHostPort(to, strconv.Itoa(port)))
		if got := err == nil && echoes(conn); got != want {
			t.Errorf("%s: %s -> %s:%d connected = %v (%v), want %v", step, from, to, port, got, err, want)
		}
		return conn
	}
	return node, en, check
}

// TestEnforcement: real TCP through a node netns. frontend-access lets
// backend (only) reach frontend; relabelling client-pod flips it, as an
// incremental Apply; default-deny-all then stops new connections, while
// an established one lives on, and the node still reaches its pods.
func TestEnforcement(t *testing.T) {
	const (
		nodeIP   = "10.20.0.1"
		frontend = "10.20.0.11"
		backend  = "10.20.0.12"
		client   = "10.20.0.13"
	)
	node, en, check := echoNode(t, nodeIP, frontend, backend, client)
	ctx := context.Background()
	c := seedCluster()
	for _, p := range c.Pods {
		p.IPs = append(p.IPs, netip.MustParseAddr(v6(p.IPs[0].String())))
	}
	e := engine.FromCluster(c)
	apply := func() Stats {
		t.Helper()
		st, err := en.Apply(ctx, Compile(e, "node-1", Options{}))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}

	apply()
	est := check("frontend-access", backend, frontend, 80, true)
	if est == nil {
		t.Fatal("no established connection to keep")
	}
	defer est.Close()
	check("frontend-access", client, frontend, 80, false)
	check("frontend-access", frontend, client, 80, true)
	check("frontend-access IPv6", v6(backend), v6(frontend), 80, true)
	check("frontend-access IPv6", v6(client), v6(frontend), 80, false)
	check("frontend-access", client, nodeIP, 8080, true)

	// The denied attempts were counted on frontend's drop counter.
	listing := nftList(t, node)
	m := regexp.MustCompile(`10\.20\.0\.11 counter packets (\d+)`).FindStringSubmatch(listing)
	if m == nil || m[1] == "0" {
		t.Errorf("ingress_drops4 has no drops counted for frontend:\n%s", listing)
	}

	// client-pod becomes a backend: only set elements change.
	cp := *c.Pods[model.Key{Namespace: "default", Name: "client-pod"}]
	cp.Labels = map[string]string{"app": "backend"}
	e.UpsertPod(&cp)
	if st := apply(); st.RulesAdded != 0 || st.ChainsAdded != 0 || st.ElementsAdded == 0 {
		t.Errorf("relabel: %s, want element changes only", st)
	}
	check("relabel", client, frontend, 80, true)
	check("relabel IPv6", v6(client), v6(frontend), 80, true)

	// default-deny-all: nothing new gets through, the established
	// connection does, and so does the node.
	e.UpsertPolicy(defaultDenyAll("default"))
	apply()
	check("default-deny-all", backend, frontend, 80, false)
	check("default-deny-all", frontend, client, 80, false)
	check("default-deny-all IPv6", v6(backend), v6(frontend), 80, false)
	check("default-deny-all", client, nodeIP, 8080, false)
	check("default-deny-all", nodeIP, frontend, 80, true)
	if !echoes(est) {
		t.Errorf("default-deny-all: the established backend -> frontend connection was cut")
	}

	// A pod's traffic to itself is not filtered, even when it leaves the
	// pod and comes back (a Service hairpin); here, via the node's address
	// DNATed back to the pod.
	// As kube-proxy does, the hairpin is masqueraded (after forward), or
	// the pod would drop a packet from its own address.
	run(t, "ip", "netns", "exec", node, "nft", "add table ip palisade-test-nat; "+
		"add chain ip palisade-test-nat pre { type nat hook prerouting priority dstnat; }; "+
		"add rule ip palisade-test-nat pre ip daddr 10.20.0.99 tcp dport 80 dnat to "+frontend+"; "+
		"add chain ip palisade-test-nat post { type nat hook postrouting priority srcnat; }; "+
		"add rule ip palisade-test-nat post ip saddr "+frontend+" ip daddr "+frontend+" masquerade")
	run(t, "ip", "-n", node, "route", "add", "local", "10.20.0.99/32", "dev", "lo")
	check("hairpin", frontend, "10.20.0.99", 80, true)
	check("hairpin", backend, "10.20.0.99", 80, false)

	// Policies deleted: open again.
	e.DeletePolicy(model.Key{Namespace: "default", Name: "default-deny-all"})
	e.DeletePolicy(model.Key{Namespace: "default", Name: "frontend-access"})
	apply()
	check("no policy", backend, frontend, 80, true)
}

// TestEnforcementUnknownPods: real TCP through a node netns whose pod
// CIDR (10.20.0.0/24, fd00:20::/64) holds two pods the engine knows
// and one it does not yet (the window between the CNI and the agent's
// watch), and the node's own address 10.20.0.1 (a CNI bridge's gateway
// is in the pod CIDR too). The unknown address can neither reach nor be
// reached from pods; known pods outside any policy talk freely, even one
// the engine places on another node; pods
// reach the node's address (input), and the node reaches every pod
// (output, which Palisade does not hook: kubelet probes). Once the
// engine knows the pod, policy decides; with the guard off the unknown
// address passes, as it did before the guard.
func TestEnforcementUnknownPods(t *testing.T) {
	const (
		nodeIP  = "10.20.0.1"
		a       = "10.20.0.11"
		b       = "10.20.0.12"
		unknown = "10.20.0.13"
	)
	node, en, connect := echoNode(t, nodeIP, a, b, unknown)
	ctx := context.Background()

	e := engine.New()
	e.UpsertNamespace(&model.Namespace{Name: "default", Labels: map[string]string{model.NamespaceNameLabel: "default"}})
	e.UpsertNode(&model.Node{Name: "node-1", IPs: []netip.Addr{netip.MustParseAddr(nodeIP)},
		PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24"), netip.MustParsePrefix("fd00:20::/64")}})
	pod := func(name, ip string) *model.Pod {
		return &model.Pod{Namespace: "default", Name: name, Node: "node-1", Labels: map[string]string{"app": name},
			IPs: []netip.Addr{netip.MustParseAddr(ip), netip.MustParseAddr(v6(ip))}}
	}
	e.UpsertPod(pod("a", a))
	e.UpsertPod(pod("b", b))
	// The unknown pod, once known, takes connections from a only.
	e.UpsertPolicy(&model.Policy{
		Namespace: "default", Name: "u-from-a", Ingress: true,
		PodSelector: model.Selector{MatchLabels: map[string]string{"app": "u"}},
		IngressRules: []model.Rule{{
			Peers: []model.Peer{{PodSelector: &model.Selector{MatchLabels: map[string]string{"app": "a"}}}},
			Ports: []model.Port{{Protocol: model.TCP, Port: 80}},
		}},
	})
	apply := func(opts Options) *Ruleset {
		t.Helper()
		rs := Compile(e, "node-1", opts)
		if _, err := en.Apply(ctx, rs); err != nil {
			t.Fatal(err)
		}
		return rs
	}
	check := func(step, from, to string, port int, want bool) {
		t.Helper()
		if conn := connect(step, from, to, port, want); conn != nil {
			conn.Close()
		}
	}
	both := func(step, from, to string, port int, want bool) {
		t.Helper()
		check(step, from, to, port, want)
		check(step+" IPv6", v6(from), v6(to), port, want)
	}

	rs := apply(Options{})
	if rs.Set("local_cidrs4") == nil || rs.Set("local_cidrs6") == nil {
		t.Fatalf("no guard in the ruleset:\n%s", rs)
	}
	const step = "unknown"
	both(step, unknown, a, 80, false)
	both(step, a, unknown, 80, false)
	both(step, unknown, b, 80, false)
	both(step, a, b, 80, true) // known, no policy: free
	both(step, b, a, 80, true)
	both(step, a, nodeIP, 8080, true) // the node's address in the CIDR, on input
	check(step, unknown, nodeIP, 8080, false)
	check(step, nodeIP, a, 80, true) // output: not hooked
	check(step, nodeIP, unknown, 80, true)
	check(step+" IPv6", v6(nodeIP), v6(a), 80, true)
	check(step+" IPv6", v6(nodeIP), v6(unknown), 80, true)

	// The drops were counted on the guard's rules, in both families.
	back, err := ReadDrops(en.nsPath)
	if err != nil {
		t.Fatal(err)
	}
	if g := back.GuardDrops(); g[0] == 0 || g[1] == 0 || back.Guarded() != [2]bool{true, true} {
		t.Errorf("the guard's rules counted %v drops:\n%s", g, back)
	}

	// The engine places b on another node, at an address of this node's
	// CIDR (a CNI whose IPAM ignores spec.podCIDR): known, it passes.
	elsewhere := pod("b", b)
	elsewhere.Node = "node-2"
	e.UpsertPod(elsewhere)
	apply(Options{})
	both("b elsewhere", a, b, 80, true)
	both("b elsewhere", b, a, 80, true)

	// The engine learns of the pod: policy decides.
	e.UpsertPod(pod("u", unknown))
	apply(Options{})
	const known = "known"
	both(known, a, unknown, 80, true)
	both(known, b, unknown, 80, false)
	both(known, unknown, a, 80, true)
	check(known, unknown, nodeIP, 8080, true)

	// Forgotten again, with the guard off: the old window.
	e.DeletePod(model.Key{Namespace: "default", Name: "u"})
	if rs := apply(Options{AllowUnknown: true}); rs.Set("local_cidrs4") != nil {
		t.Fatalf("AllowUnknown: guard in the ruleset:\n%s", rs)
	}
	const off = "guard off"
	both(off, unknown, a, 80, true)
	both(off, b, unknown, 80, true)
	check(off, unknown, nodeIP, 8080, true)

	// a isolated for egress, nothing allowed: the node still reaches it over
	// IPv6, which needs a's neighbour advertisement to pass input (the
	// node's cache is flushed first, so resolution really happens).
	e.UpsertPolicy(&model.Policy{Namespace: "default", Name: "a-no-egress", Egress: true,
		PodSelector: model.Selector{MatchLabels: map[string]string{"app": "a"}}})
	for _, opts := range []Options{{AllowUnknown: true}, {}} {
		apply(opts)
		if out, err := exec.Command("ip", "-n", node, "-6", "neigh", "flush", "all").CombinedOutput(); err != nil {
			t.Fatalf("ip neigh flush: %v: %s", err, out)
		}
		step := fmt.Sprintf("a isolated for egress (AllowUnknown %v)", opts.AllowUnknown)
		check(step+" IPv6", v6(nodeIP), v6(a), 80, true)
		check(step+" IPv6", v6(a), v6(b), 80, false)
	}
}
