package differential

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
)

// TestViews checks what kube-network-policies is given in place of nodes
// peers and named ports.
func TestViews(t *testing.T) {
	named := func(n string) v1alpha1.AdminNetworkPolicyPort { return v1alpha1.AdminNetworkPolicyPort{NamedPort: &n} }
	number := func(proto corev1.Protocol, port int32) v1alpha1.AdminNetworkPolicyPort {
		return v1alpha1.AdminNetworkPolicyPort{PortNumber: &v1alpha1.Port{Protocol: proto, Port: port}}
	}
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Ports: []corev1.ContainerPort{
		{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
		{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
	}}}}}
	ports := []v1alpha1.AdminNetworkPolicyPort{named("http"), named("dns"), named("metrics"), number(corev1.ProtocolSCTP, 9)}
	w := &world{
		nodes: []*corev1.Node{
			{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"zone": "a"}}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "172.18.0.10"}}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "b", Labels: map[string]string{"zone": "b"}}, Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "172.18.0.11"}}}},
		},
		anps: []*v1alpha1.AdminNetworkPolicy{{Spec: v1alpha1.AdminNetworkPolicySpec{
			Ingress: []v1alpha1.AdminNetworkPolicyIngressRule{{Ports: &ports}},
			Egress: []v1alpha1.AdminNetworkPolicyEgressRule{{To: []v1alpha1.AdminNetworkPolicyEgressPeer{
				{Nodes: &metav1.LabelSelector{MatchLabels: map[string]string{"zone": "a"}}},
				{Nodes: &metav1.LabelSelector{MatchLabels: map[string]string{"zone": "c"}}},
			}}},
		}}},
	}
	nodes := nodesAsNetworks(w).anps[0].Spec.Egress[0].To
	if diff := cmp.Diff([]v1alpha1.AdminNetworkPolicyEgressPeer{{Networks: []v1alpha1.CIDR{"172.18.0.10/32"}}, {}}, nodes); diff != "" {
		t.Errorf("nodes peers as networks (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name string
		dst  *corev1.Pod
		want []v1alpha1.AdminNetworkPolicyPort
	}{
		{"to a pod", pod, []v1alpha1.AdminNetworkPolicyPort{number(corev1.ProtocolTCP, 8080), number(corev1.ProtocolUDP, 53), number(corev1.ProtocolTCP, 0), number(corev1.ProtocolSCTP, 9)}},
		{"to no pod", nil, []v1alpha1.AdminNetworkPolicyPort{number(corev1.ProtocolTCP, 0), number(corev1.ProtocolTCP, 0), number(corev1.ProtocolTCP, 0), number(corev1.ProtocolSCTP, 9)}},
	} {
		got := *namedAsNumbers(w, tc.dst).anps[0].Spec.Ingress[0].Ports
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: named ports as numbers (-want +got):\n%s", tc.name, diff)
		}
	}
	if len(*w.anps[0].Spec.Ingress[0].Ports) != 4 || w.anps[0].Spec.Egress[0].To[0].Nodes == nil {
		t.Error("the views changed the world they were made from")
	}
}
