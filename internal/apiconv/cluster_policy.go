package apiconv

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"unicode/utf8"

	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/palisade-net/palisade/internal/model"
)

// Cluster-wide policy (policy.networking.k8s.io, sigs.k8s.io/network-policy-api
// v0.3.0): ClusterNetworkPolicy (v1alpha2, v1beta1: one schema) and its
// predecessors AdminNetworkPolicy and BaselineAdminNetworkPolicy (v1alpha1)
// are validated as their CRDs (experimental channel, the superset) do, by
// their OpenAPI schema and their CEL rules, and converted to one
// model.ClusterPolicy through one shared path.
//
// Where Palisade is stricter than the CRD, and why:
//   - label selectors are validated as for a NetworkPolicy (a CRD only
//     checks that key and operator are strings), since a selector with a
//     bad operator or key cannot be matched;
//   - a v1alpha1 protocol must be TCP, UDP or SCTP (the CRD takes any
//     string), the protocols Palisade enforces;
//   - a v1alpha1 namedPort must not be empty (it would name no port);
//   - a v1alpha1 portRange must have start < end, as its documentation
//     says (v1alpha2 has that as a CEL rule);
//   - domainNames peers are rejected: see domainNamesUnsupported.

// domainNamesUnsupported explains why a policy with a domainNames peer is
// rejected rather than read. Palisade enforces policy in nftables by
// address and cannot follow what names resolve to. The API's "fail closed"
// for a peer an implementation does not know (an Accept rule matches no
// traffic) would silently change what the policy means; an error that
// names the field does not.
const domainNamesUnsupported = "domainNames peers are not supported by Palisade (it enforces by address and cannot follow DNS names)"

// maxRuleName is the longest rule name, in characters, of every kind.
const maxRuleName = 100

// maxCIDR is the CRDs' maxLength of a networks entry.
const maxCIDR = 43

// domainNamePattern is the CRDs' pattern for a domainNames entry.
var domainNamePattern = regexp.MustCompile(`^(\*\.)?([a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$`)

// AdminNetworkPolicy validates a v1alpha1 AdminNetworkPolicy and converts
// it to an Admin-tier ClusterPolicy (Allow becomes model.Accept). On
// failure it returns an *Error listing every field error.
func AdminNetworkPolicy(p *v1alpha1.AdminNetworkPolicy) (*model.ClusterPolicy, error) {
	if p == nil {
		return nil, nilInput(model.KindAdminNetworkPolicy)
	}
	in := clusterIn{
		kind: model.KindAdminNetworkPolicy, apiVersion: v1alpha1.GroupVersion.String(),
		meta: &p.ObjectMeta, tier: model.AdminTier, priority: p.Spec.Priority, hasPriority: true,
		shape:   v1alpha1Shape,
		actions: []actionName{{"Allow", model.Accept}, {"Deny", model.Deny}, {"Pass", model.Pass}},
		subject: subjectV1alpha1(p.Spec.Subject),
	}
	if p.Spec.Ingress != nil {
		in.ingress = make([]ruleIn, 0, len(p.Spec.Ingress))
	}
	for _, r := range p.Spec.Ingress {
		in.ingress = append(in.ingress, ruleIn{name: r.Name, action: string(r.Action), peers: ingressPeersV1alpha1(r.From), ports: r.Ports})
	}
	if p.Spec.Egress != nil {
		in.egress = make([]ruleIn, 0, len(p.Spec.Egress))
	}
	for _, r := range p.Spec.Egress {
		var peers []peerIn
		if r.To != nil {
			peers = make([]peerIn, 0, len(r.To))
		}
		for _, pr := range r.To {
			peers = append(peers, peerIn{namespaces: pr.Namespaces, pods: podsV1alpha1(pr.Pods), nodes: pr.Nodes,
				networks: cidrsV1alpha1(pr.Networks), domainNames: domainsV1alpha1(pr.DomainNames)})
		}
		in.egress = append(in.egress, ruleIn{name: r.Name, action: string(r.Action), peers: peers, ports: r.Ports})
	}
	return in.convert()
}

