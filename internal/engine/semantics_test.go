package engine_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
)

// One test per rule of DESIGN.md "Semantics that must be exact", each with
// named cases in the base cluster (see baseCluster). Every probe is also
// checked against the naive oracle, so these tables pin the oracle too.

func TestIsolationAndPolicyTypes(t *testing.T) {
	runSemCases(t, []semCase{
		{
			name: "no policy allows everything",
			probes: []probe{
				allow("x/a", "y/b", TCP, 80),
				allow("203.0.113.9", "x/a", UDP, 53),
				allow("x/a", "203.0.113.9", TCP, 443),
			},
		},
		{
			name: "policyTypes absent without egress rules isolates ingress only",
			policies: []*model.Policy{
				fixture.Policy("x/deny", fixture.Sel("pod=a")), // no ingress, no egress: [Ingress]
			},
			probes: []probe{
				deny("y/a", "x/a", TCP, 80).missing("only isolates"),
				deny("x/b", "x/a", TCP, 80),
				allow("x/a", "y/a", TCP, 80), // egress not isolated
				allow("y/a", "x/b", TCP, 80), // x/b not selected
			},
		},
		{
			name: "policyTypes absent with egress rules isolates both",
			policies: []*model.Policy{
				fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Egress(fixture.Rule(fixture.Peers(fixture.PodPeer("pod=b"))))),
			},
			probes: []probe{
				allow("x/a", "x/b", TCP, 80).byRule("x/p", model.Egress, 0),
				deny("x/a", "x/c", TCP, 80),
				deny("x/a", "203.0.113.9", TCP, 80),
				deny("x/b", "x/a", TCP, 80), // Ingress is in the default types
			},
		},
		{
			name: "policyTypes [Egress] ignores ingress rules and leaves ingress open",
			policies: []*model.Policy{
				fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Egress),
					fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("pod=b")))),
					fixture.Egress()),
			},
			probes: []probe{
				allow("y/c", "x/a", TCP, 80),
				deny("x/a", "x/b", TCP, 80),
			},
		},
		{
			name: "policyTypes [Ingress] ignores egress rules and leaves egress open",
			policies: []*model.Policy{
				fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Ingress),
					fixture.Egress(fixture.Rule(fixture.Peers(fixture.PodPeer("pod=b"))))),
			},
			probes: []probe{
				allow("x/a", "y/c", TCP, 80),
				allow("x/a", "203.0.113.9", TCP, 80),
				deny("x/b", "x/a", TCP, 80),
			},
		},
		{
			name: "policyTypes [Ingress, Egress] with no rules isolates both",
			policies: []*model.Policy{
				fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Ingress, model.Egress)),
			},
			probes: []probe{
				deny("x/a", "x/b", TCP, 80),
				deny("x/b", "x/a", TCP, 80),
			},
		},
		{
			name: "a policy isolates only pods of its own namespace",
			policies: []*model.Policy{
				fixture.Policy("y/deny-all", fixture.Sel("")),
			},
			probes: []probe{
				allow("z/a", "x/a", TCP, 80),
				deny("z/a", "y/a", TCP, 80),
				deny("x/b", "y/c", UDP, 53),
			},
		},
		{
			name: "matchExpressions in the pod selector",
			policies: []*model.Policy{
				fixture.Policy("x/p", &model.Selector{Exprs: []model.Requirement{{Key: "pod", Operator: model.OpNotIn, Values: []string{"a", "b"}}}}),
			},
			probes: []probe{
				allow("y/a", "x/a", TCP, 80),
				deny("y/a", "x/c", TCP, 80),
			},
		},
	})
}

func TestPeers(t *testing.T) {
	ingressFrom := func(ps ...model.Peer) []*model.Policy {
		return []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(ps)))}
	}
	runSemCases(t, []semCase{
		{
			name:     "podSelector alone is the policy's own namespace",
			policies: ingressFrom(fixture.PodPeer("pod=b")),
			probes: []probe{
				allow("x/b", "x/a", TCP, 80),
				deny("y/b", "x/a", TCP, 80).missing("source y/b is not a peer of this rule"),
				deny("x/c", "x/a", TCP, 80),
			},
		},
		{
			name:     "empty podSelector alone is every pod of the own namespace",
			policies: ingressFrom(fixture.PodPeer("")),
			probes: []probe{
				allow("x/b", "x/a", TCP, 80),
				allow("x/c", "x/a", TCP, 80),
				deny("y/b", "x/a", TCP, 80),
				deny("203.0.113.9", "x/a", TCP, 80),
			},
		},
		{
			name:     "namespaceSelector alone is every pod of the matching namespaces",
			policies: ingressFrom(fixture.NsPeer("team=y")),
			probes: []probe{
				allow("y/b", "x/a", TCP, 80),
				allow("y/c", "x/a", TCP, 80),
				deny("x/b", "x/a", TCP, 80),
				deny("z/b", "x/a", TCP, 80),
			},
		},
		{
			name:     "namespaceSelector by the metadata.name label",
			policies: ingressFrom(fixture.NsPeer(model.NamespaceNameLabel + "=z")),
			probes: []probe{
				allow("z/b", "x/a", TCP, 80),
				deny("y/b", "x/a", TCP, 80),
			},
		},
		{
			name:     "both selectors in one peer are ANDed",
			policies: ingressFrom(fixture.NsPodPeer("team=y", "pod=b")),
			probes: []probe{
				allow("y/b", "x/a", TCP, 80),
				deny("y/c", "x/a", TCP, 80),
				deny("x/b", "x/a", TCP, 80),
				deny("z/b", "x/a", TCP, 80),
			},
		},
		{
			name:     "two peers are ORed",
			policies: ingressFrom(fixture.NsPeer("team=y"), fixture.PodPeer("pod=b")),
			probes: []probe{
				allow("y/c", "x/a", TCP, 80),
				allow("x/b", "x/a", TCP, 80),
				deny("x/c", "x/a", TCP, 80),
				deny("z/b", "x/a", TCP, 80),
			},
		},
		{
			name:     "empty namespaceSelector is every namespace",
			policies: ingressFrom(fixture.NsPeer("")),
			probes: []probe{
				allow("z/c", "x/a", TCP, 80),
				allow("x/b", "x/a", TCP, 80),
				allow("y/a@6", "x/a@6", TCP, 80),
				deny("203.0.113.9", "x/a", TCP, 80),
			},
		},
		{
			name:     "empty namespaceSelector with a podSelector is those pods everywhere",
			policies: ingressFrom(fixture.NsPodPeer("", "pod=b")),
			probes: []probe{
				allow("z/b", "x/a", TCP, 80),
				allow("x/b", "x/a", TCP, 80),
				deny("z/c", "x/a", TCP, 80),
			},
		},
		{
			name: "egress peers likewise",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Egress),
				fixture.Egress(fixture.Rule(fixture.Peers(fixture.NsPodPeer("team=y", "pod=b"), fixture.PodPeer("pod=c")))))},
			probes: []probe{
				allow("x/a", "y/b", TCP, 80),
				allow("x/a", "x/c", TCP, 80),
				deny("x/a", "y/c", TCP, 80),
				deny("x/a", "x/b", TCP, 80),
			},
		},
	})
}

