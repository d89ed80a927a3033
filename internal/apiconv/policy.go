package apiconv

import (
	"fmt"
	"net/netip"

	networkingv1 "k8s.io/api/networking/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/palisade-net/palisade/internal/model"
)

// Policy validates a NetworkPolicy as the API server's ValidateNetworkPolicy
// does and converts it. A missing namespace is "default". The effective
// policyTypes are computed as the API defaults them: the listed types, or,
// when none are listed, Ingress plus Egress if spec.egress has rules.
//
// On failure it returns an *Error listing every field error.
func Policy(np *networkingv1.NetworkPolicy) (*model.Policy, error) {
	if np == nil {
		return nil, nilInput("NetworkPolicy")
	}
	ns := defaultNS(np.Namespace)
	errs := validateMeta(np.Name, ns, true, np.Labels, apimachineryvalidation.NameIsDNSSubdomain)
	spec := field.NewPath("spec")

	p := &model.Policy{Namespace: ns, Name: np.Name}
	sel, e := selector(&np.Spec.PodSelector, spec.Child("podSelector"))
	errs = append(errs, e...)
	p.PodSelector = sel

	for i := range np.Spec.Ingress {
		r := &np.Spec.Ingress[i]
		path := spec.Child("ingress").Index(i)
		rule, e := convertRule(r.Ports, r.From, path, "from")
		errs = append(errs, e...)
		p.IngressRules = append(p.IngressRules, rule)
	}
	for i := range np.Spec.Egress {
		r := &np.Spec.Egress[i]
		path := spec.Child("egress").Index(i)
		rule, e := convertRule(r.Ports, r.To, path, "to")
		errs = append(errs, e...)
		p.EgressRules = append(p.EgressRules, rule)
	}

	e = policyTypes(np.Spec.PolicyTypes, spec.Child("policyTypes"))
	errs = append(errs, e...)
	if len(np.Spec.PolicyTypes) == 0 {
		p.Ingress = true
		p.Egress = len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			p.Ingress = true
		case networkingv1.PolicyTypeEgress:
			p.Egress = true
		}
	}

	if err := objectErrors("NetworkPolicy", p.Key(), errs); err != nil {
		return nil, err
	}
	return p, nil
}

// policyTypes validates spec.policyTypes as upstream does: at most two
// entries, each Ingress or Egress. Like the API server, it accepts a
// repeated value ([Ingress, Ingress] means Ingress).
func policyTypes(types []networkingv1.PolicyType, path *field.Path) field.ErrorList {
	if len(types) > 2 {
		return field.ErrorList{field.Invalid(path, types, "may not specify more than two policyTypes")}
	}
	var errs field.ErrorList
	for i, t := range types {
		if t != networkingv1.PolicyTypeIngress && t != networkingv1.PolicyTypeEgress {
			errs = append(errs, field.NotSupported(path.Index(i), t, []string{"Ingress", "Egress"}))
		}
	}
	return errs
}

// convertRule converts one ingress or egress rule; peersField is "from" or
// "to".
func convertRule(ports []networkingv1.NetworkPolicyPort, peers []networkingv1.NetworkPolicyPeer, path *field.Path, peersField string) (model.Rule, field.ErrorList) {
	var (
		rule model.Rule
		errs field.ErrorList
	)
	for i := range ports {
		port, e := convertPort(&ports[i], path.Child("ports").Index(i))
		errs = append(errs, e...)
		rule.Ports = append(rule.Ports, port)
	}
	for i := range peers {
		peer, e := convertPeer(&peers[i], path.Child(peersField).Index(i))
		errs = append(errs, e...)
		rule.Peers = append(rule.Peers, peer)
	}
	return rule, errs
}

