package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/lab/daemon"
	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/lab/podserve"
	"github.com/palisade-net/palisade/internal/lab/probe"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/netns"
)

// daemonEnv makes the test binary run Serve for the lab it names (the
// daemon test starts it so).
const daemonEnv = "PALISADE_LAB_TEST_DAEMON"

func TestMain(m *testing.M) {
	MaybeNSExec()
	if name := os.Getenv(daemonEnv); name != "" {
		ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer cancel()
		if err := Serve(ctx, name, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testLab builds a lab with a fresh name, removed when the test ends.
func testLab(t *testing.T, c *model.Cluster, nodes int) *Lab {
	t.Helper()
	name := fmt.Sprintf("t%x", rand.Uint32())
	t.Cleanup(func() {
		if err := Down(name); err != nil {
			t.Errorf("Down(%s): %v", name, err)
		}
	})
	l, err := Up(context.Background(), name, c, Options{Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// seedCluster is the seed walkthrough's cluster (three nginx pods that
// declare no ports, two Services without ClusterIPs) plus an echo pod that
// declares TCP, UDP and SCTP ports, and a Service "web" over frontend and
// backend (label tier: web).
func seedCluster() *model.Cluster {
	c := model.NewCluster()
	c.EnsureNamespace("default")
	for _, p := range []struct{ name, app string }{{"frontend", "frontend"}, {"backend", "backend"}, {"client-pod", "client"}} {
		c.Pods[model.Key{Namespace: "default", Name: p.name}] = &model.Pod{
			Namespace: "default", Name: p.name, Labels: map[string]string{"app": p.app}, Images: []string{"nginx"},
		}
	}
	c.Pods[model.Key{Namespace: "default", Name: "echo"}] = &model.Pod{
		Namespace: "default", Name: "echo", Labels: map[string]string{"app": "echo"}, Images: []string{"busybox"},
		Ports: []model.ContainerPort{
			{Name: "web", Port: 81, Protocol: model.TCP},
			{Name: "echo", Port: 81, Protocol: model.UDP},
			{Name: "sctp", Port: 81, Protocol: model.SCTP},
		},
	}
	for _, app := range []string{"frontend", "backend"} {
		c.Pods[key(app)].Labels["tier"] = "web"
		s := &model.Service{Namespace: "default", Name: app + "-service", Selector: map[string]string{"app": app},
			Ports: []model.ServicePort{{Protocol: model.TCP, Port: 80, TargetPort: 80}}}
		c.Services[s.Key()] = s
	}
	web := &model.Service{Namespace: "default", Name: "web", Selector: map[string]string{"tier": "web"},
		Ports: []model.ServicePort{{Name: "http", Protocol: model.TCP, Port: 8000, TargetPort: 80}}}
	c.Services[web.Key()] = web
	return c
}

func key(name string) model.Key { return model.Key{Namespace: "default", Name: name} }

func podIP(t *testing.T, l *Lab, k model.Key, v6 bool) netip.Addr {
	t.Helper()
	want := netip.IPv4Unspecified()
	if v6 {
		want = netip.IPv6Unspecified()
	}
	ip, ok := l.Cluster().Pods[k].IP(want)
	if !ok {
		t.Fatalf("pod %s has no IPv6=%v address", k, v6)
	}
	return ip
}

func execOut(t *testing.T, l *Lab, pod model.Key, argv ...string) (string, int) {
	t.Helper()
	defer func(begin time.Time) { t.Logf("exec %s %q: %v", pod, argv, time.Since(begin)) }(time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code, err := l.Exec(ctx, pod, argv, nil, &out, &errb)
	if err != nil {
		t.Fatalf("Exec(%s, %q) = %v (stderr %q)", pod, argv, err, errb.String())
	}
	return out.String(), code
}

func TestSeedLab(t *testing.T) {
	fixture.RequireRoot(t)
	start := time.Now()
	l := testLab(t, seedCluster(), 2)
	srv, err := l.StartServers()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	t.Logf("up and serving in %v", time.Since(start))

	// Round-robin over sorted keys: backend, client-pod, echo, frontend.
	for pod, node := range map[string]string{"backend": "node1", "client-pod": "node2", "echo": "node1", "frontend": "node2"} {
		if got := l.PodNode(key(pod)); got != node {
			t.Errorf("PodNode(%s) = %q, want %q", pod, got, node)
		}
	}
	if got := l.PodsOnNode("node2"); len(got) != 2 || got[0] != key("client-pod") || got[1] != key("frontend") {
		t.Errorf("PodsOnNode(node2) = %v, want [default/client-pod default/frontend]", got)
	}
	if got, want := l.NodeNetNS("node1"), "/run/netns/palisade-"+l.Name()+"-node1"; got != want {
		t.Errorf("NodeNetNS(node1) = %q, want %q", got, want)
	}

	t.Run("curl service by name", func(t *testing.T) {
		out, code := execOut(t, l, key("backend"), "curl", "-s", "--max-time", "3", "frontend-service")
		if code != 0 || out != podserve.Body(key("frontend")) {
			t.Errorf("curl frontend-service from backend = %q, exit %d; want %q, exit 0", out, code, podserve.Body(key("frontend")))
		}
		out, code = execOut(t, l, key("frontend"), "curl", "-s", "--max-time", "3", "http://backend-service.default.svc.cluster.local/x")
		if code != 0 || out != podserve.Body(key("backend")) {
			t.Errorf("curl backend-service FQDN from frontend = %q, exit %d; want %q", out, code, podserve.Body(key("backend")))
		}
		out, code = execOut(t, l, key("client-pod"), "curl", "-s", "--max-time", "3", "-6", "http://echo:81/")
		if code != 0 || out != podserve.Body(key("echo")) {
			t.Errorf("curl -6 echo:81 from client-pod = %q, exit %d; want %q", out, code, podserve.Body(key("echo")))
		}
	})

	t.Run("service with several endpoints", func(t *testing.T) {
		// Each connection picks one endpoint at random.
		seen := map[string]int{}
		for range 16 {
			out, _ := execOut(t, l, key("client-pod"), "curl", "-s", "--max-time", "3", "web:8000")
			seen[out]++
		}
		if len(seen) != 2 || seen[podserve.Body(key("frontend"))] == 0 || seen[podserve.Body(key("backend"))] == 0 {
			t.Errorf("16 x curl web:8000 answered %v, want both frontend and backend", seen)
		}
	})

	t.Run("hairpin", func(t *testing.T) {
		out, code := execOut(t, l, key("frontend"), "curl", "-s", "--max-time", "3", "frontend-service")
		if code != 0 || out != podserve.Body(key("frontend")) {
			t.Errorf("curl frontend-service from frontend itself = %q, exit %d; want %q", out, code, podserve.Body(key("frontend")))
		}
	})

	t.Run("unknown names fail fast", func(t *testing.T) {
		begin := time.Now()
		_, code := execOut(t, l, key("backend"), "curl", "-s", "--max-time", "3", "no-such-service")
		if code == 0 {
			t.Error("curl no-such-service succeeded")
		}
		if d := time.Since(begin); d > 2*time.Second {
			t.Errorf("curl no-such-service took %v, want < 2s", d)
		}
	})

	t.Run("exec exit codes", func(t *testing.T) {
		if _, code := execOut(t, l, key("backend"), "sh", "-c", "exit 7"); code != 7 {
			t.Errorf("exit code = %d, want 7", code)
		}
		out, _ := execOut(t, l, key("backend"), "cat", "/proc/net/dev")
		if !strings.Contains(out, "eth0") || strings.Contains(out, "pal") {
			t.Errorf("/proc/net/dev in backend = %q, want eth0 and no node veths", out)
		}
	})

	t.Run("probes across nodes", func(t *testing.T) {
		ctx := context.Background()
		cases := []struct {
			name     string
			from, to model.Key
			port     uint16
			proto    model.Protocol
			want     bool
		}{
			{"tcp served", key("backend"), key("frontend"), 80, model.TCP, true},
			{"tcp not served", key("backend"), key("frontend"), 81, model.TCP, false},
			{"udp served", key("client-pod"), key("echo"), 81, model.UDP, true},
			{"udp not served", key("client-pod"), key("frontend"), 81, model.UDP, false},
			{"tcp same node", key("backend"), key("echo"), 81, model.TCP, true},
			{"to itself", key("echo"), key("echo"), 81, model.UDP, true},
		}
		for _, tc := range cases {
			for _, v6 := range []bool{false, true} {
				to := podIP(t, l, tc.to, v6)
				got, err := l.Probe(ctx, tc.from, to, tc.port, tc.proto, time.Second)
				if err != nil || got != tc.want {
					t.Errorf("%s: Probe(%s -> %s:%d/%s) = %v, %v; want %v", tc.name, tc.from, to, tc.port, tc.proto, got, err, tc.want)
				}
			}
		}
		if _, err := l.Probe(ctx, key("client-pod"), podIP(t, l, key("echo"), false), 81, model.SCTP, time.Second); !errors.Is(err, probe.ErrSCTPUnsupported) {
			t.Errorf("SCTP probe: error %v, want probe.ErrSCTPUnsupported", err)
		}
		svc := l.Cluster().Services[key("frontend-service")]
		for _, cip := range svc.ClusterIPs {
			if ok, err := l.Probe(ctx, key("client-pod"), cip, 80, model.TCP, time.Second); !ok || err != nil {
				t.Errorf("Probe(client-pod -> ClusterIP %s:80) = %v, %v; want true", cip, ok, err)
			}
		}
	})

	t.Run("probe all pairs", func(t *testing.T) {
		var reqs []ProbeReq
		for _, from := range l.Pods() {
			for _, to := range l.Pods() {
				reqs = append(reqs, ProbeReq{From: from, To: podIP(t, l, to, false), Port: 80, Proto: model.TCP})
			}
		}
		begin := time.Now()
		res := l.ProbeAll(context.Background(), reqs, time.Second, 0)
		for _, r := range res {
			// Every pod but echo serves nginx's port 80.
			want := l.Cluster().PodByIP(r.To).Name != "echo"
			if r.Err != nil || r.OK != want {
				t.Errorf("ProbeAll: %s -> %s:80 = %v, %v; want %v", r.From, r.To, r.OK, r.Err, want)
			}
		}
		t.Logf("%d probes in %v", len(reqs), time.Since(begin))
	})

	t.Run("host namespace untouched", func(t *testing.T) {
		labNets := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00:10::/32")}
		for _, p := range l.Cluster().Pods {
			for _, ip := range p.IPs {
				labNets = append(labNets, netip.PrefixFrom(ip, ip.BitLen()))
			}
		}
		routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: 0}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			if r.Dst == nil {
				continue // default route
			}
			dst, _ := netip.AddrFromSlice(r.Dst.IP)
			ones, _ := r.Dst.Mask.Size()
			rp := netip.PrefixFrom(dst.Unmap(), ones)
			for _, n := range labNets {
				if rp.Bits() > 0 && rp.Overlaps(n) {
					t.Errorf("host has route %s (table %d), overlapping lab range %s", r.Dst, r.Table, n)
				}
			}
		}
		addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			ip, _ := netip.AddrFromSlice(a.IP)
			for _, n := range labNets {
				if n.Contains(ip.Unmap()) {
					t.Errorf("host has address %s in lab range %s", a.IPNet, n)
				}
			}
		}
	})

	t.Run("add, relabel, remove pods", func(t *testing.T) {
		ctx := context.Background()
		late := &model.Pod{Namespace: "other", Name: "late", Node: "node2", Labels: map[string]string{"app": "late"},
			IPs:   []netip.Addr{netip.MustParseAddr("10.10.5.5"), netip.MustParseAddr("fd00:10:10:5::5")},
			Ports: []model.ContainerPort{{Port: 8080, Protocol: model.TCP}}}
		if err := l.AddPod(ctx, late); err != nil {
			t.Fatal(err)
		}
		if err := srv.Sync(l); err != nil {
			t.Fatal(err)
		}
		if got := l.PodNode(late.Key()); got != "node2" {
			t.Errorf("PodNode(other/late) = %q, want node2 (its nodeName)", got)
		}
		for _, ip := range late.IPs {
			if ok, err := l.Probe(ctx, key("backend"), ip, 8080, model.TCP, time.Second); !ok || err != nil {
				t.Errorf("Probe(backend -> other/late %s:8080) = %v, %v; want true", ip, ok, err)
			}
		}
		out, code := execOut(t, l, late.Key(), "curl", "-s", "--max-time", "3", "frontend-service.default")
		if code != 0 || out != podserve.Body(key("frontend")) {
			t.Errorf("curl frontend-service.default from other/late = %q, exit %d", out, code)
		}
		if _, code := execOut(t, l, late.Key(), "curl", "-s", "--max-time", "3", "frontend-service"); code == 0 {
			t.Error("bare name of another namespace's service resolved from other/late")
		}

		// Relabel frontend: the service loses its endpoint; the pod keeps its IPs.
		before := l.Cluster().Pods[key("frontend")].IPs
		fe := *l.Cluster().Pods[key("frontend")]
		fe.Labels = map[string]string{"app": "elsewhere"}
		fe.IPs = nil
		if err := l.AddPod(ctx, &fe); err != nil {
			t.Fatal(err)
		}
		if after := l.Cluster().Pods[key("frontend")].IPs; !sameAddrs(before, after) {
			t.Errorf("relabel changed frontend's IPs from %v to %v", before, after)
		}
		begin := time.Now()
		if _, code := execOut(t, l, key("backend"), "curl", "-s", "--max-time", "3", "frontend-service"); code == 0 {
			t.Error("curl frontend-service succeeded with no endpoints")
		}
		if d := time.Since(begin); d > time.Second {
			t.Errorf("curl of a service without endpoints took %v, want a quick reject", d)
		}
		fe.Labels = map[string]string{"app": "frontend"}
		if err := l.AddPod(ctx, &fe); err != nil {
			t.Fatal(err)
		}
		if out, code := execOut(t, l, key("backend"), "curl", "-s", "--max-time", "3", "frontend-service"); code != 0 || out != podserve.Body(key("frontend")) {
			t.Errorf("after relabel back: curl frontend-service = %q, exit %d", out, code)
		}

		if err := l.RemovePod(ctx, late.Key()); err != nil {
			t.Fatal(err)
		}
		if err := srv.Sync(l); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(netns.Path(names.PodNetNS(l.Name(), late.Key()))); !os.IsNotExist(err) {
			t.Errorf("after RemovePod, its netns: stat = %v, want not exist", err)
		}
		if ok, _ := l.Probe(ctx, key("backend"), late.IPs[0], 8080, model.TCP, 300*time.Millisecond); ok {
			t.Error("removed pod still answers")
		}
	})

	t.Run("state reloads", func(t *testing.T) {
		l2, err := Load(l.Name())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := l2.Pods(), l.Pods(); len(got) != len(want) {
			t.Errorf("Load: pods %v, want %v", got, want)
		}
		out, code := execOut(t, l2, key("client-pod"), "curl", "-s", "--max-time", "3", "backend-service")
		if code != 0 || out != podserve.Body(key("backend")) {
			t.Errorf("curl backend-service via loaded lab = %q, exit %d", out, code)
		}
	})

	srv.Close()
	if err := Down(l.Name()); err != nil {
		t.Fatal(err)
	}
	assertGone(t, l.Name())
}

// assertGone checks that nothing of the lab is left.
func assertGone(t *testing.T, name string) {
	t.Helper()
	for _, dir := range []string{netns.Dir, names.EtcNetnsDir} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), NetNSPrefix(name)) {
				t.Errorf("after Down: %s left", filepath.Join(dir, e.Name()))
			}
		}
	}
	if _, err := os.Stat(StateDir(name)); !os.IsNotExist(err) {
		t.Errorf("after Down: %s: stat = %v, want not exist", StateDir(name), err)
	}
}