// BaselineAdminNetworkPolicy validates a v1alpha1
// BaselineAdminNetworkPolicy (whose name must be "default") and converts
// it to a Baseline-tier ClusterPolicy with priority
// model.BaselinePriority (Allow becomes model.Accept). On failure it
// returns an *Error listing every field error.
func BaselineAdminNetworkPolicy(p *v1alpha1.BaselineAdminNetworkPolicy) (*model.ClusterPolicy, error) {
	if p == nil {
		return nil, nilInput(model.KindBaselineAdminNetworkPolicy)
	}
	in := clusterIn{
		kind: model.KindBaselineAdminNetworkPolicy, apiVersion: v1alpha1.GroupVersion.String(),
		meta: &p.ObjectMeta, tier: model.BaselineTier, priority: model.BaselinePriority,
		shape:   v1alpha1Shape,
		actions: []actionName{{"Allow", model.Accept}, {"Deny", model.Deny}},
		subject: subjectV1alpha1(p.Spec.Subject),
	}
	if p.Spec.Ingress != nil {
		in.ingress = make([]ruleIn, 0, len(p.Spec.Ingress))
	}
	for _, r := range p.Spec.Ingress {
		in.ingress = append(in.ingress, ruleIn{name: r.Name, action: string(r.Action), peers: ingressPeersV1alpha1(r.From), ports: r.Ports})
	}
	if p.Spec.Egress != nil {
		in.egress = make([]ruleIn, 0, len(p.Spec.Egress))
	}
	for _, r := range p.Spec.Egress {
		var peers []peerIn
		if r.To != nil {
			peers = make([]peerIn, 0, len(r.To))
		}
		for _, pr := range r.To {
			peers = append(peers, peerIn{namespaces: pr.Namespaces, pods: podsV1alpha1(pr.Pods), nodes: pr.Nodes,
				networks: cidrsV1alpha1(pr.Networks)})
		}
		in.egress = append(in.egress, ruleIn{name: r.Name, action: string(r.Action), peers: peers, ports: r.Ports})
	}
	return in.convert()
}

// ClusterNetworkPolicy validates a v1alpha2 ClusterNetworkPolicy and
// converts it (tier Admin or Baseline). On failure it returns an *Error
// listing every field error.
func ClusterNetworkPolicy(p *v1alpha2.ClusterNetworkPolicy) (*model.ClusterPolicy, error) {
	if p == nil {
		return nil, nilInput(model.KindClusterNetworkPolicy)
	}
	return clusterNetworkPolicy(p, v1alpha2.GroupVersion.String())
}

// ClusterNetworkPolicyV1beta1 is ClusterNetworkPolicy for v1beta1, the
// same schema: the object is copied field by field into v1alpha2 types
// (keeping nil and empty lists apart) and goes the same way.
func ClusterNetworkPolicyV1beta1(p *v1beta1.ClusterNetworkPolicy) (*model.ClusterPolicy, error) {
	if p == nil {
		return nil, nilInput(model.KindClusterNetworkPolicy)
	}
	return clusterNetworkPolicy(v1beta1ToV1alpha2(p), v1beta1.GroupVersion.String())
}

