package apiconv

import (
	"errors"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/palisade-net/palisade/internal/model"
)

// ClusterPolicyToAPI is the API object a user would write for p, in the
// kind and version p was read as (p.Kind, p.APIVersion): a
// *v1alpha1.AdminNetworkPolicy, *v1alpha1.BaselineAdminNetworkPolicy,
// *v1alpha2.ClusterNetworkPolicy or *v1beta1.ClusterNetworkPolicy with
// apiVersion, kind and metadata.name set. p.APIVersion is a group/version
// ("policy.networking.k8s.io/v1alpha2"), as the readers record it; empty
// means the kind's first version (v1alpha1, or v1alpha2 for a
// ClusterNetworkPolicy), for policies not made by a reader.
//
// The kind's reader reads p back unchanged, nil and empty lists included.
// A value the version cannot hold is an error naming the policy and field
// rather than being dropped: a nodes or networks peer in an ingress rule,
// Pass in a BaselineAdminNetworkPolicy, a tier or priority the v1alpha1
// kinds do not have, and a port with First 0 (every port of a protocol),
// which no version can say (each needs a number or a range). Nothing else
// is validated: the reader does that. The object shares p's label maps
// and value lists.
func ClusterPolicyToAPI(p *model.ClusterPolicy) (runtime.Object, error) {
	if p == nil {
		return nil, errors.New("ClusterPolicyToAPI: nil policy")
	}
	w := &clusterOut{p: p}
	var obj runtime.Object
	switch v := p.APIVersion; {
	case p.Kind == model.KindAdminNetworkPolicy && (v == "" || v == v1alpha1.GroupVersion.String()):
		obj = w.adminNetworkPolicy()
	case p.Kind == model.KindBaselineAdminNetworkPolicy && (v == "" || v == v1alpha1.GroupVersion.String()):
		obj = w.baselineAdminNetworkPolicy()
	case p.Kind == model.KindClusterNetworkPolicy && (v == "" || v == v1alpha2.GroupVersion.String()):
		obj = w.clusterNetworkPolicy()
	case p.Kind == model.KindClusterNetworkPolicy && v == v1beta1.GroupVersion.String():
		obj = v1alpha2ToV1beta1(w.clusterNetworkPolicy())
	default:
		return nil, fmt.Errorf("%s: kind %q of apiVersion %q is not a cluster policy: want AdminNetworkPolicy or BaselineAdminNetworkPolicy "+
			"of %s, or ClusterNetworkPolicy of %s or %s", w.describe(), p.Kind, p.APIVersion,
			v1alpha1.GroupVersion, v1alpha2.GroupVersion, v1beta1.GroupVersion)
	}
	if len(w.errs) > 0 {
		return nil, errors.Join(w.errs...)
	}
	return obj, nil
}

// clusterOut writes one policy, collecting what cannot be written.
type clusterOut struct {
	p    *model.ClusterPolicy
	errs []error
}

func (w *clusterOut) describe() string { return Describe(w.p.Kind, model.Key{Name: w.p.Name}) }

func (w *clusterOut) fail(path *field.Path, format string, args ...any) {
	w.errs = append(w.errs, fmt.Errorf("%s: %s: %s", w.describe(), path, fmt.Sprintf(format, args...)))
}

func (w *clusterOut) meta(apiVersion string) (metav1.TypeMeta, metav1.ObjectMeta) {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: w.p.Kind}, metav1.ObjectMeta{Name: w.p.Name}
}

