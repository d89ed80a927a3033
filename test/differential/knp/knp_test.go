package knp

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
)

// TestEvaluator checks that the linked evaluation runs on loaded stores
// and sees a reload: an AdminNetworkPolicy denying egress to 1.2.3.0/24.
func TestEvaluator(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "x"}, Status: corev1.PodStatus{PodIPs: []corev1.PodIP{{IP: "10.0.0.1"}}}}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{"kubernetes.io/metadata.name": "x"}}}
	anp := &v1alpha1.AdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "d"}, Spec: v1alpha1.AdminNetworkPolicySpec{
		Subject: v1alpha1.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
		Egress: []v1alpha1.AdminNetworkPolicyEgressRule{{Action: v1alpha1.AdminNetworkPolicyRuleActionDeny,
			To: []v1alpha1.AdminNetworkPolicyEgressPeer{{Networks: []v1alpha1.CIDR{"1.2.3.0/24"}}}}},
	}}
	e, err := New()
	if err != nil {
		t.Fatal(err)
	}
	with := State{Namespaces: []*corev1.Namespace{ns}, Pods: []*corev1.Pod{pod}, ANPs: []*v1alpha1.AdminNetworkPolicy{anp}}
	without := State{Namespaces: []*corev1.Namespace{ns}, Pods: []*corev1.Pod{pod}}
	for _, tc := range []struct {
		state State
		dst   string
		want  bool
	}{
		{with, "1.2.3.4", false},
		{with, "1.2.4.4", true},
		{without, "1.2.3.4", true},
		{with, "1.2.3.5", false},
	} {
		if err := e.Load(tc.state); err != nil {
			t.Fatal(err)
		}
		c := Conn{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr(tc.dst), Protocol: corev1.ProtocolTCP, SrcPort: 30000, DstPort: 80}
		if got := e.Allowed(c); got != tc.want {
			t.Errorf("%d ANPs, to %s: allowed %v, want %v", len(tc.state.ANPs), tc.dst, got, tc.want)
		}
	}
}
