package conformance

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/model"
)

func TestMatchPattern(t *testing.T) {
	keys := []string{"x/a", "x/b", "y/b", "z/a", "z/b"}
	idx := newPodIndex(keys)
	tests := []struct {
		pattern, key string
		want         bool
	}{
		{"", "x/a", true},
		{"*", "x/a", true},
		{"x/a", "x/a", true},
		{"x/a", "x/b", false},
		{"x/*", "x/b", true},
		{"x/*", "y/b", false},
		{"*/a", "z/a", true},
		{"*/a", "z/b", false},
		{"*/*", "y/b", true},
		{"x", "x/a", false},
		{"x/a/b", "x/a", false},
	}
	for _, tt := range tests {
		got := slices.ContainsFunc(idx.match(tt.pattern), func(i int) bool { return keys[i] == tt.key })
		if got != tt.want {
			t.Errorf("match(%q) has %q = %v, want %v", tt.pattern, tt.key, got, tt.want)
		}
	}
}

// A namespace called y must stay the string "y" (FORMAT.md's YAML trap),
// in the labels of a label action and in an embedded policy's selector.
func TestNamespaceYStaysAString(t *testing.T) {
	sc, err := Parse([]byte(`name: y-trap
cluster: standard
steps:
- do:
  - label: {kind: Namespace, name: y, labels: {kubernetes.io/metadata.name: y, team: y}}
  - apply:
      apiVersion: networking.k8s.io/v1
      kind: NetworkPolicy
      metadata: {name: from-y, namespace: x}
      spec:
        podSelector: {}
        ingress:
        - from:
          - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: y}}
  probes:
  - port: 80
    protocol: TCP
    expect:
      default: allow
      rules:
      - {to: x/*, verdict: deny}
      - {from: y/*, to: x/*, verdict: allow}
`), "y-trap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.Steps[0].Do[0].Label.Labels["team"]; got != "y" {
		t.Errorf("label team = %q, want \"y\"", got)
	}
	if r := Run(context.Background(), sc, nil); !r.Pass {
		t.Errorf("scenario failed: %v", r.Failures)
	}
}

// A one-step scenario around an inline cluster, for the tables below.
func inlineScenario(pods string) string {
	return "name: bad\ncluster:\n  namespaces:\n  - {name: prod, labels: {env: prod}}\n  pods:\n" + pods +
		"steps:\n- probes:\n  - {port: 80, protocol: TCP, expect: {default: allow}}\n"
}

