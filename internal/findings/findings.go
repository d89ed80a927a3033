// Package findings is palisade lint's checker: pure functions over the
// model that find NetworkPolicies which are valid but very likely not what
// their author meant (a selector that matches nothing, a default deny that
// also blocks DNS, an ipBlock that names pods, ...). Each finding has a
// stable code, a severity, the object and field it is about, and a
// one-line fix. It reads no client, no kernel and no files: the CLI loads
// the cluster and says where each object came from.
package findings

import (
	"fmt"
	"sort"

	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
)

// Severity orders findings; --fail-on compares against it.
type Severity int

// Severities, lowest first.
const (
	Info Severity = iota
	Warning
	Error
)

func (s Severity) String() string {
	switch s {
	case Error:
		return "error"
	case Warning:
		return "warning"
	}
	return "info"
}

// ParseSeverity reads info, warning or error.
func ParseSeverity(s string) (Severity, error) {
	for _, v := range []Severity{Info, Warning, Error} {
		if v.String() == s {
			return v, nil
		}
	}
	return 0, fmt.Errorf("severity %q: want info, warning or error", s)
}

// Rule describes one finding code: what docs/lint.md and SARIF's
// tool.driver.rules list.
type Rule struct {
	Code     string
	Name     string
	Severity Severity
	Summary  string
	Fix      string
}

// Codes. They are stable: a code is never reused for another check.
const (
	PolicySelectsNothing      = "PL001"
	PeerPodsMatchNothing      = "PL002"
	PeerNamespacesNothing     = "PL003"
	NamespaceLabelUnknown     = "PL004"
	NamespaceNameTypo         = "PL005"
	RedundantRule             = "PL006"
	DefaultDenyBlocksDNS      = "PL007"
	EgressAllowsNoDNS         = "PL008"
	NamedPortUndeclared       = "PL009"
	EndPortCoversNothing      = "PL010"
	IPBlockHoldsPodIPs        = "PL011"
	PolicyNamespaceMissing    = "PL012"
	ClusterSubjectNothing     = "PL013"
	ClusterPeerNothing        = "PL014"
	PriorityTie               = "PL015"
	BaselinePass              = "PL016"
	AdminShadowsNetworkPolicy = "PL017"
)

// Rules lists every code, in code order.
var Rules = []Rule{
	{PolicySelectsNothing, "policy-selects-no-pod", Warning,
		"the policy's spec.podSelector selects no pod of its namespace, so the policy does nothing",
		"change spec.podSelector to labels the namespace's pods carry, or delete the policy"},
	{PeerPodsMatchNothing, "peer-selects-no-pod", Warning,
		"a from/to peer's podSelector matches no pod in the namespaces it applies to, so the peer allows nothing",
		"change the peer's podSelector to labels those pods carry"},
	{PeerNamespacesNothing, "peer-selects-no-namespace", Warning,
		"a from/to peer's namespaceSelector matches no namespace, so the peer allows nothing",
		"change the namespaceSelector to labels a namespace carries"},
	{NamespaceLabelUnknown, "namespace-label-unknown", Warning,
		"a namespaceSelector requires a label key that no namespace carries",
		"label the namespaces (kubectl label namespace NS KEY=VALUE) or select on kubernetes.io/metadata.name"},
	{NamespaceNameTypo, "namespace-name-typo", Error,
		"a namespaceSelector misspells the kubernetes.io/metadata.name key, or names a namespace that does not exist but one with a close name does",
		"spell it kubernetes.io/metadata.name and use the namespace's exact name"},
	{RedundantRule, "redundant-rule", Info,
		"a rule allows nothing that another rule for the same pods and direction does not already allow (its peers and ports are covered)",
		"delete the redundant rule, or merge the two"},
	{DefaultDenyBlocksDNS, "default-deny-blocks-dns", Warning,
		"a policy isolates pods for egress with no egress rule, and no policy lets those pods reach DNS (53/UDP): name resolution fails",
		"add an egress rule to kube-system's DNS pods (k8s-app: kube-dns) on 53/UDP and 53/TCP"},
	{EgressAllowsNoDNS, "egress-allows-no-dns", Warning,
		"a policy's egress rules allow no DNS (53/UDP to kube-system, an ipBlock or anywhere), and no other policy does for those pods",
		"add a rule to spec.egress allowing 53/UDP and 53/TCP to kube-system's DNS pods"},
	{NamedPortUndeclared, "named-port-undeclared", Warning,
		"a rule's named port is declared (name and protocol) by no pod it could apply to: the selected pods for ingress, the peer pods for egress",
		"use the containerPort name the pods declare, or the port number"},
	{EndPortCoversNothing, "endport-covers-nothing", Warning,
		"a port..endPort range contains none of the ports the pods it applies to declare for that protocol",
		"fix port and endPort to cover the ports the pods serve"},
	{IPBlockHoldsPodIPs, "ipblock-contains-pod-ips", Warning,
		"an ipBlock contains pod addresses; pod IPs change when pods are recreated",
		"select the pods with podSelector/namespaceSelector, or add the pod CIDRs to except"},
	{PolicyNamespaceMissing, "policy-namespace-missing", Error,
		"the policy's namespace is declared nowhere in an input that declares namespaces, holds no other object, and is not one Kubernetes creates",
		"fix metadata.namespace, or add the Namespace"},
	{ClusterSubjectNothing, "cluster-subject-selects-no-pod", Warning,
		"a cluster-wide policy's spec.subject selects no pod (host-network pods are never subjects), so the policy does nothing",
		"change spec.subject to namespaces or pods that exist, or delete the policy"},
	{ClusterPeerNothing, "cluster-peer-selects-nothing", Warning,
		"a cluster-wide policy rule's namespaces or pods peer matches no pod, or its nodes peer no node, so the peer matches nothing",
		"change the peer's selectors to labels the namespaces, pods or nodes carry"},
	{PriorityTie, "cluster-priority-tie", Warning,
		"two cluster-wide policies of the same tier and priority apply to a common pod with rules that can match the same connection: the API leaves which one decides undefined",
		"give the policies different priorities"},
	{BaselinePass, "baseline-pass", Info,
		"a Pass rule in the Baseline tier (ClusterNetworkPolicy): it skips the Baseline rules after it, so what it matches is allowed by default",
		"use Accept to allow explicitly, or delete the rule if the later Baseline rules should decide"},
	{AdminShadowsNetworkPolicy, "admin-rule-shadows-networkpolicy", Warning,
		"an Admin-tier rule Accepts or Denies every pod on every port, with no Pass before it, for pods that NetworkPolicies with rules isolate: those rules never decide a connection with a pod",
		"narrow the rule's peers or ports, add a Pass rule before it for what the namespaces' NetworkPolicies should decide, or delete the NetworkPolicies' dead rules"},
}

