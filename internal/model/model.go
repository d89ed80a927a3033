// Package model holds the cluster state that the policy engine reads: pods,
// namespaces, nodes, services and NetworkPolicies, with only the fields the
// engine needs and addresses as netip values. It imports no Kubernetes
// client, netlink or output code; internal/apiconv fills it from API objects
// and validates them on the way in.
package model

import (
	"fmt"
	"maps"
	"net/netip"
	"sort"
	"strings"
)

// Protocol is an IP protocol that a NetworkPolicy port can name. The values
// are the IANA protocol numbers, which is what the kernel matches on.
type Protocol uint8

// Protocols understood by NetworkPolicy.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

// Protocols lists every protocol in a stable order.
var Protocols = [...]Protocol{TCP, UDP, SCTP}

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case SCTP:
		return "SCTP"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// ParseProtocol reads TCP, UDP or SCTP (case-insensitive, as users type it
// on the command line; the API itself is validated case-sensitively).
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToUpper(s) {
	case "TCP":
		return TCP, nil
	case "UDP":
		return UDP, nil
	case "SCTP":
		return SCTP, nil
	}
	return 0, fmt.Errorf("unsupported protocol %q: want TCP, UDP or SCTP", s)
}

// Direction is the direction of traffic relative to the pod a policy selects.
type Direction uint8

// Directions of NetworkPolicy.
const (
	Ingress Direction = iota
	Egress
)

func (d Direction) String() string {
	if d == Egress {
		return "Egress"
	}
	return "Ingress"
}

// Key names a namespaced object.
type Key struct {
	Namespace, Name string
}

func (k Key) String() string { return k.Namespace + "/" + k.Name }

// Less orders keys by namespace, then name.
func (k Key) Less(o Key) bool {
	if k.Namespace != o.Namespace {
		return k.Namespace < o.Namespace
	}
	return k.Name < o.Name
}

// SortKeys sorts keys in place by namespace, then name.
func SortKeys(keys []Key) {
	sort.Slice(keys, func(i, j int) bool { return keys[i].Less(keys[j]) })
}

// ParseKey reads "ns/name"; a bare name goes to defaultNS.
func ParseKey(s, defaultNS string) (Key, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		ns, name = defaultNS, s
	}
	if ns == "" || name == "" || strings.Contains(name, "/") {
		return Key{}, fmt.Errorf("%q is not NAMESPACE/NAME", s)
	}
	return Key{ns, name}, nil
}

// NamespaceNameLabel is the label the API server sets on every namespace.
const NamespaceNameLabel = "kubernetes.io/metadata.name"

// Namespace is a namespace and its labels (always including
// kubernetes.io/metadata.name).
type Namespace struct {
	Name   string
	Labels map[string]string
}

// ContainerPort is a port a pod's container declares; Name may be empty.
type ContainerPort struct {
	Name     string
	Port     uint16
	Protocol Protocol
}

// Pod is the part of a Pod that policy depends on.
type Pod struct {
	Namespace   string
	Name        string
	Labels      map[string]string
	Node        string
	HostNetwork bool
	// IPs are the pod's addresses (status.podIPs), at most one per family.
	IPs   []netip.Addr
	Ports []ContainerPort
	// Images are the container images, which the lab uses to guess what a
	// pod serves when it declares no ports.
	Images []string
	// Workload is set when the pod stands for the pods of a workload's
	// template (Deployment, StatefulSet, Job, ...): its kind, while Name is
	// "NAME[KIND]". Such a pod has no IPs unless the input gives them.
	Workload string
	// Replicas is how many pods the workload runs, when the input says
	// (0: unknown or several). With one, its pods never talk to a sibling.
	Replicas int
}

// Siblings reports whether p stands for several pods (a workload with
// other than one replica), so that traffic from p to p is between two of
// them, subject to policy, and not a pod talking to itself.
func (p *Pod) Siblings() bool { return p.Workload != "" && p.Replicas != 1 }

// Key returns the pod's namespace/name.
func (p *Pod) Key() Key { return Key{p.Namespace, p.Name} }

