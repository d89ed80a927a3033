package e2e

// Integration tests: the agent in-process (wired as `palisade agent` wires
// it) against the package's real kube-apiserver, enforcing in throwaway
// network namespaces. They need root and the cached API server binaries.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/palisade-net/palisade/internal/agent"
	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/kube"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/netns"
)

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// testNetNS creates a throwaway network namespace, removed when the test
// ends.
func testNetNS(t *testing.T) string {
	t.Helper()
	name := "palisade-agenttest-" + randHex(4)
	path, err := netns.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			t.Errorf("netns delete %s: %v", name, err)
		}
	})
	return path
}

// apiEnv is a fresh Kubernetes namespace on the package's API server.
type apiEnv struct {
	t          *testing.T
	kubeconfig string
	cs         kubernetes.Interface
	ns         string
}

func newAPIEnv(t *testing.T, kubeconfig string) *apiEnv {
	t.Helper()
	cs, err := kube.NewClient(kubeconfig, "palisade-agent-test")
	if err != nil {
		t.Fatal(err)
	}
	e := &apiEnv{t: t, kubeconfig: kubeconfig, cs: cs, ns: "agt-" + randHex(4)}
	_, err = cs.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns, Labels: map[string]string{"test": "agent"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// createPod creates a pod bound to node with ips, as a kubelet would
// report them, and deletes it when the test ends.
func (e *apiEnv) createPod(name, node string, labels map[string]string, ips ...string) {
	e.t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "nginx",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}}}}},
	}
	p, err := e.cs.CoreV1().Pods(e.ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		zero := int64(0)
		e.cs.CoreV1().Pods(e.ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ips[0]}
	for _, ip := range ips {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	if _, err := e.cs.CoreV1().Pods(e.ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *apiEnv) relabelPod(name string, labels map[string]string) {
	e.t.Helper()
	ctx := context.Background()
	p, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	p.Labels = labels
	if _, err := e.cs.CoreV1().Pods(e.ns).Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *apiEnv) createNode(name, ip string) {
	e.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	n, err := e.cs.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { e.cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
	if _, err := e.cs.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// allowFrom is a policy isolating pods labelled app=to for ingress,
// allowing pods labelled app=from; with from "" it allows nothing.
func (e *apiEnv) allowFrom(name, to, from string) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": to}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	if from != "" {
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
			{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": from}}}}}}
	}
	return np
}

func (e *apiEnv) createPolicy(np *networkingv1.NetworkPolicy) {
	e.t.Helper()
	if _, err := e.cs.NetworkingV1().NetworkPolicies(e.ns).Create(context.Background(), np, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *apiEnv) deletePolicy(name string) {
	e.t.Helper()
	if err := e.cs.NetworkingV1().NetworkPolicies(e.ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// runningAgent is an agent wired as `palisade agent` wires it, running
// in this process.
type runningAgent struct {
	t       *testing.T
	a       *agent.Agent
	node    *agent.Node
	http    *httptest.Server
	logs    *fixture.LogBuffer
	cancel  context.CancelFunc
	done    chan error
	closers []func()
	stopped bool
}

type agentOpts struct {
	logDenied, terminateDenied bool
	// crdRecheck is how often the source asks discovery again which
	// cluster policy kinds are served (kube.SourceOptions.CRDRecheck).
	crdRecheck time.Duration
	// podCIDRs turn the unknown-pod guard on (--pod-cidr).
	podCIDRs []netip.Prefix
}

func startAgent(t *testing.T, kubeconfig, nodeName, nsPath string, o agentOpts) *runningAgent {
	t.Helper()
	r := &runningAgent{t: t, logs: &fixture.LogBuffer{}, done: make(chan error, 1)}
	log := slog.New(slog.NewJSONHandler(io.MultiWriter(r.logs, testWriter{t}), nil))
	dopts := dataplane.Options{PodCIDRs: o.podCIDRs}
	if o.logDenied {
		dopts.LogDrops, dopts.LogGroup, dopts.LogRate = true, agent.DenyLogGroup, agent.DenyLogRate
	}
	node, err := agent.NewNode(nodeName, nsPath, dopts)
	if err != nil {
		t.Fatal(err)
	}
	r.node = node
	r.closers = append(r.closers, func() { node.Close() })
	client, err := kube.NewClient(kubeconfig, "palisade-agent/"+nodeName)
	if err != nil {
		t.Fatal(err)
	}
	src := kube.NewSource(client, kube.SourceOptions{NodeName: nodeName, Logger: log, CRDRecheck: o.crdRecheck})
	aopts := agent.Options{NodeName: nodeName, Logger: log}
	if o.logDenied {
		nf, err := agent.OpenNFLOG(nsPath, agent.DenyLogGroup)
		if err != nil {
			t.Fatal(err)
		}
		aopts.DenyLog = nf
	}
	if o.terminateDenied {
		ct, err := agent.OpenConntrack(nsPath)
		if err != nil {
			t.Fatal(err)
		}
		r.closers = append(r.closers, ct.Close)
		aopts.Flows = ct
	}
	r.a = agent.New(src, node, aopts)
	r.http = httptest.NewServer(r.a.Handler())
	// Ready is 503 before Run, and stays so until the first reconcile.
	if code, body := r.get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the first reconcile: %d %s", code, body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- r.a.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

// testWriter sends log lines to t.Log when -v.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// stop is the SIGTERM path: cancel, Run returns, the rules stay.
func (r *runningAgent) stop() {
	if r.stopped {
		return
	}
	r.stopped = true
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("agent Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		r.t.Error("agent did not stop within 10 s of cancel")
	}
	r.http.Close()
	for _, c := range r.closers {
		c()
	}
}

func (r *runningAgent) get(path string) (int, string) {
	resp, err := http.Get(r.http.URL + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReady waits for /readyz to be 200 and returns how long it took.
func (r *runningAgent) waitReady(timeout time.Duration) time.Duration {
	r.t.Helper()
	start := time.Now()
	for {
		code, body := r.get("/readyz")
		if code == http.StatusOK {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			r.t.Fatalf("not ready after %s: %d %s", timeout, code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metric returns the value of a metric line on /metrics (name with its
// labels as Prometheus prints them).
func (r *runningAgent) metric(series string) string {
	_, body := r.get("/metrics")
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return ""
}

// waitKernel polls the table in nsPath until cond holds and returns how
// long that took. rs is nil while there is no table.
func waitKernel(t *testing.T, nsPath, what string, timeout time.Duration, cond func(rs *dataplane.Ruleset) bool) time.Duration {
	t.Helper()
	start := time.Now()
	var last *dataplane.Ruleset
	for {
		// Read is not atomic: a transaction that deletes a set while it
		// lists makes it fail; read again.
		rs, err := dataplane.Read(nsPath)
		if errors.Is(err, dataplane.ErrNoTable) {
			rs, err = nil, nil
		}
		if err == nil {
			last = rs
			if cond(rs) {
				return time.Since(start)
			}
		}
		if time.Since(start) > timeout {
			dump := "<no table>"
			if last != nil {
				dump = last.String()
			}
			t.Fatalf("timed out after %s waiting for %s (last read error: %v); table:\n%s", timeout, what, err, dump)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mapHas reports whether the dispatch map or set of rs holds addr.
func setHas(rs *dataplane.Ruleset, set, addr string) bool {
	if rs == nil {
		return false
	}
	s := rs.Set(set)
	if s == nil {
		return false
	}
	for _, e := range s.Elems {
		if e.Addr.String() == addr {
			return true
		}
	}
	return false
}

// ingress0 names ingress rule 0 of policy ns/name.
func ingress0(ns, name string) engine.RuleRef {
	return engine.RuleRef{Policy: model.Key{Namespace: ns, Name: name}, Direction: model.Ingress}
}

// peersHold reports whether the peer set of policy ns/name, ingress rule
// 0, holds addr (in an element or a range).
func peersHold(rs *dataplane.Ruleset, ns, name, addr string) bool {
	if rs == nil {
		return false
	}
	s := rs.PeerSet(ingress0(ns, name), dataplane.IPv4)
	if s == nil {
		return false
	}
	for _, e := range s.Elems {
		lo, hi := e.Addr.String(), e.Addr
		if e.End.IsValid() {
			hi = e.End
		}
		if lo == addr || hi.String() == addr || (e.Addr.Less(mustAddr(addr)) && mustAddr(addr).Less(hi)) {
			return true
		}
	}
	return false
}

func policyChains(rs *dataplane.Ruleset) []string {
	var out []string
	if rs == nil {
		return nil
	}
	for _, c := range rs.Chains {
		if strings.HasPrefix(c.Name, "ing-") || strings.HasPrefix(c.Name, "egr-") {
			out = append(out, c.Name)
		}
	}
	return out
}

// addByHand adds to the table what no agent wrote: a chain with a rule,
// and a rule at the end of the forward chain.
func addByHand(t *testing.T, nsPath string) {
	t.Helper()
	f, err := os.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	table := &nftables.Table{Name: dataplane.TableName, Family: nftables.TableFamilyINet}
	ch := c.AddChain(&nftables.Chain{Name: "by-hand", Table: table})
	c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept}}})
	c.AddRule(&nftables.Rule{Table: table, Chain: &nftables.Chain{Name: "forward", Table: table},
		Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: "by-hand"}}})
	if err := c.Flush(); err != nil {
		t.Fatalf("adding by hand: %v", err)
	}
}

// The agent against the real API server, in a throwaway namespace:
// readiness, the table, policy create/update/delete and pod relabels
// reaching the kernel within a second, shutdown leaving the table, and a
// restart reconciling what changed meanwhile (and what was added by hand).
func TestAgentAgainstAPIServer(t *testing.T) {
	fixture.RequireRoot(t)
	srv := needAPIServer(t)
	nsPath := testNetNS(t)
	e := newAPIEnv(t, srv.Kubeconfig)
	node := e.ns + "-node"
	e.createNode(node, "10.250.255.1")
	e.createPod("web", node, map[string]string{"app": "web"}, "10.250.0.1")
	e.createPod("client", "elsewhere", map[string]string{"app": "client"}, "10.250.1.1")
	e.createPod("other", "elsewhere", map[string]string{"app": "other"}, "10.250.1.2")

	ag := startAgent(t, srv.Kubeconfig, node, nsPath, agentOpts{})
	if code, body := ag.get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz just after start: %d %s", code, body)
	}
	ready := ag.waitReady(10 * time.Second)
	t.Logf("ready %s after start", ready.Round(time.Millisecond))
	rs, err := dataplane.Read(nsPath)
	if err != nil {
		t.Fatalf("table inet palisade after the first reconcile: %v", err)
	}
	if rs.Chain("forward") == nil || rs.Chain("input") == nil {
		t.Fatalf("no base chains:\n%s", rs)
	}
	if code, _ := ag.get("/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if v := ag.metric("palisade_local_pods"); v != "1" {
		t.Errorf("palisade_local_pods = %q, want 1", v)
	}
	if v := ag.metric("palisade_cold_start_seconds"); v == "" || v == "0" {
		t.Errorf("palisade_cold_start_seconds = %q", v)
	}

	// A policy created with client-go is in the kernel within a second.
	created := time.Now()
	e.createPolicy(e.allowFrom("web", "web", "client"))
	waitKernel(t, nsPath, "the policy's rules", 5*time.Second, func(rs *dataplane.Ruleset) bool {
		return setHas(rs, "ingress4", "10.250.0.1") && peersHold(rs, e.ns, "web", "10.250.1.1")
	})
	lat := time.Since(created)
	t.Logf("policy created -> rules in the kernel: %s", lat.Round(time.Millisecond))
	if lat > time.Second {
		t.Errorf("policy took %s to reach the kernel, want < 1 s", lat)
	}
	rs, _ = dataplane.Read(nsPath)
	if len(policyChains(rs)) != 1 || peersHold(rs, e.ns, "web", "10.250.1.2") {
		t.Errorf("want one policy chain and only client in the peers:\n%s", rs)
	}

	// A label change moves a pod into the peers, and out again.
	e.relabelPod("other", map[string]string{"app": "client"})
	d := waitKernel(t, nsPath, "other in the peers", 5*time.Second, func(rs *dataplane.Ruleset) bool {
		return peersHold(rs, e.ns, "web", "10.250.1.2")
	})
	t.Logf("relabel in -> peer set: %s", d.Round(time.Millisecond))
	e.relabelPod("other", map[string]string{"app": "other"})
	d = waitKernel(t, nsPath, "other out of the peers", 5*time.Second, func(rs *dataplane.Ruleset) bool {
		return rs != nil && !peersHold(rs, e.ns, "web", "10.250.1.2") && peersHold(rs, e.ns, "web", "10.250.1.1")
	})
	t.Logf("relabel out -> peer set: %s", d.Round(time.Millisecond))

	// Deleting the policy removes its chain, sets and map element.
	e.deletePolicy("web")
	waitKernel(t, nsPath, "the policy gone", 5*time.Second, func(rs *dataplane.Ruleset) bool {
		return rs != nil && len(policyChains(rs)) == 0 && !setHas(rs, "ingress4", "10.250.0.1") && rs.PeerSet(ingress0(e.ns, "web"), dataplane.IPv4) == nil
	})

	// Shutdown (SIGTERM's path: the context ends) leaves the rules.
	e.createPolicy(e.allowFrom("web", "web", "client"))
	waitKernel(t, nsPath, "the policy again", 5*time.Second, func(rs *dataplane.Ruleset) bool { return setHas(rs, "ingress4", "10.250.0.1") })
	before, _ := dataplane.Read(nsPath)
	ag.stop()
	after, err := dataplane.Read(nsPath)
	if err != nil {
		t.Fatalf("table after shutdown: %v", err)
	}
	if before.String() != after.String() {
		t.Errorf("shutdown changed the table:\nbefore\n%s\nafter\n%s", before, after)
	}

	// While the agent is down: the policy is deleted, another is created,
	// and someone adds a chain and a rule by hand. The restarted agent
	// reconciles the table to exactly its own ruleset.
	e.deletePolicy("web")
	e.createPolicy(e.allowFrom("web2", "web", "other"))
	addByHand(t, nsPath)
	if rs, _ := dataplane.Read(nsPath); rs.Chain("by-hand") == nil {
		t.Fatalf("by-hand chain not added:\n%s", rs)
	}
	ag2 := startAgent(t, srv.Kubeconfig, node, nsPath, agentOpts{})
	ag2.waitReady(10 * time.Second)
	got, err := dataplane.Read(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	if got.Chain("by-hand") != nil || strings.Contains(got.String(), "by-hand") {
		t.Errorf("the by-hand chain and rule survived the restart:\n%s", got)
	}
	if chains := policyChains(got); len(chains) != 1 || !peersHold(got, e.ns, "web2", "10.250.1.2") || got.PeerSet(ingress0(e.ns, "web"), dataplane.IPv4) != nil {
		t.Errorf("restart did not reconcile the policies (stale web, new web2):\n%s", got)
	}
	got.Live = false // counters aside
	if want := ag2.node.Ruleset(); want == nil || want.String() != got.String() {
		t.Errorf("kernel differs from the agent's ruleset:\nkernel\n%s\nagent\n%v", got, want)
	}
	ag2.stop()
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// ownAPIServer starts an API server for one test (one it may stop),
// stopped and removed when the test ends.
func ownAPIServer(t *testing.T) server {
	t.Helper()
	root, kas, etcd, skip, err := apiBinaries()
	if err != nil {
		t.Fatal(err)
	}
	if skip != "" {
		skipOrFail(t, skip)
	}
	s, _, err := upAPIServer(root, kas, etcd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := downAPIServer(s.StateDir); err != nil {
			t.Error(err)
		}
	})
	return s
}

// stopKubeAPIServer kills the kube-apiserver of s (etcd stays) and
// returns its command line, to start it again the same way.
func stopKubeAPIServer(t *testing.T, s server) []string {
	t.Helper()
	pidFile := filepath.Join(s.StateDir, "apiserver.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; syscall.Kill(pid, 0) == nil; i++ {
		if i > 500 {
			t.Fatalf("kube-apiserver %d still alive", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return args
}

// startKubeAPIServer starts the kube-apiserver again with args (same
// port, certificates and etcd), records its pid for down.sh, and waits
// until it serves.
func startKubeAPIServer(t *testing.T, s server, args []string, cs kubernetes.Interface) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(s.StateDir, "apiserver.log"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	if err := os.WriteFile(filepath.Join(s.StateDir, "apiserver.pid"), []byte(fmt.Sprintln(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted kube-apiserver not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The API server goes away: the agent keeps the rules and reports not
// ready within ~15 s; it recovers when the server is back (same etcd), and
// follows changes again.
func TestAgentAPIServerDown(t *testing.T) {
	fixture.RequireRoot(t)
	srv := ownAPIServer(t)
	nsPath := testNetNS(t)
	e := newAPIEnv(t, srv.Kubeconfig)
	node := e.ns + "-node"
	e.createPod("web", node, map[string]string{"app": "web"}, "10.250.0.1")
	e.createPod("client", "elsewhere", map[string]string{"app": "client"}, "10.250.1.1")
	e.createPolicy(e.allowFrom("web", "web", "client"))
	ag := startAgent(t, srv.Kubeconfig, node, nsPath, agentOpts{})
	ag.waitReady(10 * time.Second)
	before, err := dataplane.Read(nsPath)
	if err != nil || !setHas(before, "ingress4", "10.250.0.1") {
		t.Fatalf("policy not enforced before the outage: %v\n%v", err, before)
	}

	args := stopKubeAPIServer(t, srv)
	down := time.Now()
	for {
		code, body := ag.get("/readyz")
		if code == http.StatusServiceUnavailable {
			t.Logf("not ready %s after the API server went away: %s", time.Since(down).Round(time.Millisecond), strings.TrimSpace(body))
			break
		}
		if time.Since(down) > 15*time.Second {
			t.Fatalf("still ready 15 s after the API server went away: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := ag.get("/healthz"); code != 200 {
		t.Errorf("/healthz %d while the API server is away: the process is fine", code)
	}
	during, err := dataplane.Read(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	before.Live, during.Live = false, false
	if before.String() != during.String() {
		t.Errorf("the rules changed during the outage:\nbefore\n%s\nduring\n%s", before, during)
	}

	// PALISADE_TEST_OUTAGE (a duration) keeps the server away longer, for
	// a measurement: client-go's own backoff would have grown by then.
	if d, err := time.ParseDuration(os.Getenv("PALISADE_TEST_OUTAGE")); err == nil {
		time.Sleep(time.Until(down.Add(d)))
	}
	restart := time.Now()
	startKubeAPIServer(t, srv, args, e.cs)
	back := time.Now()
	t.Logf("kube-apiserver restarted in %s", back.Sub(restart).Round(time.Millisecond))
	// The source retries unanswered lists and watches at most a second
	// apart (untilReachable), not on client-go's reflector backoff (up
	// to 60 s): the figure logged here is the recovery time. The wait's
	// bound only keeps a broken recovery from hanging the test.
	ag.waitReady(75 * time.Second)
	t.Logf("ready again %s after the API server returned (down for %s)", time.Since(back).Round(time.Millisecond), back.Sub(down).Round(time.Millisecond))
	e.deletePolicy("web")
	waitKernel(t, nsPath, "the policy's removal after recovery", 10*time.Second, func(rs *dataplane.Ruleset) bool {
		return rs != nil && !setHas(rs, "ingress4", "10.250.0.1")
	})
}
