package cli

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// tieredCluster has four pods in default and, for ingress of db: an Admin
// Deny from web (priority 10), an Admin Pass from cache (priority 20), a
// NetworkPolicy allowing cache; and a Baseline Deny of all ingress to
// every pod.
func tieredCluster() *model.Cluster {
	c := model.NewCluster()
	c.EnsureNamespace("default")
	for i, name := range []string{"web", "db", "cache", "other"} {
		p := &model.Pod{Namespace: "default", Name: name, Labels: map[string]string{"app": name},
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})}}
		c.Pods[p.Key()] = p
	}
	app := func(v string) *model.NamespacedPods {
		return &model.NamespacedPods{PodSelector: model.Selector{MatchLabels: map[string]string{"app": v}}}
	}
	all := &model.Selector{}
	for _, p := range []*model.ClusterPolicy{
		{Kind: model.KindAdminNetworkPolicy, Name: "deny-web-db", Tier: model.AdminTier, Priority: 10,
			Subject:      model.ClusterSubject{Pods: app("db")},
			IngressRules: []model.ClusterRule{{Name: "deny-web", Action: model.Deny, Peers: []model.ClusterPeer{{Pods: app("web")}}}}},
		{Kind: model.KindAdminNetworkPolicy, Name: "pass-cache", Tier: model.AdminTier, Priority: 20,
			Subject: model.ClusterSubject{Pods: app("db")},
			IngressRules: []model.ClusterRule{{Name: "to-np", Action: model.Pass, Peers: []model.ClusterPeer{{Pods: app("cache")}},
				Ports: []model.ClusterPort{{Protocol: model.TCP, First: 5432, Last: 5432}}}}},
		{Kind: model.KindBaselineAdminNetworkPolicy, Name: "default", Tier: model.BaselineTier, Priority: model.BaselinePriority,
			Subject:      model.ClusterSubject{Namespaces: all},
			IngressRules: []model.ClusterRule{{Name: "deny-all", Action: model.Deny, Peers: []model.ClusterPeer{{Namespaces: all}}}}},
	} {
		c.ClusterPolicies[p.Key()] = p
	}
	np := &model.Policy{Namespace: "default", Name: "db-allow", PodSelector: model.Selector{MatchLabels: map[string]string{"app": "db"}},
		Ingress: true, IngressRules: []model.Rule{{Peers: []model.Peer{{PodSelector: &model.Selector{MatchLabels: map[string]string{"app": "cache"}}}}}}}
	c.Policies[np.Key()] = np
	return c
}

func tieredConn(t *testing.T, e *engine.Engine, from, to string) engine.Conn {
	t.Helper()
	f, d := e.Pod(model.Key{Namespace: "default", Name: from}), e.Pod(model.Key{Namespace: "default", Name: to})
	src, _ := engine.PodEndpoint(f, netip.Addr{})
	dst, _ := engine.PodEndpoint(d, netip.Addr{})
	return engine.Conn{From: src, To: dst, Protocol: model.TCP, Port: 5432}
}