func TestEmptyFromAndPorts(t *testing.T) {
	runSemCases(t, []semCase{
		{
			name:     "ingress: [{}] allows everything",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(nil)))},
			probes: []probe{
				allow("203.0.113.9", "x/a", UDP, 5353).byRule("x/p", model.Ingress, 0),
				allow("y/b", "x/a", SCTP, 9000),
				allow("2001:db8::1", "x/a@6", TCP, 1),
				allow("192.168.0.2", "x/a", TCP, 22),
			},
		},
		{
			name:     "ingress: [] with Ingress allows nothing",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Ingress), fixture.Ingress())},
			probes: []probe{
				deny("x/b", "x/a", TCP, 80).missing("policy has no Ingress rules"),
				deny("203.0.113.9", "x/a", UDP, 53),
			},
		},
		{
			name:     "empty from with ports allows any source on those ports",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(nil, fixture.Port(TCP, 80))))},
			probes: []probe{
				allow("203.0.113.9", "x/a", TCP, 80),
				allow("z/c@6", "x/a@6", TCP, 80),
				deny("203.0.113.9", "x/a", TCP, 81),
			},
		},
		{
			name:     "empty ports with from allows every port and protocol from those peers",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("pod=b")))))},
			probes: []probe{
				allow("x/b", "x/a", UDP, 53),
				allow("x/b", "x/a", SCTP, 9000),
				allow("x/b", "x/a", TCP, 65535),
				deny("x/c", "x/a", TCP, 80),
			},
		},
		{
			name:     "egress: [{}] allows everything",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Egress), fixture.Egress(fixture.Rule(nil)))},
			probes: []probe{
				allow("x/a", "203.0.113.9", UDP, 5353).byRule("x/p", model.Egress, 0),
				allow("x/a", "y/b", TCP, 80),
			},
		},
		{
			name:     "egress: [] with Egress allows nothing",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Egress), fixture.Egress())},
			probes: []probe{
				deny("x/a", "y/b", TCP, 80).missing("policy has no Egress rules"),
				deny("x/a", "203.0.113.9", UDP, 53),
				deny("x/a", "192.168.0.1", TCP, 10250), // to its own node: egress applies
			},
		},
	})
}

func TestNamedPorts(t *testing.T) {
	runSemCases(t, []semCase{
		{
			name: "ingress named port resolves on the selected pod",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel(""),
				fixture.Ingress(fixture.Rule(nil, fixture.NamedPort(TCP, "http"))))},
			probes: []probe{
				allow("y/a", "x/a", TCP, 80),
				deny("y/a", "x/a", TCP, 8080),
				allow("y/a", "x/b", TCP, 8080),
				deny("y/a", "x/b", TCP, 80),
				allow("203.0.113.9", "x/a", TCP, 80), // the source needs no ports
				deny("y/a", "x/c", TCP, 80).missing(`named port "http" is not a TCP port of x/c`),
			},
		},
		{
			name: "named port of the wrong protocol does not resolve",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel(""),
				fixture.Ingress(fixture.Rule(nil, fixture.NamedPort(UDP, "http"))))},
			probes: []probe{
				deny("y/a", "x/a", TCP, 80),
				deny("y/a", "x/a", UDP, 80).missing(`named port "http" is not a UDP port of x/a`),
			},
		},
		{
			name: "egress named port resolves on the peer pod",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Egress),
				fixture.Egress(fixture.Rule(fixture.Peers(fixture.NsPeer("")), fixture.NamedPort(TCP, "http"))))},
			probes: []probe{
				allow("x/a", "y/b", TCP, 8080),
				deny("x/a", "y/b", TCP, 80),
				allow("x/a", "y/a", TCP, 80),
				deny("x/a", "y/c", TCP, 80).missing(`named port "http" is not a TCP port of y/c`),
				deny("x/a", "y/c", TCP, 8080),
			},
		},
		{
			name: "egress named port with no peers resolves on a destination pod, never on an address",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Egress),
				fixture.Egress(fixture.Rule(nil, fixture.NamedPort(TCP, "http"))))},
			probes: []probe{
				allow("x/a", "y/a", TCP, 80),
				allow("x/a@6", "z/b@6", TCP, 8080),
				deny("x/a", "203.0.113.9", TCP, 80).missing("cannot resolve"),
			},
		},
		{
			name: "egress named port resolves on a pod inside an ipBlock peer",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Egress),
				fixture.Egress(fixture.Rule(fixture.Peers(fixture.BlockPeer("10.0.2.0/24")), fixture.NamedPort(TCP, "http"), fixture.Port(TCP, 443))))},
			probes: []probe{
				allow("x/a", "y/a", TCP, 80),
				allow("x/a", "y/b", TCP, 8080),
				deny("x/a", "y/b", TCP, 80),
				deny("x/a", "y/c", TCP, 80).missing(`named port "http" is not a TCP port of y/c`),
				deny("x/a", "z/a", TCP, 80).missing("destination z/a is not a peer"),
				deny("x/a", "10.0.2.99", TCP, 80).missing(`named port "http" cannot resolve on 10.0.2.99 (no pod has this address)`),
				allow("x/a", "10.0.2.99", TCP, 443),
			},
		},
		{
			name: "egress named port on an ipBlock peer: an excepted pod is no peer",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Egress),
				fixture.Egress(fixture.Rule(fixture.Peers(fixture.BlockPeer("10.0.0.0/8", "10.0.2.1/32")), fixture.NamedPort(TCP, "http"))))},
			probes: []probe{
				deny("x/a", "y/a", TCP, 80).missing("destination y/a is not a peer"),
				allow("x/a", "y/b", TCP, 8080),
				allow("x/a", "z/a", TCP, 80),
			},
		},
		{
			name: "egress named port on an IPv6 ipBlock resolves only for the pod's address inside it",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Egress),
				fixture.Egress(fixture.Rule(fixture.Peers(fixture.BlockPeer("fd00::2:0/112")), fixture.NamedPort(TCP, "http"))))},
			probes: []probe{
				allow("x/a@6", "y/a@6", TCP, 80),
				allow("x/a@6", "y/b@6", TCP, 8080),
				deny("x/a", "y/a", TCP, 80),
				deny("x/a@6", "z/a@6", TCP, 80),
			},
		},
		{
			name: "egress named port resolves through a selector peer and an ipBlock peer alike",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Egress),
				fixture.Egress(fixture.Rule(fixture.Peers(fixture.BlockPeer("10.0.2.0/24"), fixture.NsPeer("team=z")), fixture.NamedPort(TCP, "http"))))},
			probes: []probe{
				allow("x/a", "y/a", TCP, 80),
				allow("x/a", "z/a", TCP, 80),
				allow("x/a@6", "z/b@6", TCP, 8080),
				deny("x/a@6", "y/a@6", TCP, 80),
				deny("x/a", "x/b", TCP, 8080),
			},
		},
		{
			name: "ingress named port works for an ipBlock source",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"),
				fixture.Ingress(fixture.Rule(fixture.Peers(fixture.BlockPeer("203.0.113.0/24")), fixture.NamedPort(TCP, "http"))))},
			probes: []probe{
				allow("203.0.113.9", "x/a", TCP, 80),
				deny("203.0.113.9", "x/a", TCP, 8080),
			},
		},
	})
}