// RuleFor returns the rule of code.
func RuleFor(code string) Rule {
	for _, r := range Rules {
		if r.Code == code {
			return r
		}
	}
	panic("findings: unknown code " + code)
}

// Finding is one problem found in one object.
type Finding struct {
	Code     string
	Severity Severity
	// Kind and Key name the object: a NetworkPolicy, or a cluster-wide
	// policy (Key.Namespace empty).
	Kind string
	Key  model.Key
	// Field is the API field, as validation errors name it
	// ("spec.egress[0].to[1].namespaceSelector").
	Field   string
	Message string
	Fix     string
	// File and Line say where the object was read, when the caller knows
	// (Line 0: unknown).
	File string
	Line int
}

// Input is what Check reads.
type Input struct {
	Cluster *model.Cluster
	// Declared holds the namespaces the input declares with a Namespace
	// object. Nil means every namespace of Cluster is real (a live
	// cluster). Manifests that declare no namespace at all say nothing
	// about namespaces' labels or existence, so the namespace checks
	// (PL003, PL004, PL012) then stay silent.
	Declared map[string]bool
}

// FromObjects builds the Input of manifests: the cluster their objects
// make (see manifest.Cluster, whose errors it returns) and the namespaces
// they declare.
func FromObjects(objs []manifest.Object) (Input, error) {
	c, err := manifest.Cluster(objs)
	if err != nil {
		return Input{}, err
	}
	in := Input{Cluster: c, Declared: map[string]bool{}}
	for _, o := range objs {
		if o.Kind == "Namespace" {
			in.Declared[o.Key.Name] = true
		}
	}
	return in, nil
}

// Check runs every check and returns the findings sorted by object,
// field and code.
func Check(in Input) []Finding {
	l := &linter{c: in.Cluster, declared: in.Declared}
	l.hasPods = len(l.c.Pods) > 0
	l.knowsNamespaces = in.Declared == nil || len(in.Declared) > 0
	for _, p := range l.c.SortedPolicies() {
		l.policy(p)
	}
	l.clusterPolicies()
	sort.SliceStable(l.out, func(i, j int) bool {
		a, b := l.out[i], l.out[j]
		if a.Key != b.Key {
			return a.Key.Less(b.Key)
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		return a.Code < b.Code
	})
	return l.out
}

// AtLeast reports whether any finding has severity s or higher.
func AtLeast(fs []Finding, s Severity) bool {
	for _, f := range fs {
		if f.Severity >= s {
			return true
		}
	}
	return false
}
