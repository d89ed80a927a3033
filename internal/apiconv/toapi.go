package apiconv

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-net/palisade/internal/model"
)

// PolicyToAPI writes a policy back as the API object it was read from,
// with its effective policyTypes spelled out.
func PolicyToAPI(p *model.Policy) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: *selectorToAPI(&p.PodSelector)},
	}
	if p.Ingress {
		np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
		np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{}
		for _, r := range p.IngressRules {
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: peersToAPI(r.Peers), Ports: portsToAPI(r.Ports)})
		}
	}
	if p.Egress {
		np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{}
		for _, r := range p.EgressRules {
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: peersToAPI(r.Peers), Ports: portsToAPI(r.Ports)})
		}
	}
	return np
}

func selectorToAPI(s *model.Selector) *metav1.LabelSelector {
	if s == nil {
		return nil
	}
	out := &metav1.LabelSelector{MatchLabels: s.MatchLabels}
	for _, r := range s.Exprs {
		out.MatchExpressions = append(out.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: r.Key, Operator: metav1.LabelSelectorOperator(r.Operator), Values: r.Values})
	}
	return out
}

func peersToAPI(peers []model.Peer) []networkingv1.NetworkPolicyPeer {
	var out []networkingv1.NetworkPolicyPeer
	for _, p := range peers {
		ap := networkingv1.NetworkPolicyPeer{PodSelector: selectorToAPI(p.PodSelector), NamespaceSelector: selectorToAPI(p.NamespaceSelector)}
		if p.IPBlock != nil {
			ap.IPBlock = &networkingv1.IPBlock{CIDR: p.IPBlock.CIDR.String()}
			for _, ex := range p.IPBlock.Except {
				ap.IPBlock.Except = append(ap.IPBlock.Except, ex.String())
			}
		}
		out = append(out, ap)
	}
	return out
}

func portsToAPI(ports []model.Port) []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for _, p := range ports {
		proto := corev1.Protocol(p.Protocol.String())
		ap := networkingv1.NetworkPolicyPort{Protocol: &proto}
		switch {
		case p.Name != "":
			v := intstr.FromString(p.Name)
			ap.Port = &v
		case p.Port != 0:
			v := intstr.FromInt32(int32(p.Port))
			ap.Port = &v
			if p.EndPort != 0 {
				end := int32(p.EndPort)
				ap.EndPort = &end
			}
		}
		out = append(out, ap)
	}
	return out
}
