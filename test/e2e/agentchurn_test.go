package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/lab/kubetest"
	"github.com/palisade-net/palisade/internal/model"
)

// churnAPIPolicy is version v of the server's policy in the API server:
// it admits role a on even versions and role b on odd ones, on port 80 and
// a port that changes with v.
func churnAPIPolicy(v int) *networkingv1.NetworkPolicy {
	role := "a"
	if v%2 == 1 {
		role = "b"
	}
	tcp := corev1.ProtocolTCP
	p80, pv := intstr.FromInt32(80), intstr.FromInt32(int32(1000+v%500))
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "churn", Name: "server-access"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": role}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p80}, {Protocol: &tcp, Port: &pv}},
			}},
		},
	}
}

// TestAgentsKilledUnderChurn: on a real API server, with the lab as
// kubelet and one palisade agent per node, policies and labels change 100
// times a second while the agents are killed with SIGKILL again and again
// (their supervisor restarts them). Probes run throughout: a pod that no
// policy version admits never gets through. At the end every node's table
// is what a fresh agent would write.
func TestAgentsKilledUnderChurn(t *testing.T) {
	fixture.RequireRoot(t)
	srv := kubetest.Start(t)
	bin := buildPalisade(t)
	const name = "agentchurn"
	palisade := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if out, err := palisade("lab", "down", "--name", name); err != nil {
			t.Errorf("lab down: %v\n%s", err, out)
		}
	})
	if out, err := palisade("lab", "up", "--name", name, "--kubeconfig", srv.Kubeconfig, "--nodes", "2"); err != nil {
		t.Fatalf("lab up --kubeconfig: %v\n%s", err, out)
	}
	cfg, err := lab.KubeRESTConfig(srv.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "churn"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ name, key, value string }{
		{"server", "app", "server"}, {"a", "role", "a"}, {"b", "role", "b"}, {"x", "role", "x"},
	} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "churn", Name: p.name, Labels: map[string]string{p.key: p.value}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
		}
		if _, err := cs.CoreV1().Pods("churn").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.NetworkingV1().NetworkPolicies("churn").Create(ctx, churnAPIPolicy(0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Wait for the lab to run the pods.
	var l *lab.Lab
	var serverIP netip.Addr
	for deadline := time.Now().Add(30 * time.Second); ; {
		if l, err = lab.Load(name); err == nil {
			c := l.Cluster()
			n := 0
			for _, k := range []string{"server", "a", "b", "x"} {
				if p := c.Pods[model.Key{Namespace: "churn", Name: k}]; p != nil && len(p.IPs) > 0 {
					n++
				}
			}
			if n == 4 {
				serverIP, _ = c.Pods[model.Key{Namespace: "churn", Name: "server"}].IP(netip.IPv4Unspecified())
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the lab did not run the pods within 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Probe only once the first policy isolates the server in its node's
	// kernel: before that, nothing denies x (the lab runs a pod before its
	// node's agent has seen the pod's address).
	serverNode := l.Cluster().Pods[model.Key{Namespace: "churn", Name: "server"}].Node
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if rs, err := dataplane.Read(l.NodeNetNS(serverNode)); err == nil && setHolds(rs.Set("ingress4"), serverIP) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server was not isolated in its node's kernel within 30 s")
		}
	}

	probeCtx, stopProbes := context.WithCancel(ctx)
	var xOK, probes atomic.Int64
	var seen, xTimes sync.Map
	var wg sync.WaitGroup
	for _, from := range []string{"x", "a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000 && probeCtx.Err() == nil; i++ {
				ok, err := l.Probe(probeCtx, model.Key{Namespace: "churn", Name: from}, serverIP, 80, model.TCP, 150*time.Millisecond)
				if err != nil {
					continue
				}
				probes.Add(1)
				seen.Store(fmt.Sprintf("%s:%v", from, ok), true)
				if from == "x" && ok {
					xOK.Add(1)
					xTimes.Store(time.Now().Format(time.RFC3339Nano), true)
				}
			}
		}()
	}

	// 100 changes a second for 6 s: the policy flips between versions,
	// and pod a's labels gain and lose an extra label (it stays role=a).
	churnCtx, stopChurn := context.WithTimeout(ctx, 6*time.Second)
	defer stopChurn()
	// Two writers, up to 66 changes a second each (about 100 in all on a
	// busy 2-core machine).
	var changes atomic.Int64
	for _, policyWriter := range []bool{true, false} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(15 * time.Millisecond)
			defer tick.Stop()
			for v := 1; churnCtx.Err() == nil; v++ {
				<-tick.C
				var err error
				if policyWriter {
					spec, _ := json.Marshal(map[string]any{"spec": churnAPIPolicy(v).Spec})
					_, err = cs.NetworkingV1().NetworkPolicies("churn").Patch(churnCtx, "server-access", types.MergePatchType, spec, metav1.PatchOptions{})
				} else {
					patch := fmt.Sprintf(`{"metadata":{"labels":{"gen":"g%d"}}}`, v)
					_, err = cs.CoreV1().Pods("churn").Patch(churnCtx, "a", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
				}
				if err == nil {
					changes.Add(1)
				}
			}
		}()
	}

	// Kill the agents, again and again, while the churn runs.
	kills := 0
	for round := 0; round < 4; round++ {
		time.Sleep(time.Duration(700+round*131) * time.Millisecond)
		for _, a := range lab.Agents(name) {
			if syscall.Kill(a.PID, syscall.SIGKILL) == nil {
				kills++
			}
		}
	}
	<-churnCtx.Done()
	// Let the restarted agents (their supervisor backs off up to 8 s after
	// the fourth kill) come back and settle, with probes still running.
	waitAgentsReady(t, name, 45*time.Second)
	time.Sleep(time.Second)
	stopProbes()
	wg.Wait()

	// The probes aimed at the server's address all along: the lab must not
	// have moved it (another pod answering there would be no policy leak).
	if l2, err := lab.Load(name); err == nil {
		if ip, _ := l2.Cluster().Pods[model.Key{Namespace: "churn", Name: "server"}].IP(netip.IPv4Unspecified()); ip != serverIP {
			t.Errorf("the lab moved the server from %s to %s during the test", serverIP, ip)
		}
	}
	if n := xOK.Load(); n > 0 {
		t.Errorf("x reached the server %d times; no policy version admits it", n)
		xTimes.Range(func(k, _ any) bool { t.Logf("x got through at %s", k); return true })
		for _, node := range []string{"node1", "node2"} {
			b, _ := os.ReadFile(lab.AgentLog(name, node))
			t.Logf("agent log of %s:\n%s", node, b)
		}
		for _, a := range lab.Agents(name) {
			t.Logf("agent %+v", a)
		}
		c := l.Cluster()
		for k, p := range c.Pods {
			t.Logf("pod %s node %s ips %v labels %v", k, p.Node, p.IPs, p.Labels)
		}
	}
	for _, k := range []string{"a:true", "b:true", "b:false"} {
		if _, ok := seen.Load(k); !ok {
			t.Errorf("never observed %s: the churn did not flip the policy", k)
		}
	}
	if kills < 4 {
		t.Errorf("only %d agents killed", kills)
	}
	t.Logf("%d changes in 6 s, %d agents killed, %d probes, x never got through", changes.Load(), kills, probes.Load())

	// The final tables are what a fresh agent writes for the API server's
	// state, as the lab's kubelet sees it.
	var diff string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if l, err = lab.Load(name); err != nil {
			t.Fatal(err)
		}
		e := engine.FromCluster(l.Cluster())
		diff = ""
		for _, node := range l.Nodes() {
			got, err := dataplane.Read(l.NodeNetNS(node))
			if err != nil {
				t.Fatal(err)
			}
			got.Live = false
			if d := cmp.Diff(strings.TrimSpace(dataplane.Compile(e, node, dataplane.Options{}).String()), strings.TrimSpace(got.String())); d != "" {
				diff = "node " + node + " (-fresh +kernel):\n" + d
			}
		}
		if diff == "" {
			break
		}
	}
	if diff != "" {
		t.Errorf("the final table is not a fresh agent's:\n%s", diff)
	}
}

// waitAgentsReady waits until every agent of a lab answers /readyz 200.
// lab.WaitAgents would call agents that this test killed crash-looping.
func waitAgentsReady(t *testing.T, name string, timeout time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		agents := lab.Agents(name)
		ready := 0
		for _, a := range agents {
			resp, err := client.Get("http://" + a.MetricsAddr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ready++
				}
			}
		}
		if len(agents) > 0 && ready == len(agents) {
			return
		}
	}
	t.Fatalf("the agents of lab %s were not ready again within %s", name, timeout)
}

// setHolds reports whether set s (nil: absent) has an element for addr.
func setHolds(s *dataplane.Set, addr netip.Addr) bool {
	if s == nil {
		return false
	}
	for _, e := range s.Elems {
		if e.Addr == addr {
			return true
		}
	}
	return false
}
