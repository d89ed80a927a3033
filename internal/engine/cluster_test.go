package engine_test

import (
	"net/netip"
	"testing"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
)

// Cluster-wide policy semantics, case by case, as the policy.networking.k8s.io
// API documents them; each case names the sentence it checks. The probes
// also run through the naive oracle (naiveTiers).

func anp(name string, prio int32, subject model.ClusterSubject, ingress, egress []model.ClusterRule) *model.ClusterPolicy {
	return &model.ClusterPolicy{Kind: model.KindAdminNetworkPolicy, Name: name, Tier: model.AdminTier, Priority: prio,
		Subject: subject, IngressRules: ingress, EgressRules: egress}
}

func banp(subject model.ClusterSubject, ingress, egress []model.ClusterRule) *model.ClusterPolicy {
	return &model.ClusterPolicy{Kind: model.KindBaselineAdminNetworkPolicy, Name: "default", Tier: model.BaselineTier,
		Priority: model.BaselinePriority, Subject: subject, IngressRules: ingress, EgressRules: egress}
}

func cnp(name string, tier model.Tier, prio int32, subject model.ClusterSubject, ingress, egress []model.ClusterRule) *model.ClusterPolicy {
	p := anp(name, prio, subject, ingress, egress)
	p.Kind, p.Tier = model.KindClusterNetworkPolicy, tier
	return p
}

func nsSubject(sel string) model.ClusterSubject {
	return model.ClusterSubject{Namespaces: fixture.Sel(sel)}
}

func podSubject(nsSel, podSel string) model.ClusterSubject {
	return model.ClusterSubject{Pods: &model.NamespacedPods{NamespaceSelector: *fixture.Sel(nsSel), PodSelector: *fixture.Sel(podSel)}}
}

func nsPeer(sel string) model.ClusterPeer { return model.ClusterPeer{Namespaces: fixture.Sel(sel)} }

func podsPeer(nsSel, podSel string) model.ClusterPeer {
	return model.ClusterPeer{Pods: &model.NamespacedPods{NamespaceSelector: *fixture.Sel(nsSel), PodSelector: *fixture.Sel(podSel)}}
}

func netPeer(cidrs ...string) model.ClusterPeer {
	var ps []netip.Prefix
	for _, c := range cidrs {
		ps = append(ps, netip.MustParsePrefix(c))
	}
	return model.ClusterPeer{Networks: ps}
}

func crule(a model.Action, peers []model.ClusterPeer, ports ...model.ClusterPort) model.ClusterRule {
	return model.ClusterRule{Action: a, Peers: peers, Ports: ports}
}

func cpeers(ps ...model.ClusterPeer) []model.ClusterPeer { return ps }

func tcp(n uint16) model.ClusterPort {
	return model.ClusterPort{Protocol: model.TCP, First: n, Last: n}
}

// stageWant is what Explain must say decided one direction of a probe.
type stageWant struct {
	dir    model.Direction
	stage  engine.Stage
	policy string // kind/name of the deciding cluster policy, for Admin and Baseline
	passed int    // how many Pass rules handed it down
}

type clusterCase struct {
	name     string
	cluster  func(*model.Cluster)
	cps      []*model.ClusterPolicy
	policies []*model.Policy
	probes   []probe
	stages   map[string]stageWant // by probe String()
}

