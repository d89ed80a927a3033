package apiconv

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/palisade-net/palisade/internal/model"
)

// Kinds of the cluster policy test cases. cnp runs each case as v1alpha2
// and as v1beta1.
const (
	anp  = "AdminNetworkPolicy"
	banp = "BaselineAdminNetworkPolicy"
	cnp  = "ClusterNetworkPolicy"
)

// convertCluster decodes a cluster policy of kind (named name) with the
// given spec (YAML) strictly as apiVersion and converts it.
func convertCluster(t *testing.T, kind, apiVersion, name, spec string) (*model.ClusterPolicy, error) {
	t.Helper()
	doc := fmt.Sprintf("apiVersion: policy.networking.k8s.io/%s\nkind: %s\nmetadata: {name: %q}\nspec: %s\n", apiVersion, kind, name, spec)
	decode := func(into any) {
		t.Helper()
		if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
			t.Fatalf("test input does not decode: %v\n%s", err, doc)
		}
	}
	switch {
	case kind == anp:
		var p v1alpha1.AdminNetworkPolicy
		decode(&p)
		return unchanged(t, &p, p.DeepCopy(), AdminNetworkPolicy)
	case kind == banp:
		var p v1alpha1.BaselineAdminNetworkPolicy
		decode(&p)
		return unchanged(t, &p, p.DeepCopy(), BaselineAdminNetworkPolicy)
	case apiVersion == "v1beta1":
		var p v1beta1.ClusterNetworkPolicy
		decode(&p)
		return unchanged(t, &p, p.DeepCopy(), ClusterNetworkPolicyV1beta1)
	}
	var p v1alpha2.ClusterNetworkPolicy
	decode(&p)
	return unchanged(t, &p, p.DeepCopy(), ClusterNetworkPolicy)
}

// unchanged runs convert on p and fails the test if it changed p (a copy
// of which is before).
func unchanged[T any](t *testing.T, p, before *T, convert func(*T) (*model.ClusterPolicy, error)) (*model.ClusterPolicy, error) {
	t.Helper()
	m, err := convert(p)
	if !reflect.DeepEqual(p, before) {
		t.Errorf("the converter changed its input")
	}
	return m, err
}

// versions returns the apiVersions a kind is tested as.
func versions(kind string) []string {
	if kind == cnp {
		return []string{"v1alpha2", "v1beta1"}
	}
	return []string{"v1alpha1"}
}

// list renders n copies of item as a YAML flow list.
func list(n int, item func(i int) string) string {
	items := make([]string, n)
	for i := range items {
		items[i] = item(i)
	}
	return "[" + strings.Join(items, ", ") + "]"
}

func same(s string) func(int) string { return func(int) string { return s } }

