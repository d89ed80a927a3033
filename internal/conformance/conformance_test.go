package conformance

import (
	"context"
	"slices"
	"testing"
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

func TestParseErrorsNameTheField(t *testing.T) {
	_, err := Parse([]byte("name: bad\ncluster: standard\nsteps:\n- probes:\n  - {port: 80, protocol: ICMP, expect: {default: allow}}\n"), "bad.yaml")
	if err == nil || err.Error() != `bad.yaml: scenario bad: steps[0].probes[0].protocol: "ICMP": want TCP, UDP or SCTP` {
		t.Errorf("Parse error = %v", err)
	}
}