func TestEndPort(t *testing.T) {
	runSemCases(t, []semCase{
		{
			name:     "range is inclusive at both ends",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(nil, fixture.PortRange(TCP, 80, 90))))},
			probes: []probe{
				deny("y/a", "x/a", TCP, 79),
				allow("y/a", "x/a", TCP, 80),
				allow("y/a", "x/a", TCP, 85),
				allow("y/a", "x/a", TCP, 90),
				deny("y/a", "x/a", TCP, 91).missing("80-90/TCP"),
				deny("y/a", "x/a", UDP, 85),
			},
		},
		{
			name:     "a range of one port",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(nil, fixture.PortRange(UDP, 53, 53))))},
			probes: []probe{
				allow("y/a", "x/a", UDP, 53),
				deny("y/a", "x/a", UDP, 54),
				deny("y/a", "x/a", UDP, 52),
			},
		},
		{
			name:     "a single port is that port only",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(nil, fixture.Port(TCP, 80))))},
			probes: []probe{
				allow("y/a", "x/a", TCP, 80),
				deny("y/a", "x/a", TCP, 81),
			},
		},
		{
			name: "range up to 65535",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Egress),
				fixture.Egress(fixture.Rule(nil, fixture.PortRange(TCP, 32768, 65535))))},
			probes: []probe{
				allow("x/a", "203.0.113.9", TCP, 65535),
				allow("x/a", "203.0.113.9", TCP, 32768),
				deny("x/a", "203.0.113.9", TCP, 32767),
			},
		},
	})
}

func TestProtocols(t *testing.T) {
	runSemCases(t, []semCase{
		{
			name:     "a UDP rule does not allow TCP",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(nil, fixture.Port(UDP, 53))))},
			probes: []probe{
				allow("y/a", "x/a", UDP, 53),
				deny("y/a", "x/a", TCP, 53).missing("port 53/TCP is not in the rule's ports (53/UDP)"),
				deny("y/a", "x/a", SCTP, 53),
			},
		},
		{
			name:     "an SCTP rule does not allow TCP",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(nil, fixture.Port(SCTP, 9000))))},
			probes: []probe{
				allow("y/a", "x/a", SCTP, 9000),
				deny("y/a", "x/a", TCP, 9000),
				deny("y/a", "x/a", UDP, 9000),
			},
		},
		{
			name:     "protocol only is every port of that protocol",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(nil, fixture.AnyPort(UDP))))},
			probes: []probe{
				allow("y/a", "x/a", UDP, 1),
				allow("y/a", "x/a", UDP, 65535),
				deny("y/a", "x/a", TCP, 80).missing("any/UDP"),
				deny("y/a", "x/a", SCTP, 80),
			},
		},
		{
			name: "several port entries are ORed",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"),
				fixture.Ingress(fixture.Rule(nil, fixture.AnyPort(SCTP), fixture.Port(TCP, 80))))},
			probes: []probe{
				allow("y/a", "x/a", SCTP, 1234),
				allow("y/a", "x/a", TCP, 80),
				deny("y/a", "x/a", TCP, 81),
				deny("y/a", "x/a", UDP, 80),
			},
		},
	})
}