// Inline clusters go through the manifests' validation (apiconv, then
// manifest.Cluster for addresses), and errors name the file and the
// scenario's own field.
func TestInlineClusterValidation(t *testing.T) {
	const web = "  - {namespace: prod, name: web, ips: [10.20.0.5]}\n"
	tests := []struct {
		name, pods, want string
	}{
		{"pod name", "  - {namespace: prod, name: Web_1, ips: [10.20.0.5]}\n",
			`cluster.pods[0].name: Invalid value: "Web_1": a lowercase RFC 1123 subdomain`},
		{"pod namespace", "  - {namespace: Prod, name: web, ips: [10.20.0.5]}\n",
			`cluster.pods[0].namespace: Invalid value: "Prod": a lowercase RFC 1123 label`},
		{"label key", "  - {namespace: prod, name: web, labels: {\"a b\": x}, ips: [10.20.0.5]}\n",
			`cluster.pods[0].labels: Invalid value: "a b": name part must consist of alphanumeric characters`},
		{"label value", "  - {namespace: prod, name: web, labels: {app: \"a b\"}, ips: [10.20.0.5]}\n",
			`cluster.pods[0].labels: Invalid value: "a b": a valid label must be`},
		{"address", "  - {namespace: prod, name: web, ips: [10.20.0.300]}\n",
			`cluster.pods[0].ips[0]: Invalid value: "10.20.0.300": must be a valid IP address`},
		{"two IPv4 addresses", "  - {namespace: prod, name: web, ips: [10.20.0.5, 10.20.0.6]}\n",
			`cluster.pods[0].ips: Invalid value:`},
		{"no address", "  - {namespace: prod, name: web}\n",
			`cluster.pods[0].ips: Required value`},
		{"duplicate address", web + "  - {namespace: prod, name: api, ips: [10.20.0.5]}\n",
			`cluster.pods[0].ips: Pod prod/web: status.podIPs: address 10.20.0.5 is also pod prod/api's`},
		{"duplicate pod", web + "  - {namespace: prod, name: web, ips: [10.20.0.6]}\n",
			`cluster.pods[1].name: Duplicate value: "prod/web"`},
		{"node name", "  - {namespace: prod, name: web, node: Node_1, ips: [10.20.0.5]}\n",
			`cluster.pods[0].node: Invalid value: "Node_1"`},
		{"port 0", "  - {namespace: prod, name: web, ips: [10.20.0.5], ports: [{port: 0}]}\n",
			`cluster.pods[0].ports[0].port: Required value`},
		{"port 70000", "  - {namespace: prod, name: web, ips: [10.20.0.5], ports: [{port: 70000}]}\n",
			`cluster.pods[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive`},
		{"port name", "  - {namespace: prod, name: web, ips: [10.20.0.5], ports: [{name: HTTP_1, port: 80}]}\n",
			`cluster.pods[0].ports[0].name: Invalid value: "HTTP_1"`},
		{"duplicate port name", "  - {namespace: prod, name: web, ips: [10.20.0.5], ports: [{name: http, port: 80}, {name: http, port: 81}]}\n",
			`cluster.pods[0].ports[1].name: Duplicate value: "http"`},
		{"protocol", "  - {namespace: prod, name: web, ips: [10.20.0.5], ports: [{port: 80, protocol: tcp}]}\n",
			`cluster.pods[0].ports[0].protocol: Unsupported value: "tcp"`},
		{"unknown field", "  - {namespace: prod, name: web, lables: {app: web}, ips: [10.20.0.5]}\n",
			`line 6: field lables not found in type conformance.filePod`},
		{"several errors", "  - {namespace: prod, name: web, ips: [10.20.0.5, 10.20.0.6], ports: [{port: 0}]}\n",
			"bad.yaml: scenario bad: cluster.pods[0].ports[0].port: Required value\nbad.yaml: scenario bad: cluster.pods[0].ips: Invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(inlineScenario(tt.pods)), "bad.yaml")
			if err == nil {
				t.Fatalf("Parse: no error, want %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), "bad.yaml: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error:\n%v\nwant bad.yaml: ... %s", err, tt.want)
			}
		})
	}
	for _, ns := range []struct{ name, namespaces, want string }{
		{"namespace name", "  - {name: Prod}\n", `cluster.namespaces[1].name: Invalid value: "Prod": a lowercase RFC 1123 label`},
		{"namespace label", "  - {name: dev, labels: {env: \"-dev\"}}\n", `cluster.namespaces[1].labels: Invalid value: "-dev"`},
		{"duplicate namespace", "  - {name: prod}\n", `cluster.namespaces[1].name: Duplicate value: "prod"`},
	} {
		t.Run(ns.name, func(t *testing.T) {
			data := strings.Replace(inlineScenario(web), "  pods:\n", ns.namespaces+"  pods:\n", 1)
			_, err := Parse([]byte(data), "bad.yaml")
			if err == nil || !strings.HasPrefix(err.Error(), "bad.yaml: scenario bad: ") || !strings.Contains(err.Error(), ns.want) {
				t.Errorf("Parse error:\n%v\nwant bad.yaml: scenario bad: ... %s", err, ns.want)
			}
		})
	}
}