// clusterNetworkPolicy converts a ClusterNetworkPolicy read as apiVersion.
func clusterNetworkPolicy(p *v1alpha2.ClusterNetworkPolicy, apiVersion string) (*model.ClusterPolicy, error) {
	in := clusterIn{
		kind: model.KindClusterNetworkPolicy, apiVersion: apiVersion,
		meta: &p.ObjectMeta, priority: p.Spec.Priority, hasPriority: true,
		shape:   v1alpha2Shape,
		actions: []actionName{{"Accept", model.Accept}, {"Deny", model.Deny}, {"Pass", model.Pass}},
		subject: subjectIn{namespaces: p.Spec.Subject.Namespaces, pods: podsV1alpha2(p.Spec.Subject.Pods)},
	}
	tierPath := field.NewPath("spec", "tier")
	switch p.Spec.Tier {
	case v1alpha2.AdminTier:
		in.tier = model.AdminTier
	case v1alpha2.BaselineTier:
		in.tier = model.BaselineTier
	case "":
		in.errs = append(in.errs, field.Required(tierPath, "must be Admin or Baseline"))
	default:
		in.errs = append(in.errs, field.NotSupported(tierPath, p.Spec.Tier, []string{"Admin", "Baseline"}))
	}
	if p.Spec.Ingress != nil {
		in.ingress = make([]ruleIn, 0, len(p.Spec.Ingress))
	}
	for _, r := range p.Spec.Ingress {
		var peers []peerIn
		if r.From != nil {
			peers = make([]peerIn, 0, len(r.From))
		}
		for _, pr := range r.From {
			peers = append(peers, peerIn{namespaces: pr.Namespaces, pods: podsV1alpha2(pr.Pods)})
		}
		in.ingress = append(in.ingress, ruleIn{name: r.Name, action: string(r.Action), peers: peers, protocols: r.Protocols})
	}
	if p.Spec.Egress != nil {
		in.egress = make([]ruleIn, 0, len(p.Spec.Egress))
	}
	for _, r := range p.Spec.Egress {
		var peers []peerIn
		if r.To != nil {
			peers = make([]peerIn, 0, len(r.To))
		}
		for _, pr := range r.To {
			pe := peerIn{namespaces: pr.Namespaces, pods: podsV1alpha2(pr.Pods), nodes: pr.Nodes}
			if pr.Networks != nil {
				pe.networks = make([]string, 0, len(pr.Networks))
				for _, c := range pr.Networks {
					pe.networks = append(pe.networks, string(c))
				}
			}
			if pr.DomainNames != nil {
				pe.domainNames = make([]string, 0, len(pr.DomainNames))
				for _, d := range pr.DomainNames {
					pe.domainNames = append(pe.domainNames, string(d))
				}
			}
			peers = append(peers, pe)
		}
		in.egress = append(in.egress, ruleIn{name: r.Name, action: string(r.Action), peers: peers, protocols: r.Protocols})
	}
	return in.convert()
}

// shape holds what differs between the v1alpha1 and v1alpha2 schemas
// beyond their Go types.
type shape struct {
	maxRules, maxPeers, maxPorts int
	// portsField is the rule's ports field: "ports" or "protocols".
	portsField string
}

var (
	v1alpha1Shape = shape{maxRules: 100, maxPeers: 100, maxPorts: 100, portsField: "ports"}
	v1alpha2Shape = shape{maxRules: 25, maxPeers: 25, maxPorts: 25, portsField: "protocols"}
)

// maxNetworks is the most networks or domainNames entries in one peer, in
// every version.
const maxNetworks = 25

// actionName maps an API action name to the model's action.
type actionName struct {
	name   string
	action model.Action
}

// clusterIn is one cluster policy of any kind and version in the form the
// shared validation and conversion reads. Lists keep their nil-ness: nil
// is an absent field, empty a present but empty one.
type clusterIn struct {
	kind, apiVersion string
	meta             *metav1.ObjectMeta
	tier             model.Tier
	priority         int32
	hasPriority      bool
	shape            shape
	actions          []actionName
	subject          subjectIn
	ingress, egress  []ruleIn
	errs             field.ErrorList // found while building the clusterIn
}

type subjectIn struct {
	namespaces *metav1.LabelSelector
	pods       *podsIn
}

type podsIn struct {
	namespaceSelector, podSelector metav1.LabelSelector
}

type peerIn struct {
	namespaces, nodes     *metav1.LabelSelector
	pods                  *podsIn
	networks, domainNames []string
}

type ruleIn struct {
	name, action string
	peers        []peerIn
	ports        *[]v1alpha1.AdminNetworkPolicyPort      // v1alpha1
	protocols    []v1alpha2.ClusterNetworkPolicyProtocol // v1alpha2, v1beta1
}

