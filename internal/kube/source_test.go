package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/source"
)

// recorder collects the events a Source pushes.
type recorder struct {
	mu     sync.Mutex
	evs    []source.Event
	synced chan struct{}
}

func newRecorder() *recorder { return &recorder{synced: make(chan struct{})} }

func (r *recorder) push(ev source.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
}

func (r *recorder) take() []source.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.evs
	r.evs = nil
	return out
}

// waitFor waits until an event satisfying ok arrives, and returns it and
// every event before it.
func (r *recorder) waitFor(t *testing.T, what string, ok func(source.Event) bool) (source.Event, []source.Event) {
	t.Helper()
	var seen []source.Event
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, ev := range r.take() {
			seen = append(seen, ev)
			if ok(ev) {
				return ev, seen
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no event %s; saw %+v", what, seen)
	return source.Event{}, nil
}

func startSource(t *testing.T, cs *fake.Clientset, node string) (*Source, *recorder) {
	t.Helper()
	src := NewSource(cs, SourceOptions{NodeName: node})
	r := newRecorder()
	fixture.RunUntilCleanup(t, func(ctx context.Context) error {
		return src.Run(ctx, r.push, func() { close(r.synced) })
	})
	select {
	case <-r.synced:
	case <-time.After(5 * time.Second):
		t.Fatal("source never synced")
	}
	return src, r
}

func is(kind source.Kind, key model.Key, del bool) func(source.Event) bool {
	return func(ev source.Event) bool { return ev.Kind == kind && ev.Key == key && ev.Delete == del }
}

// Every kind flows from the API (a fake clientset here) into events:
// the initial listing before synced, then adds, updates and deletes.
func TestSourceEvents(t *testing.T) {
	ctx := context.Background()
	pod := fullPod()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "a"}}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.1"}}}}
	pol := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: testPolicySpec()}
	cs := fake.NewClientset(pod, ns, node, pol)

	src, r := startSource(t, cs, "node-1")
	// The initial listing came before synced.
	initial := r.take()
	kinds := map[source.Kind]source.Event{}
	for _, ev := range initial {
		kinds[ev.Kind] = ev
		if ev.Err != nil || ev.Delete || ev.Received.IsZero() {
			t.Errorf("initial event %+v", ev)
		}
	}
	if len(initial) != 4 || len(kinds) != 4 {
		t.Fatalf("initial events: %+v", initial)
	}
	if p := kinds[source.KindPod].Pod; p == nil || p.Key() != (model.Key{Namespace: "shop", Name: "web-1"}) || p.Node != "node-1" || len(p.IPs) != 2 || p.Labels["app"] != "web" {
		t.Errorf("pod event: %+v", kinds[source.KindPod].Pod)
	}
	if n := kinds[source.KindNamespace].Namespace; n == nil || n.Labels["team"] != "a" || n.Labels[model.NamespaceNameLabel] != "shop" {
		t.Errorf("namespace event: %+v", n)
	}
	if n := kinds[source.KindNode].Node; n == nil || len(n.IPs) != 1 {
		t.Errorf("node event: %+v", n)
	}
	if p := kinds[source.KindPolicy].Policy; p == nil || !p.Ingress || !p.Egress || len(p.IngressRules) != 1 {
		t.Errorf("policy event: %+v", p)
	}
	if err := src.Healthy(); err != nil {
		t.Errorf("Healthy: %v", err)
	}

	podKey := model.Key{Namespace: "shop", Name: "web-1"}
	// An update that changes nothing policy reads is no event; a label
	// change is.
	p2 := pod.DeepCopy()
	p2.Annotations["touched"] = "yes"
	p2.Status.Conditions = nil
	if _, err := cs.CoreV1().Pods("shop").Update(ctx, p2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	p3 := p2.DeepCopy()
	p3.Labels["app"] = "api"
	if _, err := cs.CoreV1().Pods("shop").Update(ctx, p3, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev, before := r.waitFor(t, "pod relabel", is(source.KindPod, podKey, false))
	if ev.Pod.Labels["app"] != "api" || len(before) != 1 {
		t.Errorf("want one event, the relabel; got %+v", before)
	}

	// A pod that terminates releases its IPs: a delete.
	p4 := p3.DeepCopy()
	p4.Status.Phase = corev1.PodSucceeded
	if _, err := cs.CoreV1().Pods("shop").UpdateStatus(ctx, p4, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "terminated pod delete", is(source.KindPod, podKey, true))

	// A pod the API cannot have (bad IP) is an event with Err.
	bad := fullPod()
	bad.Name = "bad"
	bad.Status.PodIPs = []corev1.PodIP{{IP: "300.1.1.1"}}
	bad.Status.PodIP = "300.1.1.1"
	if _, err := cs.CoreV1().Pods("shop").Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev, _ = r.waitFor(t, "rejected pod", is(source.KindPod, model.Key{Namespace: "shop", Name: "bad"}, false))
	if ev.Err == nil || ev.Pod != nil {
		t.Errorf("rejected pod event: %+v", ev)
	}

	// Namespace relabel.
	ns2 := ns.DeepCopy()
	ns2.Labels["team"] = "b"
	if _, err := cs.CoreV1().Namespaces().Update(ctx, ns2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev, _ = r.waitFor(t, "namespace relabel", is(source.KindNamespace, model.Key{Name: "shop"}, false))
	if ev.Namespace.Labels["team"] != "b" {
		t.Errorf("namespace event: %+v", ev.Namespace)
	}

	// A policy update that changes only metadata is no event.
	pol1 := pol.DeepCopy()
	pol1.Annotations = map[string]string{"note": "x"}
	if _, err := cs.NetworkingV1().NetworkPolicies("shop").Update(ctx, pol1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A policy the engine rejects arrives as its placeholder, with Err.
	pol2 := pol.DeepCopy()
	pol2.Spec.PolicyTypes = []networkingv1.PolicyType{"Sideways"}
	if _, err := cs.NetworkingV1().NetworkPolicies("shop").Update(ctx, pol2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev, before = r.waitFor(t, "rejected policy", is(source.KindPolicy, model.Key{Namespace: "shop", Name: "web"}, false))
	if len(before) != 1 {
		t.Errorf("an annotation-only policy update made an event: %+v", before)
	}
	if ev.Err == nil || ev.Policy == nil || !ev.Policy.Ingress || !ev.Policy.Egress || len(ev.Policy.IngressRules) != 0 {
		t.Errorf("rejected policy event: %+v", ev)
	}

	// Node address change; a heartbeat is none.
	n2 := node.DeepCopy()
	n2.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	n3 := n2.DeepCopy()
	n3.Status.Addresses = append(n3.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "fd00::1"})
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n3, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev, before = r.waitFor(t, "node address", is(source.KindNode, model.Key{Name: "node-1"}, false))
	if len(ev.Node.IPs) != 2 || len(before) != 1 {
		t.Errorf("node events: %+v", before)
	}

	// Deletes.
	if err := cs.NetworkingV1().NetworkPolicies("shop").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "policy delete", is(source.KindPolicy, model.Key{Namespace: "shop", Name: "web"}, true))
	if err := cs.CoreV1().Pods("shop").Delete(ctx, "bad", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "pod delete", is(source.KindPod, model.Key{Namespace: "shop", Name: "bad"}, true))
	if err := cs.CoreV1().Namespaces().Delete(ctx, "shop", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "namespace delete", is(source.KindNamespace, model.Key{Name: "shop"}, true))
	if err := cs.CoreV1().Nodes().Delete(ctx, "node-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "node delete", is(source.KindNode, model.Key{Name: "node-1"}, true))
}

// Healthy reports a watch only after it has failed for UnhealthyAfter,
// and recovers on the next successful call.
func TestSourceHealth(t *testing.T) {
	now := time.Unix(1000, 0)
	src := NewSource(fake.NewClientset(), SourceOptions{NodeName: "n", UnhealthyAfter: 10 * time.Second, Now: func() time.Time { return now }})
	if err := src.Healthy(); err != nil {
		t.Fatal(err)
	}
	src.report("pods", errors.New("connection refused"))
	now = now.Add(5 * time.Second)
	src.report("pods", errors.New("connection refused again"))
	if err := src.Healthy(); err != nil {
		t.Errorf("failing for 5 s: %v", err)
	}
	now = now.Add(6 * time.Second)
	err := src.Healthy()
	if err == nil {
		t.Fatal("failing for 11 s: healthy")
	}
	if want := "watch of pods failing for 11s: connection refused again"; err.Error() != want {
		t.Errorf("Healthy = %q, want %q", err, want)
	}
	src.watchFailed("nodes", context.Canceled) // shutdown: not a failure
	src.report("pods", nil)
	if err := src.Healthy(); err != nil {
		t.Errorf("after recovery: %v", err)
	}
	if len(src.failing) != 0 {
		t.Errorf("failing = %v", src.failing)
	}
}

// The fake clientset's listings of many objects arrive whole before synced.
func TestSourceInitialListing(t *testing.T) {
	var objs []any
	cs := fake.NewClientset()
	for i := range 200 {
		p := fullPod()
		p.Name = fmt.Sprintf("p%d", i)
		p.Status.PodIP, p.Status.PodIPs = "", nil
		if _, err := cs.CoreV1().Pods("shop").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, p)
	}
	_, r := startSource(t, cs, "node-1")
	if got := len(r.take()); got != len(objs) {
		t.Errorf("%d events before synced, want %d", got, len(objs))
	}
}