func (w *clusterOut) adminNetworkPolicy() *v1alpha1.AdminNetworkPolicy {
	p, spec := w.p, field.NewPath("spec")
	if p.Tier != model.AdminTier {
		w.fail(spec, "an AdminNetworkPolicy has no tier (it is Admin), found %v", p.Tier)
	}
	out := &v1alpha1.AdminNetworkPolicy{Spec: v1alpha1.AdminNetworkPolicySpec{Priority: p.Priority, Subject: w.subjectV1alpha1()}}
	out.TypeMeta, out.ObjectMeta = w.meta(v1alpha1.GroupVersion.String())
	out.Spec.Ingress = mapList(p.IngressRules, func(i int, r *model.ClusterRule) v1alpha1.AdminNetworkPolicyIngressRule {
		path := spec.Child("ingress").Index(i)
		return v1alpha1.AdminNetworkPolicyIngressRule{
			Name: r.Name, Action: v1alpha1.AdminNetworkPolicyRuleAction(w.action(r.Action, path, "Allow", true)),
			From: w.ingressPeersV1alpha1(r.Peers, path.Child("from")), Ports: w.portsV1alpha1(r.Ports, path.Child("ports")),
		}
	})
	out.Spec.Egress = mapList(p.EgressRules, func(i int, r *model.ClusterRule) v1alpha1.AdminNetworkPolicyEgressRule {
		path := spec.Child("egress").Index(i)
		return v1alpha1.AdminNetworkPolicyEgressRule{
			Name: r.Name, Action: v1alpha1.AdminNetworkPolicyRuleAction(w.action(r.Action, path, "Allow", true)),
			To: mapList(r.Peers, func(_ int, pe *model.ClusterPeer) v1alpha1.AdminNetworkPolicyEgressPeer {
				return v1alpha1.AdminNetworkPolicyEgressPeer{Namespaces: selectorToAPI(pe.Namespaces), Pods: podsV1alpha1Out(pe.Pods),
					Nodes: selectorToAPI(pe.Nodes), Networks: cidrsToAPI[v1alpha1.CIDR](pe.Networks)}
			}),
			Ports: w.portsV1alpha1(r.Ports, path.Child("ports")),
		}
	})
	return out
}

func (w *clusterOut) baselineAdminNetworkPolicy() *v1alpha1.BaselineAdminNetworkPolicy {
	p, spec := w.p, field.NewPath("spec")
	if p.Tier != model.BaselineTier || p.Priority != model.BaselinePriority {
		w.fail(spec, "a BaselineAdminNetworkPolicy has no tier or priority (it is Baseline, %d), found %v, %d",
			model.BaselinePriority, p.Tier, p.Priority)
	}
	out := &v1alpha1.BaselineAdminNetworkPolicy{Spec: v1alpha1.BaselineAdminNetworkPolicySpec{Subject: w.subjectV1alpha1()}}
	out.TypeMeta, out.ObjectMeta = w.meta(v1alpha1.GroupVersion.String())
	out.Spec.Ingress = mapList(p.IngressRules, func(i int, r *model.ClusterRule) v1alpha1.BaselineAdminNetworkPolicyIngressRule {
		path := spec.Child("ingress").Index(i)
		return v1alpha1.BaselineAdminNetworkPolicyIngressRule{
			Name: r.Name, Action: v1alpha1.BaselineAdminNetworkPolicyRuleAction(w.action(r.Action, path, "Allow", false)),
			From: w.ingressPeersV1alpha1(r.Peers, path.Child("from")), Ports: w.portsV1alpha1(r.Ports, path.Child("ports")),
		}
	})
	out.Spec.Egress = mapList(p.EgressRules, func(i int, r *model.ClusterRule) v1alpha1.BaselineAdminNetworkPolicyEgressRule {
		path := spec.Child("egress").Index(i)
		return v1alpha1.BaselineAdminNetworkPolicyEgressRule{
			Name: r.Name, Action: v1alpha1.BaselineAdminNetworkPolicyRuleAction(w.action(r.Action, path, "Allow", false)),
			To: mapList(r.Peers, func(_ int, pe *model.ClusterPeer) v1alpha1.BaselineAdminNetworkPolicyEgressPeer {
				return v1alpha1.BaselineAdminNetworkPolicyEgressPeer{Namespaces: selectorToAPI(pe.Namespaces), Pods: podsV1alpha1Out(pe.Pods),
					Nodes: selectorToAPI(pe.Nodes), Networks: cidrsToAPI[v1alpha1.CIDR](pe.Networks)}
			}),
			Ports: w.portsV1alpha1(r.Ports, path.Child("ports")),
		}
	})
	return out
}