func TestIPBlock(t *testing.T) {
	runSemCases(t, []semCase{
		{
			name: "except subtracts only from its own block",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(fixture.Peers(
				fixture.BlockPeer("10.0.0.0/16", "10.0.2.0/24"),
				fixture.BlockPeer("10.0.2.0/25"),
			))))},
			probes: []probe{
				allow("10.0.2.1", "x/a", TCP, 80),   // y/a, in the second block
				deny("10.0.2.200", "x/a", TCP, 80),  // excepted from the first, outside the second
				allow("10.0.3.1", "x/a", TCP, 80),   // z/a, in the first block
				allow("10.0.200.1", "x/a", TCP, 80), // an address, no pod
				deny("10.1.0.1", "x/a", TCP, 80),
			},
		},
		{
			name: "several excepts",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(fixture.Peers(
				fixture.BlockPeer("10.0.0.0/16", "10.0.2.0/24", "10.0.3.0/25"),
			))))},
			probes: []probe{
				deny("y/a", "x/a", TCP, 80),
				deny("z/a", "x/a", TCP, 80),
				allow("10.0.3.129", "x/a", TCP, 80),
				allow("x/b", "x/a", TCP, 80),
			},
		},
		{
			name:     "ipBlock matches pod addresses",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.BlockPeer("10.0.2.0/24")))))},
			probes: []probe{
				allow("y/a", "x/a", TCP, 80),
				allow("y/c", "x/a", TCP, 80),
				deny("z/a", "x/a", TCP, 80),
				deny("y/a@6", "x/a@6", TCP, 80), // an IPv4 block covers no IPv6 address
			},
		},
		{
			name:     "IPv6 ipBlock with except",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.BlockPeer("fd00::2:0/112", "fd00::2:3/128")))))},
			probes: []probe{
				allow("y/b@6", "x/a@6", TCP, 80),
				deny("y/c@6", "x/a@6", TCP, 80),
				deny("y/b", "x/a", TCP, 80),
			},
		},
		{
			name: "egress ipBlock to addresses outside the cluster",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Egress),
				fixture.Egress(fixture.Rule(fixture.Peers(fixture.BlockPeer("203.0.113.0/24", "203.0.113.128/25")))))},
			probes: []probe{
				allow("x/a", "203.0.113.5", TCP, 443),
				deny("x/a", "203.0.113.200", TCP, 443),
				deny("x/a", "198.51.100.1", TCP, 443),
			},
		},
		{
			name: "0.0.0.0/0 is every IPv4 address, no IPv6 one",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Types(model.Egress),
				fixture.Egress(fixture.Rule(fixture.Peers(fixture.BlockPeer("0.0.0.0/0")))))},
			probes: []probe{
				allow("x/a", "198.51.100.1", TCP, 443),
				allow("x/a", "y/b", TCP, 80),
				deny("x/a", "2001:db8::1", TCP, 443),
				deny("x/a@6", "y/b@6", TCP, 80),
			},
		},
	})
}

func TestBothEnds(t *testing.T) {
	egressTo := fixture.Policy("x/egress", fixture.Sel("pod=a"), fixture.Types(model.Egress), fixture.Egress(fixture.Rule(fixture.Peers(fixture.NsPeer("team=y")))))
	denyY := fixture.Policy("y/deny", fixture.Sel("pod=a"))
	allowY := fixture.Policy("y/allow", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.NsPodPeer("team=x", "pod=a")))))
	runSemCases(t, []semCase{
		{
			name:     "source egress allows, destination ingress denies",
			policies: []*model.Policy{egressTo, denyY},
			probes: []probe{
				deny("x/a", "y/a", TCP, 80).byRule("x/egress", model.Egress, 0),
				allow("x/a", "y/b", TCP, 80),
			},
		},
		{
			name:     "source egress denies, destination open",
			policies: []*model.Policy{egressTo},
			probes:   []probe{deny("x/a", "z/a", TCP, 80)},
		},
		{
			name:     "both allow",
			policies: []*model.Policy{egressTo, allowY},
			probes: []probe{
				allow("x/a", "y/a", TCP, 80).byRule("y/allow", model.Ingress, 0),
				allow("x/a@6", "y/a@6", TCP, 80).byRule("x/egress", model.Egress, 0),
				deny("x/b", "y/a", TCP, 80),
			},
		},
	})

	// The verdict says which side denied.
	c := baseCluster()
	c.Policies[egressTo.Key()], c.Policies[denyY.Key()] = egressTo, denyY
	e := engine.FromCluster(c)
	v := e.Explain(engine.Conn{From: endpoint(t, e, "x/a"), To: endpoint(t, e, "y/a"), Protocol: TCP, Port: 80})
	if v.Allowed || !v.Egress.Allowed || v.Ingress.Allowed {
		t.Errorf("Explain(x/a -> y/a) = allowed %v, egress %v, ingress %v; want false, true, false", v.Allowed, v.Egress.Allowed, v.Ingress.Allowed)
	}
	if want := []model.Key{{Namespace: "y", Name: "deny"}}; !slices.Equal(v.Ingress.Isolating, want) {
		t.Errorf("Explain(x/a -> y/a).Ingress.Isolating = %v, want %v", v.Ingress.Isolating, want)
	}
}

func TestNodeTraffic(t *testing.T) {
	isolateX := fixture.Policy("x/deny", fixture.Sel(""), fixture.Types(model.Ingress, model.Egress))
	runSemCases(t, []semCase{
		{
			name:     "a node reaches its own pods whatever the policy",
			policies: []*model.Policy{isolateX},
			probes: []probe{
				allow("192.168.0.1", "x/a", TCP, 8080),
				allow("fd01::1", "x/a@6", TCP, 8080),
				allow("192.168.0.2", "x/c", TCP, 8080),
			},
		},
		{
			name:     "a remote node's address is subject to ingress policy",
			policies: []*model.Policy{isolateX},
			probes: []probe{
				deny("192.168.0.2", "x/a", TCP, 8080),
				deny("fd01::2", "x/a@6", TCP, 8080),
			},
		},
		{
			name:     "a remote node's address can be allowed by ipBlock",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel(""), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.BlockPeer("192.168.0.0/24")))))},
			probes: []probe{
				allow("192.168.0.2", "x/a", TCP, 80),
				deny("fd01::2", "x/a@6", TCP, 80),
			},
		},
		{
			name:     "a host-network pod is its node: own node allowed, remote not",
			policies: []*model.Policy{isolateX},
			probes: []probe{
				allow("x/host", "x/a", TCP, 80), // x/host and x/a on n1
				deny("x/host", "x/c", TCP, 80),  // x/c on n2
				deny("x/host@6", "x/c@6", TCP, 80),
			},
		},
		{
			name:     "host-network pods are never isolated",
			policies: []*model.Policy{isolateX},
			probes: []probe{
				allow("y/a", "x/host", TCP, 22),
				allow("x/host", "y/a", TCP, 80),
				allow("203.0.113.9", "x/host", TCP, 22),
			},
		},
		{
			name: "a host-network pod is no pod peer",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=c"),
				fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer(""), fixture.NsPeer("")))))},
			probes: []probe{
				deny("x/host", "x/c", TCP, 80),
				allow("x/a", "x/c", TCP, 80),
			},
		},
		{
			name:     "a pod's egress to its own node is subject to egress policy",
			policies: []*model.Policy{isolateX},
			probes: []probe{
				deny("x/a", "192.168.0.1", TCP, 10250),
				deny("x/a", "x/host", TCP, 10250),
			},
		},
	})
}

