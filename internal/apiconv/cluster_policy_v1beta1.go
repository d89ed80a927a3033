package apiconv

import (
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// v1beta1ToV1alpha2 copies a v1beta1 ClusterNetworkPolicy into the
// v1alpha2 types, whose schema is the same, so that both versions are
// validated and converted by one path. Lists stay nil when nil and empty
// when empty (a JSON round trip would lose that: omitempty drops empty
// lists, and an empty list is a validation error). Status is not copied.
func v1beta1ToV1alpha2(p *v1beta1.ClusterNetworkPolicy) *v1alpha2.ClusterNetworkPolicy {
	out := &v1alpha2.ClusterNetworkPolicy{
		TypeMeta:   p.TypeMeta,
		ObjectMeta: p.ObjectMeta,
		Spec: v1alpha2.ClusterNetworkPolicySpec{
			Tier:     v1alpha2.Tier(p.Spec.Tier),
			Priority: p.Spec.Priority,
			Subject: v1alpha2.ClusterNetworkPolicySubject{
				Namespaces: p.Spec.Subject.Namespaces,
				Pods:       (*v1alpha2.NamespacedPod)(p.Spec.Subject.Pods),
			},
		},
	}
	if p.Spec.Ingress != nil {
		out.Spec.Ingress = make([]v1alpha2.ClusterNetworkPolicyIngressRule, 0, len(p.Spec.Ingress))
	}
	for _, r := range p.Spec.Ingress {
		var from []v1alpha2.ClusterNetworkPolicyIngressPeer
		if r.From != nil {
			from = make([]v1alpha2.ClusterNetworkPolicyIngressPeer, 0, len(r.From))
		}
		for _, pr := range r.From {
			from = append(from, v1alpha2.ClusterNetworkPolicyIngressPeer{
				Namespaces: pr.Namespaces,
				Pods:       (*v1alpha2.NamespacedPod)(pr.Pods),
			})
		}
		out.Spec.Ingress = append(out.Spec.Ingress, v1alpha2.ClusterNetworkPolicyIngressRule{
			Name:      r.Name,
			Action:    v1alpha2.ClusterNetworkPolicyRuleAction(r.Action),
			From:      from,
			Protocols: protocolsV1beta1(r.Protocols),
		})
	}
	if p.Spec.Egress != nil {
		out.Spec.Egress = make([]v1alpha2.ClusterNetworkPolicyEgressRule, 0, len(p.Spec.Egress))
	}
	for _, r := range p.Spec.Egress {
		var to []v1alpha2.ClusterNetworkPolicyEgressPeer
		if r.To != nil {
			to = make([]v1alpha2.ClusterNetworkPolicyEgressPeer, 0, len(r.To))
		}
		for _, pr := range r.To {
			pe := v1alpha2.ClusterNetworkPolicyEgressPeer{
				Namespaces: pr.Namespaces,
				Pods:       (*v1alpha2.NamespacedPod)(pr.Pods),
				Nodes:      pr.Nodes,
			}
			if pr.Networks != nil {
				pe.Networks = make([]v1alpha2.CIDR, 0, len(pr.Networks))
				for _, c := range pr.Networks {
					pe.Networks = append(pe.Networks, v1alpha2.CIDR(c))
				}
			}
			if pr.DomainNames != nil {
				pe.DomainNames = make([]v1alpha2.DomainName, 0, len(pr.DomainNames))
				for _, d := range pr.DomainNames {
					pe.DomainNames = append(pe.DomainNames, v1alpha2.DomainName(d))
				}
			}
			to = append(to, pe)
		}
		out.Spec.Egress = append(out.Spec.Egress, v1alpha2.ClusterNetworkPolicyEgressRule{
			Name:      r.Name,
			Action:    v1alpha2.ClusterNetworkPolicyRuleAction(r.Action),
			To:        to,
			Protocols: protocolsV1beta1(r.Protocols),
		})
	}
	return out
}

func protocolsV1beta1(ps []v1beta1.ClusterNetworkPolicyProtocol) []v1alpha2.ClusterNetworkPolicyProtocol {
	if ps == nil {
		return nil
	}
	out := make([]v1alpha2.ClusterNetworkPolicyProtocol, 0, len(ps))
	for _, p := range ps {
		q := v1alpha2.ClusterNetworkPolicyProtocol{DestinationNamedPort: p.DestinationNamedPort}
		if p.TCP != nil {
			q.TCP = &v1alpha2.ClusterNetworkPolicyProtocolTCP{DestinationPort: portV1beta1(p.TCP.DestinationPort)}
		}
		if p.UDP != nil {
			q.UDP = &v1alpha2.ClusterNetworkPolicyProtocolUDP{DestinationPort: portV1beta1(p.UDP.DestinationPort)}
		}
		if p.SCTP != nil {
			q.SCTP = &v1alpha2.ClusterNetworkPolicyProtocolSCTP{DestinationPort: portV1beta1(p.SCTP.DestinationPort)}
		}
		out = append(out, q)
	}
	return out
}

func portV1beta1(p *v1beta1.Port) *v1alpha2.Port {
	if p == nil {
		return nil
	}
	return &v1alpha2.Port{Number: p.Number, Range: (*v1alpha2.PortRange)(p.Range)}
}