func TestClusterPolicySemantics(t *testing.T) {
	denyAll := fixture.Policy("y/deny-all", fixture.Sel(""), fixture.Types(model.Ingress))
	allowFromX := fixture.Policy("y/allow-x", fixture.Sel(""), fixture.Ingress(fixture.Rule(fixture.Peers(fixture.NsPeer("team=x")))))
	cases := []clusterCase{{
		name:     "Admin Deny wins over a NetworkPolicy that allows (Deny: no further NetworkPolicy rules are processed)",
		cps:      []*model.ClusterPolicy{anp("guard", 10, nsSubject("team=y"), []model.ClusterRule{crule(model.Deny, cpeers(podsPeer("team=x", "pod=a")))}, nil)},
		policies: []*model.Policy{allowFromX},
		probes:   []probe{deny("x/a", "y/a", TCP, 80), allow("x/b", "y/a", TCP, 80), deny("z/a", "y/a", TCP, 80)},
		stages: map[string]stageWant{
			"x/a -> y/a 80/TCP": {model.Ingress, engine.StageAdmin, "AdminNetworkPolicy/guard", 0},
		},
	}, {
		name:     "Admin Accept wins over a NetworkPolicy deny-all (Accept: no further NetworkPolicy rules are processed)",
		cps:      []*model.ClusterPolicy{anp("open", 10, nsSubject("team=y"), []model.ClusterRule{crule(model.Accept, cpeers(podsPeer("team=x", "pod=a")), tcp(80))}, nil)},
		policies: []*model.Policy{denyAll},
		probes:   []probe{allow("x/a", "y/b", TCP, 80), deny("x/a", "y/b", TCP, 81), deny("x/b", "y/b", TCP, 80)},
		stages: map[string]stageWant{
			"x/a -> y/b 80/TCP": {model.Ingress, engine.StageAdmin, "AdminNetworkPolicy/open", 0},
			"x/a -> y/b 81/TCP": {model.Ingress, engine.StageNetworkPolicy, "", 0},
		},
	}, {
		name: "Pass hands the decision to NetworkPolicy; the Admin tier's later rules are skipped",
		cps: []*model.ClusterPolicy{
			anp("pass", 1, nsSubject("team=y"), []model.ClusterRule{crule(model.Pass, cpeers(nsPeer("team=x")))}, nil),
			anp("deny", 2, nsSubject("team=y"), []model.ClusterRule{crule(model.Deny, cpeers(nsPeer("")))}, nil),
		},
		policies: []*model.Policy{allowFromX},
		probes:   []probe{allow("x/a", "y/a", TCP, 80), deny("z/a", "y/a", TCP, 80)},
		stages: map[string]stageWant{
			"x/a -> y/a 80/TCP": {model.Ingress, engine.StageNetworkPolicy, "", 1},
			"z/a -> y/a 80/TCP": {model.Ingress, engine.StageAdmin, "AdminNetworkPolicy/deny", 0},
		},
	}, {
		name: "Pass with no NetworkPolicy goes on to the Baseline tier",
		cps: []*model.ClusterPolicy{
			anp("pass", 1, nsSubject("team=y"), []model.ClusterRule{crule(model.Pass, cpeers(nsPeer("")))}, nil),
			banp(nsSubject("team=y"), []model.ClusterRule{crule(model.Deny, cpeers(nsPeer("team=z")))}, nil),
		},
		probes: []probe{deny("z/a", "y/a", TCP, 80), allow("x/a", "y/a", TCP, 80)},
		stages: map[string]stageWant{
			"z/a -> y/a 80/TCP": {model.Ingress, engine.StageBaseline, "BaselineAdminNetworkPolicy/default", 1},
			"x/a -> y/a 80/TCP": {model.Ingress, engine.StageDefault, "", 1},
		},
	}, {
		name:     "a NetworkPolicy that isolates the pod overrides the Baseline tier",
		cps:      []*model.ClusterPolicy{banp(nsSubject(""), []model.ClusterRule{crule(model.Deny, cpeers(nsPeer("")))}, nil)},
		policies: []*model.Policy{allowFromX},
		probes:   []probe{allow("x/a", "y/a", TCP, 80), deny("z/a", "y/a", TCP, 80), deny("y/a", "x/a", TCP, 80), allow("x/a", "x/a", TCP, 80)},
		stages: map[string]stageWant{
			"y/a -> x/a 80/TCP": {model.Ingress, engine.StageBaseline, "BaselineAdminNetworkPolicy/default", 0},
		},
	}, {
		name: "priority: the lower number decides; in a policy, the first rule that matches",
		cps: []*model.ClusterPolicy{
			cnp("late", model.AdminTier, 20, nsSubject("team=y"), []model.ClusterRule{crule(model.Accept, cpeers(nsPeer("")))}, nil),
			cnp("early", model.AdminTier, 5, nsSubject("team=y"), []model.ClusterRule{
				crule(model.Accept, cpeers(podsPeer("team=x", "pod=a"))),
				crule(model.Deny, cpeers(nsPeer("team=x"))),
			}, nil),
		},
		probes: []probe{allow("x/a", "y/a", TCP, 80), deny("x/b", "y/a", TCP, 80), allow("z/b", "y/a", TCP, 80)},
		stages: map[string]stageWant{
			"x/b -> y/a 80/TCP": {model.Ingress, engine.StageAdmin, "ClusterNetworkPolicy/early", 0},
			"z/b -> y/a 80/TCP": {model.Ingress, engine.StageAdmin, "ClusterNetworkPolicy/late", 0},
		},
	}, {
		name: "egress: networks match pods' addresses too; Accept still meets the destination's ingress",
		cps: []*model.ClusterPolicy{cnp("egress", model.AdminTier, 1, podSubject("team=x", "pod=a"), nil, []model.ClusterRule{
			crule(model.Accept, cpeers(netPeer("10.0.2.1/32"))),
			crule(model.Deny, cpeers(netPeer("10.0.0.0/8"))),
		})},
		policies: []*model.Policy{denyAll},
		probes:   []probe{deny("x/a", "y/a", TCP, 80), deny("x/a", "z/a", TCP, 80), allow("x/a@6", "z/a@6", TCP, 80), allow("x/b", "z/a", TCP, 80), allow("x/a", "203.0.113.5", TCP, 80)},
		stages: map[string]stageWant{
			"x/a -> y/a 80/TCP": {model.Egress, engine.StageAdmin, "ClusterNetworkPolicy/egress", 0},
			"x/a -> z/a 80/TCP": {model.Egress, engine.StageAdmin, "ClusterNetworkPolicy/egress", 0},
		},
	}, {
		name: "egress to nodes by label, a named port resolved on the destination pod, and a protocol that does not match",
		cluster: func(c *model.Cluster) {
			c.Nodes["n2"].Labels = map[string]string{"role": "infra"}
		},
		cps: []*model.ClusterPolicy{cnp("infra", model.BaselineTier, 1, nsSubject("team=z"), nil, []model.ClusterRule{
			crule(model.Deny, cpeers(model.ClusterPeer{Nodes: fixture.Sel("role=infra")})),
			crule(model.Deny, cpeers(nsPeer("team=x")), model.ClusterPort{Name: "http"}),
			crule(model.Deny, cpeers(nsPeer("team=y")), model.ClusterPort{Protocol: model.UDP, First: 80, Last: 80}),
		})},
		probes: []probe{
			deny("z/a", "192.168.0.2", TCP, 22), allow("z/a", "192.168.0.1", TCP, 22),
			deny("z/a", "x/a", TCP, 80), allow("z/a", "x/a", TCP, 8080), deny("z/a", "x/b", TCP, 8080), allow("z/a", "x/c", TCP, 80),
			allow("z/a", "y/a", TCP, 80), deny("z/a", "y/a", UDP, 80),
		},
	}, {
		name: "host-network pods are never subjects, nor pod peers",
		cps: []*model.ClusterPolicy{anp("all", 1, nsSubject(""), []model.ClusterRule{crule(model.Deny, cpeers(nsPeer("")))},
			[]model.ClusterRule{crule(model.Deny, cpeers(nsPeer("team=y")))})},
		probes: []probe{allow("x/host", "y/a", TCP, 80), allow("x/host", "x/a", TCP, 80), deny("x/a", "y/a", TCP, 80), allow("x/a", "192.168.0.2", TCP, 80)},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := baseCluster()
			if tc.cluster != nil {
				tc.cluster(c)
			}
			for _, p := range tc.policies {
				c.Policies[p.Key()] = p
			}
			for _, p := range tc.cps {
				c.ClusterPolicies[p.Key()] = p
			}
			e := engine.FromCluster(c)
			for _, pr := range tc.probes {
				checkProbe(t, c, e, pr)
				want, ok := tc.stages[pr.String()]
				if !ok {
					continue
				}
				v := e.Explain(engine.Conn{From: endpoint(t, e, pr.from), To: endpoint(t, e, pr.to), Protocol: pr.proto, Port: pr.port})
				d := v.Ingress
				if want.dir == model.Egress {
					d = v.Egress
				}
				got := ""
				if d.Cluster != nil {
					got = d.Cluster.Policy.String()
				}
				if d.Stage != want.stage || got != want.policy || len(d.Passed) != want.passed {
					t.Errorf("%v %s: decided by %v %q after %d passes, want %v %q after %d\n%s", pr, want.dir, d.Stage, got, len(d.Passed), want.stage, want.policy, want.passed, describeVerdict(v))
				}
			}
		})
	}
}