// convertPort validates a NetworkPolicyPort as upstream's
// ValidateNetworkPolicyPort does.
func convertPort(np *networkingv1.NetworkPolicyPort, path *field.Path) (model.Port, field.ErrorList) {
	var (
		port model.Port
		errs field.ErrorList
	)
	proto := ""
	if np.Protocol != nil {
		proto = string(*np.Protocol)
		if proto == "" { // explicitly empty is not the same as absent
			errs = append(errs, field.NotSupported(path.Child("protocol"), proto, []string{"TCP", "UDP", "SCTP"}))
		}
	}
	p, e := protocol(path.Child("protocol"), proto)
	errs = append(errs, e...)
	port.Protocol = p

	switch {
	case np.Port == nil:
		if np.EndPort != nil {
			errs = append(errs, field.Invalid(path.Child("endPort"), *np.EndPort, "may not be specified when port is not specified"))
		}
	case np.Port.Type == intstr.Int:
		n := np.Port.IntVal
		e := portNum(path.Child("port"), n)
		errs = append(errs, e...)
		if len(e) == 0 {
			port.Port = uint16(n)
		}
		if np.EndPort != nil {
			end := *np.EndPort
			if end < n {
				errs = append(errs, field.Invalid(path.Child("endPort"), end, fmt.Sprintf("must be greater than or equal to port (%d)", n)))
			}
			e := portNum(path.Child("endPort"), end)
			errs = append(errs, e...)
			if len(e) == 0 {
				port.EndPort = uint16(end)
			}
		}
	default:
		if np.EndPort != nil {
			errs = append(errs, field.Invalid(path.Child("endPort"), *np.EndPort, "may not be specified when port is non-numeric"))
		}
		errs = append(errs, portName(path.Child("port"), np.Port.StrVal)...)
		port.Name = np.Port.StrVal
	}
	return port, errs
}

// convertPeer validates a NetworkPolicyPeer as upstream's
// ValidateNetworkPolicyPeer does: at least one field, and ipBlock alone.
func convertPeer(np *networkingv1.NetworkPolicyPeer, path *field.Path) (model.Peer, field.ErrorList) {
	var (
		peer model.Peer
		errs field.ErrorList
		n    int
	)
	if np.PodSelector != nil {
		n++
		sel, e := selector(np.PodSelector, path.Child("podSelector"))
		errs = append(errs, e...)
		peer.PodSelector = &sel
	}
	if np.NamespaceSelector != nil {
		n++
		sel, e := selector(np.NamespaceSelector, path.Child("namespaceSelector"))
		errs = append(errs, e...)
		peer.NamespaceSelector = &sel
	}
	if np.IPBlock != nil {
		n++
		b, e := ipBlock(np.IPBlock, path.Child("ipBlock"))
		errs = append(errs, e...)
		peer.IPBlock = b
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(path, "must specify a peer"))
	case n > 1 && np.IPBlock != nil:
		errs = append(errs, field.Forbidden(path, "may not specify both ipBlock and another peer"))
	}
	return peer, errs
}

// ipBlock validates an IPBlock as upstream's ValidateIPBlock does, with
// strict CIDR validation: cidr is a valid CIDR with no host bits set, and
// each except is a valid CIDR strictly inside it (same family, longer
// prefix). The model holds masked prefixes.
func ipBlock(b *networkingv1.IPBlock, path *field.Path) (*model.IPBlock, field.ErrorList) {
	if b.CIDR == "" {
		return nil, field.ErrorList{field.Required(path.Child("cidr"), "")}
	}
	cidr, errs := parseCIDR(path.Child("cidr"), b.CIDR)
	if len(errs) > 0 {
		// Like upstream, still check the exceptions when the CIDR parses
		// at all (e.g. it only has host bits set).
		p, err := netip.ParsePrefix(b.CIDR)
		if err != nil {
			return nil, errs
		}
		cidr = p.Masked()
	}
	out := &model.IPBlock{CIDR: cidr}
	for i, s := range b.Except {
		epath := path.Child("except").Index(i)
		ex, e := parseCIDR(epath, s)
		if len(e) > 0 {
			errs = append(errs, e...)
			continue
		}
		if ex.Addr().Is4() != cidr.Addr().Is4() || ex.Bits() <= cidr.Bits() || !cidr.Contains(ex.Addr()) {
			errs = append(errs, field.Invalid(epath, s, fmt.Sprintf("must be a strict subset of cidr (%s)", b.CIDR)))
			continue
		}
		out.Except = append(out.Except, ex)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// selector validates a label selector as metav1validation.ValidateLabelSelector
// does (keys are qualified names, values valid label values, In/NotIn need
// values, Exists/DoesNotExist take none) and converts it.
func selector(ls *metav1.LabelSelector, path *field.Path) (model.Selector, field.ErrorList) {
	errs := validateLabels(ls.MatchLabels, path.Child("matchLabels"))
	sel := model.Selector{MatchLabels: copyLabels(ls.MatchLabels)}
	for i, r := range ls.MatchExpressions {
		errs = append(errs, metav1validation.ValidateLabelSelectorRequirement(r, metav1validation.LabelSelectorValidationOptions{}, path.Child("matchExpressions").Index(i))...)
		var vals []string
		if len(r.Values) > 0 {
			vals = append(vals, r.Values...)
		}
		sel.Exprs = append(sel.Exprs, model.Requirement{Key: r.Key, Operator: model.Operator(r.Operator), Values: vals})
	}
	return sel, errs
}
