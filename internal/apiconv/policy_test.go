package apiconv

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-net/palisade/internal/model"
)

// policy returns a valid NetworkPolicy default/web with tweaks applied.
func policy(tweaks ...func(*networkingv1.NetworkPolicy)) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		},
	}
	for _, t := range tweaks {
		t(np)
	}
	return np
}

func ptr[T any](v T) *T { return &v }

func port(p intstr.IntOrString) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Port: &p}
}

func ingressPorts(ports ...networkingv1.NetworkPolicyPort) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) {
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{Ports: ports})
	}
}

func ingressFrom(peers ...networkingv1.NetworkPolicyPeer) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) {
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: peers})
	}
}

func egressTo(peers ...networkingv1.NetworkPolicyPeer) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) {
		np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: peers})
	}
}

func types(ts ...networkingv1.PolicyType) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) { np.Spec.PolicyTypes = ts }
}

func block(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func podSel(sel metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: &sel}
}

func expr(key string, op metav1.LabelSelectorOperator, vals ...string) metav1.LabelSelector {
	return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: vals}}}
}

// fieldPaths returns the field paths of an *Error, failing the test for
// any other error.
func fieldPaths(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *apiconv.Error", err, err)
	}
	var paths []string
	for _, fe := range ae.Errs {
		paths = append(paths, fe.Field)
	}
	return paths
}