func TestLoopback(t *testing.T) {
	runSemCases(t, []semCase{
		{
			name:     "a pod reaches itself when isolated both ways",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel(""), fixture.Types(model.Ingress, model.Egress))},
			probes: []probe{
				allow("x/a", "x/a", TCP, 80),
				allow("x/a@6", "x/a@6", UDP, 53),
				allow("10.0.1.1", "x/a", TCP, 1), // by address: it is the pod
				deny("x/a", "x/b", TCP, 80),
			},
		},
	})
	c := baseCluster()
	c.Policies[model.Key{Namespace: "x", Name: "p"}] = fixture.Policy("x/p", fixture.Sel(""), fixture.Types(model.Ingress, model.Egress))
	e := engine.FromCluster(c)
	if v := e.Explain(engine.Conn{From: endpoint(t, e, "x/a"), To: endpoint(t, e, "x/a"), Protocol: TCP, Port: 80}); v.Shortcut != "loopback" {
		t.Errorf("Explain(x/a -> x/a).Shortcut = %q, want loopback", v.Shortcut)
	}
}

func TestDualStack(t *testing.T) {
	sixOnly := func(c *model.Cluster) {
		p := fixture.Pod("x/six", "pod=six", []string{"fd00::1:99"}, fixture.CPort("http", TCP, 80))
		c.Pods[p.Key()] = p
	}
	runSemCases(t, []semCase{
		{
			name:     "selectors cover both families",
			cluster:  sixOnly,
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("pod=six"), fixture.PodPeer("pod=b")))))},
			probes: []probe{
				allow("x/six@6", "x/a@6", TCP, 80),
				allow("x/b@6", "x/a@6", TCP, 80),
				allow("x/b", "x/a", TCP, 80),
				deny("x/c@6", "x/a@6", TCP, 80),
			},
		},
		{
			name:     "IPv6-only pod isolated, named port resolved",
			cluster:  sixOnly,
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=six"), fixture.Ingress(fixture.Rule(nil, fixture.NamedPort(TCP, "http"))))},
			probes: []probe{
				allow("2001:db8::1", "x/six@6", TCP, 80),
				deny("2001:db8::1", "x/six@6", TCP, 81),
				allow("fd00::1:99", "x/a@6", TCP, 81), // x/a is not isolated
			},
		},
	})
}

func TestAdditivePolicies(t *testing.T) {
	p1 := fixture.Policy("x/p1", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("pod=b")), fixture.Port(TCP, 80))))
	p2 := fixture.Policy("x/p2", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("pod=c")), fixture.Port(TCP, 81))))
	denyAll := fixture.Policy("x/a-deny", fixture.Sel("pod=a"))
	runSemCases(t, []semCase{
		{
			name:     "two policies allow the union",
			policies: []*model.Policy{p1, p2},
			probes: []probe{
				allow("x/b", "x/a", TCP, 80).byRule("x/p1", model.Ingress, 0),
				allow("x/c", "x/a", TCP, 81).byRule("x/p2", model.Ingress, 0),
				deny("x/b", "x/a", TCP, 81),
				deny("x/c", "x/a", TCP, 80),
			},
		},
		{
			name:     "a deny-all policy does not take away another's allow",
			policies: []*model.Policy{denyAll, p2},
			probes: []probe{
				allow("x/c", "x/a", TCP, 81).byRule("x/p2", model.Ingress, 0),
				deny("x/b", "x/a", TCP, 80),
			},
		},
		{
			name: "rules within a policy are ORed, first match reported",
			policies: []*model.Policy{fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(
				fixture.Rule(fixture.Peers(fixture.PodPeer("pod=b")), fixture.Port(TCP, 80)),
				fixture.Rule(fixture.Peers(fixture.PodPeer("pod=b"))),
			))},
			probes: []probe{
				allow("x/b", "x/a", TCP, 80).byRule("x/p", model.Ingress, 0),
				allow("x/b", "x/a", UDP, 53).byRule("x/p", model.Ingress, 1),
			},
		},
	})
}