func TestClusterPolicyValidation(t *testing.T) {
	const (
		nsSubj   = `subject: {namespaces: {}}`
		anpBase  = `{priority: 1, ` + nsSubj
		banpBase = `{` + nsSubj
		cnpBase  = `{tier: Admin, priority: 1, ` + nsSubj
		fromNS   = `from: [{namespaces: {}}]`
	)
	// ingress returns a spec with one ingress rule (the rule's YAML
	// fields) for kind.
	ingress := func(kind, rule string) string {
		base := map[string]string{anp: anpBase, banp: banpBase, cnp: cnpBase}[kind]
		return base + `, ingress: [{` + rule + `}]}`
	}
	egress := func(kind, rule string) string {
		base := map[string]string{anp: anpBase, banp: banpBase, cnp: cnpBase}[kind]
		return base + `, egress: [{` + rule + `}]}`
	}
	// peer is an egress Deny rule of kind with one peer.
	peer := func(kind, p string) string { return egress(kind, `action: Deny, to: [`+p+`]`) }
	ports := func(p string) string { return ingress(anp, `action: Allow, `+fromNS+`, ports: `+p) }
	protos := func(p string) string { return ingress(cnp, `action: Accept, `+fromNS+`, protocols: `+p) }

	tests := []struct {
		name, kind string
		objName    string // metadata.name; "" is the kind's usual name
		spec       string
		paths      []string // the field paths of every error, in order; nil: valid
		substr     string   // a substring of the error message
	}{
		// valid edges
		{name: "anp minimal", kind: anp, spec: anpBase + `}`},
		{name: "banp minimal", kind: banp, spec: banpBase + `}`},
		{name: "cnp minimal", kind: cnp, spec: cnpBase + `}`},
		{name: "priority 0", kind: anp, spec: `{priority: 0, ` + nsSubj + `}`},
		{name: "priority 1000", kind: cnp, spec: `{tier: Baseline, priority: 1000, ` + nsSubj + `}`},
		{name: "name with dots", kind: cnp, objName: "a.b-c", spec: cnpBase + `}`},
		{name: "rule name 100 characters", kind: anp, spec: ingress(anp, `name: `+strings.Repeat("ö", 100)+`, action: Allow, `+fromNS)},
		{name: "25 rules and peers", kind: cnp, spec: cnpBase + `, ingress: ` + list(25, same(`{action: Deny, from: `+list(25, same(`{namespaces: {}}`))+`}`)) + `}`},
		{name: "100 anp rules", kind: anp, spec: anpBase + `, egress: ` + list(100, same(`{action: Deny, to: [{nodes: {}}]}`)) + `}`},
		{name: "25 networks", kind: banp, spec: peer(banp, `{networks: `+list(25, func(i int) string { return fmt.Sprintf("10.%d.0.0/16", i) })+`}`)},
		{name: "named port with pods peer", kind: anp, spec: egress(anp, `action: Allow, to: [{pods: {namespaceSelector: {}, podSelector: {}}}], ports: [{namedPort: http}]`)},
		{name: "networks in every form", kind: cnp, spec: peer(cnp, `{networks: ["0.0.0.0/0", "::/0", "fd00::/8", "10.1.2.3/32", "FD00:0:0::/16", "fd00:0000:0000:0000:0000:0000:0000:0000/128"]}`)},

		// metadata
		{name: "name missing", kind: anp, objName: "-", spec: anpBase + `}`, paths: []string{"metadata.name"}, substr: "Required value"},
		{name: "name not a subdomain", kind: cnp, objName: "Bad_Name", spec: cnpBase + `}`,
			paths: []string{"metadata.name"}, substr: `ClusterNetworkPolicy Bad_Name: metadata.name: Invalid value: "Bad_Name"`},
		{name: "banp not default", kind: banp, objName: "other", spec: banpBase + `}`,
			paths: []string{"metadata.name"}, substr: `Only one baseline admin network policy with metadata.name="default"`},

		// tier and priority
		{name: "tier missing", kind: cnp, spec: `{priority: 1, ` + nsSubj + `}`, paths: []string{"spec.tier"}, substr: "Required value"},
		{name: "tier unknown", kind: cnp, spec: `{tier: admin, priority: 1, ` + nsSubj + `}`, paths: []string{"spec.tier"}, substr: `Unsupported value: "admin"`},
		{name: "priority negative", kind: anp, spec: `{priority: -1, ` + nsSubj + `}`, paths: []string{"spec.priority"}},
		{name: "priority too big", kind: cnp, spec: `{tier: Admin, priority: 1001, ` + nsSubj + `}`, paths: []string{"spec.priority"}, substr: "between 0 and 1000"},

		// subject
		{name: "subject empty", kind: anp, spec: `{priority: 1, subject: {}}`, paths: []string{"spec.subject"}, substr: "exactly one of namespaces, pods must be set"},
		{name: "subject both", kind: cnp, spec: `{tier: Admin, priority: 1, subject: {namespaces: {}, pods: {podSelector: {}}}}`,
			paths: []string{"spec.subject"}, substr: "found namespaces and pods"},
		{name: "subject namespaces bad key", kind: banp, spec: `{subject: {namespaces: {matchLabels: {"a b": x}}}}`, paths: []string{"spec.subject.namespaces.matchLabels"}},
		{name: "subject pods bad selectors", kind: anp,
			spec:  `{priority: 1, subject: {pods: {namespaceSelector: {matchExpressions: [{key: a, operator: In}]}, podSelector: {matchExpressions: [{key: a, operator: Equals, values: [b]}]}}}}`,
			paths: []string{"spec.subject.pods.namespaceSelector.matchExpressions[0].values", "spec.subject.pods.podSelector.matchExpressions[0].operator"}},

		// rules
		{name: "too many cnp rules", kind: cnp, spec: cnpBase + `, egress: ` + list(26, same(`{action: Deny, to: [{nodes: {}}]}`)) + `}`,
			paths: []string{"spec.egress"}, substr: "must have at most 25 items"},
		{name: "too many anp rules", kind: anp, spec: anpBase + `, ingress: ` + list(101, same(`{action: Deny, `+fromNS+`}`)) + `}`,
			paths: []string{"spec.ingress"}, substr: "must have at most 100 items"},
		{name: "too many banp rules", kind: banp, spec: banpBase + `, egress: ` + list(101, same(`{action: Deny, to: [{nodes: {}}]}`)) + `}`,
			paths: []string{"spec.egress"}},
		{name: "rule name too long", kind: cnp, spec: ingress(cnp, `name: `+strings.Repeat("x", 101)+`, action: Deny, `+fromNS),
			paths: []string{"spec.ingress[0].name"}, substr: "may not be more than 100 characters"},
		{name: "action missing", kind: anp, spec: ingress(anp, fromNS), paths: []string{"spec.ingress[0].action"}, substr: "Required value: must be one of Allow, Deny, Pass"},
		{name: "anp action Accept", kind: anp, spec: ingress(anp, `action: Accept, `+fromNS), paths: []string{"spec.ingress[0].action"}, substr: `Unsupported value: "Accept"`},
		{name: "banp action Pass", kind: banp, spec: egress(banp, `action: Pass, to: [{nodes: {}}]`), paths: []string{"spec.egress[0].action"}, substr: `supported values: "Allow", "Deny"`},
		{name: "cnp action Allow", kind: cnp, spec: ingress(cnp, `action: Allow, `+fromNS), paths: []string{"spec.ingress[0].action"}, substr: `supported values: "Accept", "Deny", "Pass"`},
		{name: "from missing", kind: cnp, spec: ingress(cnp, `action: Deny`), paths: []string{"spec.ingress[0].from"}, substr: "Required value"},
		{name: "from empty", kind: anp, spec: ingress(anp, `action: Deny, from: []`), paths: []string{"spec.ingress[0].from"}, substr: "at least 1 item"},
		{name: "to missing", kind: banp, spec: egress(banp, `action: Deny`), paths: []string{"spec.egress[0].to"}},
		{name: "too many cnp peers", kind: cnp, spec: egress(cnp, `action: Deny, to: `+list(26, same(`{namespaces: {}}`))), paths: []string{"spec.egress[0].to"}},
		{name: "too many anp peers", kind: anp, spec: ingress(anp, `action: Deny, from: `+list(101, same(`{namespaces: {}}`))), paths: []string{"spec.ingress[0].from"}},

		// peers
		{name: "peer empty", kind: cnp, spec: ingress(cnp, `action: Deny, from: [{namespaces: {}}, {}]`), paths: []string{"spec.ingress[0].from[1]"}, substr: "exactly one of"},
		{name: "ingress peer two fields", kind: anp, spec: ingress(anp, `action: Deny, from: [{namespaces: {}, pods: {namespaceSelector: {}, podSelector: {}}}]`),
			paths: []string{"spec.ingress[0].from[0]"}, substr: "found namespaces and pods"},
		{name: "egress peer two fields", kind: banp, spec: peer(banp, `{nodes: {}, networks: ["10.0.0.0/8"]}`), paths: []string{"spec.egress[0].to[0]"}, substr: "found nodes and networks"},
		{name: "peer selectors", kind: cnp, spec: egress(cnp, `action: Deny, to: [{nodes: {matchLabels: {"-x": y}}}, {pods: {podSelector: {matchLabels: {a: "b c"}}}}, {namespaces: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}}]`),
			paths: []string{"spec.egress[0].to[0].nodes.matchLabels", "spec.egress[0].to[1].pods.podSelector.matchLabels", "spec.egress[0].to[2].namespaces.matchExpressions[0].values"}},
		{name: "networks empty", kind: anp, spec: peer(anp, `{networks: []}`), paths: []string{"spec.egress[0].to[0].networks"}, substr: "at least 1 item"},
		{name: "networks too many", kind: cnp, spec: peer(cnp, `{networks: `+list(26, func(i int) string { return fmt.Sprintf("10.%d.0.0/16", i) })+`}`),
			paths: []string{"spec.egress[0].to[0].networks"}, substr: "at most 25 items"},
		{name: "networks duplicate", kind: banp, spec: peer(banp, `{networks: ["10.0.0.0/8", "fd00::/8", "10.0.0.0/8"]}`),
			paths: []string{"spec.egress[0].to[0].networks[2]"}, substr: "Duplicate value"},
		{name: "networks invalid", kind: cnp, spec: peer(cnp, `{networks: ["10.0.0.1/8", "10.0.0.0", "x", "::ffff:10.0.0.0/104", "010.0.0.0/8", "fd00::1/8", "10.0.0.0/33", "fe80::%eth0/64"]}`),
			paths: []string{"spec.egress[0].to[0].networks[0]", "spec.egress[0].to[0].networks[1]", "spec.egress[0].to[0].networks[2]", "spec.egress[0].to[0].networks[3]",
				"spec.egress[0].to[0].networks[4]", "spec.egress[0].to[0].networks[5]", "spec.egress[0].to[0].networks[6]", "spec.egress[0].to[0].networks[7]"},
			substr: `networks[0]: Invalid value: "10.0.0.1/8": Invalid CIDR format provided`},

		// domainNames: rejected
		{name: "domainNames cnp", kind: cnp, spec: egress(cnp, `action: Accept, to: [{domainNames: ["example.com", "*.example.org"]}]`),
			paths: []string{"spec.egress[0].to[0].domainNames"}, substr: "Forbidden: domainNames peers are not supported by Palisade"},
		{name: "domainNames anp invalid too", kind: anp, spec: egress(anp, `action: Allow, to: [{domainNames: ["-bad", "a.b", "a.b", "*"]}]`),
			paths: []string{"spec.egress[0].to[0].domainNames", "spec.egress[0].to[0].domainNames[2]", "spec.egress[0].to[0].domainNames[0]", "spec.egress[0].to[0].domainNames[3]"}},
		{name: "domainNames empty", kind: cnp, spec: egress(cnp, `action: Accept, to: [{domainNames: []}]`),
			paths: []string{"spec.egress[0].to[0].domainNames", "spec.egress[0].to[0].domainNames"}},

		// the CEL rule: no named ports with networks, nodes or domainNames peers
		{name: "named port with networks (cnp)", kind: cnp, spec: egress(cnp, `action: Deny, to: [{pods: {podSelector: {}}}, {networks: ["10.0.0.0/8"]}], protocols: [{tcp: {destinationPort: {number: 80}}}, {destinationNamedPort: http}]`),
			paths: []string{"spec.egress[0]"}, substr: "networks/nodes/domainNames peer cannot be set with namedPorts"},
		{name: "named port with nodes (anp)", kind: anp, spec: egress(anp, `action: Deny, to: [{nodes: {}}], ports: [{namedPort: http}]`),
			paths: []string{"spec.egress[0]"}, substr: "networks/nodes/domainNames peer cannot"},
		{name: "named port with networks (banp)", kind: banp, spec: egress(banp, `action: Deny, to: [{networks: ["::/0"]}], ports: [{namedPort: http}]`),
			paths: []string{"spec.egress[0]"}, substr: "networks/nodes peer cannot be set with namedPorts since there are no namedPorts for networks/nodes"},

		// v1alpha1 ports
		{name: "ports valid", kind: anp, spec: ports(`[{portNumber: {protocol: UDP, port: 53}}, {portNumber: {port: 65535}}, {namedPort: dns}, {portRange: {start: 1, end: 2}}, {portRange: {protocol: SCTP, start: 100, end: 65535}}]`)},
		{name: "ports empty", kind: anp, spec: ports(`[]`), paths: []string{"spec.ingress[0].ports"}, substr: "at least 1 item"},
		{name: "ports too many", kind: anp, spec: ports(list(101, same(`{namedPort: x}`))), paths: []string{"spec.ingress[0].ports"}},
		{name: "port empty", kind: banp, spec: ingress(banp, `action: Allow, `+fromNS+`, ports: [{}]`), paths: []string{"spec.ingress[0].ports[0]"}, substr: "exactly one of portNumber, namedPort, portRange must be set"},
		{name: "port two fields", kind: anp, spec: ports(`[{portNumber: {port: 80}, namedPort: http}]`), paths: []string{"spec.ingress[0].ports[0]"}, substr: "found portNumber and namedPort"},
		{name: "portNumber out of range", kind: anp, spec: ports(`[{portNumber: {port: 0}}, {portNumber: {port: 65536}}]`),
			paths: []string{"spec.ingress[0].ports[0].portNumber.port", "spec.ingress[0].ports[1].portNumber.port"}},
		{name: "portNumber protocol", kind: anp, spec: ports(`[{portNumber: {protocol: ICMP, port: 1}}, {portNumber: {protocol: tcp, port: 1}}]`),
			paths: []string{"spec.ingress[0].ports[0].portNumber.protocol", "spec.ingress[0].ports[1].portNumber.protocol"}, substr: `Unsupported value: "ICMP"`},
		{name: "namedPort empty", kind: anp, spec: ports(`[{namedPort: ""}]`), paths: []string{"spec.ingress[0].ports[0].namedPort"}},
		{name: "portRange bounds", kind: anp, spec: ports(`[{portRange: {start: 0, end: 10}}, {portRange: {start: 1, end: 65536}}, {portRange: {protocol: UDP}}]`),
			paths: []string{"spec.ingress[0].ports[0].portRange.start", "spec.ingress[0].ports[1].portRange.end", "spec.ingress[0].ports[2].portRange.start", "spec.ingress[0].ports[2].portRange.end"}},
		{name: "portRange order", kind: banp, spec: egress(banp, `action: Deny, to: [{nodes: {}}], ports: [{portRange: {start: 10, end: 10}}, {portRange: {start: 11, end: 10}}]`),
			paths: []string{"spec.egress[0].ports[0].portRange", "spec.egress[0].ports[1].portRange"}, substr: "Start port must be less than End port"},
		{name: "portRange protocol", kind: anp, spec: ports(`[{portRange: {protocol: GRE, start: 1, end: 2}}]`), paths: []string{"spec.ingress[0].ports[0].portRange.protocol"}},

		// v1alpha2 protocols
		{name: "protocols valid", kind: cnp, spec: protos(`[{tcp: {destinationPort: {number: 80}}}, {udp: {destinationPort: {range: {start: 1, end: 65535}}}}, {sctp: {destinationPort: {number: 65535}}}, {destinationNamedPort: http}]`)},
		{name: "protocols empty", kind: cnp, spec: protos(`[]`), paths: []string{"spec.ingress[0].protocols"}, substr: "at least 1 item"},
		{name: "protocols too many", kind: cnp, spec: protos(list(26, same(`{destinationNamedPort: x}`))), paths: []string{"spec.ingress[0].protocols"}, substr: "at most 25 items"},
		{name: "protocol empty", kind: cnp, spec: protos(`[{}]`), paths: []string{"spec.ingress[0].protocols[0]"}, substr: "exactly one of tcp, udp, sctp, destinationNamedPort must be set"},
		{name: "protocol two fields", kind: cnp, spec: protos(`[{tcp: {destinationPort: {number: 1}}, destinationNamedPort: x}]`), paths: []string{"spec.ingress[0].protocols[0]"}, substr: "found tcp and destinationNamedPort"},
		{name: "protocol without port", kind: cnp, spec: protos(`[{tcp: {}}, {udp: {}}, {sctp: {}}]`),
			paths: []string{"spec.ingress[0].protocols[0].tcp.destinationPort", "spec.ingress[0].protocols[1].udp.destinationPort", "spec.ingress[0].protocols[2].sctp.destinationPort"}},
		{name: "destinationPort empty", kind: cnp, spec: protos(`[{tcp: {destinationPort: {}}}]`), paths: []string{"spec.ingress[0].protocols[0].tcp.destinationPort"}, substr: "exactly one of number, range"},
		{name: "destinationPort both", kind: cnp, spec: protos(`[{udp: {destinationPort: {number: 5, range: {start: 1, end: 2}}}}]`), paths: []string{"spec.ingress[0].protocols[0].udp.destinationPort"}, substr: "found number and range"},
		{name: "number out of range", kind: cnp, spec: protos(`[{tcp: {destinationPort: {number: 65536}}}, {udp: {destinationPort: {number: -1}}}]`),
			paths: []string{"spec.ingress[0].protocols[0].tcp.destinationPort.number", "spec.ingress[0].protocols[1].udp.destinationPort.number"}},
		{name: "range invalid", kind: cnp, spec: protos(`[{sctp: {destinationPort: {range: {start: 9, end: 9}}}}, {tcp: {destinationPort: {range: {start: 0, end: 70000}}}}]`),
			paths: []string{"spec.ingress[0].protocols[0].sctp.destinationPort.range", "spec.ingress[0].protocols[1].tcp.destinationPort.range.start", "spec.ingress[0].protocols[1].tcp.destinationPort.range.end"}},

		// every error is reported, in field order
		{name: "many errors", kind: cnp, objName: "X",
			spec: `{tier: Top, priority: 2000, subject: {}, ingress: [{action: Drop, from: []}], egress: [{name: ` + strings.Repeat("n", 101) + `, action: Accept, to: [{networks: ["1.2.3.4/8"]}], protocols: [{tcp: {destinationPort: {number: 70000}}}]}]}`,
			paths: []string{"metadata.name", "spec.tier", "spec.priority", "spec.subject", "spec.ingress[0].action", "spec.ingress[0].from",
				"spec.egress[0].name", "spec.egress[0].to[0].networks[0]", "spec.egress[0].protocols[0].tcp.destinationPort.number"}},
	}
	for _, tt := range tests {
		for _, v := range versions(tt.kind) {
			t.Run(tt.name+"/"+v, func(t *testing.T) {
				name := tt.objName
				switch {
				case name == "-":
					name = ""
				case name == "" && tt.kind == banp:
					name = "default"
				case name == "":
					name = "p"
				}
				got, err := convertCluster(t, tt.kind, v, name, tt.spec)
				paths := fieldPaths(t, err)
				if diff := cmp.Diff(tt.paths, paths); diff != "" {
					t.Fatalf("error paths mismatch (-want +got):\n%s\nerror: %v", diff, err)
				}
				if err != nil {
					if got != nil {
						t.Errorf("got a policy and an error")
					}
					if !strings.Contains(err.Error(), tt.substr) {
						t.Errorf("error %q does not contain %q", err, tt.substr)
					}
					if !strings.HasPrefix(err.Error(), tt.kind+" ") && !strings.HasPrefix(err.Error(), tt.kind+": ") {
						t.Errorf("error %q does not start with the kind", err)
					}
					return
				}
				if got == nil || got.Name != name || got.Kind != tt.kind || got.APIVersion != "policy.networking.k8s.io/"+v {
					t.Errorf("got %+v, want a %s %s of policy.networking.k8s.io/%s", got, tt.kind, name, v)
				}
			})
		}
	}
}