func TestPolicyValidation(t *testing.T) {
	tcp, udp, sctp, icmp := corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP, corev1.Protocol("ICMP")
	tests := []struct {
		name   string
		np     *networkingv1.NetworkPolicy
		paths  []string // the field paths of every error, in order; nil: valid
		substr string   // a substring of the error message
	}{
		{name: "minimal", np: policy()},
		{name: "no namespace", np: policy(func(np *networkingv1.NetworkPolicy) { np.Namespace = "" })},
		{name: "name not a subdomain", np: policy(func(np *networkingv1.NetworkPolicy) { np.Name = "Web_1" }),
			paths: []string{"metadata.name"}, substr: `NetworkPolicy default/Web_1: metadata.name: Invalid value: "Web_1": a lowercase RFC 1123 subdomain`},
		{name: "name missing", np: policy(func(np *networkingv1.NetworkPolicy) { np.Name = "" }),
			paths: []string{"metadata.name"}, substr: "Required value"},
		{name: "name with dots", np: policy(func(np *networkingv1.NetworkPolicy) { np.Name = "allow.web-1" })},
		{name: "namespace with dots", np: policy(func(np *networkingv1.NetworkPolicy) { np.Namespace = "a.b" }),
			paths: []string{"metadata.namespace"}, substr: "must not contain dots"},
		{name: "bad metadata label", np: policy(func(np *networkingv1.NetworkPolicy) { np.Labels = map[string]string{"a": "-x"} }),
			paths: []string{"metadata.labels"}},

		// label selectors
		{name: "podSelector bad key", np: policy(func(np *networkingv1.NetworkPolicy) {
			np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"a b": "x"}}
		}), paths: []string{"spec.podSelector.matchLabels"}, substr: `Invalid value: "a b"`},
		{name: "podSelector bad value", np: policy(func(np *networkingv1.NetworkPolicy) {
			np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "a/b"}}
		}), paths: []string{"spec.podSelector.matchLabels"}},
		{name: "podSelector prefixed key", np: policy(func(np *networkingv1.NetworkPolicy) {
			np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"example.com/app": "web", "kubernetes.io/metadata.name": "y"}}
		})},
		{name: "In with values", np: policy(func(np *networkingv1.NetworkPolicy) {
			np.Spec.PodSelector = expr("app", metav1.LabelSelectorOpIn, "a", "b")
		})},
		{name: "In without values", np: policy(func(np *networkingv1.NetworkPolicy) {
			np.Spec.PodSelector = expr("app", metav1.LabelSelectorOpIn)
		}), paths: []string{"spec.podSelector.matchExpressions[0].values"}},
		{name: "NotIn without values", np: policy(func(np *networkingv1.NetworkPolicy) {
			np.Spec.PodSelector = expr("app", metav1.LabelSelectorOpNotIn)
		}), paths: []string{"spec.podSelector.matchExpressions[0].values"}},
		{name: "Exists", np: policy(func(np *networkingv1.NetworkPolicy) {
			np.Spec.PodSelector = expr("app", metav1.LabelSelectorOpExists)
		})},
		{name: "Exists with values", np: policy(func(np *networkingv1.NetworkPolicy) {
			np.Spec.PodSelector = expr("app", metav1.LabelSelectorOpExists, "x")
		}), paths: []string{"spec.podSelector.matchExpressions[0].values"}, substr: "Forbidden"},
		{name: "DoesNotExist with values", np: policy(func(np *networkingv1.NetworkPolicy) {
			np.Spec.PodSelector = expr("app", metav1.LabelSelectorOpDoesNotExist, "x")
		}), paths: []string{"spec.podSelector.matchExpressions[0].values"}},
		{name: "unknown operator", np: policy(func(np *networkingv1.NetworkPolicy) {
			np.Spec.PodSelector = expr("app", "Equals", "x")
		}), paths: []string{"spec.podSelector.matchExpressions[0].operator"}},
		{name: "expression bad key and value", np: policy(func(np *networkingv1.NetworkPolicy) {
			np.Spec.PodSelector = expr("-app", metav1.LabelSelectorOpIn, "ok", "not ok")
		}), paths: []string{"spec.podSelector.matchExpressions[0].key", "spec.podSelector.matchExpressions[0].values[1]"}},
		{name: "peer namespaceSelector bad", np: policy(ingressFrom(networkingv1.NetworkPolicyPeer{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"ns": "a b"}},
		})), paths: []string{"spec.ingress[0].from[0].namespaceSelector.matchLabels"}},
		{name: "egress peer podSelector bad", np: policy(egressTo(podSel(expr("a", metav1.LabelSelectorOpExists, "v")))),
			paths: []string{"spec.egress[0].to[0].podSelector.matchExpressions[0].values"}},

		// ports
		{name: "numeric port", np: policy(ingressPorts(port(intstr.FromInt32(80))))},
		{name: "named port", np: policy(ingressPorts(port(intstr.FromString("http"))))},
		{name: "port only protocol", np: policy(ingressPorts(networkingv1.NetworkPolicyPort{Protocol: &udp}))},
		{name: "protocols", np: policy(ingressPorts(
			networkingv1.NetworkPolicyPort{Protocol: &tcp}, networkingv1.NetworkPolicyPort{Protocol: &udp}, networkingv1.NetworkPolicyPort{Protocol: &sctp}))},
		{name: "bad protocol", np: policy(ingressPorts(port(intstr.FromInt32(80)), networkingv1.NetworkPolicyPort{Protocol: &icmp})),
			paths: []string{"spec.ingress[0].ports[1].protocol"}, substr: `Unsupported value: "ICMP"`},
		{name: "lowercase protocol", np: policy(ingressPorts(networkingv1.NetworkPolicyPort{Protocol: ptr(corev1.Protocol("tcp"))})),
			paths: []string{"spec.ingress[0].ports[0].protocol"}},
		{name: "empty protocol", np: policy(ingressPorts(networkingv1.NetworkPolicyPort{Protocol: ptr(corev1.Protocol(""))})),
			paths: []string{"spec.ingress[0].ports[0].protocol"}},
		{name: "port 0", np: policy(ingressPorts(port(intstr.FromInt32(0)))),
			paths: []string{"spec.ingress[0].ports[0].port"}, substr: "between 1 and 65535"},
		{name: "port 65536", np: policy(ingressPorts(port(intstr.FromInt32(65536)))),
			paths: []string{"spec.ingress[0].ports[0].port"}},
		{name: "port name too long", np: policy(ingressPorts(port(intstr.FromString("a-very-long-name")))),
			paths: []string{"spec.ingress[0].ports[0].port"}, substr: "no more than 15 characters"},
		{name: "port name numeric string", np: policy(ingressPorts(port(intstr.FromString("80")))),
			paths: []string{"spec.ingress[0].ports[0].port"}},
		{name: "port name uppercase", np: policy(ingressPorts(port(intstr.FromString("HTTP")))),
			paths: []string{"spec.ingress[0].ports[0].port", "spec.ingress[0].ports[0].port"}},
		{name: "endPort", np: policy(ingressPorts(networkingv1.NetworkPolicyPort{Port: ptr(intstr.FromInt32(80)), EndPort: ptr[int32](90)}))},
		{name: "endPort equal", np: policy(ingressPorts(networkingv1.NetworkPolicyPort{Port: ptr(intstr.FromInt32(80)), EndPort: ptr[int32](80)}))},
		{name: "endPort below port", np: policy(ingressPorts(port(intstr.FromInt32(80)), networkingv1.NetworkPolicyPort{Port: ptr(intstr.FromInt32(80)), EndPort: ptr[int32](79)})),
			paths:  []string{"spec.ingress[0].ports[1].endPort"},
			substr: "NetworkPolicy default/web: spec.ingress[0].ports[1].endPort: Invalid value: 79: must be greater than or equal to port (80)"},
		{name: "endPort too big", np: policy(ingressPorts(networkingv1.NetworkPolicyPort{Port: ptr(intstr.FromInt32(80)), EndPort: ptr[int32](65536)})),
			paths: []string{"spec.ingress[0].ports[0].endPort"}},
		{name: "endPort with named port", np: policy(ingressPorts(networkingv1.NetworkPolicyPort{Port: ptr(intstr.FromString("http")), EndPort: ptr[int32](90)})),
			paths: []string{"spec.ingress[0].ports[0].endPort"}, substr: "non-numeric"},
		{name: "endPort without port", np: policy(ingressPorts(networkingv1.NetworkPolicyPort{EndPort: ptr[int32](90)})),
			paths: []string{"spec.ingress[0].ports[0].endPort"}},

		// peers
		{name: "peer empty", np: policy(ingressFrom(networkingv1.NetworkPolicyPeer{})),
			paths: []string{"spec.ingress[0].from[0]"}, substr: "must specify a peer"},
		{name: "peer pod and namespace selectors", np: policy(ingressFrom(networkingv1.NetworkPolicyPeer{
			PodSelector: &metav1.LabelSelector{}, NamespaceSelector: &metav1.LabelSelector{},
		}))},
		{name: "peer ipBlock and podSelector", np: policy(ingressFrom(networkingv1.NetworkPolicyPeer{
			PodSelector: &metav1.LabelSelector{}, IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"},
		})), paths: []string{"spec.ingress[0].from[0]"}, substr: "may not specify both ipBlock and another peer"},
		{name: "egress peer ipBlock and namespaceSelector", np: policy(egressTo(networkingv1.NetworkPolicyPeer{
			NamespaceSelector: &metav1.LabelSelector{}, IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"},
		})), paths: []string{"spec.egress[0].to[0]"}},

		// ipBlock
		{name: "ipBlock v4", np: policy(ingressFrom(block("10.0.0.0/8", "10.1.0.0/16", "10.2.3.4/32")))},
		{name: "ipBlock v6", np: policy(egressTo(block("fd00::/8", "fd00:1::/32")))},
		{name: "ipBlock v6 non-canonical", np: policy(egressTo(block("FD00:0::/8")))},
		{name: "ipBlock all", np: policy(egressTo(block("0.0.0.0/0", "10.0.0.0/8")))},
		{name: "ipBlock missing cidr", np: policy(ingressFrom(block(""))),
			paths: []string{"spec.ingress[0].from[0].ipBlock.cidr"}, substr: "Required value"},
		{name: "ipBlock not a cidr", np: policy(ingressFrom(block("10.0.0.0"))),
			paths: []string{"spec.ingress[0].from[0].ipBlock.cidr"}, substr: "must be a valid CIDR"},
		{name: "ipBlock host bits", np: policy(ingressFrom(block("10.0.0.1/24"))),
			paths: []string{"spec.ingress[0].from[0].ipBlock.cidr"}, substr: "must not have bits set beyond the prefix length"},
		{name: "ipBlock leading zeros", np: policy(ingressFrom(block("010.0.0.0/8"))),
			paths: []string{"spec.ingress[0].from[0].ipBlock.cidr"}, substr: "leading 0s"},
		{name: "ipBlock v4-mapped", np: policy(ingressFrom(block("::ffff:10.0.0.0/104"))),
			paths: []string{"spec.ingress[0].from[0].ipBlock.cidr"}, substr: "IPv4-mapped"},
		{name: "except equal to cidr", np: policy(ingressFrom(block("10.0.0.0/8", "10.0.0.0/8"))),
			paths: []string{"spec.ingress[0].from[0].ipBlock.except[0]"}, substr: "strict subset"},
		{name: "except outside cidr", np: policy(ingressFrom(block("10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/16"))),
			paths: []string{"spec.ingress[0].from[0].ipBlock.except[1]"}},
		{name: "except wider than cidr", np: policy(ingressFrom(block("10.1.0.0/16", "10.0.0.0/8"))),
			paths: []string{"spec.ingress[0].from[0].ipBlock.except[0]"}},
		{name: "except other family", np: policy(ingressFrom(block("0.0.0.0/0", "::/1"))),
			paths: []string{"spec.ingress[0].from[0].ipBlock.except[0]"}},
		{name: "except invalid", np: policy(ingressFrom(block("10.0.0.0/8", "10.0.0.300/32"))),
			paths: []string{"spec.ingress[0].from[0].ipBlock.except[0]"}},
		{name: "except host bits", np: policy(ingressFrom(block("10.0.0.0/8", "10.0.0.1/16"))),
			paths: []string{"spec.ingress[0].from[0].ipBlock.except[0]"}},
		{name: "cidr host bits and bad except", np: policy(ingressFrom(block("10.0.0.1/8", "11.0.0.0/16"))),
			paths: []string{"spec.ingress[0].from[0].ipBlock.cidr", "spec.ingress[0].from[0].ipBlock.except[0]"}},

		// policyTypes
		{name: "types ingress egress", np: policy(types("Ingress", "Egress"))},
		{name: "types egress", np: policy(types("Egress"))},
		{name: "types repeated", np: policy(types("Ingress", "Ingress"))}, // accepted upstream
		{name: "types unknown", np: policy(types("Ingress", "Both")),
			paths: []string{"spec.policyTypes[1]"}, substr: `Unsupported value: "Both"`},
		{name: "types lowercase", np: policy(types("ingress")),
			paths: []string{"spec.policyTypes[0]"}},
		{name: "types three", np: policy(types("Ingress", "Egress", "Ingress")),
			paths: []string{"spec.policyTypes"}, substr: "may not specify more than two policyTypes"},

		// all errors, in field order
		{name: "several errors", np: policy(
			func(np *networkingv1.NetworkPolicy) { np.Name = "Bad" },
			ingressPorts(networkingv1.NetworkPolicyPort{Port: ptr(intstr.FromInt32(80)), EndPort: ptr[int32](1)}),
			ingressFrom(networkingv1.NetworkPolicyPeer{}),
			egressTo(block("10.0.0.0/33")),
			types("Sideways"),
		), paths: []string{
			"metadata.name",
			"spec.ingress[0].ports[0].endPort",
			"spec.ingress[1].from[0]",
			"spec.egress[0].to[0].ipBlock.cidr",
			"spec.policyTypes[0]",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Policy(tt.np)
			if diff := cmp.Diff(tt.paths, fieldPaths(t, err)); diff != "" {
				t.Fatalf("Policy() error paths mismatch (-want +got):\n%s\nerror: %v", diff, err)
			}
			if err != nil {
				if got != nil {
					t.Errorf("Policy() = %+v with error, want nil", got)
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, "NetworkPolicy ") {
					t.Errorf("Policy() error %q does not start with the kind", msg)
				}
				if !strings.Contains(msg, tt.substr) {
					t.Errorf("Policy() error = %q, want it to contain %q", msg, tt.substr)
				}
				if n := strings.Count(msg, "\n") + 1; n != len(tt.paths) {
					t.Errorf("Policy() error has %d lines, want one per field error (%d)", n, len(tt.paths))
				}
			} else if got == nil {
				t.Fatal("Policy() = nil, nil")
			}
		})
	}
}

