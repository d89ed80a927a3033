package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/lab/agents"
	"github.com/palisade-net/palisade/internal/lab/daemon"
	"github.com/palisade-net/palisade/internal/lab/ipam"
	"github.com/palisade-net/palisade/internal/lab/kubetest"
	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/netns"
)

func clientFor(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := KubeRESTConfig(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// waitFor polls cond every 50 ms for up to 20 s.
func waitFor(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s (last error: %v)", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKubeletMode runs a lab in kubelet mode against a real API server, its
// daemon (ServeKube) in this process and without agents: the lab registers
// its nodes, binds pending pods round-robin, builds them with addresses of
// their node's CIDRs and writes their status, DNATs the ClusterIPs the API
// server allocated, confirms deletions, leaves other nodes' pods alone, and
// KubeDown removes its nodes and their pods from the API server. The
// agents' kubeconfig is deploy/'s ServiceAccount: it can read what the
// agent watches and write nothing.
func TestKubeletMode(t *testing.T) {
	fixture.RequireRoot(t)
	srv := kubetest.Start(t)
	name := fmt.Sprintf("k%x", time.Now().UnixNano()&0xffffff)
	ctx := context.Background()

	_, err := KubeUp(ctx, name, Options{Nodes: 2}, KubeOptions{Kubeconfig: srv.Kubeconfig, NoAgents: true})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- ServeKube(sctx, name, nil) }()
	downed := false
	t.Cleanup(func() {
		stop() // first: KubeDown would signal the daemon, which is this process
		if err := <-served; err != nil {
			t.Errorf("ServeKube: %v", err)
		}
		if !downed {
			if err := KubeDown(name); err != nil {
				t.Errorf("KubeDown: %v", err)
			}
		}
	})
	waitFor(t, "daemon pidfile", func() (bool, error) { return daemon.PID(name) == os.Getpid(), nil })

	cs := clientFor(t, srv.Kubeconfig)
	node1, err := cs.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(node1.Status.Addresses); !strings.Contains(got, "10.10.0.1") || !strings.Contains(got, "fd00:10:10::1") || node1.Labels[KubeLabLabel] != name {
		t.Errorf("node1: addresses %s, labels %v", got, node1.Labels)
	}

	const ns = "kt"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := func(name string, labels map[string]string, mod func(*corev1.Pod)) {
		t.Helper()
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
		}
		if mod != nil {
			mod(p)
		}
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pod("web", map[string]string{"app": "web"}, nil)
	pod("client", map[string]string{"app": "client"}, nil)
	pod("host", nil, func(p *corev1.Pod) { p.Spec.HostNetwork, p.Spec.NodeName = true, "node2" })
	pod("elsewhere", nil, func(p *corev1.Pod) { p.Spec.NodeName = "not-a-lab-node" })
	svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web-svc", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(80)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	running := map[string]*corev1.Pod{}
	for _, p := range []string{"web", "client", "host"} {
		waitFor(t, "pod "+p+" running", func() (bool, error) {
			got, err := cs.CoreV1().Pods(ns).Get(ctx, p, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			running[p] = got
			ready := false
			for _, c := range got.Status.Conditions {
				ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
			}
			return got.Status.Phase == corev1.PodRunning && ready && len(got.Status.PodIPs) > 0, nil
		})
	}
	web, client, host := running["web"], running["client"], running["host"]
	if web.Spec.NodeName == client.Spec.NodeName {
		t.Errorf("web and client both on %s: want round-robin", web.Spec.NodeName)
	}
	for _, p := range []*corev1.Pod{web, client} {
		i := names.NodeIndex(p.Spec.NodeName)
		v4, v6 := ipam.PodCIDRs(i)
		if len(p.Status.PodIPs) != 2 || !v4.Contains(netip.MustParseAddr(p.Status.PodIPs[0].IP)) ||
			!v6.Contains(netip.MustParseAddr(p.Status.PodIPs[1].IP)) || p.Status.HostIP != ipam.NodeIPs(i)[0].String() {
			t.Errorf("pod %s on %s: podIPs %v hostIP %s", p.Name, p.Spec.NodeName, p.Status.PodIPs, p.Status.HostIP)
		}
	}
	if host.Status.PodIP != "10.10.0.2" {
		t.Errorf("host-network pod on node2: podIP %q, want the node's 10.10.0.2", host.Status.PodIP)
	}
	if p, err := cs.CoreV1().Pods(ns).Get(ctx, "elsewhere", metav1.GetOptions{}); err != nil || p.Status.PodIP != "" || p.Status.Phase == corev1.PodRunning {
		t.Errorf("another node's pod: %v, status %+v: the lab must leave it alone", err, p.Status)
	}

	// The Service's ClusterIP is the API server's, DNATed by the lab.
	cip := netip.MustParseAddr(svc.Spec.ClusterIP)
	waitFor(t, "client reaches web-svc at its ClusterIP", func() (bool, error) {
		l, err := Load(name)
		if err != nil {
			return false, err
		}
		return l.Probe(ctx, model.Key{Namespace: ns, Name: "client"}, cip, 8080, model.TCP, time.Second)
	})

	// Policies reach the lab's state (for predictions); enforcement is the
	// agents' (none here).
	if _, err := cs.NetworkingV1().NetworkPolicies(ns).Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny", Namespace: ns},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "policy in the lab's state", func() (bool, error) {
		l, err := Load(name)
		return err == nil && l.Cluster().Policies[model.Key{Namespace: ns, Name: "deny"}] != nil, err
	})

	// A deletion is confirmed by the lab, as by a kubelet: the pod goes
	// from the API server and its namespace from the host.
	webNS := netns.Path(names.PodNetNS(name, model.Key{Namespace: ns, Name: "web"}))
	if _, err := os.Stat(webNS); err != nil {
		t.Fatalf("web's network namespace: %v", err)
	}
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "web deleted", func() (bool, error) {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		_, serr := os.Stat(webNS)
		return apierrors.IsNotFound(err) && errors.Is(serr, os.ErrNotExist), err
	})

	t.Run("agent identity", func(t *testing.T) {
		agent := clientFor(t, names.AgentKubeconfig(name))
		// What the agent watches: list and watch work.
		for what, list := range map[string]func() error{
			"pods":       func() error { _, err := agent.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); return err },
			"namespaces": func() error { _, err := agent.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); return err },
			"nodes":      func() error { _, err := agent.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); return err },
			"networkpolicies": func() error {
				_, err := agent.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{})
				return err
			},
		} {
			if err := list(); err != nil {
				t.Errorf("list %s as the agent: %v", what, err)
			}
		}
		w, err := agent.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{})
		if err != nil {
			t.Errorf("watch pods as the agent: %v", err)
		} else {
			w.Stop()
		}
		// Nothing else.
		zero := int64(0)
		for what, write := range map[string]func() error{
			"create a pod": func() error {
				_, err := agent.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}, metav1.CreateOptions{})
				return err
			},
			"delete a pod": func() error {
				return agent.CoreV1().Pods(ns).Delete(ctx, "client", metav1.DeleteOptions{GracePeriodSeconds: &zero})
			},
			"update a node": func() error { _, err := agent.CoreV1().Nodes().Update(ctx, node1, metav1.UpdateOptions{}); return err },
			"delete a policy": func() error {
				return agent.NetworkingV1().NetworkPolicies(ns).Delete(ctx, "deny", metav1.DeleteOptions{})
			},
			"list secrets":   func() error { _, err := agent.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); return err },
			"list services":  func() error { _, err := agent.CoreV1().Services("").List(ctx, metav1.ListOptions{}); return err },
			"create a token": func() error { _, err := agents.MintToken(ctx, agent, time.Hour); return err },
			"create namespace": func() error {
				_, err := agent.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "y"}}, metav1.CreateOptions{})
				return err
			},
		} {
			if err := write(); !apierrors.IsForbidden(errors.Unwrap(err)) && !apierrors.IsForbidden(err) {
				t.Errorf("%s as the agent: %v, want Forbidden", what, err)
			}
		}
	})

	// Down: the lab's nodes and the pods bound to them leave the API
	// server; another node's pod stays; nothing of the lab stays on the host.
	stop()
	if err := <-served; err != nil {
		t.Errorf("ServeKube: %v", err)
	}
	served <- nil
	if err := KubeDown(name); err != nil {
		t.Fatal(err)
	}
	downed = true
	if nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil || len(nodes.Items) != 0 {
		t.Errorf("nodes after down: %v %v", nodes, err)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Name != "elsewhere" {
		t.Errorf("pods after down: %v (want only elsewhere)", err)
		if pods != nil {
			for _, p := range pods.Items {
				t.Errorf("  %s on %q", p.Name, p.Spec.NodeName)
			}
		}
	}
	if left, err := leftovers(name); err != nil || len(left) > 0 {
		t.Errorf("left after down: %v %v", left, err)
	}
	if _, err := os.Stat(filepath.Join(StateDir(name))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir after down: %v", err)
	}
}