// IP returns the pod's address of the family of want (IPv4 when want is
// unset or IPv4), and false when it has none.
func (p *Pod) IP(want netip.Addr) (netip.Addr, bool) {
	v6 := want.IsValid() && want.Is6() && !want.Is4In6()
	for _, ip := range p.IPs {
		if ip.Is6() == v6 {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// NamedPort resolves a container port name for a protocol.
func (p *Pod) NamedPort(name string, proto Protocol) (uint16, bool) {
	for _, cp := range p.Ports {
		if cp.Name == name && cp.Protocol == proto {
			return cp.Port, true
		}
	}
	return 0, false
}

// Node is a node and its addresses. Traffic from a node to its own pods is
// never filtered.
type Node struct {
	Name string
	// Labels are the node's labels, which cluster policies' nodes peers
	// select on.
	Labels map[string]string
	IPs    []netip.Addr
	// PodCIDRs are the ranges the node's pods get their addresses from
	// (spec.podCIDRs, or spec.podCIDR), masked; none until the
	// controller-manager assigns them, or when the cluster does not.
	PodCIDRs []netip.Prefix
}

// ServicePort maps a Service port to a target port on the endpoints, by
// number or by container port name.
type ServicePort struct {
	Name           string
	Protocol       Protocol
	Port           uint16
	TargetPort     uint16 // 0 when TargetPortName is set
	TargetPortName string
}

// Service is the part of a Service that the tools and the lab need.
type Service struct {
	Namespace  string
	Name       string
	Selector   map[string]string // nil: no selector, no endpoints
	ClusterIPs []netip.Addr
	Ports      []ServicePort
}

// Key returns the service's namespace/name.
func (s *Service) Key() Key { return Key{s.Namespace, s.Name} }

// Operator is a label selector requirement's operator.
type Operator string

// Label selector operators.
const (
	OpIn           Operator = "In"
	OpNotIn        Operator = "NotIn"
	OpExists       Operator = "Exists"
	OpDoesNotExist Operator = "DoesNotExist"
)

// Requirement is one matchExpressions entry.
type Requirement struct {
	Key      string
	Operator Operator
	Values   []string
}

// Selector is a label selector. The zero value selects everything.
type Selector struct {
	MatchLabels map[string]string
	Exprs       []Requirement
}

// Empty reports whether s selects everything.
func (s Selector) Empty() bool { return len(s.MatchLabels) == 0 && len(s.Exprs) == 0 }

// Matches reports whether labels satisfy every term of s.
func (s Selector) Matches(labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, r := range s.Exprs {
		v, ok := labels[r.Key]
		switch r.Operator {
		case OpIn:
			if !ok || !contains(r.Values, v) {
				return false
			}
		case OpNotIn:
			if ok && contains(r.Values, v) {
				return false
			}
		case OpExists:
			if !ok {
				return false
			}
		case OpDoesNotExist:
			if ok {
				return false
			}
		default:
			return false // validated away; never select on an unknown operator
		}
	}
	return true
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// String renders s in kubectl's selector syntax ("app=web,tier in (a,b)"),
// with "<all>" for the empty selector. The rendering is canonical (sorted),
// so equal selectors print equally.
func (s Selector) String() string {
	var parts []string
	keys := make([]string, 0, len(s.MatchLabels))
	for k := range s.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+s.MatchLabels[k])
	}
	for _, r := range s.Exprs {
		vals := append([]string(nil), r.Values...)
		sort.Strings(vals)
		switch r.Operator {
		case OpIn:
			parts = append(parts, r.Key+" in ("+strings.Join(vals, ",")+")")
		case OpNotIn:
			parts = append(parts, r.Key+" notin ("+strings.Join(vals, ",")+")")
		case OpExists:
			parts = append(parts, r.Key)
		case OpDoesNotExist:
			parts = append(parts, "!"+r.Key)
		}
	}
	if len(parts) == 0 {
		return "<all>"
	}
	return strings.Join(parts, ",")
}

// IPBlock is a CIDR minus exceptions that lie strictly inside it.
type IPBlock struct {
	CIDR   netip.Prefix
	Except []netip.Prefix
}

// Peer is one entry of a rule's from/to list. Exactly one of IPBlock or
// (PodSelector and/or NamespaceSelector) is set. A nil selector is absent,
// which differs from an empty one: a PodSelector alone means the policy's
// own namespace; a NamespaceSelector alone means every pod of the matching
// namespaces.
type Peer struct {
	PodSelector       *Selector
	NamespaceSelector *Selector
	IPBlock           *IPBlock
}

// Port is one entry of a rule's ports list. Port 0 with no Name means every
// port of Protocol; EndPort 0 means the single port Port.
type Port struct {
	Protocol Protocol
	Port     uint16
	EndPort  uint16
	Name     string
}

// Rule is one ingress or egress rule. Empty Peers means every peer; empty
// Ports means every port and protocol.
type Rule struct {
	Peers []Peer
	Ports []Port
}

// Policy is a validated NetworkPolicy with its effective policyTypes.
type Policy struct {
	Namespace   string
	Name        string
	PodSelector Selector
	// Ingress and Egress are the effective policyTypes, defaulted as the
	// API does when spec.policyTypes is empty: Ingress, plus Egress when
	// there are egress rules.
	Ingress, Egress bool
	IngressRules    []Rule
	EgressRules     []Rule
}

// Key returns the policy's namespace/name.
func (p *Policy) Key() Key { return Key{p.Namespace, p.Name} }

// Affects reports whether p has dir in its effective policyTypes.
func (p *Policy) Affects(dir Direction) bool {
	if dir == Egress {
		return p.Egress
	}
	return p.Ingress
}

// Rules returns p's rules for dir.
func (p *Policy) Rules(dir Direction) []Rule {
	if dir == Egress {
		return p.EgressRules
	}
	return p.IngressRules
}

// Cluster is a whole cluster's state, as read from manifests or a scenario.
// The engine keeps its own incremental copy; Cluster is the input format.
type Cluster struct {
	Namespaces map[string]*Namespace
	Pods       map[Key]*Pod
	Services   map[Key]*Service
	Policies   map[Key]*Policy
	Nodes      map[string]*Node
	// ClusterPolicies are the cluster-wide policies of every kind.
	ClusterPolicies map[ClusterKey]*ClusterPolicy
}

// NewCluster returns an empty cluster.
func NewCluster() *Cluster {
	return &Cluster{
		Namespaces: map[string]*Namespace{},
		Pods:       map[Key]*Pod{},
		Services:   map[Key]*Service{},
		Policies:   map[Key]*Policy{},
		Nodes:      map[string]*Node{},

		ClusterPolicies: map[ClusterKey]*ClusterPolicy{},
	}
}

// EnsureNamespace returns the namespace called name, creating it with only
// the kubernetes.io/metadata.name label if it does not exist.
func (c *Cluster) EnsureNamespace(name string) *Namespace {
	ns := c.Namespaces[name]
	if ns == nil {
		ns = &Namespace{Name: name, Labels: map[string]string{NamespaceNameLabel: name}}
		c.Namespaces[name] = ns
	}
	return ns
}

// SetNamespaceLabels replaces a namespace's labels, keeping the
// kubernetes.io/metadata.name label as the API server does.
func SetNamespaceLabels(ns *Namespace, labels map[string]string) {
	m := make(map[string]string, len(labels)+1)
	for k, v := range labels {
		m[k] = v
	}
	m[NamespaceNameLabel] = ns.Name
	ns.Labels = m
}

// SortedPods returns the pods ordered by namespace, then name.
func (c *Cluster) SortedPods() []*Pod {
	out := make([]*Pod, 0, len(c.Pods))
	for _, p := range c.Pods {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key().Less(out[j].Key()) })
	return out
}

// SortedPolicies returns the policies ordered by namespace, then name.
func (c *Cluster) SortedPolicies() []*Policy {
	out := make([]*Policy, 0, len(c.Policies))
	for _, p := range c.Policies {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key().Less(out[j].Key()) })
	return out
}