func TestPolicyConversion(t *testing.T) {
	udp := corev1.ProtocolUDP
	tests := []struct {
		name string
		np   *networkingv1.NetworkPolicy
		want *model.Policy
	}{
		{
			name: "default deny ingress, namespace defaulted",
			np: &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "deny"},
			},
			want: &model.Policy{Namespace: "default", Name: "deny", Ingress: true},
		},
		{
			name: "types absent with egress rules",
			np: policy(egressTo(), func(np *networkingv1.NetworkPolicy) {
				np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{}
			}),
			want: &model.Policy{
				Namespace: "default", Name: "web",
				PodSelector: model.Selector{MatchLabels: map[string]string{"app": "web"}},
				Ingress:     true, Egress: true,
				EgressRules: []model.Rule{{}},
			},
		},
		{
			name: "types absent, egress empty list",
			np: policy(func(np *networkingv1.NetworkPolicy) {
				np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{}
			}),
			want: &model.Policy{
				Namespace: "default", Name: "web",
				PodSelector: model.Selector{MatchLabels: map[string]string{"app": "web"}},
				Ingress:     true,
			},
		},
		{
			name: "egress only type keeps ingress rules unused",
			np:   policy(types("Egress"), ingressFrom()),
			want: &model.Policy{
				Namespace: "default", Name: "web",
				PodSelector:  model.Selector{MatchLabels: map[string]string{"app": "web"}},
				Egress:       true,
				IngressRules: []model.Rule{{}},
			},
		},
		{
			name: "peers and ports",
			np: policy(
				types("Ingress", "Egress"),
				func(np *networkingv1.NetworkPolicy) {
					np.Spec.PodSelector = metav1.LabelSelector{}
					np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
						From: []networkingv1.NetworkPolicyPeer{
							{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "NotIn", Values: []string{"db"}}}}},
							{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}},
						},
						Ports: []networkingv1.NetworkPolicyPort{
							{Port: ptr(intstr.FromInt32(8000)), EndPort: ptr[int32](8080)},
							{Protocol: &udp, Port: ptr(intstr.FromString("dns"))},
							{Protocol: &udp},
						},
					}}
					np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{
						To: []networkingv1.NetworkPolicyPeer{block("FD00:0::/8", "fd00:1::/32"), block("10.0.0.0/8", "10.1.0.0/16")},
					}}
				},
			),
			want: &model.Policy{
				Namespace: "default", Name: "web",
				Ingress: true, Egress: true,
				IngressRules: []model.Rule{{
					Peers: []model.Peer{
						{PodSelector: &model.Selector{Exprs: []model.Requirement{{Key: "tier", Operator: model.OpNotIn, Values: []string{"db"}}}}},
						{NamespaceSelector: &model.Selector{}, PodSelector: &model.Selector{MatchLabels: map[string]string{"app": "x"}}},
					},
					Ports: []model.Port{
						{Protocol: model.TCP, Port: 8000, EndPort: 8080},
						{Protocol: model.UDP, Name: "dns"},
						{Protocol: model.UDP},
					},
				}},
				EgressRules: []model.Rule{{
					Peers: []model.Peer{
						{IPBlock: &model.IPBlock{CIDR: netip.MustParsePrefix("fd00::/8"), Except: []netip.Prefix{netip.MustParsePrefix("fd00:1::/32")}}},
						{IPBlock: &model.IPBlock{CIDR: netip.MustParsePrefix("10.0.0.0/8"), Except: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}},
					},
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Policy(tt.np)
			if err != nil {
				t.Fatalf("Policy() error: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, prefixCmp); diff != "" {
				t.Errorf("Policy() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPolicyNil(t *testing.T) {
	if _, err := Policy(nil); err == nil {
		t.Error("Policy(nil) succeeded, want an error")
	}
}
