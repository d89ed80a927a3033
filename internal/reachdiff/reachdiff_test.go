package reachdiff

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
)

var v4, v6 = netip.IPv4Unspecified(), netip.IPv6Unspecified()

// cluster builds default/web (port 80), default/client and prod/api
// (port 8080), namespace prod labelled env=prod, with policies; tweak
// edits it further.
func cluster(tweak func(c *model.Cluster), pols ...*model.Policy) *model.Cluster {
	c := model.NewCluster()
	for _, ns := range []*model.Namespace{fixture.Namespace("default", ""), fixture.Namespace("prod", "env=prod")} {
		c.Namespaces[ns.Name] = ns
	}
	for _, p := range []*model.Pod{
		fixture.Pod("default/web", "app=web", []string{"10.0.0.1"}, fixture.CPort("http", model.TCP, 80)),
		fixture.Pod("default/client", "app=client", []string{"10.0.0.2"}),
		fixture.Pod("prod/api", "app=api", []string{"10.0.0.3"}, fixture.CPort("", model.TCP, 8080)),
	} {
		c.Pods[p.Key()] = p
	}
	for _, p := range pols {
		c.Policies[p.Key()] = p
	}
	if tweak != nil {
		tweak(c)
	}
	return c
}

// withWorkload adds default/api[Deployment] with replicas.
func withWorkload(replicas int) func(c *model.Cluster) {
	return func(c *model.Cluster) {
		p := &model.Pod{Namespace: "default", Name: "api[Deployment]", Workload: "Deployment", Replicas: replicas, Labels: fixture.Labels("app=api")}
		c.Pods[p.Key()] = p
	}
}

// withCluster adds cluster-wide policies.
func withCluster(ps ...*model.ClusterPolicy) func(c *model.Cluster) {
	return func(c *model.Cluster) {
		for _, p := range ps {
			c.ClusterPolicies[p.Key()] = p
		}
	}
}

// adminClient is an Admin-tier rule for ingress of app=web from
// app=client on 80/TCP with action a.
func adminClient(a model.Action) *model.ClusterPolicy {
	return &model.ClusterPolicy{Kind: model.KindAdminNetworkPolicy, Name: "client", Tier: model.AdminTier, Priority: 5,
		Subject: model.ClusterSubject{Pods: &model.NamespacedPods{PodSelector: *fixture.Sel("app=web")}},
		IngressRules: []model.ClusterRule{{Name: "client", Action: a,
			Peers: []model.ClusterPeer{{Pods: &model.NamespacedPods{PodSelector: *fixture.Sel("app=client")}}},
			Ports: []model.ClusterPort{{Protocol: model.TCP, First: 80, Last: 80}}}}}
}

// baselineProd denies ingress of app=web from namespaces env=prod.
var baselineProd = &model.ClusterPolicy{Kind: model.KindBaselineAdminNetworkPolicy, Name: "default", Tier: model.BaselineTier, Priority: model.BaselinePriority,
	Subject:      model.ClusterSubject{Pods: &model.NamespacedPods{PodSelector: *fixture.Sel("app=web")}},
	IngressRules: []model.ClusterRule{{Name: "prod", Action: model.Deny, Peers: []model.ClusterPeer{{Namespaces: fixture.Sel("env=prod")}}}}}

var (
	denyAll     = fixture.Policy("default/deny-all", fixture.Sel(""))
	allowClient = fixture.Policy("default/allow-client", fixture.Sel("app=web"),
		fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("app=client")), fixture.Port(model.TCP, 80))))
	allowClient8080 = fixture.Policy("default/allow-client", fixture.Sel("app=web"),
		fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("app=client")), fixture.Port(model.TCP, 8080))))
	fromProd = fixture.Policy("default/from-prod", fixture.Sel("app=web"),
		fixture.Ingress(fixture.Rule(fixture.Peers(fixture.NsPeer("env=prod")))))
)

// changes renders r's changes as "gained|lost FROM -> TO PORT".
func changes(r *Result) []string {
	out := []string{}
	for _, c := range r.Changes {
		word := "lost"
		if c.Gained {
			word = "gained"
		}
		out = append(out, fmt.Sprintf("%s %s -> %s %s", word, c.From, c.To, c.Port))
	}
	return out
}