// convert validates in and builds the model value.
func (in *clusterIn) convert() (*model.ClusterPolicy, error) {
	m := in.meta
	errs := validateMeta(m.Name, "", false, m.Labels, apimachineryvalidation.NameIsDNSSubdomain)
	if in.kind == model.KindBaselineAdminNetworkPolicy && m.Name != "default" {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), m.Name,
			`Only one baseline admin network policy with metadata.name="default" can be created in the cluster`))
	}
	errs = append(errs, in.errs...)
	spec := field.NewPath("spec")
	if in.hasPriority && (in.priority < 0 || in.priority > 1000) {
		errs = append(errs, field.Invalid(spec.Child("priority"), in.priority, "must be between 0 and 1000, inclusive"))
	}
	p := &model.ClusterPolicy{
		Kind: in.kind, Name: m.Name, APIVersion: in.apiVersion,
		Tier: in.tier, Priority: in.priority,
	}
	subj, e := in.convertSubject(spec.Child("subject"))
	errs = append(errs, e...)
	p.Subject = subj

	p.IngressRules, e = in.convertRules(in.ingress, spec.Child("ingress"), "from")
	errs = append(errs, e...)
	p.EgressRules, e = in.convertRules(in.egress, spec.Child("egress"), "to")
	errs = append(errs, e...)

	if err := objectErrors(in.kind, model.Key{Name: m.Name}, errs); err != nil {
		return nil, err
	}
	return p, nil
}

func (in *clusterIn) convertSubject(path *field.Path) (model.ClusterSubject, field.ErrorList) {
	var s model.ClusterSubject
	errs := exactlyOne(path, []string{"namespaces", "pods"}, in.subject.namespaces != nil, in.subject.pods != nil)
	if in.subject.namespaces != nil {
		sel, e := selector(in.subject.namespaces, path.Child("namespaces"))
		errs = append(errs, e...)
		s.Namespaces = &sel
	}
	if in.subject.pods != nil {
		np, e := namespacedPods(in.subject.pods, path.Child("pods"))
		errs = append(errs, e...)
		s.Pods = np
	}
	return s, errs
}

func namespacedPods(p *podsIn, path *field.Path) (*model.NamespacedPods, field.ErrorList) {
	ns, errs := selector(&p.namespaceSelector, path.Child("namespaceSelector"))
	pod, e := selector(&p.podSelector, path.Child("podSelector"))
	return &model.NamespacedPods{NamespaceSelector: ns, PodSelector: pod}, append(errs, e...)
}

// convertRules converts the ingress or egress rules; peersField is "from"
// or "to".
func (in *clusterIn) convertRules(rules []ruleIn, path *field.Path, peersField string) ([]model.ClusterRule, field.ErrorList) {
	var errs field.ErrorList
	if len(rules) > in.shape.maxRules {
		errs = append(errs, field.TooMany(path, len(rules), in.shape.maxRules))
	}
	var out []model.ClusterRule
	if rules != nil {
		out = make([]model.ClusterRule, 0, len(rules))
	}
	for i := range rules {
		r, e := in.convertRule(&rules[i], path.Index(i), peersField)
		errs = append(errs, e...)
		out = append(out, r)
	}
	return out, errs
}

func (in *clusterIn) convertRule(r *ruleIn, path *field.Path, peersField string) (model.ClusterRule, field.ErrorList) {
	var errs field.ErrorList
	rule := model.ClusterRule{Name: r.name}
	if utf8.RuneCountInString(r.name) > maxRuleName {
		errs = append(errs, field.TooLongCharacters(path.Child("name"), r.name, maxRuleName))
	}
	rule.Action, errs = in.action(r.action, path.Child("action"), errs)

	peersPath := path.Child(peersField)
	errs = append(errs, listSize(peersPath, r.peers == nil, len(r.peers), true, in.shape.maxPeers)...)
	addressPeer := false // a networks, nodes or domainNames peer: no named ports there
	for i := range r.peers {
		pe, e := convertClusterPeer(&r.peers[i], peersPath.Index(i))
		errs = append(errs, e...)
		rule.Peers = append(rule.Peers, pe)
		addressPeer = addressPeer || r.peers[i].networks != nil || r.peers[i].nodes != nil || r.peers[i].domainNames != nil
	}

	var named bool
	var e field.ErrorList
	portsPath := path.Child(in.shape.portsField)
	if in.shape.portsField == "ports" {
		rule.Ports, named, e = alphaPorts(r.ports, portsPath, in.shape.maxPorts)
	} else {
		rule.Ports, named, e = protocols(r.protocols, portsPath, in.shape.maxPorts)
	}
	errs = append(errs, e...)
	if named && addressPeer {
		// The CRDs' CEL rule on an egress rule.
		what := "networks/nodes/domainNames"
		if in.kind == model.KindBaselineAdminNetworkPolicy {
			what = "networks/nodes"
		}
		errs = append(errs, field.Invalid(path, "object",
			fmt.Sprintf("%s peer cannot be set with namedPorts since there are no namedPorts for %s", what, what)))
	}
	return rule, errs
}