// PodByIP returns the non-host-network pod that owns ip.
func (c *Cluster) PodByIP(ip netip.Addr) *Pod {
	for _, p := range c.Pods {
		if p.HostNetwork {
			continue
		}
		for _, a := range p.IPs {
			if a == ip {
				return p
			}
		}
	}
	return nil
}

// Endpoints returns the pods a Service selects, sorted.
func (c *Cluster) Endpoints(s *Service) []*Pod {
	if s.Selector == nil {
		return nil
	}
	sel := Selector{MatchLabels: s.Selector}
	var out []*Pod
	for _, p := range c.SortedPods() {
		if p.Namespace == s.Namespace && sel.Matches(p.Labels) {
			out = append(out, p)
		}
	}
	return out
}

// TargetPortOn resolves a service port on an endpoint pod.
func (sp ServicePort) TargetPortOn(p *Pod) (uint16, bool) {
	if sp.TargetPortName == "" {
		if sp.TargetPort == 0 {
			return sp.Port, true
		}
		return sp.TargetPort, true
	}
	return p.NamedPort(sp.TargetPortName, sp.Protocol)
}

// Clone returns a copy of c's maps; the objects are shared, since they are
// replaced, never changed in place.
func (c *Cluster) Clone() *Cluster {
	out := NewCluster()
	maps.Copy(out.Namespaces, c.Namespaces)
	maps.Copy(out.Pods, c.Pods)
	maps.Copy(out.Services, c.Services)
	maps.Copy(out.Policies, c.Policies)
	maps.Copy(out.Nodes, c.Nodes)
	maps.Copy(out.ClusterPolicies, c.ClusterPolicies)
	return out
}
