package e2e

// ReadCluster against the package's real kube-apiserver (main_test.go):
// the model it returns, object by object; finished pods; an address two
// live pods report; invalid objects; kubeconfig contexts and their
// namespace; an unreachable server; paging through more objects than one
// page holds.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/kube"
	"github.com/palisade-net/palisade/internal/model"
)

// addrCmp lets cmp compare netip values.
var addrCmp = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

// rcClient is a client for the test's writes, with a limit high enough
// for creating many objects.
func rcClient(t *testing.T, kubeconfig string) kubernetes.Interface {
	t.Helper()
	cfg, err := kube.Config(kubeconfig, "palisade-cluster-test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// readCluster calls ReadCluster on kubeconfig's current context and
// returns the cluster and the warnings it wrote.
func readCluster(t *testing.T, src kube.ClusterSource) (*model.Cluster, string) {
	t.Helper()
	var warn bytes.Buffer
	src.Warnings = &warn
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, ns, err := kube.ReadCluster(ctx, src)
	if err != nil {
		t.Fatalf("ReadCluster: %v", err)
	}
	if ns != "default" && src.Context == "" {
		t.Errorf("ReadCluster: namespace %q, want default (the context names none)", ns)
	}
	return c, warn.String()
}

// rcNamespace creates a namespace, deleted (as far as an API server
// without a namespace controller deletes it) when the test ends; its
// pods are deleted first.
func rcNamespace(t *testing.T, cs kubernetes.Interface, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		zero := int64(0)
		cs.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
}

// rcPod creates pod and, when status has a phase, writes its status
// through the status subresource (as a kubelet does). It returns the pod
// as stored.
func rcPod(t *testing.T, cs kubernetes.Interface, pod *corev1.Pod, status corev1.PodStatus) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	if len(pod.Spec.Containers) == 0 {
		pod.Spec.Containers = []corev1.Container{{Name: "c", Image: "nginx"}}
	}
	p, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if status.Phase == "" {
		return p
	}
	p.Status = status
	if p, err = cs.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	return p
}

// podStatus is a kubelet's status: phase and addresses.
func podStatus(phase corev1.PodPhase, ips ...string) corev1.PodStatus {
	st := corev1.PodStatus{Phase: phase}
	for i, ip := range ips {
		if i == 0 {
			st.PodIP = ip
		}
		st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
	}
	return st
}

// rcNode creates a node with addresses, deleted when the test ends.
func rcNode(t *testing.T, cs kubernetes.Interface, name string, addrs ...corev1.NodeAddress) {
	t.Helper()
	ctx := context.Background()
	n, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	n.Status.Addresses = addrs
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// TestReadCluster: what ReadCluster returns is exactly the cluster before
// the test's objects plus them, each as the model holds it: namespaces
// with their labels, live pods with addresses, ports, node and host
// network, finished pods left out (also one that shares a live pod's
// address, without a warning), services with their allocated cluster
// IPs, policies, nodes.
func TestReadCluster(t *testing.T) {
	srv := needAPIServer(t)
	cs := rcClient(t, srv.Kubeconfig)
	src := kube.ClusterSource{Kubeconfig: srv.Kubeconfig}
	before, _ := readCluster(t, src)

	ctx := context.Background()
	sfx := randHex(3)
	nsA, nsB, node := "rc-a-"+sfx, "rc-b-"+sfx, "rc-node-"+sfx
	rcNamespace(t, cs, nsA, map[string]string{"team": "a", "env": "prod"})
	rcNamespace(t, cs, nsB, nil)
	rcNode(t, cs, node,
		corev1.NodeAddress{Type: corev1.NodeHostName, Address: node},
		corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.251.255.1"},
		corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.7"},
		corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "fd00:251:ff::1"})

	rcPod(t, cs, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsA, Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{
			{Name: "web", Image: "nginx", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}, {Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}}},
			{Name: "side", Image: "envoy", Ports: []corev1.ContainerPort{{ContainerPort: 9901, Protocol: corev1.ProtocolSCTP}}},
		}},
	}, podStatus(corev1.PodRunning, "10.251.0.1", "fd00:251::1"))
	rcPod(t, cs, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsA, Name: "db", Labels: map[string]string{"app": "db", "tier": "data"}},
		Spec:       corev1.PodSpec{NodeName: node},
	}, podStatus(corev1.PodPending, "10.251.0.2"))
	// Finished pods: one holding the web pod's address (a Job's pod whose
	// address went back to the pool), one its own.
	rcPod(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: nsA, Name: "job-done", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: node, RestartPolicy: corev1.RestartPolicyNever}},
		podStatus(corev1.PodSucceeded, "10.251.0.1"))
	rcPod(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: nsB, Name: "job-failed"},
		Spec: corev1.PodSpec{NodeName: node, RestartPolicy: corev1.RestartPolicyNever}},
		podStatus(corev1.PodFailed, "10.251.0.9"))
	// Not scheduled yet: no node, no address.
	rcPod(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: nsB, Name: "pending", Labels: map[string]string{"app": "queue"}}},
		corev1.PodStatus{})
	// Host network: the node's address, as every host-network pod of the
	// node reports it.
	for _, name := range []string{"host-1", "host-2"} {
		rcPod(t, cs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: nsB, Name: name},
			Spec: corev1.PodSpec{NodeName: node, HostNetwork: true}},
			podStatus(corev1.PodRunning, "10.251.255.1"))
	}

	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	svc, err := cs.CoreV1().Services(nsA).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsA, Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{
			{Name: "http", Port: 8080, TargetPort: intstr.FromString("http")},
			{Name: "dns", Port: 53, Protocol: udp, TargetPort: intstr.FromInt32(5353)},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services(nsB).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsB, Name: "headless"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "queue"}, Ports: []corev1.ServicePort{{Port: 5672}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services(nsB).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsB, Name: "outside"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	p80, pHTTP := intstr.FromInt32(80), intstr.FromString("http")
	end := int32(8090)
	if _, err := cs.NetworkingV1().NetworkPolicies(nsA).Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsA, Name: "web-from-b", Labels: map[string]string{"owner": "x"}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{model.NamespaceNameLabel: nsB}}},
					{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"data"}}}}},
					{IPBlock: &networkingv1.IPBlock{CIDR: "192.168.0.0/16", Except: []string{"192.168.1.0/24"}}},
				},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &pHTTP}, {Protocol: &tcp, Port: &p80, EndPort: &end}},
			}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.NetworkingV1().NetworkPolicies(nsB).Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsB, Name: "deny-egress"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	got, warnings := readCluster(t, src)
	t.Logf("ReadCluster: %d namespaces, %d pods, %d services, %d policies, %d nodes in %s",
		len(got.Namespaces), len(got.Pods), len(got.Services), len(got.Policies), len(got.Nodes), time.Since(start).Round(time.Millisecond))
	if warnings != "" {
		t.Errorf("warnings: %s", warnings)
	}

	want := before.Clone()
	want.Namespaces[nsA] = &model.Namespace{Name: nsA, Labels: map[string]string{"team": "a", "env": "prod", model.NamespaceNameLabel: nsA}}
	want.Namespaces[nsB] = &model.Namespace{Name: nsB, Labels: map[string]string{model.NamespaceNameLabel: nsB}}
	want.Nodes[node] = &model.Node{Name: node, IPs: addrs("10.251.255.1", "203.0.113.7", "fd00:251:ff::1")}
	for _, p := range []*model.Pod{
		{Namespace: nsA, Name: "web", Labels: map[string]string{"app": "web"}, Node: node, IPs: addrs("10.251.0.1", "fd00:251::1"),
			Ports: []model.ContainerPort{{Name: "http", Port: 80, Protocol: model.TCP}, {Name: "dns", Port: 53, Protocol: model.UDP}, {Port: 9901, Protocol: model.SCTP}}},
		{Namespace: nsA, Name: "db", Labels: map[string]string{"app": "db", "tier": "data"}, Node: node, IPs: addrs("10.251.0.2")},
		{Namespace: nsB, Name: "pending", Labels: map[string]string{"app": "queue"}},
		{Namespace: nsB, Name: "host-1", Node: node, HostNetwork: true, IPs: addrs("10.251.255.1")},
		{Namespace: nsB, Name: "host-2", Node: node, HostNetwork: true, IPs: addrs("10.251.255.1")},
	} {
		want.Pods[p.Key()] = p
	}
	for _, s := range []*model.Service{
		{Namespace: nsA, Name: "web", Selector: map[string]string{"app": "web"}, ClusterIPs: addrs(svc.Spec.ClusterIPs...), Ports: []model.ServicePort{
			{Name: "http", Protocol: model.TCP, Port: 8080, TargetPortName: "http"},
			{Name: "dns", Protocol: model.UDP, Port: 53, TargetPort: 5353},
		}},
		{Namespace: nsB, Name: "headless", Selector: map[string]string{"app": "queue"}, Ports: []model.ServicePort{{Protocol: model.TCP, Port: 5672, TargetPort: 5672}}},
		{Namespace: nsB, Name: "outside"},
	} {
		want.Services[s.Key()] = s
	}
	for _, p := range []*model.Policy{
		{Namespace: nsA, Name: "web-from-b", PodSelector: model.Selector{MatchLabels: map[string]string{"app": "web"}}, Ingress: true,
			IngressRules: []model.Rule{{
				Peers: []model.Peer{
					{NamespaceSelector: &model.Selector{MatchLabels: map[string]string{model.NamespaceNameLabel: nsB}}},
					{PodSelector: &model.Selector{Exprs: []model.Requirement{{Key: "tier", Operator: model.OpIn, Values: []string{"data"}}}}},
					{IPBlock: &model.IPBlock{CIDR: netip.MustParsePrefix("192.168.0.0/16"), Except: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}}},
				},
				Ports: []model.Port{{Protocol: model.TCP, Name: "http"}, {Protocol: model.TCP, Port: 80, EndPort: 8090}},
			}}},
		{Namespace: nsB, Name: "deny-egress", Egress: true},
	} {
		want.Policies[p.Key()] = p
	}
	if d := cmp.Diff(want, got, addrCmp); d != "" {
		t.Errorf("ReadCluster (-want +got):\n%s", d)
	}
	// The API server's own namespaces and Service are there too.
	for _, ns := range []string{"default", "kube-system"} {
		if n := got.Namespaces[ns]; n == nil || n.Labels[model.NamespaceNameLabel] != ns {
			t.Errorf("namespace %s: %+v", ns, n)
		}
	}
	if got.Services[model.Key{Namespace: "default", Name: "kubernetes"}] == nil {
		t.Errorf("no Service default/kubernetes")
	}
}