// TestCheckClusterStages: check's text and JSON say which stage decided
// each direction, the cluster rule that did, the Pass that handed it on,
// and the cluster rules passed over.
func TestCheckClusterStages(t *testing.T) {
	e := engine.FromCluster(tieredCluster())
	tests := []struct {
		name, from, to string
		allowed        bool
		stage          string // ingress's
		out            []string
		notOut         []string
	}{
		{"an Admin Deny decides before NetworkPolicy", "web", "db", false, "admin",
			[]string{`ingress of default/db: denied by the Admin tier (NetworkPolicy not consulted)`,
				`decided by AdminNetworkPolicy/deny-web-db (Admin tier, priority 10) ingress rule 0 "deny-web": Deny`,
				"egress of default/web: not isolated (no policy selects it for Egress): allowed"},
			[]string{"ingress of default/db: not isolated", "isolated by default/db-allow"}},
		{"a Pass hands the decision to NetworkPolicy, which allows", "cache", "db", true, "networkPolicy",
			[]string{"ingress of default/db: isolated by default/db-allow",
				`not matched: AdminNetworkPolicy/deny-web-db (Admin tier, priority 10) ingress rule 0 "deny-web": Deny: source default/cache is not a peer of this rule`,
				`passed by AdminNetworkPolicy/pass-cache (Admin tier, priority 20) ingress rule 0 "to-np": Pass → NetworkPolicy decides`,
				"allowed by default/db-allow ingress[0]"},
			[]string{"Baseline"}},
		{"the Baseline tier decides what NetworkPolicy leaves alone", "other", "web", false, "baseline",
			[]string{"ingress of default/web: not isolated by NetworkPolicy; denied by the Baseline tier",
				`decided by BaselineAdminNetworkPolicy/default (Baseline tier, priority 1001) ingress rule 0 "deny-all": Deny`},
			[]string{"ingress of default/web: not isolated (", "web: not isolated by NetworkPolicy, and no cluster rule decides: allowed"}},
		{"NetworkPolicy denies after the Admin rules miss; Baseline is not reached", "other", "db", false, "networkPolicy",
			[]string{"ingress of default/db: isolated by default/db-allow", "denied: no rule allows it",
				`not matched: AdminNetworkPolicy/pass-cache (Admin tier, priority 20) ingress rule 0 "to-np": Pass: source default/other is not a peer of this rule`},
			[]string{"decided by", "passed by"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tieredConn(t, e, tt.from, tt.to)
			v := e.Explain(c)
			if v.Allowed != tt.allowed {
				t.Fatalf("allowed = %v, want %v", v.Allowed, tt.allowed)
			}
			res := checkResult{Verdict: verdictWord(v.Allowed), From: c.From.String(), To: c.To.String(), Protocol: "TCP", Port: 5432,
				Results: []connVerdict{{From: c.From.String(), To: c.To.String(), Port: 5432, Allowed: v.Allowed,
					Egress: explainDecision(e, c, v.Egress), Ingress: explainDecision(e, c, v.Ingress)}}}
			var buf bytes.Buffer
			writeCheck(&buf, res)
			out := buf.String()
			for _, want := range tt.out {
				if !strings.Contains(out, want) {
					t.Errorf("text lacks %q:\n%s", want, out)
				}
			}
			for _, bad := range tt.notOut {
				if strings.Contains(out, bad) {
					t.Errorf("text has %q:\n%s", bad, out)
				}
			}
			buf.Reset()
			if err := writeJSON(&buf, res); err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Connections []struct {
					Ingress struct {
						Stage       string           `json:"stage"`
						Allowed     bool             `json:"allowed"`
						ClusterRule *jsonClusterRule `json:"clusterRule"`
						PassedBy    []jsonClusterRule
					} `json:"ingress"`
				} `json:"connections"`
			}
			if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			in := doc.Connections[0].Ingress
			if in.Stage != tt.stage || in.Allowed != tt.allowed {
				t.Errorf("json ingress stage %q allowed %v, want %q %v", in.Stage, in.Allowed, tt.stage, tt.allowed)
			}
			if (in.ClusterRule != nil) != (tt.stage == "admin" || tt.stage == "baseline") {
				t.Errorf("json clusterRule = %+v for stage %s", in.ClusterRule, tt.stage)
			}
		})
	}
}

