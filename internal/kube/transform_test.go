package kube

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/source"
)

// fullMeta is metadata with everything the API server and controllers
// put there, most of which the transforms must drop.
func fullMeta(ns, name string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Namespace:       ns,
		Name:            name,
		UID:             types.UID("uid-" + name),
		ResourceVersion: "42",
		Generation:      3,
		Labels:          labels,
		Annotations:     map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"big": "json"}`},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "x"}},
		Finalizers:      []string{"example.com/f"},
		ManagedFields: []metav1.ManagedFieldsEntry{{
			Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply,
			FieldsV1: metav1.NewFieldsV1(`{"f:metadata":{}}`),
		}},
		CreationTimestamp: metav1.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC),
	}
}

func fullPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: fullMeta("shop", "web-1", map[string]string{"app": "web", "tier": "front"}),
		Spec: corev1.PodSpec{
			NodeName:           "node-1",
			HostNetwork:        false,
			ServiceAccountName: "web",
			Volumes:            []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			InitContainers:     []corev1.Container{{Name: "init", Image: "busybox", Ports: []corev1.ContainerPort{{Name: "init", ContainerPort: 9}}}},
			Containers: []corev1.Container{
				{
					Name: "web", Image: "nginx:1.27", Command: []string{"nginx"},
					Env: []corev1.EnvVar{{Name: "SECRET", Value: "x"}},
					Ports: []corev1.ContainerPort{
						{Name: "http", ContainerPort: 80, Protocol: corev1.ProtocolTCP, HostPort: 8080, HostIP: "0.0.0.0"},
						{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
					},
					Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
						HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80)}}},
				},
				{Name: "sidecar", Image: "envoy"},
			},
		},
		Status: corev1.PodStatus{
			Phase:             corev1.PodRunning,
			PodIP:             "10.1.0.5",
			PodIPs:            []corev1.PodIP{{IP: "10.1.0.5"}, {IP: "fd00::5"}},
			HostIP:            "192.168.0.1",
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Ready: true, Image: "nginx:1.27", ImageID: "sha256:x"}},
		},
	}
}

func fullNamespace() *corev1.Namespace {
	return &corev1.Namespace{
		ObjectMeta: fullMeta("", "shop", map[string]string{"team": "a", model.NamespaceNameLabel: "shop"}),
		Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}},
		Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
	}
}

func fullPolicy() *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{ObjectMeta: fullMeta("shop", "web", map[string]string{"owner": "team-a"}), Spec: testPolicySpec()}
}

func fullNode() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: fullMeta("", "node-1", map[string]string{"kubernetes.io/os": "linux"}),
		Spec:       corev1.NodeSpec{PodCIDR: "10.1.0.0/24", Taints: []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}}},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeHostName, Address: "node-1"},
				{Type: corev1.NodeInternalIP, Address: "192.168.0.1"},
				{Type: corev1.NodeInternalDNS, Address: "node-1.internal"},
				{Type: corev1.NodeExternalIP, Address: "203.0.113.1"},
				{Type: corev1.NodeInternalIP, Address: "fd00::1"},
			},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}},
			Images:     []corev1.ContainerImage{{Names: []string{"nginx"}, SizeBytes: 1 << 20}},
		},
	}
}

// TestTransform: each informer stores, for an object, only its name,
// namespace, UID and resourceVersion and the event apiconv makes of it;
// tombstones are transformed too, entries and other types pass through,
// and the input is left alone.
func TestTransform(t *testing.T) {
	pod := fullPod()
	wantPod, err := apiconv.Pod(pod)
	if err != nil {
		t.Fatal(err)
	}
	wantPod.Images = nil // only the lab reads them
	ns, _ := apiconv.Namespace(fullNamespace())
	pol, _ := apiconv.Policy(&networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}, Spec: testPolicySpec()})
	node, _ := apiconv.Node(fullNode())
	for _, tc := range []struct {
		name string
		tf   cache.TransformFunc
		in   interface {
			runtime.Object
			metav1.Object
		}
		want source.Event
	}{
		{"pod", podTransform, pod, source.Event{Kind: source.KindPod, Key: model.Key{Namespace: "shop", Name: "web-1"}, Pod: wantPod, Created: pod.CreationTimestamp.Time}},
		{"namespace", namespaceTransform, fullNamespace(), source.Event{Kind: source.KindNamespace, Key: model.Key{Name: "shop"}, Namespace: ns}},
		{"policy", policyTransform, fullPolicy(), source.Event{Kind: source.KindPolicy, Key: model.Key{Namespace: "shop", Name: "web"}, Policy: pol}},
		{"node", nodeTransform, fullNode(), source.Event{Kind: source.KindNode, Key: model.Key{Name: "node-1"}, Node: node}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inCopy := tc.in.DeepCopyObject()
			out, err := tc.tf(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			e, ok := out.(*entry)
			if !ok {
				t.Fatalf("transform gave %T", out)
			}
			wantMeta := metav1.ObjectMeta{Namespace: tc.in.GetNamespace(), Name: tc.in.GetName(), UID: tc.in.GetUID(), ResourceVersion: "42"}
			m, err := meta.Accessor(e)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.(*metav1.ObjectMeta); !reflect.DeepEqual(*got, wantMeta) {
				t.Errorf("metadata = %+v, want %+v", *got, wantMeta)
			}
			if key, err := cache.MetaNamespaceKeyFunc(e); err != nil || key != cache.MetaObjectToName(tc.in).String() {
				t.Errorf("informer key = %q, %v", key, err)
			}
			if !reflect.DeepEqual(e.ev, tc.want) {
				t.Errorf("event:\n got %+v\nwant %+v", e.ev, tc.want)
			}
			if !reflect.DeepEqual(tc.in, inCopy) {
				t.Error("the transform modified its input")
			}
			if again, _ := tc.tf(out); again != out {
				t.Error("an entry must pass through unchanged")
			}
			tomb, _ := tc.tf(cache.DeletedFinalStateUnknown{Key: "k", Obj: inCopy})
			if te, ok := tomb.(cache.DeletedFinalStateUnknown).Obj.(*entry); !ok || !reflect.DeepEqual(te.ev, tc.want) {
				t.Errorf("tombstone not transformed: %+v", tomb)
			}
			other := &corev1.ConfigMap{}
			if out, _ := tc.tf(other); out != other {
				t.Error("other kinds must pass through")
			}
		})
	}
}

// TestTransformPolicyLabels: a policy's own labels play no part, so an
// invalid one does not make it fail closed.
func TestTransformPolicyLabels(t *testing.T) {
	in := fullPolicy()
	in.Labels = map[string]string{"bad key!": "x"}
	out, _ := policyTransform(in)
	if e := out.(*entry); e.ev.Err != nil || len(e.ev.Policy.IngressRules) != 1 {
		t.Errorf("policy with an invalid label of its own: %+v", e.ev)
	}
}

func TestTransformHostNetworkPod(t *testing.T) {
	in := fullPod()
	in.Spec.HostNetwork = true
	out, _ := podTransform(in)
	if p := out.(*entry).ev.Pod; p == nil || !p.HostNetwork {
		t.Errorf("hostNetwork lost: %+v", p)
	}
}

// TestSameEvent: updates that change nothing the engine reads are not
// events; every change it reads is.
func TestSameEvent(t *testing.T) {
	ev := func(tf cache.TransformFunc, obj any) *source.Event {
		out, err := tf(obj)
		if err != nil {
			t.Fatal(err)
		}
		return &out.(*entry).ev
	}
	for _, tc := range []struct {
		name   string
		tf     cache.TransformFunc
		base   func() any
		change func(o any)
		same   bool
	}{
		{"pod resourceVersion", podTransform, func() any { return fullPod() }, func(o any) { o.(*corev1.Pod).ResourceVersion = "43" }, true},
		{"pod condition and annotation", podTransform, func() any { return fullPod() }, func(o any) {
			p := o.(*corev1.Pod)
			p.Status.Conditions[0].Status = corev1.ConditionFalse
			p.Annotations["x"] = "y"
		}, true},
		{"pod label", podTransform, func() any { return fullPod() }, func(o any) { o.(*corev1.Pod).Labels = map[string]string{"app": "other"} }, false},
		{"pod node", podTransform, func() any { return fullPod() }, func(o any) { o.(*corev1.Pod).Spec.NodeName = "node-2" }, false},
		{"pod hostNetwork", podTransform, func() any { return fullPod() }, func(o any) { o.(*corev1.Pod).Spec.HostNetwork = true }, false},
		{"pod phase", podTransform, func() any { return fullPod() }, func(o any) { o.(*corev1.Pod).Status.Phase = corev1.PodSucceeded }, false},
		{"pod podIPs", podTransform, func() any { return fullPod() }, func(o any) {
			p := o.(*corev1.Pod)
			p.Status.PodIPs = p.Status.PodIPs[:1]
		}, false},
		{"pod bad IP", podTransform, func() any { return fullPod() }, func(o any) {
			o.(*corev1.Pod).Status.PodIPs = []corev1.PodIP{{IP: "10.1.0.5"}, {IP: "not-an-ip"}}
		}, false},
		{"pod port", podTransform, func() any { return fullPod() }, func(o any) { o.(*corev1.Pod).Spec.Containers[0].Ports[0].ContainerPort = 81 }, false},
		{"pod port name", podTransform, func() any { return fullPod() }, func(o any) { o.(*corev1.Pod).Spec.Containers[0].Ports[1].Name = "dns2" }, false},
		{"node heartbeat", nodeTransform, func() any { return fullNode() }, func(o any) {
			n := o.(*corev1.Node)
			n.ResourceVersion = "2"
			n.Status.Conditions[0].LastHeartbeatTime = metav1.Now()
		}, true},
		{"node address", nodeTransform, func() any { return fullNode() }, func(o any) { o.(*corev1.Node).Status.Addresses[1].Address = "192.168.0.2" }, false},
		// Set once by the controller-manager, maybe after the agent started.
		{"node podCIDRs", nodeTransform, func() any { return fullNode() }, func(o any) {
			o.(*corev1.Node).Spec.PodCIDRs = []string{"10.1.0.0/24", "fd00:1::/64"}
		}, false},
		{"policy label", policyTransform, func() any { return fullPolicy() }, func(o any) { o.(*networkingv1.NetworkPolicy).Labels = map[string]string{"x": "2"} }, true},
		{"policy spec", policyTransform, func() any { return fullPolicy() }, func(o any) {
			o.(*networkingv1.NetworkPolicy).Spec.Ingress[0].From[0].PodSelector.MatchLabels["app"] = "other"
		}, false},
		{"namespace annotation", namespaceTransform, func() any { return fullNamespace() }, func(o any) { o.(*corev1.Namespace).Annotations["x"] = "y" }, true},
		{"namespace label", namespaceTransform, func() any { return fullNamespace() }, func(o any) { o.(*corev1.Namespace).Labels["team"] = "b" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.base()
			b := tc.base()
			tc.change(b)
			if got := sameEvent(ev(tc.tf, a), ev(tc.tf, b)); got != tc.same {
				t.Errorf("sameEvent = %v, want %v", got, tc.same)
			}
		})
	}
}

func testPolicySpec() networkingv1.NetworkPolicySpec {
	tcp := corev1.ProtocolTCP
	port := intstr.FromInt32(80)
	return networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
		}},
		Egress: []networkingv1.NetworkPolicyEgressRule{{
			To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8", Except: []string{"10.9.0.0/16"}}}},
		}},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
	}
}

func sel(labels map[string]string) model.Selector { return model.Selector{MatchLabels: labels} }

func TestConvertPolicyPlaceholder(t *testing.T) {
	badSelector := metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn}}} // In needs values
	badPort := intstr.FromString("not a valid port name!")
	badRule := []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Port: &badPort}}}}
	badEgress := []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "nonsense"}}}}}
	web := metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	types := func(ts ...networkingv1.PolicyType) []networkingv1.PolicyType { return ts }
	for _, tc := range []struct {
		name             string
		ns               string
		spec             networkingv1.NetworkPolicySpec
		wantSel          model.Selector
		ingress, egress  bool
		wantErrSubstring string
	}{
		{
			name:    "bad ingress rule, valid selector kept, default types",
			spec:    networkingv1.NetworkPolicySpec{PodSelector: web, Ingress: badRule},
			wantSel: sel(map[string]string{"app": "web"}), ingress: true, egress: false,
			wantErrSubstring: "spec.ingress[0].ports[0].port",
		},
		{
			name:    "bad egress rule, default types include egress",
			spec:    networkingv1.NetworkPolicySpec{PodSelector: web, Egress: badEgress},
			wantSel: sel(map[string]string{"app": "web"}), ingress: true, egress: true,
			wantErrSubstring: "spec.egress[0].to[0].ipBlock.cidr",
		},
		{
			name:    "invalid selector: every pod of the namespace",
			spec:    networkingv1.NetworkPolicySpec{PodSelector: badSelector, PolicyTypes: types(networkingv1.PolicyTypeIngress)},
			wantSel: model.Selector{}, ingress: true, egress: false,
			wantErrSubstring: "spec.podSelector",
		},
		{
			name:    "valid egress-only types kept",
			spec:    networkingv1.NetworkPolicySpec{PodSelector: web, Ingress: badRule, PolicyTypes: types(networkingv1.PolicyTypeEgress)},
			wantSel: sel(map[string]string{"app": "web"}), ingress: false, egress: true,
		},
		{
			name:    "invalid policyTypes: both directions",
			spec:    networkingv1.NetworkPolicySpec{PodSelector: web, PolicyTypes: types("Sideways")},
			wantSel: sel(map[string]string{"app": "web"}), ingress: true, egress: true,
			wantErrSubstring: "spec.policyTypes",
		},
		{
			name:    "too many policyTypes: both directions",
			spec:    networkingv1.NetworkPolicySpec{PodSelector: web, PolicyTypes: types(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress, networkingv1.PolicyTypeIngress)},
			wantSel: sel(map[string]string{"app": "web"}), ingress: true, egress: true,
		},
		{
			name:    "everything invalid",
			ns:      "", // defaults to "default"
			spec:    networkingv1.NetworkPolicySpec{PodSelector: badSelector, Ingress: badRule, Egress: badEgress, PolicyTypes: types("Nope")},
			wantSel: model.Selector{}, ingress: true, egress: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := tc.ns
			if tc.name != "everything invalid" {
				ns = "shop"
			}
			np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"}, Spec: tc.spec}
			p, err := ConvertPolicy(np)
			var ae *apiconv.Error
			if !errors.As(err, &ae) {
				t.Fatalf("error %v, want an *apiconv.Error", err)
			}
			if tc.wantErrSubstring != "" && !strings.Contains(err.Error(), tc.wantErrSubstring) {
				t.Errorf("error %q does not name %s", err, tc.wantErrSubstring)
			}
			wantNS := ns
			if wantNS == "" {
				wantNS = "default"
			}
			want := &model.Policy{Namespace: wantNS, Name: "p", PodSelector: tc.wantSel, Ingress: tc.ingress, Egress: tc.egress}
			if !reflect.DeepEqual(p, want) {
				t.Errorf("placeholder\n got %+v\nwant %+v", p, want)
			}
			if len(p.IngressRules)+len(p.EgressRules) != 0 {
				t.Error("a placeholder allows nothing")
			}
		})
	}
	// A valid policy converts as apiconv does.
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ok"}, Spec: testPolicySpec()}
	p, err := ConvertPolicy(np)
	want, _ := apiconv.Policy(np)
	if err != nil || !reflect.DeepEqual(p, want) {
		t.Errorf("valid policy: %+v, %v", p, err)
	}
}

func TestPodEvent(t *testing.T) {
	p := fullPod()
	ev := podEvent(p)
	if ev.Delete || ev.Err != nil || ev.Pod == nil || ev.Pod.IPs[0] != netip.MustParseAddr("10.1.0.5") || ev.Pod.Images != nil {
		t.Errorf("running pod: %+v", ev)
	}
	for _, phase := range []corev1.PodPhase{corev1.PodSucceeded, corev1.PodFailed} {
		q := p.DeepCopy()
		q.Status.Phase = phase
		if ev := podEvent(q); !ev.Delete || ev.Pod != nil {
			t.Errorf("%s pod must be a delete (its IPs are released): %+v", phase, ev)
		}
	}
	// The agent decides which of two pods with one address owns it by
	// these; a change of either is an event.
	q := p.DeepCopy()
	created := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	q.CreationTimestamp = metav1.NewTime(created)
	if ev := podEvent(q); !ev.Created.Equal(created) || ev.Deleting {
		t.Errorf("creation time not carried: %+v", ev)
	}
	r := q.DeepCopy()
	r.DeletionTimestamp = &metav1.Time{Time: created.Add(time.Minute)}
	a, b := podEvent(q), podEvent(r)
	if !b.Deleting || sameEvent(&a, &b) {
		t.Errorf("a pod being deleted: Deleting %v, same event as before %v", b.Deleting, sameEvent(&a, &b))
	}
	q = p.DeepCopy()
	q.Status.PodIPs = []corev1.PodIP{{IP: "10.1.0.5"}, {IP: "not-an-ip"}}
	if ev := podEvent(q); ev.Err == nil || ev.Pod != nil {
		t.Errorf("pod with a bad IP: %+v", ev)
	}
}

// TestNodeEventPodCIDRs: the agent's Node event carries the node's pod
// CIDRs (spec.podCIDRs, else spec.podCIDR); a bad one is an error that
// names the node and the field.
func TestNodeEventPodCIDRs(t *testing.T) {
	n := fullNode()
	ev := nodeEvent(n)
	if ev.Err != nil || !reflect.DeepEqual(ev.Node.PodCIDRs, []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}) {
		t.Errorf("spec.podCIDR: %v, %v", ev.Node, ev.Err)
	}
	n.Spec.PodCIDRs = []string{"10.1.0.0/24", "fd00:1::/64"}
	if ev := nodeEvent(n); ev.Err != nil || len(ev.Node.PodCIDRs) != 2 {
		t.Errorf("spec.podCIDRs: %v, %v", ev.Node, ev.Err)
	}
	n.Spec.PodCIDRs = []string{"10.1.0.0/24", "10.1.0.0/33"}
	ev = nodeEvent(n)
	if ev.Err == nil || !strings.Contains(ev.Err.Error(), "node-1") || !strings.Contains(ev.Err.Error(), "spec.podCIDRs[1]") {
		t.Errorf("bad spec.podCIDRs[1]: %v", ev.Err)
	}
}
