package kube

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/model"
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
			FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{}}`)},
		}},
		CreationTimestamp: metav1.Now(),
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

func TestStripPod(t *testing.T) {
	in := fullPod()
	inCopy := in.DeepCopy()
	got := stripPod(in)
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1", UID: in.UID, ResourceVersion: "42",
			Labels: map[string]string{"app": "web", "tier": "front"}},
		Spec: corev1.PodSpec{
			NodeName: "node-1",
			Containers: []corev1.Container{
				{Name: "web", Ports: []corev1.ContainerPort{
					{Name: "http", ContainerPort: 80, Protocol: corev1.ProtocolTCP},
					{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
				}},
				{Name: "sidecar"},
			},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.0.5",
			PodIPs: []corev1.PodIP{{IP: "10.1.0.5"}, {IP: "fd00::5"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stripPod:\n got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(in, inCopy) {
		t.Error("stripPod modified its input")
	}
	if again := stripPod(got); !reflect.DeepEqual(again, got) {
		t.Error("stripPod is not idempotent")
	}
	// What apiconv reads is the same from the stripped pod, apart from
	// the images (only the lab reads them).
	full, err1 := apiconv.Pod(in)
	stripped, err2 := apiconv.Pod(got)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	full.Images = nil
	if !reflect.DeepEqual(full, stripped) {
		t.Errorf("apiconv.Pod differs after stripping:\n full %+v\n stripped %+v", full, stripped)
	}
	if stripped.Node != "node-1" || len(stripped.IPs) != 2 || len(stripped.Ports) != 2 {
		t.Errorf("converted stripped pod lost fields: %+v", stripped)
	}
}

func TestStripHostNetworkPod(t *testing.T) {
	in := fullPod()
	in.Spec.HostNetwork = true
	got := stripPod(in)
	if !got.Spec.HostNetwork {
		t.Error("hostNetwork dropped")
	}
	p, err := apiconv.Pod(got)
	if err != nil || !p.HostNetwork {
		t.Errorf("apiconv.Pod(stripped) = %+v, %v", p, err)
	}
}

func TestStripNamespace(t *testing.T) {
	in := &corev1.Namespace{
		ObjectMeta: fullMeta("", "shop", map[string]string{"team": "a", model.NamespaceNameLabel: "shop"}),
		Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}},
		Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceActive},
	}
	got := stripNamespace(in)
	want := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", UID: in.UID, ResourceVersion: "42",
		Labels: map[string]string{"team": "a", model.NamespaceNameLabel: "shop"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stripNamespace:\n got %+v\nwant %+v", got, want)
	}
	a, _ := apiconv.Namespace(in)
	b, _ := apiconv.Namespace(got)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("apiconv.Namespace differs: %+v vs %+v", a, b)
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

func TestStripPolicy(t *testing.T) {
	in := &networkingv1.NetworkPolicy{
		ObjectMeta: fullMeta("shop", "web", map[string]string{"owner": "team-a"}),
		Spec:       testPolicySpec(),
	}
	got := stripPolicy(in)
	want := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", UID: in.UID, ResourceVersion: "42"},
		Spec:       testPolicySpec(),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stripPolicy:\n got %+v\nwant %+v", got, want)
	}
	// The policy's own labels play no part: an invalid label must not make
	// the stripped policy fail.
	in.Labels = map[string]string{"bad key!": "x"}
	if _, err := apiconv.Policy(stripPolicy(in)); err != nil {
		t.Errorf("stripped policy with an invalid label rejected: %v", err)
	}
}

func TestStripNode(t *testing.T) {
	in := &corev1.Node{
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
	got := stripNode(in)
	want := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node-1", UID: in.UID, ResourceVersion: "42"},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: "192.168.0.1"},
			{Type: corev1.NodeExternalIP, Address: "203.0.113.1"},
			{Type: corev1.NodeInternalIP, Address: "fd00::1"},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stripNode:\n got %+v\nwant %+v", got, want)
	}
	n, err := apiconv.Node(got)
	if err != nil || len(n.IPs) != 3 {
		t.Errorf("apiconv.Node(stripped) = %+v, %v", n, err)
	}
}

// The transform funcs handle the object, tombstones, and pass anything
// else through.
func TestTransformFunc(t *testing.T) {
	tf := transform(stripPod)
	out, err := tf(fullPod())
	if err != nil || out.(*corev1.Pod).ManagedFields != nil {
		t.Errorf("transform(pod) = %+v, %v", out, err)
	}
	tomb := cache.DeletedFinalStateUnknown{Key: "shop/web-1", Obj: fullPod()}
	out, err = tf(tomb)
	if err != nil {
		t.Fatal(err)
	}
	if p := out.(cache.DeletedFinalStateUnknown).Obj.(*corev1.Pod); p.Annotations != nil || p.Labels["app"] != "web" {
		t.Errorf("tombstone not stripped: %+v", p)
	}
	ns := &corev1.Namespace{}
	if out, _ := tf(ns); out != ns {
		t.Error("other kinds must pass through")
	}
}

func TestSamePod(t *testing.T) {
	base := stripPod(fullPod())
	for _, tc := range []struct {
		name   string
		change func(p *corev1.Pod)
		same   bool
	}{
		{"resourceVersion only", func(p *corev1.Pod) { p.ResourceVersion = "43" }, true},
		{"label", func(p *corev1.Pod) { p.Labels = map[string]string{"app": "other"} }, false},
		{"node", func(p *corev1.Pod) { p.Spec.NodeName = "node-2" }, false},
		{"hostNetwork", func(p *corev1.Pod) { p.Spec.HostNetwork = true }, false},
		{"phase", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }, false},
		{"podIP", func(p *corev1.Pod) { p.Status.PodIP = "10.1.0.6" }, false},
		{"podIPs", func(p *corev1.Pod) { p.Status.PodIPs = p.Status.PodIPs[:1] }, false},
		{"port", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 81 }, false},
		{"port name", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[1].Name = "dns2" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := base.DeepCopy()
			tc.change(n)
			if got := samePod(base, n); got != tc.same {
				t.Errorf("samePod = %v, want %v", got, tc.same)
			}
		})
	}
	// A change that the transform drops (a condition) makes the stripped
	// objects equal.
	a, b := fullPod(), fullPod()
	b.Status.Conditions[0].Status = corev1.ConditionFalse
	b.Annotations["x"] = "y"
	b.ResourceVersion = "43"
	if !samePod(stripPod(a), stripPod(b)) {
		t.Error("a condition or annotation change must not be an event")
	}
}

func TestSameNode(t *testing.T) {
	a := stripNode(&corev1.Node{Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.1"}}}})
	b := a.DeepCopy()
	b.ResourceVersion = "2"
	if !sameNode(a, b) {
		t.Error("heartbeat-only change must be the same node")
	}
	b.Status.Addresses[0].Address = "192.168.0.2"
	if sameNode(a, b) {
		t.Error("an address change must be an event")
	}
}

func TestSamePolicy(t *testing.T) {
	a := stripPolicy(&networkingv1.NetworkPolicy{ObjectMeta: fullMeta("shop", "web", map[string]string{"x": "1"}), Spec: testPolicySpec()})
	b := stripPolicy(&networkingv1.NetworkPolicy{ObjectMeta: fullMeta("shop", "web", map[string]string{"x": "2"}), Spec: testPolicySpec()})
	b.ResourceVersion = "43"
	if !samePolicy(a, b) {
		t.Error("a label or annotation change must not be an event")
	}
	b.Spec.Ingress[0].From[0].PodSelector.MatchLabels["app"] = "other"
	if samePolicy(a, b) {
		t.Error("a spec change must be an event")
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
	p := stripPod(fullPod())
	ev := podEvent(p)
	if ev.Delete || ev.Err != nil || ev.Pod == nil || ev.Pod.IPs[0] != netip.MustParseAddr("10.1.0.5") {
		t.Errorf("running pod: %+v", ev)
	}
	for _, phase := range []corev1.PodPhase{corev1.PodSucceeded, corev1.PodFailed} {
		q := p.DeepCopy()
		q.Status.Phase = phase
		if ev := podEvent(q); !ev.Delete || ev.Pod != nil {
			t.Errorf("%s pod must be a delete (its IPs are released): %+v", phase, ev)
		}
	}
	q := p.DeepCopy()
	q.Status.PodIPs = []corev1.PodIP{{IP: "10.1.0.5"}, {IP: "not-an-ip"}}
	if ev := podEvent(q); ev.Err == nil || ev.Pod != nil {
		t.Errorf("pod with a bad IP: %+v", ev)
	}
}