// clusterNetworkPolicy writes the v1alpha2 object; v1beta1 is a copy.
func (w *clusterOut) clusterNetworkPolicy() *v1alpha2.ClusterNetworkPolicy {
	p, spec := w.p, field.NewPath("spec")
	out := &v1alpha2.ClusterNetworkPolicy{Spec: v1alpha2.ClusterNetworkPolicySpec{
		Priority: p.Priority,
		Subject:  v1alpha2.ClusterNetworkPolicySubject{Namespaces: selectorToAPI(p.Subject.Namespaces), Pods: podsToAPI(p.Subject.Pods)},
	}}
	out.TypeMeta, out.ObjectMeta = w.meta(v1alpha2.GroupVersion.String())
	switch p.Tier {
	case model.AdminTier:
		out.Spec.Tier = v1alpha2.AdminTier
	case model.BaselineTier:
		out.Spec.Tier = v1alpha2.BaselineTier
	default:
		w.fail(spec.Child("tier"), "unknown tier %d", p.Tier)
	}
	out.Spec.Ingress = mapList(p.IngressRules, func(i int, r *model.ClusterRule) v1alpha2.ClusterNetworkPolicyIngressRule {
		path := spec.Child("ingress").Index(i)
		return v1alpha2.ClusterNetworkPolicyIngressRule{
			Name: r.Name, Action: v1alpha2.ClusterNetworkPolicyRuleAction(w.action(r.Action, path, "Accept", true)),
			From: mapList(r.Peers, func(j int, pe *model.ClusterPeer) v1alpha2.ClusterNetworkPolicyIngressPeer {
				w.ingressPeer(pe, path.Child("from").Index(j))
				return v1alpha2.ClusterNetworkPolicyIngressPeer{Namespaces: selectorToAPI(pe.Namespaces), Pods: podsToAPI(pe.Pods)}
			}),
			Protocols: w.protocolsV1alpha2(r.Ports, path.Child("protocols")),
		}
	})
	out.Spec.Egress = mapList(p.EgressRules, func(i int, r *model.ClusterRule) v1alpha2.ClusterNetworkPolicyEgressRule {
		path := spec.Child("egress").Index(i)
		return v1alpha2.ClusterNetworkPolicyEgressRule{
			Name: r.Name, Action: v1alpha2.ClusterNetworkPolicyRuleAction(w.action(r.Action, path, "Accept", true)),
			To: mapList(r.Peers, func(_ int, pe *model.ClusterPeer) v1alpha2.ClusterNetworkPolicyEgressPeer {
				return v1alpha2.ClusterNetworkPolicyEgressPeer{Namespaces: selectorToAPI(pe.Namespaces), Pods: podsToAPI(pe.Pods),
					Nodes: selectorToAPI(pe.Nodes), Networks: cidrsToAPI[v1alpha2.CIDR](pe.Networks)}
			}),
			Protocols: w.protocolsV1alpha2(r.Ports, path.Child("protocols")),
		}
	})
	return out
}

// action is the API's name for a; accept is model.Accept's ("Allow" in
// v1alpha1), pass whether the kind has Pass.
func (w *clusterOut) action(a model.Action, rule *field.Path, accept string, pass bool) string {
	switch {
	case a == model.Accept:
		return accept
	case a == model.Deny:
		return "Deny"
	case a == model.Pass && pass:
		return "Pass"
	case a == model.Pass:
		w.fail(rule.Child("action"), "a %s has no Pass action", w.p.Kind)
	default:
		w.fail(rule.Child("action"), "unknown action %d", a)
	}
	return ""
}

func (w *clusterOut) subjectV1alpha1() v1alpha1.AdminNetworkPolicySubject {
	return v1alpha1.AdminNetworkPolicySubject{Namespaces: selectorToAPI(w.p.Subject.Namespaces), Pods: podsV1alpha1Out(w.p.Subject.Pods)}
}

// ingressPeer reports what an ingress peer cannot hold: the API has nodes
// and networks peers in egress rules only.
func (w *clusterOut) ingressPeer(pe *model.ClusterPeer, path *field.Path) {
	if pe.Nodes != nil {
		w.fail(path.Child("nodes"), "ingress rules have no nodes peers")
	}
	if pe.Networks != nil {
		w.fail(path.Child("networks"), "ingress rules have no networks peers")
	}
}

func (w *clusterOut) ingressPeersV1alpha1(peers []model.ClusterPeer, path *field.Path) []v1alpha1.AdminNetworkPolicyIngressPeer {
	return mapList(peers, func(i int, pe *model.ClusterPeer) v1alpha1.AdminNetworkPolicyIngressPeer {
		w.ingressPeer(pe, path.Index(i))
		return v1alpha1.AdminNetworkPolicyIngressPeer{Namespaces: selectorToAPI(pe.Namespaces), Pods: podsV1alpha1Out(pe.Pods)}
	})
}

