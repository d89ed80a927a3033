package render

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// tiered: ingress of db is denied from web by an Admin Deny, handed to
// NetworkPolicy (which allows cache) by an Admin Pass from cache, and
// every other pod's ingress is denied by the Baseline tier.
func tiered() (*engine.Engine, []*model.Pod) {
	c := model.NewCluster()
	var pods []*model.Pod
	for i, name := range []string{"web", "db", "cache", "other"} {
		p := &model.Pod{Namespace: "default", Name: name, Labels: map[string]string{"app": name},
			IPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})}}
		c.Pods[p.Key()] = p
		pods = append(pods, p)
	}
	app := func(v string) *model.NamespacedPods {
		return &model.NamespacedPods{PodSelector: model.Selector{MatchLabels: map[string]string{"app": v}}}
	}
	all := &model.Selector{}
	for _, p := range []*model.ClusterPolicy{
		{Kind: model.KindAdminNetworkPolicy, Name: "deny-web", Tier: model.AdminTier, Priority: 10, Subject: model.ClusterSubject{Pods: app("db")},
			IngressRules: []model.ClusterRule{{Name: "no-web", Action: model.Deny, Peers: []model.ClusterPeer{{Pods: app("web")}}}}},
		{Kind: model.KindAdminNetworkPolicy, Name: "pass-cache", Tier: model.AdminTier, Priority: 20, Subject: model.ClusterSubject{Pods: app("db")},
			IngressRules: []model.ClusterRule{{Name: "to-np", Action: model.Pass, Peers: []model.ClusterPeer{{Pods: app("cache")}}}}},
		{Kind: model.KindBaselineAdminNetworkPolicy, Name: "default", Tier: model.BaselineTier, Priority: model.BaselinePriority,
			Subject:      model.ClusterSubject{Namespaces: all},
			IngressRules: []model.ClusterRule{{Name: "deny-all", Action: model.Deny, Peers: []model.ClusterPeer{{Namespaces: all}}}}},
	} {
		c.ClusterPolicies[p.Key()] = p
	}
	np := &model.Policy{Namespace: "default", Name: "db-allow", PodSelector: model.Selector{MatchLabels: map[string]string{"app": "db"}},
		Ingress: true, IngressRules: []model.Rule{{Peers: []model.Peer{{PodSelector: &model.Selector{MatchLabels: map[string]string{"app": "cache"}}}}}}}
	c.Policies[np.Key()] = np
	return engine.FromCluster(c), pods
}

// TestClusterCellWhy: a cell's explanation names the cluster rule that
// decided, the Pass that handed it to NetworkPolicy, and never calls a
// direction a Baseline rule denied "not isolated".
func TestClusterCellWhy(t *testing.T) {
	e, pods := tiered()
	m := Build(e, pods, netip.IPv4Unspecified(), []Probe{{Port: 80, Protocol: model.TCP}}, true)
	at := map[string]int{}
	for i, p := range m.Pods {
		at[p.Key] = i
	}
	tests := []struct {
		from, to string
		verdict  Verdict
		want     []string
		not      []string
	}{
		{"default/web", "default/db", Deny,
			[]string{`ingress of default/db denied by the Admin tier: AdminNetworkPolicy/deny-web (Admin tier, priority 10) ingress rule 0 "no-web": Deny`},
			[]string{"ingress of default/db not isolated"}},
		{"default/cache", "default/db", Allow,
			[]string{`ingress of default/db passed by AdminNetworkPolicy/pass-cache (Admin tier, priority 20) ingress rule 0 "to-np": Pass, isolated by default/db-allow, allowed by default/db-allow ingress[0]`},
			nil},
		{"default/other", "default/web", Deny,
			[]string{`ingress of default/web not isolated by NetworkPolicy, denied by the Baseline tier: BaselineAdminNetworkPolicy/default (Baseline tier, priority 1001) ingress rule 0 "deny-all": Deny`},
			[]string{"web not isolated;", "web not isolated\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.from+"->"+tt.to, func(t *testing.T) {
			c := m.Grids[0].Cells[at[tt.from]][at[tt.to]]
			if c.Verdict != tt.verdict {
				t.Errorf("verdict %v, want %v", c.Verdict, tt.verdict)
			}
			for _, w := range tt.want {
				if !strings.Contains(c.Why, w) {
					t.Errorf("why lacks %q:\n%s", w, c.Why)
				}
			}
			for _, b := range tt.not {
				if strings.Contains(c.Why+"\n", b) {
					t.Errorf("why has %q:\n%s", b, c.Why)
				}
			}
		})
	}
	db := m.Pods[at["default/db"]]
	want := "AdminNetworkPolicy/deny-web (Admin tier, priority 10), AdminNetworkPolicy/pass-cache (Admin tier, priority 20), BaselineAdminNetworkPolicy/default (Baseline tier, priority 1001)"
	if got := strings.Join(db.ClusterIngress, ", "); got != want {
		t.Errorf("db's ingress cluster policies %q, want %q", got, want)
	}
	if title := podTitle(db); !strings.Contains(title, "ingress cluster policies: "+want) {
		t.Errorf("db's title lacks its cluster policies:\n%s", title)
	}
	if len(db.ClusterEgress) != 0 {
		t.Errorf("db's egress cluster policies %v, want none", db.ClusterEgress)
	}
}