func TestCompare(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new *model.Cluster
		want     []string
		// policies and reason say what every change's reasons must name
		// and contain.
		policies []string
		reason   string
		onlyNew  []string
	}{
		{name: "identical", old: cluster(nil, allowClient), new: cluster(nil, allowClient), want: []string{}},
		{name: "policy edit with no effect", old: cluster(nil, denyAll, allowClient),
			new: cluster(nil, denyAll, fixture.Policy("default/allow-client", fixture.Sel("app=web"),
				fixture.Ingress(fixture.Rule(fixture.Peers(fixture.PodPeer("app=client"), fixture.PodPeer("app=nobody")), fixture.Port(model.TCP, 80))))),
			want: []string{}},
		{name: "added allow", old: cluster(nil, denyAll), new: cluster(nil, denyAll, allowClient),
			want:     []string{"gained default/client -> default/web 80/TCP"},
			policies: []string{"default/allow-client"},
			reason:   "ingress of default/web: before isolated by default/deny-all with no rule allowing it; now allowed by new policy default/allow-client ingress rule 0"},
		{name: "removed policy", old: cluster(nil, denyAll), new: cluster(nil),
			want: []string{
				"gained default/client -> default/web 80/TCP", "gained default/client -> default/web 8080/TCP",
				"gained default/web -> default/client 80/TCP", "gained default/web -> default/client 8080/TCP",
				"gained prod/api -> default/client 80/TCP", "gained prod/api -> default/client 8080/TCP",
				"gained prod/api -> default/web 80/TCP", "gained prod/api -> default/web 8080/TCP",
			},
			policies: []string{"default/deny-all"},
			reason:   "before isolated by default/deny-all (deleted since) with no rule allowing it; now not isolated"},
		{name: "new default deny", old: cluster(nil, allowClient), new: cluster(nil, allowClient, denyAll),
			want: []string{
				"lost default/web -> default/client 80/TCP", "lost default/web -> default/client 8080/TCP",
				"lost prod/api -> default/client 80/TCP", "lost prod/api -> default/client 8080/TCP",
			},
			policies: []string{"default/deny-all"},
			reason:   "ingress of default/client: before not isolated; now isolated by new policy default/deny-all with no rule allowing it"},
		{name: "port change", old: cluster(nil, allowClient), new: cluster(nil, allowClient8080),
			want:     []string{"lost default/client -> default/web 80/TCP", "gained default/client -> default/web 8080/TCP"},
			policies: []string{"default/allow-client"},
			reason:   "changed policy default/allow-client"},
		{name: "namespace label change", old: cluster(nil, fromProd),
			new: cluster(func(c *model.Cluster) {
				c.Namespaces["prod"] = fixture.Namespace("prod", "env=staging")
			}, fromProd),
			want:     []string{"lost prod/api -> default/web 80/TCP", "lost prod/api -> default/web 8080/TCP"},
			policies: nil,
			reason:   "before allowed by default/from-prod ingress rule 0; now isolated by default/from-prod with no rule allowing it; no policy deciding it changed: labels of namespace prod changed"},
		{name: "one replica becomes three", old: cluster(withWorkload(1), denyAll), new: cluster(withWorkload(3), denyAll),
			want:   []string{"lost default/api[Deployment] -> default/api[Deployment] 80/TCP", "lost default/api[Deployment] -> default/api[Deployment] 8080/TCP"},
			reason: "before not subject to policy (a pod to itself); now isolated by default/deny-all with no rule allowing it; no policy deciding it changed: replicas of default/api[Deployment] changed from 1 to 3"},
		{name: "an Admin Deny added over a NetworkPolicy allow", old: cluster(nil, allowClient),
			new:      cluster(withCluster(adminClient(model.Deny)), allowClient),
			want:     []string{"lost default/client -> default/web 80/TCP"},
			policies: []string{"AdminNetworkPolicy/client"},
			reason:   `ingress of default/web: before allowed by default/allow-client ingress rule 0; now denied by the Admin tier: new policy AdminNetworkPolicy/client (Admin tier, priority 5) ingress rule 0 "client": Deny`},
		{name: "an Admin Pass becomes a Deny", old: cluster(withCluster(adminClient(model.Pass)), allowClient),
			new:      cluster(withCluster(adminClient(model.Deny)), allowClient),
			want:     []string{"lost default/client -> default/web 80/TCP"},
			policies: []string{"AdminNetworkPolicy/client"},
			reason:   `before passed by AdminNetworkPolicy/client (changed since; Admin tier, priority 5) ingress rule 0 "client": Pass, allowed by default/allow-client ingress rule 0; now denied by the Admin tier: changed policy AdminNetworkPolicy/client (Admin tier, priority 5) ingress rule 0 "client": Deny`},
		{name: "a Baseline Deny deleted", old: cluster(withCluster(baselineProd)), new: cluster(nil),
			want:     []string{"gained prod/api -> default/web 80/TCP", "gained prod/api -> default/web 8080/TCP"},
			policies: []string{"BaselineAdminNetworkPolicy/default"},
			reason:   `ingress of default/web: before not isolated by NetworkPolicy, denied by the Baseline tier: BaselineAdminNetworkPolicy/default (deleted since; Baseline tier, priority 1001) ingress rule 0 "prod": Deny; now not isolated`},
		{name: "pod only in new", old: cluster(nil, denyAll),
			new: cluster(func(c *model.Cluster) {
				p := fixture.Pod("default/extra", "app=x", []string{"10.0.0.9"})
				c.Pods[p.Key()] = p
			}, denyAll),
			want: []string{}, onlyNew: []string{"default/extra"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Compare(tc.old, tc.new, v4)
			if got := changes(r); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("changes:\n got %q\nwant %q", got, tc.want)
			}
			if !reflect.DeepEqual(r.OnlyNew, tc.onlyNew) || r.OnlyOld != nil {
				t.Errorf("only new %q, only old %q; want only new %q", r.OnlyNew, r.OnlyOld, tc.onlyNew)
			}
			if empty := len(tc.want) == 0 && len(tc.onlyNew) == 0; r.Empty() != empty {
				t.Errorf("Empty() = %v, want %v", r.Empty(), empty)
			}
			for _, c := range r.Changes {
				if len(c.Reasons) == 0 {
					t.Errorf("%s -> %s %s: no reason", c.From, c.To, c.Port)
				}
				for _, rs := range c.Reasons {
					if !reflect.DeepEqual(rs.Policies, tc.policies) {
						t.Errorf("%s -> %s %s: policies %q, want %q", c.From, c.To, c.Port, rs.Policies, tc.policies)
					}
					if !strings.Contains(rs.String(), tc.reason) {
						t.Errorf("%s -> %s %s: reason %q lacks %q", c.From, c.To, c.Port, rs, tc.reason)
					}
				}
			}
		})
	}
}