func TestClusterPolicyConversion(t *testing.T) {
	sel := func(kv ...string) *model.Selector {
		s := &model.Selector{}
		for i := 0; i+1 < len(kv); i += 2 {
			if s.MatchLabels == nil {
				s.MatchLabels = map[string]string{}
			}
			s.MatchLabels[kv[i]] = kv[i+1]
		}
		return s
	}
	pfx := netip.MustParsePrefix
	tests := []struct {
		name, kind, apiVersion, objName, spec string
		want                                  *model.ClusterPolicy
	}{
		{
			name: "anp", kind: anp, apiVersion: "v1alpha1", objName: "guard",
			spec: `{priority: 10, subject: {namespaces: {matchLabels: {team: a}}},
				ingress: [{name: from-mon, action: Allow, from: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: mon}}}, {pods: {namespaceSelector: {}, podSelector: {matchExpressions: [{key: app, operator: In, values: [x, z]}]}}}],
					ports: [{portNumber: {protocol: UDP, port: 53}}, {namedPort: http}, {portRange: {start: 8000, end: 9000}}, {portNumber: {port: 22}}]}],
				egress: [{action: Deny, to: [{networks: ["10.0.0.0/8", "FD00:0::/8"]}, {nodes: {}}], ports: [{portRange: {protocol: SCTP, start: 1, end: 1024}}]},
					{action: Pass, to: [{namespaces: {}}]}]}`,
			want: &model.ClusterPolicy{
				Kind: model.KindAdminNetworkPolicy, Name: "guard", APIVersion: "policy.networking.k8s.io/v1alpha1",
				Tier: model.AdminTier, Priority: 10,
				Subject: model.ClusterSubject{Namespaces: sel("team", "a")},
				IngressRules: []model.ClusterRule{{
					Name: "from-mon", Action: model.Accept,
					Peers: []model.ClusterPeer{
						{Namespaces: sel("kubernetes.io/metadata.name", "mon")},
						{Pods: &model.NamespacedPods{PodSelector: model.Selector{Exprs: []model.Requirement{{Key: "app", Operator: model.OpIn, Values: []string{"x", "z"}}}}}},
					},
					Ports: []model.ClusterPort{
						{Protocol: model.UDP, First: 53, Last: 53},
						{Name: "http"},
						{Protocol: model.TCP, First: 8000, Last: 9000},
						{Protocol: model.TCP, First: 22, Last: 22},
					},
				}},
				EgressRules: []model.ClusterRule{
					{Action: model.Deny,
						Peers: []model.ClusterPeer{{Networks: []netip.Prefix{pfx("10.0.0.0/8"), pfx("fd00::/8")}}, {Nodes: sel()}},
						Ports: []model.ClusterPort{{Protocol: model.SCTP, First: 1, Last: 1024}}},
					{Action: model.Pass, Peers: []model.ClusterPeer{{Namespaces: sel()}}},
				},
			},
		},
		{
			name: "banp", kind: banp, apiVersion: "v1alpha1", objName: "default",
			spec: `{subject: {pods: {namespaceSelector: {matchLabels: {env: prod}}, podSelector: {}}},
				ingress: [],
				egress: [{action: Deny, to: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}}]}, {action: Allow, to: [{networks: ["0.0.0.0/0"]}]}]}`,
			want: &model.ClusterPolicy{
				Kind: model.KindBaselineAdminNetworkPolicy, Name: "default", APIVersion: "policy.networking.k8s.io/v1alpha1",
				Tier: model.BaselineTier, Priority: model.BaselinePriority,
				Subject:      model.ClusterSubject{Pods: &model.NamespacedPods{NamespaceSelector: *sel("env", "prod")}},
				IngressRules: []model.ClusterRule{},
				EgressRules: []model.ClusterRule{
					{Action: model.Deny, Peers: []model.ClusterPeer{{Pods: &model.NamespacedPods{PodSelector: *sel("app", "db")}}}},
					{Action: model.Accept, Peers: []model.ClusterPeer{{Networks: []netip.Prefix{pfx("0.0.0.0/0")}}}},
				},
			},
		},
	}
	cnpSpec := `{tier: Baseline, priority: 5, subject: {pods: {podSelector: {matchLabels: {app: web}}}},
		ingress: [{name: web, action: Accept, from: [{pods: {namespaceSelector: {matchLabels: {team: a}}, podSelector: {}}}],
			protocols: [{tcp: {destinationPort: {number: 80}}}, {udp: {destinationPort: {range: {start: 5000, end: 5100}}}}, {sctp: {destinationPort: {number: 9}}}, {destinationNamedPort: dns}]}],
		egress: [{action: Pass, to: [{networks: ["192.168.0.0/16"]}, {nodes: {matchLabels: {role: infra}}}]}, {action: Deny, to: [{namespaces: {}}], protocols: [{destinationNamedPort: metrics}]}]}`
	for _, v := range []string{"v1alpha2", "v1beta1"} {
		tests = append(tests, struct {
			name, kind, apiVersion, objName, spec string
			want                                  *model.ClusterPolicy
		}{
			name: "cnp " + v, kind: cnp, apiVersion: v, objName: "web", spec: cnpSpec,
			want: &model.ClusterPolicy{
				Kind: model.KindClusterNetworkPolicy, Name: "web", APIVersion: "policy.networking.k8s.io/" + v,
				Tier: model.BaselineTier, Priority: 5,
				Subject: model.ClusterSubject{Pods: &model.NamespacedPods{PodSelector: *sel("app", "web")}},
				IngressRules: []model.ClusterRule{{
					Name: "web", Action: model.Accept,
					Peers: []model.ClusterPeer{{Pods: &model.NamespacedPods{NamespaceSelector: *sel("team", "a")}}},
					Ports: []model.ClusterPort{
						{Protocol: model.TCP, First: 80, Last: 80},
						{Protocol: model.UDP, First: 5000, Last: 5100},
						{Protocol: model.SCTP, First: 9, Last: 9},
						{Name: "dns"},
					},
				}},
				EgressRules: []model.ClusterRule{
					{Action: model.Pass, Peers: []model.ClusterPeer{{Networks: []netip.Prefix{pfx("192.168.0.0/16")}}, {Nodes: sel("role", "infra")}}},
					{Action: model.Deny, Peers: []model.ClusterPeer{{Namespaces: sel()}}, Ports: []model.ClusterPort{{Name: "metrics"}}},
				},
			},
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := convertCluster(t, tt.kind, tt.apiVersion, tt.objName, tt.spec)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			// cmp tells nil from empty: rules and ports absent stay nil.
			if diff := cmp.Diff(tt.want, got, prefixCmp); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClusterPolicyNil(t *testing.T) {
	for name, err := range map[string]error{
		anp:        func() error { _, err := AdminNetworkPolicy(nil); return err }(),
		banp:       func() error { _, err := BaselineAdminNetworkPolicy(nil); return err }(),
		"v1alpha2": func() error { _, err := ClusterNetworkPolicy(nil); return err }(),
		"v1beta1":  func() error { _, err := ClusterNetworkPolicyV1beta1(nil); return err }(),
	} {
		if err == nil {
			t.Errorf("%s(nil) succeeded, want an error", name)
		}
	}
}

// TestV1beta1SameSchema guards v1beta1ToV1alpha2: the two versions' Go
// types must have the same fields with the same JSON names and kinds, or
// a field added upstream would be dropped silently.
func TestV1beta1SameSchema(t *testing.T) {
	var walk func(a, b reflect.Type, path string)
	walk = func(a, b reflect.Type, path string) {
		if a.Kind() != b.Kind() {
			t.Errorf("%s: kind %s vs %s", path, a.Kind(), b.Kind())
			return
		}
		switch a.Kind() {
		case reflect.Pointer, reflect.Slice:
			walk(a.Elem(), b.Elem(), path+"[]")
		case reflect.Struct:
			if a.PkgPath() != "" && a.PkgPath() == b.PkgPath() {
				return // a shared type (metav1)
			}
			if a.NumField() != b.NumField() {
				t.Errorf("%s: %d fields vs %d", path, a.NumField(), b.NumField())
				return
			}
			for i := range a.NumField() {
				fa, fb := a.Field(i), b.Field(i)
				if fa.Name != fb.Name || fa.Tag.Get("json") != fb.Tag.Get("json") {
					t.Errorf("%s: field %s %q vs %s %q", path, fa.Name, fa.Tag, fb.Name, fb.Tag)
					continue
				}
				walk(fa.Type, fb.Type, path+"."+fa.Name)
			}
		}
	}
	walk(reflect.TypeFor[v1alpha2.ClusterNetworkPolicySpec](), reflect.TypeFor[v1beta1.ClusterNetworkPolicySpec](), "spec")
}

// TestV1beta1Copy checks that the copy keeps every field, nil lists nil
// and empty lists empty: a v1beta1 object copied and re-encoded as JSON
// reads back as the same object.
func TestV1beta1Copy(t *testing.T) {
	doc := `{apiVersion: policy.networking.k8s.io/v1beta1, kind: ClusterNetworkPolicy, metadata: {name: x, labels: {a: b}},
		spec: {tier: Admin, priority: 3, subject: {pods: {namespaceSelector: {matchLabels: {a: b}}, podSelector: {}}},
			ingress: [{name: i, action: Deny, from: [{namespaces: {}}, {pods: {podSelector: {}}}], protocols: [{tcp: {destinationPort: {number: 1}}}, {udp: {destinationPort: {range: {start: 1, end: 2}}}}, {sctp: {}}, {destinationNamedPort: n}]}],
			egress: [{action: Accept, to: [{nodes: {}}, {networks: []}, {domainNames: [a.b]}], protocols: []}, {action: Pass, to: []}]}}`
	var p v1beta1.ClusterNetworkPolicy
	if err := yaml.UnmarshalStrict([]byte(doc), &p); err != nil {
		t.Fatal(err)
	}
	got := v1beta1ToV1alpha2(&p)
	if got.Spec.Egress[0].Protocols == nil || len(got.Spec.Egress[0].Protocols) != 0 ||
		got.Spec.Egress[0].To[1].Networks == nil || got.Spec.Egress[1].To == nil || got.Spec.Ingress[0].Protocols[2].SCTP == nil {
		t.Errorf("empty lists or objects lost: %+v", got.Spec)
	}
	if got.Spec.Egress[1].Protocols != nil || got.Spec.Egress[0].To[0].Networks != nil {
		t.Errorf("absent lists became empty: %+v", got.Spec)
	}
	a, _ := yaml.Marshal(p.Spec)
	b, _ := yaml.Marshal(got.Spec)
	if diff := cmp.Diff(string(a), string(b)); diff != "" {
		t.Errorf("copy differs (-v1beta1 +v1alpha2):\n%s", diff)
	}
}