// TestReadClusterSharedAddress: two live pods reporting one address do
// not make the cluster unreadable. The address goes to the pod not being
// deleted, else to the newer, else to the later name; the other keeps its
// other addresses; a warning names both. Finished pods are no part of it.
func TestReadClusterSharedAddress(t *testing.T) {
	srv := needAPIServer(t)
	cs := rcClient(t, srv.Kubeconfig)
	ns := "rc-dup-" + randHex(3)
	rcNamespace(t, cs, ns, nil)
	ctx := context.Background()
	pod := func(name string, finalizer bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.PodSpec{NodeName: "n"}}
		if finalizer {
			p.Finalizers = []string{"palisade.test/keep"}
		}
		return p
	}
	// Newer wins: z-old is a second older than a-new (creation times have
	// one-second resolution), and keeps its IPv6 address.
	old := rcPod(t, cs, pod("z-old", false), podStatus(corev1.PodRunning, "10.252.0.1", "fd00:252::1"))
	for time.Now().Truncate(time.Second).Equal(old.CreationTimestamp.Time) {
		time.Sleep(50 * time.Millisecond)
	}
	rcPod(t, cs, pod("a-new", false), podStatus(corev1.PodRunning, "10.252.0.1"))
	// Being deleted loses, though newer: b-going has a finalizer and a
	// deletion timestamp.
	keep := rcPod(t, cs, pod("c-keep", false), podStatus(corev1.PodRunning, "10.252.0.2"))
	for time.Now().Truncate(time.Second).Equal(keep.CreationTimestamp.Time) {
		time.Sleep(50 * time.Millisecond)
	}
	rcPod(t, cs, pod("b-going", true), podStatus(corev1.PodRunning, "10.252.0.2"))
	t.Cleanup(func() {
		patch := []byte(`{"metadata":{"finalizers":null}}`)
		if _, err := cs.CoreV1().Pods(ns).Patch(context.Background(), "b-going", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("removing b-going's finalizer: %v", err)
		}
	})
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "b-going", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Same second (usually): the later name wins; else the newer.
	t1 := rcPod(t, cs, pod("tie-1", false), podStatus(corev1.PodRunning, "10.252.0.3"))
	t2 := rcPod(t, cs, pod("tie-2", false), podStatus(corev1.PodRunning, "10.252.0.3"))
	tieWhy := "later in name order"
	if !t1.CreationTimestamp.Equal(&t2.CreationTimestamp) {
		tieWhy = "newer"
	}
	// Finished pods holding the addresses change nothing.
	for i, ip := range []string{"10.252.0.1", "10.252.0.2", "10.252.0.3"} {
		rcPod(t, cs, pod(fmt.Sprintf("done-%d", i), false), podStatus(corev1.PodSucceeded, ip))
	}

	got, warnings := readCluster(t, kube.ClusterSource{Kubeconfig: srv.Kubeconfig})
	ips := map[string][]netip.Addr{}
	for k, p := range got.Pods {
		if k.Namespace == ns {
			ips[k.Name] = p.IPs
		}
	}
	want := map[string][]netip.Addr{
		"a-new":   addrs("10.252.0.1"),
		"z-old":   addrs("fd00:252::1"),
		"c-keep":  addrs("10.252.0.2"),
		"b-going": nil,
		"tie-1":   nil,
		"tie-2":   addrs("10.252.0.3"),
	}
	if d := cmp.Diff(want, ips, addrCmp); d != "" {
		t.Errorf("addresses (-want +got):\n%s", d)
	}
	for _, w := range []string{
		fmt.Sprintf("warning: pods %s/z-old and %s/a-new both report address 10.252.0.1: taking it as %s/a-new's (newer)\n", ns, ns, ns),
		fmt.Sprintf("warning: pods %s/b-going and %s/c-keep both report address 10.252.0.2: taking it as %s/c-keep's (the other is being deleted)\n", ns, ns, ns),
		fmt.Sprintf("warning: pods %s/tie-1 and %s/tie-2 both report address 10.252.0.3: taking it as %s/tie-2's (%s)\n", ns, ns, ns, tieWhy),
	} {
		if !strings.Contains(warnings, w) {
			t.Errorf("warnings lack %q:\n%s", w, warnings)
		}
	}
	if n := strings.Count(warnings, "\n"); n != 3 {
		t.Errorf("%d warnings, want 3:\n%s", n, warnings)
	}
}