func podsToAPI(n *model.NamespacedPods) *v1alpha2.NamespacedPod {
	if n == nil {
		return nil
	}
	return &v1alpha2.NamespacedPod{NamespaceSelector: *selectorToAPI(&n.NamespaceSelector), PodSelector: *selectorToAPI(&n.PodSelector)}
}

// podsV1alpha1Out is podsToAPI in v1alpha1's type (the same struct).
func podsV1alpha1Out(n *model.NamespacedPods) *v1alpha1.NamespacedPod {
	return (*v1alpha1.NamespacedPod)(podsToAPI(n))
}

func cidrsToAPI[T ~string](ps []netip.Prefix) []T {
	return mapList(ps, func(_ int, c *netip.Prefix) T { return T(c.String()) })
}

// port reports whether pt can be written: a name alone, or TCP, UDP or
// SCTP with a number or a range. Every port of a protocol (First 0) is
// refused rather than widened to 1-65535, which would read back as a
// different model value.
func (w *clusterOut) port(pt *model.ClusterPort, path *field.Path) bool {
	switch {
	case pt.Name != "":
		if pt.Protocol != 0 || pt.First != 0 || pt.Last != 0 {
			w.fail(path, "named port %q has a protocol or number (%v %d-%d), which the API cannot add to a name", pt.Name, pt.Protocol, pt.First, pt.Last)
			return false
		}
		return true
	case pt.Protocol != model.TCP && pt.Protocol != model.UDP && pt.Protocol != model.SCTP:
		w.fail(path, "protocol %v: the API has TCP, UDP and SCTP only", pt.Protocol)
	case pt.First == 0:
		w.fail(path, "every %v port (First 0) cannot be written: the API needs a port number or range", pt.Protocol)
	case pt.First > pt.Last:
		w.fail(path, "range %d-%d ends before it starts", pt.First, pt.Last)
	default:
		return true
	}
	return false
}

// portsV1alpha1 writes v1alpha1 ports: a pointer, nil for every port.
func (w *clusterOut) portsV1alpha1(ports []model.ClusterPort, path *field.Path) *[]v1alpha1.AdminNetworkPolicyPort {
	if ports == nil {
		return nil
	}
	out := mapList(ports, func(i int, pt *model.ClusterPort) v1alpha1.AdminNetworkPolicyPort {
		var ap v1alpha1.AdminNetworkPolicyPort
		if !w.port(pt, path.Index(i)) {
			return ap
		}
		proto := corev1.Protocol(pt.Protocol.String())
		switch {
		case pt.Name != "":
			name := pt.Name
			ap.NamedPort = &name
		case pt.First == pt.Last:
			ap.PortNumber = &v1alpha1.Port{Protocol: proto, Port: int32(pt.First)}
		default:
			ap.PortRange = &v1alpha1.PortRange{Protocol: proto, Start: int32(pt.First), End: int32(pt.Last)}
		}
		return ap
	})
	return &out
}

func (w *clusterOut) protocolsV1alpha2(ports []model.ClusterPort, path *field.Path) []v1alpha2.ClusterNetworkPolicyProtocol {
	return mapList(ports, func(i int, pt *model.ClusterPort) v1alpha2.ClusterNetworkPolicyProtocol {
		var ap v1alpha2.ClusterNetworkPolicyProtocol
		if !w.port(pt, path.Index(i)) {
			return ap
		}
		if pt.Name != "" {
			ap.DestinationNamedPort = pt.Name
			return ap
		}
		dp := &v1alpha2.Port{Number: int32(pt.First)}
		if pt.First != pt.Last {
			dp = &v1alpha2.Port{Range: &v1alpha2.PortRange{Start: int32(pt.First), End: int32(pt.Last)}}
		}
		switch pt.Protocol {
		case model.TCP:
			ap.TCP = &v1alpha2.ClusterNetworkPolicyProtocolTCP{DestinationPort: dp}
		case model.UDP:
			ap.UDP = &v1alpha2.ClusterNetworkPolicyProtocolUDP{DestinationPort: dp}
		default:
			ap.SCTP = &v1alpha2.ClusterNetworkPolicyProtocolSCTP{DestinationPort: dp}
		}
		return ap
	})
}

