package findings

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
)

// base is a small cluster: namespace prod (team=a) with pods web (http
// 8080/TCP, 10.0.0.1) and db (pg 5432/TCP, 10.0.0.2), and kube-system
// with CoreDNS (dns 53/UDP).
const base = `
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {team: a}}
---
apiVersion: v1
kind: Namespace
metadata: {name: kube-system}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: prod, labels: {app: web}}
spec: {containers: [{name: c, image: nginx, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: prod, labels: {app: db}}
spec: {containers: [{name: c, image: postgres, ports: [{name: pg, containerPort: 5432}]}]}
status: {podIP: 10.0.0.2, podIPs: [{ip: 10.0.0.2}]}
---
apiVersion: v1
kind: Pod
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec: {containers: [{name: c, image: coredns, ports: [{name: dns, containerPort: 53, protocol: UDP}]}]}
status: {podIP: 10.0.9.1, podIPs: [{ip: 10.0.9.1}]}
`

// policy wraps a spec into a NetworkPolicy web-policy of prod.
func policy(name, spec string) string {
	return "\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: " + name + ", namespace: prod}\nspec: " + spec + "\n"
}

const dnsRule = `{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}], ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]}`

func TestCheck(t *testing.T) {
	type checkCase struct {
		name string
		yaml string
		want []string // "CODE ns/name field", "CODE Kind/name field" for cluster policies
	}
	cases := []checkCase{
		{"clean ingress by named port", base + policy("web", `{podSelector: {matchLabels: {app: web}}, ingress: [{from: [{podSelector: {matchLabels: {app: db}}}], ports: [{port: http}]}]}`), nil},
		{"clean egress with DNS", base + policy("web", `{podSelector: {matchLabels: {app: web}}, policyTypes: [Egress], egress: [{to: [{podSelector: {matchLabels: {app: db}}}], ports: [{port: 5432}]}, `+dnsRule+`]}`), nil},
		{"clean default deny with DNS elsewhere", base + policy("deny", `{podSelector: {}, policyTypes: [Egress]}`) + policy("dns", `{podSelector: {}, egress: [`+dnsRule+`]}`), nil},
		{"clean namespace selector", base + policy("web", `{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: a}}, podSelector: {matchLabels: {app: db}}}]}]}`), nil},
		{"clean ipBlock outside the pods", base + policy("web", `{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 0.0.0.0/0}}, {ipBlock: {cidr: 10.0.0.0/24, except: [10.0.0.0/28]}}, {ipBlock: {cidr: 192.168.0.0/16}}]}]}`), nil},
		{"clean endPort range", base + policy("web", `{podSelector: {matchLabels: {app: web}}, ingress: [{ports: [{port: 8000, endPort: 8100}]}]}`), nil},
		{"no pods: pod checks stay silent", policy("web", `{podSelector: {matchLabels: {app: web}}, ingress: [{from: [{podSelector: {matchLabels: {app: nope}}}], ports: [{port: grpc}]}]}`), nil},
		{"no Namespace objects: namespace checks stay silent", policy("web", `{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: x}}}]}]}`), nil},

		{"PL001", base + policy("web", `{podSelector: {matchLabels: {app: nope}}}`),
			[]string{"PL001 prod/web spec.podSelector"}},
		{"PL002", base + policy("web", `{podSelector: {}, ingress: [{from: [{podSelector: {matchLabels: {app: nope}}}]}]}`),
			[]string{"PL002 prod/web spec.ingress[0].from[0].podSelector"}},
		{"PL003", base + policy("web", `{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {team: b}}}]}]}`),
			[]string{"PL003 prod/web spec.ingress[0].from[0].namespaceSelector"}},
		{"PL004", base + policy("web", `{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {env: prod}}}]}]}`),
			[]string{"PL004 prod/web spec.ingress[0].from[0].namespaceSelector"}},
		{"PL005 key", base + policy("web", `{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata-name: prod}}}]}]}`),
			[]string{"PL005 prod/web spec.ingress[0].from[0].namespaceSelector"}},
		{"PL005 value", base + policy("web", `{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: prdo}}}]}]}`),
			[]string{"PL005 prod/web spec.ingress[0].from[0].namespaceSelector"}},
		{"PL006 same policy", base + policy("web", `{podSelector: {}, ingress: [{from: [{podSelector: {}}]}, {from: [{podSelector: {matchLabels: {app: db}}}], ports: [{port: 80}]}]}`),
			[]string{"PL006 prod/web spec.ingress[1]"}},
		{"PL006 duplicate across policies", base + policy("a", `{podSelector: {matchLabels: {app: web}}, ingress: [{ports: [{port: 8000, endPort: 9000}]}]}`) + policy("b", `{podSelector: {matchLabels: {app: web}}, ingress: [{ports: [{port: 8080}]}]}`),
			[]string{"PL006 prod/b spec.ingress[0]"}},
		{"PL006 equal rules: the later one", base + policy("web", `{podSelector: {}, ingress: [{ports: [{port: 80}]}, {ports: [{port: 80}]}]}`),
			[]string{"PL006 prod/web spec.ingress[1]"}},
		{"clean: egress rules a policy does not enforce are not compared", base + policy("web", `{podSelector: {}, policyTypes: [Ingress], egress: [{}, {}]}`), nil},
		{"PL007", base + policy("deny", `{podSelector: {}, policyTypes: [Ingress, Egress]}`),
			[]string{"PL007 prod/deny spec.policyTypes"}},
		{"PL008", base + policy("web", `{podSelector: {matchLabels: {app: web}}, egress: [{to: [{podSelector: {matchLabels: {app: db}}}], ports: [{port: 5432}]}]}`),
			[]string{"PL008 prod/web spec.egress"}},
		{"PL009 ingress", base + policy("web", `{podSelector: {matchLabels: {app: web}}, ingress: [{ports: [{port: grpc}]}]}`),
			[]string{"PL009 prod/web spec.ingress[0].ports[0].port"}},
		{"PL009 egress", base + policy("web", `{podSelector: {matchLabels: {app: web}}, egress: [{to: [{podSelector: {matchLabels: {app: db}}}], ports: [{port: http}]}, `+dnsRule+`]}`),
			[]string{"PL009 prod/web spec.egress[0].ports[0].port"}},
		{"PL010", base + policy("web", `{podSelector: {matchLabels: {app: web}}, ingress: [{ports: [{port: 9000, endPort: 9100}]}]}`),
			[]string{"PL010 prod/web spec.ingress[0].ports[0].endPort"}},
		{"PL011", base + policy("web", `{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.2/32}}]}]}`),
			[]string{"PL011 prod/web spec.ingress[0].from[0].ipBlock"}},
		{"PL012", base + strings.Replace(policy("web", `{podSelector: {}}`), "namespace: prod", "namespace: prdo", 1),
			[]string{"PL012 prdo/web metadata.namespace"}},
	}
	for _, tc := range clusterCases {
		cases = append(cases, checkCase{tc.name, tc.yaml, tc.want})
	}
	covered := map[string]bool{}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := read(t, tc.yaml)
			if j := i - (len(cases) - len(clusterCases)); j >= 0 {
				for _, p := range clusterCases[j].cluster {
					in.Cluster.ClusterPolicies[p.Key()] = p
				}
			}
			got := render(Check(in))
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
		})
		for _, w := range tc.want {
			covered[strings.Fields(w)[0]] = true
		}
	}
	for _, r := range Rules {
		if !covered[r.Code] {
			t.Errorf("no case for %s (%s)", r.Code, r.Name)
		}
	}
}