func TestPolicyChanges(t *testing.T) {
	r := Compare(cluster(nil, denyAll, allowClient), cluster(nil, allowClient8080, fromProd), v4)
	got := [][]string{r.Added, r.Deleted, r.Changed}
	want := [][]string{{"default/from-prod"}, {"default/deny-all"}, {"default/allow-client"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("added, deleted, changed = %q, want %q", got, want)
	}
}

func TestPortsDefault(t *testing.T) {
	c := model.NewCluster()
	p := fixture.Pod("default/a", "", nil)
	c.Pods[p.Key()] = p
	if got := Compare(c, c, v4).Ports; !reflect.DeepEqual(got, []Port{DefaultPort}) {
		t.Errorf("ports %v, want %v", got, []Port{DefaultPort})
	}
}

func TestWorkload(t *testing.T) {
	for _, tc := range []struct{ pod, want string }{
		{"default/web-7d9f8c6b5d-x2kqz", "default/web-*"},
		{"default/log-agent-x2kqz", "default/log-agent-*"},
		{"default/web[Deployment]", "default/web[Deployment]"},
		{"default/client-pod", "default/client-pod"},
		{"default/frontend", "default/frontend"},
		{"default/web-abcde", "default/web-abcde"}, // vowels: no generated suffix
	} {
		if got := Workload(tc.pod); got != tc.want {
			t.Errorf("Workload(%q) = %q, want %q", tc.pod, got, tc.want)
		}
	}
}

func TestLinesGroupsWorkloads(t *testing.T) {
	old := cluster(nil)
	for _, name := range []string{"web-7d9f8c6b5d-x2kqz", "web-7d9f8c6b5d-b4ttp"} {
		p := fixture.Pod("default/"+name, "app=web", nil)
		old.Pods[p.Key()] = p
	}
	new := cluster(nil, denyAll)
	for k, p := range old.Pods {
		new.Pods[k] = p
	}
	r := Compare(old, new, v4)
	var line *Line
	for i, l := range Lines(r, false) {
		if l.From == "default/web-*" && l.To == "default/web-*" {
			line = &Lines(r, false)[i]
		}
	}
	if line == nil {
		t.Fatalf("no line default/web-* -> default/web-* in %+v", Lines(r, false))
	}
	if len(line.Pairs) != 2 || line.Gained || !reflect.DeepEqual(line.Ports, []Port{{80, model.TCP}, {8080, model.TCP}}) {
		t.Errorf("line %+v: want 2 pod pairs (to each other, not to itself) lost on 80/TCP and 8080/TCP", *line)
	}
	for _, l := range Lines(r, true) {
		if strings.HasSuffix(l.From, "-*") || len(l.Pairs) != 0 {
			t.Errorf("by pod: line %+v is grouped", l)
		}
	}
}

// TestClusterPolicyChanges: the policy changes list cluster-wide policies
// by KIND/NAME, and the ports their rules name are compared.
func TestClusterPolicyChanges(t *testing.T) {
	withPort := func(port uint16) *model.ClusterPolicy {
		p := *adminClient(model.Deny)
		p.IngressRules = []model.ClusterRule{p.IngressRules[0]}
		p.IngressRules[0].Ports = []model.ClusterPort{{Protocol: model.UDP, First: port, Last: port}}
		return &p
	}
	r := Compare(cluster(withCluster(baselineProd, adminClient(model.Pass))), cluster(withCluster(withPort(9090))), v4)
	if want := []string{"BaselineAdminNetworkPolicy/default"}; !reflect.DeepEqual(r.Deleted, want) {
		t.Errorf("deleted %q, want %q", r.Deleted, want)
	}
	if want := []string{"AdminNetworkPolicy/client"}; !reflect.DeepEqual(r.Changed, want) || r.Added != nil {
		t.Errorf("changed %q added %q, want changed %q", r.Changed, r.Added, want)
	}
	var ports []string
	for _, p := range r.Ports {
		ports = append(ports, p.String())
	}
	if want := "80/TCP 8080/TCP 9090/UDP"; strings.Join(ports, " ") != want {
		t.Errorf("ports %q, want %q", ports, want)
	}
}

// An ipBlock of one family changes only that family's connections: -6
// compares the pods' IPv6 addresses.
func TestCompareFamily(t *testing.T) {
	dual := func(c *model.Cluster) {
		for i, k := range []model.Key{{Namespace: "default", Name: "web"}, {Namespace: "default", Name: "client"}, {Namespace: "prod", Name: "api"}} {
			p := c.Pods[k]
			p.IPs = append(p.IPs, netip.MustParseAddr(fmt.Sprintf("fd00::%d", i+1)))
		}
	}
	fromV6Client := fixture.Policy("default/from-v6-client", fixture.Sel("app=web"),
		fixture.Ingress(fixture.Rule(fixture.Peers(fixture.BlockPeer("fd00::2/128")))))
	denyAll := fixture.Policy("default/deny-all", &model.Selector{}, fixture.Types(model.Ingress))
	old, new := cluster(dual, denyAll), cluster(dual, denyAll, fromV6Client)
	for _, tc := range []struct {
		family netip.Addr
		want   []string
	}{
		{v4, nil},
		{v6, []string{"default/client -> default/web 80/TCP gained", "default/client -> default/web 8080/TCP gained"}},
	} {
		var got []string
		for _, c := range Compare(old, new, tc.family).Changes {
			verb := "lost"
			if c.Gained {
				verb = "gained"
			}
			got = append(got, fmt.Sprintf("%s -> %s %d/%s %s", c.From, c.To, c.Port.Port, c.Port.Protocol, verb))
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("family %s: %q, want %q", tc.family, got, tc.want)
		}
	}
}