func TestExplainMisses(t *testing.T) {
	c := baseCluster()
	for _, p := range []*model.Policy{
		fixture.Policy("x/p", fixture.Sel("pod=c"), fixture.Ingress(
			fixture.Rule(fixture.Peers(fixture.PodPeer("pod=b")), fixture.Port(TCP, 80)),
			fixture.Rule(fixture.Peers(fixture.NsPeer("team=y")), fixture.NamedPort(TCP, "http")),
		)),
	} {
		c.Policies[p.Key()] = p
	}
	e := engine.FromCluster(c)
	k := model.Key{Namespace: "x", Name: "p"}
	tests := []struct {
		name       string
		from       string
		port       uint16
		wantMisses []engine.Miss
	}{
		{
			name: "wrong peer, then named port not on the pod",
			from: "y/a", port: 80,
			wantMisses: []engine.Miss{
				{Rule: engine.RuleRef{Policy: k, Direction: model.Ingress, Index: 0}, Reason: "source y/a is not a peer of this rule"},
				{Rule: engine.RuleRef{Policy: k, Direction: model.Ingress, Index: 1}, Reason: `port 80/TCP is not in the rule's ports (http/TCP); named port "http" is not a TCP port of x/c`},
			},
		},
		{
			name: "wrong port, then wrong peer",
			from: "x/b", port: 81,
			wantMisses: []engine.Miss{
				{Rule: engine.RuleRef{Policy: k, Direction: model.Ingress, Index: 0}, Reason: "port 81/TCP is not in the rule's ports (80/TCP)"},
				{Rule: engine.RuleRef{Policy: k, Direction: model.Ingress, Index: 1}, Reason: "source x/b is not a peer of this rule"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := e.Explain(engine.Conn{From: endpoint(t, e, tc.from), To: endpoint(t, e, "x/c"), Protocol: TCP, Port: tc.port})
			if v.Allowed || v.Ingress.By != nil {
				t.Fatalf("Explain(%s -> x/c) allowed %v by %v, want denied", tc.from, v.Allowed, v.Ingress.By)
			}
			if !slices.Equal(v.Ingress.Misses, tc.wantMisses) {
				t.Errorf("Explain(%s -> x/c).Ingress.Misses =\n%v\nwant\n%v", tc.from, v.Ingress.Misses, tc.wantMisses)
			}
		})
	}
}

// step is one incremental change and what must hold after it.
type step struct {
	name   string
	apply  func(e *engine.Engine, c *model.Cluster)
	probes []probe
	// changed lists policies TakeChanges must name; unchanged those it must not.
	changed, unchanged []string
}

func runSteps(t *testing.T, policies []*model.Policy, steps []step) {
	t.Helper()
	c := baseCluster()
	for _, p := range policies {
		c.Policies[p.Key()] = p
	}
	e := engine.FromCluster(c)
	if ch := e.TakeChanges(); !ch.Empty() {
		t.Fatalf("TakeChanges() after FromCluster = %+v, want empty", ch)
	}
	for _, s := range steps {
		s.apply(e, c)
		ch := e.TakeChanges()
		for _, name := range s.changed {
			k, _ := model.ParseKey(name, "")
			if _, ok := ch.Policies[k]; !ok {
				t.Errorf("after %q: TakeChanges().Policies = %v, want it to name %s", s.name, ch.Policies, k)
			}
		}
		for _, name := range s.unchanged {
			k, _ := model.ParseKey(name, "")
			if _, ok := ch.Policies[k]; ok {
				t.Errorf("after %q: TakeChanges().Policies = %v, want it not to name %s", s.name, ch.Policies, k)
			}
		}
		for _, pr := range s.probes {
			checkProbe(t, c, e, pr)
		}
		// Incremental must equal a rebuild.
		fresh := engine.FromCluster(c)
		for _, pr := range s.probes {
			pr.want = fresh.Allowed(engine.Conn{From: endpoint(t, fresh, pr.from), To: endpoint(t, fresh, pr.to), Protocol: pr.proto, Port: pr.port})
			pr.by, pr.miss = nil, ""
			checkProbe(t, c, e, pr)
		}
		if ch := e.TakeChanges(); !ch.Empty() {
			t.Errorf("after %q: second TakeChanges() = %+v, want empty", s.name, ch)
		}
	}
}

// relabel replaces a pod with a copy carrying new labels: the engine keeps
// the pointers it is given, so callers never mutate them.
func relabel(key, lbls string) func(*engine.Engine, *model.Cluster) {
	return func(e *engine.Engine, c *model.Cluster) {
		k, _ := model.ParseKey(key, "")
		p := *c.Pods[k]
		p.Labels = fixture.Labels(lbls)
		c.Pods[k] = &p
		e.UpsertPod(&p)
	}
}

func relabelNS(name, lbls string) func(*engine.Engine, *model.Cluster) {
	return func(e *engine.Engine, c *model.Cluster) {
		ns := fixture.Namespace(name, lbls)
		c.Namespaces[name] = ns
		e.UpsertNamespace(ns)
	}
}

func upsertPolicy(p *model.Policy) func(*engine.Engine, *model.Cluster) {
	return func(e *engine.Engine, c *model.Cluster) {
		c.Policies[p.Key()] = p
		e.UpsertPolicy(p)
	}
}

func TestIncrementalPodLabels(t *testing.T) {
	runSteps(t, []*model.Policy{
		fixture.Policy("x/deny-b", fixture.Sel("pod=b")),
		fixture.Policy("x/from-b", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("pod=b"))))),
		fixture.Policy("y/other", fixture.Sel("pod=a")),
	}, []step{
		{
			name:      "x/c relabelled pod=b: becomes isolated and a peer",
			apply:     relabel("x/c", "pod=b"),
			changed:   []string{"x/deny-b", "x/from-b"},
			unchanged: []string{"y/other"},
			probes: []probe{
				deny("y/a", "x/c", TCP, 80),
				allow("x/c", "x/a", TCP, 80).byRule("x/from-b", model.Ingress, 0),
			},
		},
		{
			name:      "x/c relabelled back",
			apply:     relabel("x/c", "pod=c"),
			changed:   []string{"x/deny-b", "x/from-b"},
			unchanged: []string{"y/other"},
			probes: []probe{
				allow("y/a", "x/c", TCP, 80),
				deny("x/c", "x/a", TCP, 80),
			},
		},
		{
			name:      "x/a relabelled out of its policy's selection",
			apply:     relabel("x/a", "pod=z"),
			changed:   []string{"x/from-b"},
			unchanged: []string{"x/deny-b", "y/other"},
			probes:    []probe{allow("y/a", "x/a", TCP, 80)},
		},
		{
			name:      "a member's label change that keeps every membership changes no policy",
			apply:     relabel("x/b", "pod=b,unrelated=1"),
			unchanged: []string{"x/deny-b", "x/from-b", "y/other"},
			probes:    []probe{deny("y/a", "x/b", TCP, 80)},
		},
		{
			name:      "a label nothing selects on changes nothing",
			apply:     relabel("z/a", "pod=a,unrelated=1"),
			unchanged: []string{"x/deny-b", "x/from-b", "y/other"},
			probes:    []probe{allow("z/a", "x/c", TCP, 80), deny("z/a", "x/b", TCP, 80), deny("z/a", "y/a", TCP, 80)},
		},
	})
}