// action converts an action name, appending to errs.
func (in *clusterIn) action(name string, path *field.Path, errs field.ErrorList) (model.Action, field.ErrorList) {
	names := make([]string, 0, len(in.actions))
	for _, a := range in.actions {
		if a.name == name {
			return a.action, errs
		}
		names = append(names, a.name)
	}
	if name == "" {
		return 0, append(errs, field.Required(path, "must be one of "+strings.Join(names, ", ")))
	}
	return 0, append(errs, field.NotSupported(path, name, names))
}

// convertClusterPeer validates one from/to entry: exactly one field set.
func convertClusterPeer(pe *peerIn, path *field.Path) (model.ClusterPeer, field.ErrorList) {
	var out model.ClusterPeer
	errs := exactlyOne(path, []string{"namespaces", "pods", "nodes", "networks", "domainNames"},
		pe.namespaces != nil, pe.pods != nil, pe.nodes != nil, pe.networks != nil, pe.domainNames != nil)
	if pe.namespaces != nil {
		sel, e := selector(pe.namespaces, path.Child("namespaces"))
		errs = append(errs, e...)
		out.Namespaces = &sel
	}
	if pe.pods != nil {
		np, e := namespacedPods(pe.pods, path.Child("pods"))
		errs = append(errs, e...)
		out.Pods = np
	}
	if pe.nodes != nil {
		sel, e := selector(pe.nodes, path.Child("nodes"))
		errs = append(errs, e...)
		out.Nodes = &sel
	}
	if pe.networks != nil {
		npath := path.Child("networks")
		errs = append(errs, listSize(npath, false, len(pe.networks), true, maxNetworks)...)
		errs = append(errs, duplicates(npath, pe.networks)...)
		out.Networks = make([]netip.Prefix, 0, len(pe.networks))
		for i, s := range pe.networks {
			c, e := clusterCIDR(npath.Index(i), s)
			errs = append(errs, e...)
			if len(e) == 0 {
				out.Networks = append(out.Networks, c)
			}
		}
	}
	if pe.domainNames != nil {
		dpath := path.Child("domainNames")
		errs = append(errs, field.Forbidden(dpath, domainNamesUnsupported))
		errs = append(errs, listSize(dpath, false, len(pe.domainNames), true, maxNetworks)...)
		errs = append(errs, duplicates(dpath, pe.domainNames)...)
		for i, d := range pe.domainNames {
			if !domainNamePattern.MatchString(d) {
				errs = append(errs, field.Invalid(dpath.Index(i), d, "should match '"+domainNamePattern.String()+"'"))
			}
		}
	}
	return out, errs
}