// TestReadClusterInvalidObject: an object the API server holds but
// palisade cannot read (a node address that is no IP, which the API
// server does not check) is an error naming kind, object and field, and
// with several the error names each.
func TestReadClusterInvalidObject(t *testing.T) {
	srv := needAPIServer(t)
	cs := rcClient(t, srv.Kubeconfig)
	sfx := randHex(3)
	rcNode(t, cs, "rc-bad-1-"+sfx, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.300"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, err := kube.ReadCluster(ctx, kube.ClusterSource{Kubeconfig: srv.Kubeconfig})
	var ae *apiconv.Error
	if err == nil || !errors.As(err, &ae) {
		t.Fatalf("ReadCluster: %v, want an *apiconv.Error", err)
	}
	for _, w := range []string{"context test (https://127.0.0.1:", "Node rc-bad-1-" + sfx, "status.addresses[0].address", "10.0.0.300"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	t.Logf("one invalid object: %v", err)
	rcNode(t, cs, "rc-bad-2-"+sfx, corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "bad"})
	_, _, err = kube.ReadCluster(ctx, kube.ClusterSource{Kubeconfig: srv.Kubeconfig})
	if err == nil {
		t.Fatal("ReadCluster: no error")
	}
	t.Logf("two invalid objects: %v", err)
	for _, w := range []string{": 2 invalid objects:", "Node rc-bad-1-" + sfx + ": status.addresses[0].address", "Node rc-bad-2-" + sfx + ": status.addresses[0].address"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
}

// TestReadClusterKubeconfig: the context comes from the kubeconfig or
// --context; its namespace is returned; an unknown context, a missing
// file and an unreachable server are errors that say which.
func TestReadClusterKubeconfig(t *testing.T) {
	srv := needAPIServer(t)
	b, err := os.ReadFile(srv.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	// up.sh's kubeconfig has one cluster "test" and context "test"; add a
	// context with a namespace and one whose server nobody listens on.
	kc := strings.Replace(string(b), "contexts:\n", `contexts:
- name: with-ns
  context: {cluster: test, user: admin, namespace: shop}
- name: nowhere
  context: {cluster: nowhere, user: admin}
`, 1)
	kc = strings.Replace(kc, "clusters:\n", "clusters:\n- name: nowhere\n  cluster:\n    server: https://127.0.0.1:1\n", 1)
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tt := range []struct {
		context, ns string
	}{{"", "default"}, {"test", "default"}, {"with-ns", "shop"}} {
		c, ns, err := kube.ReadCluster(ctx, kube.ClusterSource{Kubeconfig: path, Context: tt.context})
		if err != nil || ns != tt.ns || c.Namespaces["default"] == nil {
			t.Errorf("context %q: namespace %q, %v; want %q", tt.context, ns, err, tt.ns)
		}
	}
	noCurrent := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(noCurrent, []byte(strings.Replace(kc, "current-context: test", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		src        kube.ClusterSource
		kubeconfig bool // a kubeconfig problem (bad input), not the cluster's
		want       []string
	}{
		{kube.ClusterSource{Kubeconfig: path, Context: "prod"}, true, []string{path, `no context "prod"`, "its contexts: nowhere, test, with-ns"}},
		{kube.ClusterSource{Kubeconfig: noCurrent}, true, []string{noCurrent, "no current-context: give --context (its contexts: nowhere, test, with-ns)"}},
		{kube.ClusterSource{Kubeconfig: path + ".missing"}, true, []string{path + ".missing"}},
		{kube.ClusterSource{Kubeconfig: srv.StateDir + "/ca.crt"}, true, []string{srv.StateDir + "/ca.crt"}},
		{kube.ClusterSource{Kubeconfig: path, Context: "nowhere"}, false, []string{"context nowhere (https://127.0.0.1:1)", "listing namespaces", "connection refused"}},
	} {
		_, _, err := kube.ReadCluster(ctx, tt.src)
		if err == nil {
			t.Errorf("%+v: no error", tt.src)
			continue
		}
		t.Logf("%+v: %v", tt.src, err)
		if errors.Is(err, kube.ErrKubeconfig) != tt.kubeconfig {
			t.Errorf("%+v: errors.Is(%v, ErrKubeconfig) = %t", tt.src, err, !tt.kubeconfig)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error lacks %q: %v", tt.src, w, err)
			}
		}
	}
	if _, _, err := kube.ReadCluster(ctx, kube.ClusterSource{Kubeconfig: path + ".missing"}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing kubeconfig: %v, want fs.ErrNotExist", err)
	}
	// The caller's deadline holds.
	short, cancel2 := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel2()
	<-short.Done()
	if _, _, err := kube.ReadCluster(short, kube.ClusterSource{Kubeconfig: path}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("expired context: %v, want context.DeadlineExceeded", err)
	}
}

// TestReadClusterPaging: 1,200 pods, more than two default pages, read
// whole at the default page size and at pages of 7 (172 requests with
// continue tokens).
func TestReadClusterPaging(t *testing.T) {
	srv := needAPIServer(t)
	cs := rcClient(t, srv.Kubeconfig)
	ns := "rc-page-" + randHex(3)
	rcNamespace(t, cs, ns, nil)
	const n = 1200
	start := time.Now()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan int)
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				_, err := cs.CoreV1().Pods(ns).Create(context.Background(), &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("p-%04d", i), Labels: map[string]string{"i": fmt.Sprint(i % 10)}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
				}, metav1.CreateOptions{})
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("creating pods: %d errors, first %v", len(errs), errs[0])
	}
	t.Logf("%d pods created in %s", n, time.Since(start).Round(time.Millisecond))

	var first *model.Cluster
	for _, size := range []int64{0, 7} {
		start := time.Now()
		c, _ := readCluster(t, kube.ClusterSource{Kubeconfig: srv.Kubeconfig, PageSize: size})
		t.Logf("page size %d: read %d pods in %s", size, len(c.Pods), time.Since(start).Round(time.Millisecond))
		var mine int
		for k, p := range c.Pods {
			if k.Namespace != ns {
				continue
			}
			mine++
			var i int
			if _, err := fmt.Sscanf(k.Name, "p-%d", &i); err != nil || p.Labels["i"] != fmt.Sprint(i%10) {
				t.Fatalf("pod %s: %+v", k, p)
			}
		}
		if mine != n {
			t.Errorf("page size %d: %d pods of %s, want %d", size, mine, ns, n)
		}
		if first == nil {
			first = c
		} else if d := cmp.Diff(first, c, addrCmp); d != "" {
			t.Errorf("page size %d reads otherwise than the default (-default +%d):\n%s", size, size, d)
		}
	}
}