func TestIncrementalNamespaceLabels(t *testing.T) {
	runSteps(t, []*model.Policy{
		fixture.Policy("x/from-y", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.NsPeer("team=y"))))),
		fixture.Policy("x/from-b", fixture.Sel("pod=b"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("pod=c"))))),
	}, []step{
		{
			name:      "z relabelled team=y joins the peer",
			apply:     relabelNS("z", "team=y"),
			changed:   []string{"x/from-y"},
			unchanged: []string{"x/from-b"},
			probes:    []probe{allow("z/a", "x/a", TCP, 80), allow("y/a", "x/a", TCP, 80)},
		},
		{
			name:    "y relabelled leaves it",
			apply:   relabelNS("y", "team=other"),
			changed: []string{"x/from-y"},
			probes:  []probe{deny("y/a", "x/a", TCP, 80), allow("z/c", "x/a", TCP, 80)},
		},
		{
			name: "namespace deleted keeps only its name label",
			apply: func(e *engine.Engine, c *model.Cluster) {
				delete(c.Namespaces, "z")
				e.DeleteNamespace("z")
			},
			changed: []string{"x/from-y"},
			probes:  []probe{deny("z/a", "x/a", TCP, 80)},
		},
	})
}

func TestIncrementalPolicies(t *testing.T) {
	runSteps(t, []*model.Policy{
		fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("pod=b"))))),
		fixture.Policy("x/q", fixture.Sel("pod=b")),
	}, []step{
		{
			name:      "replace changes the rule",
			apply:     upsertPolicy(fixture.Policy("x/p", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("pod=c")), fixture.Port(TCP, 80))))),
			changed:   []string{"x/p"},
			unchanged: []string{"x/q"},
			probes: []probe{
				deny("x/b", "x/a", TCP, 80),
				allow("x/c", "x/a", TCP, 80).byRule("x/p", model.Ingress, 0),
				deny("x/c", "x/a", TCP, 81),
			},
		},
		{
			name:      "replace changes the selection",
			apply:     upsertPolicy(fixture.Policy("x/p", fixture.Sel("pod=c"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("pod=c")), fixture.Port(TCP, 80))))),
			changed:   []string{"x/p"},
			unchanged: []string{"x/q"},
			probes:    []probe{allow("x/b", "x/a", TCP, 80), deny("x/b", "x/c", TCP, 80)},
		},
		{
			name: "delete lifts the isolation",
			apply: func(e *engine.Engine, c *model.Cluster) {
				k := model.Key{Namespace: "x", Name: "q"}
				delete(c.Policies, k)
				e.DeletePolicy(k)
			},
			changed:   []string{"x/q"},
			unchanged: []string{"x/p"},
			probes:    []probe{allow("y/a", "x/b", TCP, 80)},
		},
		{
			name: "deleting a missing policy changes nothing",
			apply: func(e *engine.Engine, c *model.Cluster) {
				e.DeletePolicy(model.Key{Namespace: "x", Name: "nope"})
			},
			unchanged: []string{"x/p", "x/q"},
		},
	})
}

func TestIncrementalPods(t *testing.T) {
	runSteps(t, []*model.Policy{
		fixture.Policy("x/block", fixture.Sel("pod=a"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.BlockPeer("10.0.2.0/24"))))),
		fixture.Policy("x/from-yb", fixture.Sel("pod=b"), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.NsPodPeer("team=y", "pod=b"))))),
		fixture.Policy("x/to-http", fixture.Sel("pod=c"), fixture.Types(model.Egress), fixture.Egress(fixture.Rule(nil, fixture.NamedPort(TCP, "http")))),
	}, []step{
		{
			name: "pod address change moves it out of an ipBlock",
			apply: func(e *engine.Engine, c *model.Cluster) {
				p := *c.Pods[model.Key{Namespace: "y", Name: "a"}]
				p.IPs = []netip.Addr{fixture.Addr("10.0.9.1"), fixture.Addr("fd00::9:1")}
				c.Pods[p.Key()] = &p
				e.UpsertPod(&p)
			},
			probes: []probe{
				deny("y/a", "x/a", TCP, 80),
				allow("y/b", "x/a", TCP, 80),
				allow("10.0.2.1", "x/a", TCP, 80), // now a bare address, still in the block
			},
		},
		{
			name: "a peer pod's address change names the policies it is a peer of",
			apply: func(e *engine.Engine, c *model.Cluster) {
				p := *c.Pods[model.Key{Namespace: "y", Name: "b"}]
				p.IPs = []netip.Addr{fixture.Addr("10.0.9.2")}
				c.Pods[p.Key()] = &p
				e.UpsertPod(&p)
			},
			changed: []string{"x/from-yb"},
			probes: []probe{
				allow("y/b", "x/b", TCP, 80),
				allow("10.0.9.2", "x/b", TCP, 80), // resolves to y/b
				deny("10.0.2.2", "x/b", TCP, 80),
				deny("y/b", "x/a", TCP, 80),
			},
		},
		{
			name: "deleting a peer pod",
			apply: func(e *engine.Engine, c *model.Cluster) {
				k := model.Key{Namespace: "y", Name: "b"}
				delete(c.Pods, k)
				e.DeletePod(k)
			},
			changed: []string{"x/from-yb"},
			probes:  []probe{deny("10.0.9.2", "x/b", TCP, 80)},
		},
		{
			name: "adding a pod that a policy selects isolates it",
			apply: func(e *engine.Engine, c *model.Cluster) {
				p := fixture.Pod("x/b2", "pod=b", []string{"10.0.1.22"}, fixture.CPort("http", TCP, 81))
				c.Pods[p.Key()] = p
				e.UpsertPod(p)
			},
			changed: []string{"x/from-yb"},
			probes:  []probe{deny("y/a", "x/b2", TCP, 80), deny("x/c", "x/b2", TCP, 81)},
		},
		{
			name: "adding a pod whose named port an egress rule without peers resolves",
			apply: func(e *engine.Engine, c *model.Cluster) {
				p := fixture.Pod("y/new", "pod=new", []string{"10.0.2.50"}, fixture.CPort("http", TCP, 8443))
				c.Pods[p.Key()] = p
				e.UpsertPod(p)
			},
			// x/to-http's resolved named ports now include 10.0.2.50:8443.
			changed: []string{"x/to-http"},
			probes:  []probe{allow("x/c", "y/new", TCP, 8443), deny("x/c", "y/new", TCP, 80)},
		},
		{
			name: "a pod turning host-network leaves every selection",
			apply: func(e *engine.Engine, c *model.Cluster) {
				p := *c.Pods[model.Key{Namespace: "x", Name: "b"}]
				p.HostNetwork, p.IPs = true, []netip.Addr{fixture.Addr("192.168.0.1")}
				c.Pods[p.Key()] = &p
				e.UpsertPod(&p)
			},
			changed: []string{"x/from-yb"},
			probes:  []probe{allow("y/a", "x/b", TCP, 80)},
		},
	})
}