// TestClusterPolicyOrder checks the documented tie order among policies of
// one tier and priority: ClusterNetworkPolicy, AdminNetworkPolicy, then
// name; and that deleting the winner hands over to the next.
func TestClusterPolicyOrder(t *testing.T) {
	c := baseCluster()
	e := engine.FromCluster(c)
	deny := anp("a-deny", 7, nsSubject("team=y"), []model.ClusterRule{crule(model.Deny, cpeers(nsPeer("")))}, nil)
	accept := cnp("z-accept", model.AdminTier, 7, nsSubject("team=y"), []model.ClusterRule{crule(model.Accept, cpeers(nsPeer("")))}, nil)
	e.UpsertClusterPolicy(deny)
	e.UpsertClusterPolicy(accept)
	if ch := e.TakeChanges(); !ch.ClusterPolicies {
		t.Errorf("TakeChanges after UpsertClusterPolicy: ClusterPolicies = false")
	}
	conn := engine.Conn{From: endpoint(t, e, "x/a"), To: endpoint(t, e, "y/a"), Protocol: TCP, Port: 80}
	if v := e.Explain(conn); !v.Allowed || v.Ingress.Cluster == nil || v.Ingress.Cluster.Policy != accept.Key() {
		t.Errorf("equal priority: want the ClusterNetworkPolicy to decide first\n%s", describeVerdict(v))
	}
	e.DeleteClusterPolicy(accept.Key())
	if e.Allowed(conn) {
		t.Errorf("after deleting %v, %v should decide: deny", accept.Key(), deny.Key())
	}
	if got := len(e.ClusterPolicies()); got != 1 {
		t.Errorf("ClusterPolicies() has %d, want 1", got)
	}
}