// TestCheckClusterJSONRule: -o json names the deciding rule's policy,
// tier, priority, index, name and action, and the Pass rules.
func TestCheckClusterJSONRule(t *testing.T) {
	e := engine.FromCluster(tieredCluster())
	deny := toJSONDecision(e.Explain(tieredConn(t, e, "web", "db")).Ingress)
	want := jsonClusterRule{Policy: "AdminNetworkPolicy/deny-web-db", Tier: "Admin", Priority: 10, Direction: "Ingress", Index: 0, Rule: "deny-web", Action: "Deny"}
	if deny.ClusterRule == nil || *deny.ClusterRule != want {
		t.Errorf("clusterRule = %+v, want %+v", deny.ClusterRule, want)
	}
	pass := toJSONDecision(e.Explain(tieredConn(t, e, "cache", "db")).Ingress)
	if len(pass.PassedBy) != 1 || pass.PassedBy[0].Policy != "AdminNetworkPolicy/pass-cache" || pass.PassedBy[0].Action != "Pass" {
		t.Errorf("passedBy = %+v", pass.PassedBy)
	}
	if len(pass.ClusterMisses) != 1 || pass.ClusterMisses[0].Policy != "AdminNetworkPolicy/deny-web-db" {
		t.Errorf("clusterNotMatched = %+v", pass.ClusterMisses)
	}
	if r := reason(e.Explain(tieredConn(t, e, "web", "db"))); !strings.Contains(r, `ingress denied by AdminNetworkPolicy/deny-web-db (Admin tier, priority 10) ingress rule 0 "deny-web": Deny`) {
		t.Errorf("test's reason = %q", r)
	}
}

// TestExplainClusterPolicies: explain POD lists, per direction, the
// cluster policies that apply to it in evaluation order, before the
// NetworkPolicies, and does not call a pod unrestricted that a cluster
// policy restricts.
func TestExplainClusterPolicies(t *testing.T) {
	e := engine.FromCluster(tieredCluster())
	tests := []struct {
		pod      string
		policies []string // ingress's, in order
		out      []string
		notOut   []string
	}{
		{"db", []string{"AdminNetworkPolicy/deny-web-db", "AdminNetworkPolicy/pass-cache", "BaselineAdminNetworkPolicy/default"},
			[]string{"  ingress: cluster policies apply",
				"    AdminNetworkPolicy/deny-web-db (Admin tier, priority 10), subject pods app=db in namespaces <all>\n",
				`      rule 0 "deny-web": Deny from pods app=web in namespaces <all>: default/web on any port`,
				`      rule 0 "to-np": Pass from pods app=cache in namespaces <all>: default/cache on 5432/TCP`,
				"    BaselineAdminNetworkPolicy/default (Baseline tier, priority 1001)",
				"  ingress: isolated by default/db-allow",
				"  egress: not isolated: where it may connect is not restricted"},
			nil},
		{"web", []string{"BaselineAdminNetworkPolicy/default"},
			[]string{"  ingress: no NetworkPolicy isolates it: what no cluster rule decides is allowed",
				`rule 0 "deny-all": Deny from pods in namespaces <all>: default/cache, default/db, default/other, default/web on any port`},
			[]string{"ingress: not isolated", "deny-web-db"}},
	}
	for _, tt := range tests {
		t.Run(tt.pod, func(t *testing.T) {
			d := explainPod(e, e.Pod(model.Key{Namespace: "default", Name: tt.pod}))
			var got []string
			for _, p := range d.Ingress.ClusterPolicies {
				got = append(got, p.Policy)
			}
			if strings.Join(got, " ") != strings.Join(tt.policies, " ") {
				t.Errorf("ingress cluster policies %v, want %v", got, tt.policies)
			}
			if len(d.Egress.ClusterPolicies) != 0 {
				t.Errorf("egress cluster policies %+v, want none (no egress rules)", d.Egress.ClusterPolicies)
			}
			var buf bytes.Buffer
			writeExplained(&buf, d)
			out := buf.String()
			for _, want := range tt.out {
				if !strings.Contains(out, want) {
					t.Errorf("text lacks %q:\n%s", want, out)
				}
			}
			for _, bad := range tt.notOut {
				if strings.Contains(out, bad) {
					t.Errorf("text has %q:\n%s", bad, out)
				}
			}
			// The cluster policies come before the NetworkPolicies.
			if i, j := strings.Index(out, "ingress: cluster policies"), strings.Index(out, "ingress: isolated"); j >= 0 && i > j {
				t.Errorf("cluster policies after NetworkPolicies:\n%s", out)
			}
		})
	}
}