// A valid inline cluster becomes the same pods as before validation went
// through apiconv: protocol defaults to TCP, node to node1.
func TestInlineCluster(t *testing.T) {
	sc, err := Parse([]byte(inlineScenario("  - {namespace: prod, name: web, labels: {app: web}, ips: [10.20.0.5, \"fd00::5\"], ports: [{name: http, port: 8080}, {port: 53, protocol: UDP}]}\n")), "ok.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := sc.Cluster.Pods[model.Key{Namespace: "prod", Name: "web"}]
	want := &model.Pod{Namespace: "prod", Name: "web", Labels: map[string]string{"app": "web"}, Node: "node1",
		IPs:   []netip.Addr{netip.MustParseAddr("10.20.0.5"), netip.MustParseAddr("fd00::5")},
		Ports: []model.ContainerPort{{Name: "http", Port: 8080, Protocol: model.TCP}, {Port: 53, Protocol: model.UDP}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pod = %+v\nwant %+v", got, want)
	}
	if ns := sc.Cluster.Namespaces["prod"]; ns.Labels["env"] != "prod" || ns.Labels[model.NamespaceNameLabel] != "prod" {
		t.Errorf("namespace labels = %v", ns.Labels)
	}
	if sc.Cluster.Nodes["node1"] == nil {
		t.Error("no node1")
	}
}

func TestParseErrors(t *testing.T) {
	const probe = "  probes:\n  - port: 80\n    protocol: TCP\n    expect:\n      default: allow\n      rules:\n"
	const addPod = "- do:\n  - apply: {apiVersion: v1, kind: Pod, metadata: {name: d, namespace: x}, status: {podIP: 10.10.1.4}}\n"
	tests := []struct {
		name, data, want string // want "" means no error
	}{
		{"no steps", "name: bad\ncluster: standard\n",
			"bad.yaml: scenario bad: steps: required: a scenario has at least one step, or checks"},
		{"empty steps", "name: bad\ncluster: standard\nsteps: []\n",
			"bad.yaml: scenario bad: steps: required: a scenario has at least one step, or checks"},
		{"no cluster", "name: bad\nsteps:\n- probes: []\n",
			"bad.yaml: scenario bad: cluster: required: standard, an inline cluster, or manifests"},
		{"unknown cluster", "name: bad\ncluster: big\nsteps:\n- probes: []\n",
			`bad.yaml: scenario bad: cluster: "big" is not a known cluster (want standard or an inline cluster)`},
		{"second document", "name: bad\ncluster: standard\nsteps:\n- probes: []\n---\nname: other\n",
			"bad.yaml: line 5: a second YAML document: a scenario file holds one scenario"},
		{"trailing ---", "name: ok\ncluster: standard\nsteps:\n- probes: []\n---\n", ""},
		{"pod", "name: bad\ncluster: standard\nsteps:\n-" + probe[1:] + "      - {from: x/a, to: x/d, verdict: deny}\n",
			`bad.yaml: scenario bad: steps[0].probes[0].expect.rules[0].to: "x/d" matches no pod`},
		{"namespace", "name: bad\ncluster: standard\nsteps:\n-" + probe[1:] + "      - {from: w/*, verdict: deny}\n",
			`bad.yaml: scenario bad: steps[0].probes[0].expect.rules[0].from: "w/*" matches no pod`},
		{"name", "name: bad\ncluster: standard\nsteps:\n-" + probe[1:] + "      - {to: x/a, verdict: deny}\n      - {to: \"*/d\", verdict: deny}\n",
			`bad.yaml: scenario bad: steps[0].probes[0].expect.rules[1].to: "*/d" matches no pod`},
		{"no slash", "name: bad\ncluster: standard\nsteps:\n-" + probe[1:] + "      - {to: x, verdict: deny}\n",
			`bad.yaml: scenario bad: steps[0].probes[0].expect.rules[0].to: "x" matches no pod`},
		{"created pod", "name: ok\ncluster: standard\nsteps:\n" + addPod + probe + "      - {to: x/d, verdict: allow}\n", ""},
		{"deleted pod", "name: bad\ncluster: standard\nsteps:\n" + addPod + probe + "      - {to: x/d, verdict: allow}\n" +
			"- do:\n  - delete: {kind: Pod, namespace: x, name: d}\n" + probe + "      - {to: x/d, verdict: allow}\n",
			`bad.yaml: scenario bad: steps[1].probes[0].expect.rules[0].to: "x/d" matches no pod`},
		{"rule field", "name: bad\ncluster: standard\nsteps:\n-" + probe[1:] + "      - {to: x/a, verdict: deny, form: x/b}\n",
			`bad.yaml: scenario bad: steps[0].probes[0].expect.rules[0]: line 10: field form not found: want from, to, verdict`},
		{"rule repeated", "name: bad\ncluster: standard\nsteps:\n-" + probe[1:] + "      - {to: x/a, verdict: deny, to: x/b}\n",
			`bad.yaml: scenario bad: steps[0].probes[0].expect.rules[0].to: line 10: repeated`},
		{"rule list", "name: bad\ncluster: standard\nsteps:\n-" + probe[1:] + "      - {to: [x/a], verdict: deny}\n",
			`bad.yaml: scenario bad: steps[0].probes[0].expect.rules[0].to: line 10: want a string`},
		{"rule verdict value", "name: bad\ncluster: standard\nsteps:\n-" + probe[1:] + "      - {to: x/a, verdict: maybe}\n",
			`bad.yaml: scenario bad: steps[0].probes[0].expect.rules[0].verdict: "maybe": want allow or deny`},
		{"rule verdict", "name: bad\ncluster: standard\nsteps:\n-" + probe[1:] + "      - {to: x/a}\n",
			`bad.yaml: scenario bad: steps[0].probes[0].expect.rules[0].verdict: required: want allow or deny`},
		{"protocol", "name: bad\ncluster: standard\nsteps:\n- probes:\n  - {port: 80, protocol: ICMP, expect: {default: allow}}\n",
			`bad.yaml: scenario bad: steps[0].probes[0].protocol: "ICMP": want TCP, UDP or SCTP`},
		{"family", "name: bad\ncluster: standard\nsteps:\n- probes:\n  - {family: ipv6, port: 80, protocol: TCP, expect: {default: allow}}\n",
			`bad.yaml: scenario bad: steps[0].probes[0].family: "ipv6": want IPv4 or IPv6`},
		{"family IPv6", "name: ok\ncluster: standard\nsteps:\n- probes:\n  - {family: IPv6, port: 80, protocol: TCP, expect: {default: allow}}\n", ""},
		{"cluster policy delete namespace", "name: bad\ncluster: standard\nsteps:\n- do:\n  - delete: {kind: AdminNetworkPolicy, namespace: x, name: p}\n  probes: []\n",
			"bad.yaml: scenario bad: steps[0].do[0].delete.namespace: AdminNetworkPolicy is cluster-scoped: leave namespace out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.data), "bad.yaml")
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Parse: %v", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Errorf("Parse error = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// Expected, which indexes the patterns, gives the table of the format's
// plain reading: for every pair, the last rule that matches it wins.
func TestExpectedIsLastMatchingRule(t *testing.T) {
	pods := Standard().SortedPods()
	patterns := []string{"", "*", "*/*", "x/*", "z/*", "*/a", "*/c", "x/a", "y/b", "z/c", "w/*", "x"}
	matches := func(pattern string, p *model.Pod) bool {
		if pattern == "" || pattern == "*" {
			return true
		}
		ns, name, _ := strings.Cut(pattern, "/")
		return (ns == "*" || ns == p.Namespace) && (name == "*" || name == p.Name)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		pr := Probe{Port: 80, Protocol: model.TCP, Default: r.IntN(2) == 0}
		for range r.IntN(12) {
			pr.Rules = append(pr.Rules, ExpectRule{From: patterns[r.IntN(len(patterns))], To: patterns[r.IntN(len(patterns))], Allow: r.IntN(2) == 0})
		}
		g := Expected(pods, pr)
		for i, from := range pods {
			for j, to := range pods {
				want := pr.Default
				for _, rule := range pr.Rules {
					if matches(rule.From, from) && matches(rule.To, to) {
						want = rule.Allow
					}
				}
				if want = want || i == j; g.Allow[i][j] != want {
					t.Fatalf("%+v: %s -> %s = %v, want %v", pr, from.Key(), to.Key(), g.Allow[i][j], want)
				}
			}
		}
	}
}