// clusterCIDR validates a networks entry as the CRDs do: at most 43
// characters, and the CEL rule isCIDR(self) && cidr(self) ==
// cidr(self).masked() (the API server's isCIDR parses with
// netip.ParsePrefix and refuses IPv4-mapped IPv6).
func clusterCIDR(path *field.Path, s string) (netip.Prefix, field.ErrorList) {
	if utf8.RuneCountInString(s) > maxCIDR {
		return netip.Prefix{}, field.ErrorList{field.TooLongCharacters(path, s, maxCIDR)}
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Is4In6() || p != p.Masked() {
		return netip.Prefix{}, field.ErrorList{field.Invalid(path, s, "Invalid CIDR format provided")}
	}
	return p, nil
}

// alphaPorts converts v1alpha1 ports: nil is every port.
func alphaPorts(ports *[]v1alpha1.AdminNetworkPolicyPort, path *field.Path, max int) ([]model.ClusterPort, bool, field.ErrorList) {
	if ports == nil {
		return nil, false, nil
	}
	errs := listSize(path, false, len(*ports), true, max)
	out := make([]model.ClusterPort, 0, len(*ports))
	named := false
	for i, pt := range *ports {
		ipath := path.Index(i)
		errs = append(errs, exactlyOne(ipath, []string{"portNumber", "namedPort", "portRange"},
			pt.PortNumber != nil, pt.NamedPort != nil, pt.PortRange != nil)...)
		if n := pt.PortNumber; n != nil {
			proto, e := protocol(ipath.Child("portNumber", "protocol"), string(n.Protocol))
			errs = append(errs, e...)
			e = portNum(ipath.Child("portNumber", "port"), n.Port)
			errs = append(errs, e...)
			if len(e) == 0 {
				out = append(out, model.ClusterPort{Protocol: proto, First: uint16(n.Port), Last: uint16(n.Port)})
			}
		}
		if pt.NamedPort != nil {
			named = true
			if *pt.NamedPort == "" {
				errs = append(errs, field.Required(ipath.Child("namedPort"), "must name a container port"))
			} else {
				out = append(out, model.ClusterPort{Name: *pt.NamedPort})
			}
		}
		if r := pt.PortRange; r != nil {
			rpath := ipath.Child("portRange")
			proto, e := protocol(rpath.Child("protocol"), string(r.Protocol))
			errs = append(errs, e...)
			if pr, e := portRange(rpath, r.Start, r.End); len(e) > 0 {
				errs = append(errs, e...)
			} else {
				pr.Protocol = proto
				out = append(out, pr)
			}
		}
	}
	return out, named, errs
}

// protocols converts v1alpha2 protocols: nil is every port.
func protocols(protos []v1alpha2.ClusterNetworkPolicyProtocol, path *field.Path, max int) ([]model.ClusterPort, bool, field.ErrorList) {
	if protos == nil {
		return nil, false, nil
	}
	errs := listSize(path, false, len(protos), true, max)
	out := make([]model.ClusterPort, 0, len(protos))
	named := false
	for i, pt := range protos {
		ipath := path.Index(i)
		errs = append(errs, exactlyOne(ipath, []string{"tcp", "udp", "sctp", "destinationNamedPort"},
			pt.TCP != nil, pt.UDP != nil, pt.SCTP != nil, pt.DestinationNamedPort != "")...)
		var e field.ErrorList
		if pt.TCP != nil {
			out, e = destinationPort(out, model.TCP, pt.TCP.DestinationPort, ipath.Child("tcp"))
			errs = append(errs, e...)
		}
		if pt.UDP != nil {
			out, e = destinationPort(out, model.UDP, pt.UDP.DestinationPort, ipath.Child("udp"))
			errs = append(errs, e...)
		}
		if pt.SCTP != nil {
			out, e = destinationPort(out, model.SCTP, pt.SCTP.DestinationPort, ipath.Child("sctp"))
			errs = append(errs, e...)
		}
		if pt.DestinationNamedPort != "" {
			named = true
			out = append(out, model.ClusterPort{Name: pt.DestinationNamedPort})
		}
	}
	return out, named, errs
}

// destinationPort converts a tcp, udp or sctp entry, appending to out. The
// CRD requires the entry to have a destinationPort (minProperties 1).
func destinationPort(out []model.ClusterPort, proto model.Protocol, dp *v1alpha2.Port, path *field.Path) ([]model.ClusterPort, field.ErrorList) {
	if dp == nil {
		return out, field.ErrorList{field.Required(path.Child("destinationPort"), "must have at least 1 property")}
	}
	dpath := path.Child("destinationPort")
	errs := exactlyOne(dpath, []string{"number", "range"}, dp.Number != 0, dp.Range != nil)
	if dp.Number != 0 {
		e := portNum(dpath.Child("number"), dp.Number)
		errs = append(errs, e...)
		if len(e) == 0 {
			out = append(out, model.ClusterPort{Protocol: proto, First: uint16(dp.Number), Last: uint16(dp.Number)})
		}
	}
	if dp.Range != nil {
		pr, e := portRange(dpath.Child("range"), dp.Range.Start, dp.Range.End)
		errs = append(errs, e...)
		if len(e) == 0 {
			pr.Protocol = proto
			out = append(out, pr)
		}
	}
	return out, errs
}

// portRange validates start and end (each 1-65535, start < end).
func portRange(path *field.Path, start, end int32) (model.ClusterPort, field.ErrorList) {
	errs := portNum(path.Child("start"), start)
	errs = append(errs, portNum(path.Child("end"), end)...)
	if len(errs) == 0 && start >= end {
		errs = append(errs, field.Invalid(path, fmt.Sprintf("%d-%d", start, end), "Start port must be less than End port"))
	}
	if len(errs) > 0 {
		return model.ClusterPort{}, errs
	}
	return model.ClusterPort{First: uint16(start), Last: uint16(end)}, nil
}

// exactlyOne reports an error unless exactly one of the fields named is
// set (the CRDs' minProperties and maxProperties 1).
func exactlyOne(path *field.Path, names []string, set ...bool) field.ErrorList {
	var have []string
	for i, s := range set {
		if s {
			have = append(have, names[i])
		}
	}
	switch len(have) {
	case 1:
		return nil
	case 0:
		return field.ErrorList{field.Required(path, "exactly one of "+strings.Join(names, ", ")+" must be set")}
	}
	return field.ErrorList{field.Forbidden(path, "exactly one of "+strings.Join(names, ", ")+" may be set, found "+strings.Join(have, " and "))}
}

// listSize checks a list's minItems (1, when minOne) and maxItems;
// absent says the field is missing (nil), which is an error when the list
// is required.
func listSize(path *field.Path, absent bool, n int, minOne bool, max int) field.ErrorList {
	switch {
	case absent:
		return field.ErrorList{field.Required(path, "must have at least 1 item")}
	case minOne && n == 0:
		return field.ErrorList{field.Invalid(path, n, "must have at least 1 item")}
	case n > max:
		return field.ErrorList{field.TooMany(path, n, max)}
	}
	return nil
}

// duplicates reports repeated entries of a list of type set.
func duplicates(path *field.Path, items []string) field.ErrorList {
	var errs field.ErrorList
	seen := make(map[string]bool, len(items))
	for i, s := range items {
		if seen[s] {
			errs = append(errs, field.Duplicate(path.Index(i), s))
		}
		seen[s] = true
	}
	return errs
}

func subjectV1alpha1(s v1alpha1.AdminNetworkPolicySubject) subjectIn {
	return subjectIn{namespaces: s.Namespaces, pods: podsV1alpha1(s.Pods)}
}

func podsV1alpha1(p *v1alpha1.NamespacedPod) *podsIn {
	if p == nil {
		return nil
	}
	return &podsIn{namespaceSelector: p.NamespaceSelector, podSelector: p.PodSelector}
}

func podsV1alpha2(p *v1alpha2.NamespacedPod) *podsIn {
	if p == nil {
		return nil
	}
	return &podsIn{namespaceSelector: p.NamespaceSelector, podSelector: p.PodSelector}
}

func ingressPeersV1alpha1(from []v1alpha1.AdminNetworkPolicyIngressPeer) []peerIn {
	if from == nil {
		return nil
	}
	out := make([]peerIn, 0, len(from))
	for _, pr := range from {
		out = append(out, peerIn{namespaces: pr.Namespaces, pods: podsV1alpha1(pr.Pods)})
	}
	return out
}

func cidrsV1alpha1(cs []v1alpha1.CIDR) []string {
	if cs == nil {
		return nil
	}
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, string(c))
	}
	return out
}

func domainsV1alpha1(ds []v1alpha1.DomainName) []string {
	if ds == nil {
		return nil
	}
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, string(d))
	}
	return out
}