// TestDownAfterCrash builds a lab served by a daemon process, forgets it
// without any cleanup and removes it by name alone.
func TestDownAfterCrash(t *testing.T) {
	fixture.RequireRoot(t)
	c := model.NewCluster()
	web := &model.Pod{Namespace: "x", Name: "a", Images: []string{"docker.io/library/nginx:1.27"}}
	cl := &model.Pod{Namespace: "x", Name: "b"}
	c.Pods[web.Key()], c.Pods[cl.Key()] = web, cl
	name := fmt.Sprintf("t%x", rand.Uint32())
	t.Cleanup(func() { Down(name) })
	l, err := Up(context.Background(), name, c, Options{Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(daemonEnv, name)
	pid, err := StartDaemon(name, []string{self})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if again, err := StartDaemon(name, []string{self}); again != pid || err != nil {
		t.Errorf("StartDaemon again = %d, %v; want the running %d", again, err, pid)
	}
	to, _ := l.Cluster().Pods[web.Key()].IP(netip.Addr{})
	if ok, err := l.Probe(context.Background(), cl.Key(), to, 80, model.TCP, time.Second); !ok || err != nil {
		t.Errorf("Probe(x/b -> daemon-served x/a:80) = %v, %v; want true", ok, err)
	}
	// The daemon follows changes made by another process (here, this one).
	late := &model.Pod{Namespace: "x", Name: "c", Ports: []model.ContainerPort{{Port: 9000, Protocol: model.UDP}}}
	if err := l.AddPod(context.Background(), late); err != nil {
		t.Fatal(err)
	}
	lateIP, _ := l.Cluster().Pods[late.Key()].IP(netip.Addr{})
	for i := 0; ; i++ {
		ok, err := l.Probe(context.Background(), cl.Key(), lateIP, 9000, model.UDP, 200*time.Millisecond)
		if ok {
			break
		}
		if i == 10 {
			t.Fatalf("daemon does not serve a pod added later: Probe = %v, %v", ok, err)
		}
	}
	l = nil // crash: no Down, no Close

	if err := Down(name); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		if st, err := daemon.StartTime(pid); err == nil {
			t.Errorf("daemon %d still running after Down (start time %s)", pid, st)
		}
	}
	assertGone(t, name)
	if err := Down(name); err != nil {
		t.Errorf("second Down = %v, want nil", err)
	}
}

// TestStandardCluster builds conformance's standard cluster (FORMAT.md: nine
// pods with fixed IPs serving 80 and 81 on TCP, UDP and SCTP) on one node,
// and probes all 81 pairs at once, as the conformance runner does.
func TestStandardCluster(t *testing.T) {
	fixture.RequireRoot(t)
	c := model.NewCluster()
	for i, ns := range []string{"x", "y", "z"} {
		c.EnsureNamespace(ns).Labels["ns"] = ns
		for j, name := range []string{"a", "b", "c"} {
			p := &model.Pod{Namespace: ns, Name: name, Labels: map[string]string{"pod": name},
				IPs: []netip.Addr{
					netip.AddrFrom4([4]byte{10, 10, byte(i + 1), byte(j + 1)}),
					netip.MustParseAddr(fmt.Sprintf("fd00:10:10:%d::%d", i+1, j+1)),
				}}
			for _, port := range []uint16{80, 81} {
				for _, proto := range []model.Protocol{model.TCP, model.UDP, model.SCTP} {
					p.Ports = append(p.Ports, model.ContainerPort{
						Name: fmt.Sprintf("serve-%d-%s", port, strings.ToLower(proto.String())), Port: port, Protocol: proto})
				}
			}
			c.Pods[p.Key()] = p
		}
	}
	l := testLab(t, c, 1)
	srv, err := l.StartServers()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if got := l.Cluster().Nodes["node1"].IPs[0]; got != netip.MustParseAddr("10.10.0.1") {
		t.Errorf("node1's IPv4 = %s, want 10.10.0.1", got)
	}

	var reqs []ProbeReq
	for _, from := range l.Pods() {
		for _, to := range l.Pods() {
			for _, port := range []uint16{80, 81} {
				for _, proto := range []model.Protocol{model.TCP, model.UDP} {
					ip, _ := c.Pods[to].IP(netip.Addr{})
					reqs = append(reqs, ProbeReq{From: from, To: ip, Port: port, Proto: proto})
				}
			}
		}
	}
	begin := time.Now()
	for _, r := range l.ProbeAll(context.Background(), reqs, 2*time.Second, 0) {
		if !r.OK || r.Err != nil {
			t.Errorf("%s -> %s:%d/%s = %v, %v; want true", r.From, r.To, r.Port, r.Proto, r.OK, r.Err)
		}
	}
	t.Logf("%d probes in %v", len(reqs), time.Since(begin))
}

// TestUpFailureCleansUp: a lab that cannot be built leaves nothing behind.
func TestUpFailureCleansUp(t *testing.T) {
	fixture.RequireRoot(t)
	c := model.NewCluster()
	same := []netip.Addr{netip.MustParseAddr("10.20.0.5")}
	c.Pods[key("a")] = &model.Pod{Namespace: "default", Name: "a", IPs: same}
	c.Pods[key("b")] = &model.Pod{Namespace: "default", Name: "b", IPs: same}
	name := fmt.Sprintf("t%x", rand.Uint32())
	t.Cleanup(func() { Down(name) })
	if _, err := Up(context.Background(), name, c, Options{Nodes: 2}); err == nil || !strings.Contains(err.Error(), "already pod default/a's") {
		t.Fatalf("Up with two pods on one IP = %v, want an error naming the pods", err)
	}
	assertGone(t, name)
}