// TestIsolatingHostNetwork pins the accessor the dataplane reads.
func TestIsolatingHostNetwork(t *testing.T) {
	c := baseCluster()
	p := fixture.Policy("x/all", fixture.Sel(""), fixture.Types(model.Ingress, model.Egress))
	c.Policies[p.Key()] = p
	e := engine.FromCluster(c)
	for _, d := range []model.Direction{model.Ingress, model.Egress} {
		if got := e.Isolating(model.Key{Namespace: "x", Name: "host"}, d); len(got) != 0 {
			t.Errorf("Isolating(x/host, %v) = %v, want none", d, got)
		}
		if got := e.Isolating(model.Key{Namespace: "x", Name: "a"}, d); len(got) != 1 || got[0].Key != p.Key() {
			t.Errorf("Isolating(x/a, %v) = %v, want [x/all]", d, got)
		}
	}
}

// TestWorkloadReplicas: a pod standing for a workload's template is
// several pods unless the workload runs one replica, so traffic from it
// to itself is between two replicas and subject to policy.
func TestWorkloadReplicas(t *testing.T) {
	for _, tc := range []struct {
		replicas int
		want     bool
	}{
		{replicas: 0, want: false}, // a DaemonSet: one pod per node
		{replicas: 3, want: false},
		{replicas: 1, want: true}, // one pod: talking to itself
	} {
		c := baseCluster()
		w := fixture.Pod("x/web[Deployment]", "app=web", nil)
		w.Workload, w.Replicas = "Deployment", tc.replicas
		c.Pods[w.Key()] = w
		c.Policies[model.Key{Namespace: "x", Name: "deny"}] = fixture.Policy("x/deny", fixture.Sel(""), fixture.Types(model.Ingress))
		e := engine.FromCluster(c)
		ep := engine.Endpoint{Pod: w}
		conn := engine.Conn{From: ep, To: ep, Protocol: model.TCP, Port: 80}
		if got := e.Allowed(conn); got != tc.want {
			t.Errorf("replicas %d: Allowed(web -> web) = %v, want %v", tc.replicas, got, tc.want)
		}
		if got := naiveAllowed(c, conn); got != tc.want {
			t.Errorf("replicas %d: naiveAllowed(web -> web) = %v, want %v", tc.replicas, got, tc.want)
		}
	}
}

// TestNamedByAddrChanges: a policy whose named egress ports resolve on
// the pods inside an ipBlock changes when a pod comes or goes inside the
// block, and not for pods elsewhere; one whose rule has no peers changes
// for every pod.
func TestNamedByAddrChanges(t *testing.T) {
	block := fixture.Policy("x/block", fixture.Sel("pod=a"), fixture.Types(model.Egress),
		fixture.Egress(fixture.Rule(fixture.Peers(fixture.BlockPeer("10.0.2.0/24")), fixture.NamedPort(TCP, "http"))))
	anyPeer := fixture.Policy("x/any", fixture.Sel("pod=a"), fixture.Types(model.Egress), fixture.Egress(fixture.Rule(nil, fixture.NamedPort(TCP, "http"))))
	for _, tc := range []struct {
		name string
		ip   string
		want []string
	}{
		{"inside the block", "10.0.2.50", []string{"x/any", "x/block"}},
		{"outside the block", "10.0.3.50", []string{"x/any"}},
	} {
		c := baseCluster()
		c.Policies[block.Key()], c.Policies[anyPeer.Key()] = block, anyPeer
		e := engine.FromCluster(c)
		e.TakeChanges()
		p := fixture.Pod("y/new", "pod=new", []string{tc.ip}, fixture.CPort("http", TCP, 80))
		for _, step := range []func(){func() { e.UpsertPod(p) }, func() { e.DeletePod(p.Key()) }} {
			step()
			var got []string
			for k := range e.TakeChanges().Policies {
				got = append(got, k.String())
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s: changed policies = %v, want %v", tc.name, got, tc.want)
			}
		}
	}
}

// TestPodIPsIn: the addresses inside the prefixes that pods have, on any
// node, not host-network pods' (IPv4-mapped ones unmapped).
func TestPodIPsIn(t *testing.T) {
	e := engine.New()
	for _, p := range []*model.Pod{
		{Namespace: "a", Name: "here", Node: "n1", IPs: []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("fd00::5")}},
		{Namespace: "a", Name: "there", Node: "n2", IPs: []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.6")}},
		{Namespace: "a", Name: "outside", Node: "n1", IPs: []netip.Addr{netip.MustParseAddr("10.1.0.5")}},
		{Namespace: "a", Name: "host", Node: "n1", HostNetwork: true, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
	} {
		e.UpsertPod(p)
	}
	got := e.PodIPsIn([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("fd00::/64")})
	slices.SortFunc(got, netip.Addr.Compare)
	want := []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("10.0.0.6"), netip.MustParseAddr("fd00::5")}
	if !slices.Equal(got, want) {
		t.Errorf("PodIPsIn = %v, want %v", got, want)
	}
	if got := e.PodIPsIn(nil); got != nil {
		t.Errorf("PodIPsIn(nil) = %v", got)
	}
}