// clusterCases are TestCheck's cases of cluster-wide policies, which
// are added to what yaml reads.
var clusterCases = []struct {
	name    string
	yaml    string
	want    []string
	cluster []*model.ClusterPolicy
}{
	{"clean cluster policies", base, nil, []*model.ClusterPolicy{
		anp("guard", 10, dbSubject, model.ClusterRule{Action: model.Deny, Peers: []model.ClusterPeer{{Pods: pods("prod", "app=web")}}}),
		anp("other", 10, webSubject, model.ClusterRule{Action: model.Deny, Peers: []model.ClusterPeer{{Pods: pods("prod", "app=db")}}}),
		anp("same-priority-other-peers", 20, dbSubject, model.ClusterRule{Action: model.Accept, Peers: []model.ClusterPeer{{Pods: pods("prod", "app=web")}},
			Ports: []model.ClusterPort{{Protocol: model.TCP, First: 80, Last: 80}}}),
		anp("same-priority-other-ports", 20, dbSubject, model.ClusterRule{Action: model.Deny, Peers: []model.ClusterPeer{{Namespaces: sel("")}},
			Ports: []model.ClusterPort{{Protocol: model.UDP, First: 53, Last: 53}}}),
		{Kind: model.KindClusterNetworkPolicy, Name: "baseline", Tier: model.BaselineTier, Priority: 5, Subject: dbSubject,
			IngressRules: []model.ClusterRule{{Action: model.Accept, Peers: []model.ClusterPeer{{Networks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}}}},
	}},
	{"no pods: cluster pod checks stay silent", "", nil, []*model.ClusterPolicy{
		anp("a", 1, dbSubject, model.ClusterRule{Action: model.Deny, Peers: []model.ClusterPeer{{Pods: pods("prod", "app=nope")}}}),
		anp("b", 1, dbSubject, model.ClusterRule{Action: model.Deny, Peers: []model.ClusterPeer{{Namespaces: sel("")}}}),
	}},
	{"PL013 pods", base, []string{"PL013 AdminNetworkPolicy/guard spec.subject.pods"}, []*model.ClusterPolicy{
		anp("guard", 1, model.ClusterSubject{Pods: pods("prod", "app=nope")}),
	}},
	{"PL013 namespaces", base, []string{"PL013 AdminNetworkPolicy/guard spec.subject.namespaces"}, []*model.ClusterPolicy{
		anp("guard", 1, model.ClusterSubject{Namespaces: sel("team=b")}),
	}},
	{"PL014 pods", base, []string{"PL014 AdminNetworkPolicy/guard spec.ingress[0].from[1].pods"}, []*model.ClusterPolicy{
		anp("guard", 1, dbSubject, model.ClusterRule{Action: model.Deny, Peers: []model.ClusterPeer{{Pods: pods("prod", "app=web")}, {Pods: pods("prod", "app=nope")}}}),
	}},
	{"PL014 namespaces, egress", base, []string{"PL014 AdminNetworkPolicy/guard spec.egress[1].to[0].namespaces"}, []*model.ClusterPolicy{
		{Kind: model.KindAdminNetworkPolicy, Name: "guard", Tier: model.AdminTier, Priority: 1, Subject: dbSubject,
			EgressRules: []model.ClusterRule{{Action: model.Accept, Peers: []model.ClusterPeer{{Namespaces: sel("")}}}, {Action: model.Deny, Peers: []model.ClusterPeer{{Namespaces: sel("team=b")}}}}},
	}},
	{"PL015", base, []string{"PL015 AdminNetworkPolicy/a spec.priority"}, []*model.ClusterPolicy{
		anp("a", 7, model.ClusterSubject{Namespaces: sel("team=a")}, model.ClusterRule{Action: model.Deny, Peers: []model.ClusterPeer{{Pods: pods("prod", "app=web")}}}),
		{Kind: model.KindClusterNetworkPolicy, Name: "b", Tier: model.AdminTier, Priority: 7, Subject: dbSubject,
			IngressRules: []model.ClusterRule{{Action: model.Accept, Peers: []model.ClusterPeer{{Networks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/30")}}},
				Ports: []model.ClusterPort{{Protocol: model.TCP, First: 8000, Last: 8100}}}}},
	}},
	{"PL015 through overlapping networks", base, []string{"PL015 AdminNetworkPolicy/b spec.priority"}, []*model.ClusterPolicy{
		anp("a", 7, dbSubject, model.ClusterRule{Action: model.Deny, Peers: []model.ClusterPeer{{Networks: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}}}}),
		anp("b", 7, dbSubject, model.ClusterRule{Action: model.Accept, Peers: []model.ClusterPeer{{Networks: []netip.Prefix{netip.MustParsePrefix("192.168.4.0/24")}}}}),
	}},
	{"PL016", base, []string{"PL016 ClusterNetworkPolicy/base spec.ingress[1].action"}, []*model.ClusterPolicy{
		{Kind: model.KindClusterNetworkPolicy, Name: "base", Tier: model.BaselineTier, Priority: 1, Subject: dbSubject,
			IngressRules: []model.ClusterRule{{Action: model.Deny, Peers: []model.ClusterPeer{{Pods: pods("prod", "app=web")}}},
				{Action: model.Pass, Peers: []model.ClusterPeer{{Namespaces: sel("")}}}}},
	}},
	{"PL017", base + policy("db-allow", `{podSelector: {matchLabels: {app: db}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]}`),
		[]string{"PL017 AdminNetworkPolicy/guard spec.ingress[1]"}, []*model.ClusterPolicy{
			anp("guard", 1, dbSubject, model.ClusterRule{Action: model.Accept, Peers: []model.ClusterPeer{{Pods: pods("prod", "app=web")}}},
				model.ClusterRule{Action: model.Deny, Peers: []model.ClusterPeer{{Namespaces: sel("")}}}),
		}},
	{"clean: a Pass before the Admin rule leaves NetworkPolicy something to decide",
		base + policy("db-allow", `{podSelector: {matchLabels: {app: db}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]}`),
		nil, []*model.ClusterPolicy{
			anp("pass", 1, dbSubject, model.ClusterRule{Action: model.Pass, Peers: []model.ClusterPeer{{Pods: pods("prod", "app=web")}}}),
			anp("guard", 2, dbSubject, model.ClusterRule{Action: model.Deny, Peers: []model.ClusterPeer{{Namespaces: sel("")}}}),
		}},
	{"clean: an Admin rule on some ports", base + policy("db-allow", `{podSelector: {matchLabels: {app: db}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]}`),
		nil, []*model.ClusterPolicy{
			anp("guard", 1, dbSubject, model.ClusterRule{Action: model.Deny, Peers: []model.ClusterPeer{{Namespaces: sel("")}},
				Ports: []model.ClusterPort{{Protocol: model.TCP, First: 22, Last: 22}}}),
		}},
}

// TestSeed: the seed article's manifests give what a reader expects:
// nothing for the app and its frontend policy, and for default-deny-all
// the DNS it blocks (the article's own point).
func TestSeed(t *testing.T) {
	seed := func(names ...string) string {
		var b strings.Builder
		for _, n := range names {
			data, err := os.ReadFile(filepath.Join("../../examples/seed", n))
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString("\n---\n")
			b.Write(data)
		}
		return b.String()
	}
	cases := []struct {
		files []string
		want  []string
	}{
		{[]string{"sample-app.yaml"}, nil},
		{[]string{"sample-app.yaml", "frontend-policy.yaml"}, nil},
		{[]string{"sample-app.yaml", "default-deny-all.yaml"}, []string{"PL007 default/default-deny-all spec.policyTypes"}},
		{[]string{"sample-app.yaml", "frontend-policy.yaml", "default-deny-all.yaml"}, []string{"PL007 default/default-deny-all spec.policyTypes"}},
	}
	for _, tc := range cases {
		got := render(Check(read(t, seed(tc.files...))))
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%v: got %q, want %q", tc.files, got, tc.want)
		}
	}
}

func read(t *testing.T, yaml string) Input {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	objs, err := manifest.ReadWith([]string{path}, nil, &strings.Builder{}, manifest.Options{Quiet: true})
	if err != nil {
		t.Fatal(err)
	}
	in, err := FromObjects(objs)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func render(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		if f.Message == "" || f.Fix == "" || f.Severity != RuleFor(f.Code).Severity {
			out = append(out, "incomplete: "+f.Code)
		}
		obj := f.Key.String()
		if f.Key.Namespace == "" {
			obj = f.Kind + "/" + f.Key.Name
		}
		out = append(out, f.Code+" "+obj+" "+f.Field)
	}
	return out
}

func sel(s string) *model.Selector {
	out := model.Selector{MatchLabels: map[string]string{}}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out.MatchLabels[k] = v
		}
	}
	return &out
}

// pods selects the pods matching podSel in namespace ns.
func pods(ns, podSel string) *model.NamespacedPods {
	return &model.NamespacedPods{NamespaceSelector: *sel(model.NamespaceNameLabel + "=" + ns), PodSelector: *sel(podSel)}
}

var (
	dbSubject  = model.ClusterSubject{Pods: pods("prod", "app=db")}
	webSubject = model.ClusterSubject{Pods: pods("prod", "app=web")}
)

// anp is an AdminNetworkPolicy with ingress rules.
func anp(name string, priority int32, subject model.ClusterSubject, rules ...model.ClusterRule) *model.ClusterPolicy {
	return &model.ClusterPolicy{Kind: model.KindAdminNetworkPolicy, Name: name, Tier: model.AdminTier, Priority: priority,
		Subject: subject, IngressRules: rules}
}