// mapList maps a list keeping nil and empty apart, as the readers do.
func mapList[T, U any](in []T, f func(int, *T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, 0, len(in))
	for i := range in {
		out = append(out, f(i, &in[i]))
	}
	return out
}

// v1alpha2ToV1beta1 is the reverse of v1beta1ToV1alpha2: the same schema,
// copied field by field, nil and empty lists kept apart.
func v1alpha2ToV1beta1(p *v1alpha2.ClusterNetworkPolicy) *v1beta1.ClusterNetworkPolicy {
	out := &v1beta1.ClusterNetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1beta1.GroupVersion.String(), Kind: p.Kind},
		ObjectMeta: p.ObjectMeta,
		Spec: v1beta1.ClusterNetworkPolicySpec{
			Tier:     v1beta1.Tier(p.Spec.Tier),
			Priority: p.Spec.Priority,
			Subject: v1beta1.ClusterNetworkPolicySubject{
				Namespaces: p.Spec.Subject.Namespaces,
				Pods:       (*v1beta1.NamespacedPod)(p.Spec.Subject.Pods),
			},
		},
	}
	out.Spec.Ingress = mapList(p.Spec.Ingress, func(_ int, r *v1alpha2.ClusterNetworkPolicyIngressRule) v1beta1.ClusterNetworkPolicyIngressRule {
		return v1beta1.ClusterNetworkPolicyIngressRule{
			Name:   r.Name,
			Action: v1beta1.ClusterNetworkPolicyRuleAction(r.Action),
			From: mapList(r.From, func(_ int, pr *v1alpha2.ClusterNetworkPolicyIngressPeer) v1beta1.ClusterNetworkPolicyIngressPeer {
				return v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: pr.Namespaces, Pods: (*v1beta1.NamespacedPod)(pr.Pods)}
			}),
			Protocols: protocolsToV1beta1(r.Protocols),
		}
	})
	out.Spec.Egress = mapList(p.Spec.Egress, func(_ int, r *v1alpha2.ClusterNetworkPolicyEgressRule) v1beta1.ClusterNetworkPolicyEgressRule {
		return v1beta1.ClusterNetworkPolicyEgressRule{
			Name:   r.Name,
			Action: v1beta1.ClusterNetworkPolicyRuleAction(r.Action),
			To: mapList(r.To, func(_ int, pr *v1alpha2.ClusterNetworkPolicyEgressPeer) v1beta1.ClusterNetworkPolicyEgressPeer {
				return v1beta1.ClusterNetworkPolicyEgressPeer{
					Namespaces: pr.Namespaces,
					Pods:       (*v1beta1.NamespacedPod)(pr.Pods),
					Nodes:      pr.Nodes,
					Networks: mapList(pr.Networks, func(_ int, c *v1alpha2.CIDR) v1beta1.CIDR {
						return v1beta1.CIDR(*c)
					}),
					DomainNames: mapList(pr.DomainNames, func(_ int, d *v1alpha2.DomainName) v1beta1.DomainName {
						return v1beta1.DomainName(*d)
					}),
				}
			}),
			Protocols: protocolsToV1beta1(r.Protocols),
		}
	})
	return out
}

func protocolsToV1beta1(ps []v1alpha2.ClusterNetworkPolicyProtocol) []v1beta1.ClusterNetworkPolicyProtocol {
	return mapList(ps, func(_ int, p *v1alpha2.ClusterNetworkPolicyProtocol) v1beta1.ClusterNetworkPolicyProtocol {
		q := v1beta1.ClusterNetworkPolicyProtocol{DestinationNamedPort: p.DestinationNamedPort}
		if p.TCP != nil {
			q.TCP = &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: portToV1beta1(p.TCP.DestinationPort)}
		}
		if p.UDP != nil {
			q.UDP = &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: portToV1beta1(p.UDP.DestinationPort)}
		}
		if p.SCTP != nil {
			q.SCTP = &v1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: portToV1beta1(p.SCTP.DestinationPort)}
		}
		return q
	})
}

func portToV1beta1(p *v1alpha2.Port) *v1beta1.Port {
	if p == nil {
		return nil
	}
	return &v1beta1.Port{Number: p.Number, Range: (*v1beta1.PortRange)(p.Range)}
}
