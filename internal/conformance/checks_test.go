package conformance

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestChecks parses and runs checks on the standard cluster, with
// default-deny-ingress in x: each pair of a pattern is judged on its own,
// a pod with itself is left out, and a failing pair says what it wanted.
func TestChecks(t *testing.T) {
	const file = `name: c
cluster: standard
checks:
- {from: y/a, to: x/a, port: 80, verdict: deny}
- {from: "x/*", to: y/b, port: 81, protocol: UDP, verdict: allow}
- {from: x/a, to: "x/*", port: 80, family: IPv6, verdict: deny}
- {from: y/a, to: y/b, port: 80, verdict: deny}
steps:
- do:
  - apply: {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: deny, namespace: x}, spec: {podSelector: {}, policyTypes: [Ingress]}}
  probes: []
`
	sc, err := Parse([]byte(file), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Checks come before the steps, so the policy applied in step 1 is not
	// there yet: every pair is allowed.
	r := Run(context.Background(), sc, nil)
	var got []string
	for _, c := range r.Checks {
		got = append(got, c.From+">"+c.To+map[bool]string{true: " pass", false: " fail"}[c.Pass])
	}
	want := []string{"y/a>x/a fail", "x/a>y/b pass", "x/b>y/b pass", "x/c>y/b pass", "x/a>x/b fail", "x/a>x/c fail", "y/a>y/b fail"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("pairs %v\nwant  %v", got, want)
	}
	if r.Pass || len(r.Failures) != 4 || r.Failures[0] != "checks[0]: y/a -> x/a 80/TCP: want deny, got allow" ||
		r.Failures[1] != "checks[2]: x/a -> x/b 80/TCP IPv6: want deny, got allow" || r.Checks[0].Line != r.Failures[0] {
		t.Errorf("pass %v, failures %q", r.Pass, r.Failures)
	}
	if v := r.Checks[0].Verdict; !v.Allowed || v.Ingress.Applies() && len(v.Ingress.Isolating) > 0 {
		t.Errorf("verdict %+v: want allowed, ingress not isolated", v)
	}
}

// TestChecksOnManifests reads a cluster from manifests relative to the
// file, names a workload's pod by its workload's name, and judges it.
func TestChecksOnManifests(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("k8s/app.yaml", `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
spec: {containers: [{name: db, image: postgres}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
`)
	f := write("tests/shop.yaml", `name: shop
manifests: [../k8s/]
checks:
- {from: shop/web, to: shop/db, port: 5432, verdict: allow}
- {from: shop/web, to: shop/db, port: 22, verdict: allow}
`)
	scs, err := LoadPaths([]string{f})
	if err != nil {
		t.Fatal(err)
	}
	sc := scs[0]
	if len(sc.Warnings) == 0 || !strings.Contains(strings.Join(sc.Warnings, "\n"), "ConfigMap") {
		t.Errorf("warnings %q: want the skipped ConfigMap", sc.Warnings)
	}
	r := Run(context.Background(), sc, nil)
	if len(r.Checks) != 2 || !r.Checks[0].Pass || r.Checks[1].Pass || r.Checks[0].From != "shop/web[Deployment]" {
		t.Fatalf("checks %+v", r.Checks)
	}
	if by := r.Checks[0].Verdict.Ingress.By; by == nil || by.Policy.String() != "shop/db" {
		t.Errorf("allowed by %v, want shop/db", by)
	}
	if r.Failures[0] != "checks[1]: shop/web[Deployment] -> shop/db 22/TCP: want allow, got deny" {
		t.Errorf("failures %q", r.Failures)
	}
}

func TestCheckParseErrors(t *testing.T) {
	tests := []struct{ name, checks, want string }{
		{"no from", "- {to: x/a, port: 80, verdict: deny}", "checks[0].from: required"},
		{"no to", "- {from: x/a, port: 80, verdict: deny}", "checks[0].to: required"},
		{"no port", "- {from: x/a, to: x/b, verdict: deny}", "checks[0].port: required, 1-65535"},
		{"protocol", "- {from: x/a, to: x/b, port: 80, protocol: udp, verdict: deny}", `checks[0].protocol: "udp": want TCP, UDP or SCTP`},
		{"family", "- {from: x/a, to: x/b, port: 80, family: v6, verdict: deny}", `checks[0].family: "v6": want IPv4 or IPv6`},
		{"verdict", "- {from: x/a, to: x/b, port: 80}", `checks[0].verdict: "": want allow or deny`},
		{"no pod", "- {from: x/a, to: x/b, port: 80, verdict: deny}\n- {from: x/a, to: x/d, port: 80, verdict: deny}", `checks[1].to: "x/d" matches no pod`},
		{"only itself", "- {from: x/a, to: x/a, port: 80, verdict: deny}", "checks[0]: x/a -> x/a names no pair but a pod with itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("name: bad\ncluster: standard\nchecks:\n"+tt.checks+"\n"), "bad.yaml")
			if err == nil || !strings.HasPrefix(err.Error(), "bad.yaml: scenario bad: "+tt.want) {
				t.Errorf("Parse error = %v\nwant %s", err, tt.want)
			}
		})
	}
	for _, tt := range []struct{ data, want string }{
		{"name: bad\ncluster: standard\nmanifests: [k8s/]\nchecks: []\n", "bad.yaml: scenario bad: cluster and manifests: give one of them"},
		{"name: bad\nmanifests: []\nchecks: []\n", "bad.yaml: scenario bad: manifests: empty"},
		{"name: bad\nmanifests: [nowhere.yaml]\nchecks: []\n", "bad.yaml: scenario bad: manifests: nowhere.yaml"},
	} {
		if _, err := Parse([]byte(tt.data), "bad.yaml"); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Parse error = %v\nwant %s", err, tt.want)
		}
	}
}
