package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// lintBroken has one policy per line of trouble: a selector that matches
// no pod, and (second document, line 10) egress without DNS.
const lintBroken = `apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec: {containers: [{name: c, image: nginx}]}
status: {podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.1}]}
---
# egress to web only
---

apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-out}
spec:
  podSelector: {matchLabels: {app: web}}
  egress: [{to: [{podSelector: {matchLabels: {app: web}}}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: typo}
spec:
  podSelector: {matchLabels: {app: wbe}}
`

func TestLint(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(broken, []byte(lintBroken), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		stdin    string
		args     []string
		code     int
		contains []string
	}{
		{"seed app and its policy are clean", "", []string{"-f", seedApp, "-f", seedPolicy}, 0, []string{"no findings\n"}},
		{"default deny blocks DNS", "", []string{"-f", seedApp, "-f", seedDeny}, 1, []string{
			"../../examples/seed/default-deny-all.yaml:1: warning PL007 NetworkPolicy default/default-deny-all spec.policyTypes: denies all egress of pods default/backend, default/client-pod, default/frontend, DNS included",
			"  fix: add an egress rule",
			"1 findings: 0 errors, 1 warnings, 0 info\n"}},
		{"--fail-on error passes warnings", "", []string{"-f", seedApp, "-f", seedDeny, "--fail-on", "error"}, 0, []string{"PL007"}},
		{"broken, with lines", "", []string{"-f", broken}, 1, []string{
			broken + ":10: warning PL008 NetworkPolicy default/web-out spec.egress",
			broken + ":17: warning PL001 NetworkPolicy default/typo spec.podSelector: selects no pod in namespace default (app=wbe); pods there carry: app=web"}},
		{"-n shows one namespace", "", []string{"-f", seedApp, "-f", seedDeny, "-n", "other"}, 0, []string{"no findings\n"}},
		{"stdin has no line", lintBroken, []string{"-f", "-"}, 1, []string{"<stdin>: warning PL008"}},
		{"invalid manifest", "", []string{"-f", "testdata/bad-endport.yaml"}, 2, nil},
		{"no input", "", nil, 2, nil},
		{"bad output", "", []string{"-f", seedApp, "-o", "xml"}, 2, nil},
		{"bad severity", "", []string{"-f", seedApp, "--fail-on", "fatal"}, 2, nil},
		{"stray argument", "", []string{"-f", seedApp, "x"}, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.stdin, append([]string{"lint"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, want := range tt.contains {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestLintJSONAndSARIF(t *testing.T) {
	code, out, errOut := run(t, "", "lint", "-o", "json", "-f", seedApp, "-f", seedDeny)
	if code != 1 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Findings []struct {
			Code, Severity, Field, File string
			Line                        int
			Object                      struct{ Kind, Namespace, Name string }
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Findings) != 1 {
		t.Fatalf("findings %+v, want one", doc.Findings)
	}
	f := doc.Findings[0]
	if f.Code != "PL007" || f.Severity != "warning" || f.Field != "spec.policyTypes" || f.File != seedDeny || f.Line != 1 ||
		f.Object.Kind != "NetworkPolicy" || f.Object.Namespace != "default" || f.Object.Name != "default-deny-all" {
		t.Errorf("finding %+v", f)
	}

	code, out, errOut = run(t, "", "lint", "-o", "sarif", "-f", seedApp, "-f", seedDeny)
	if code != 1 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var log struct {
		Runs []struct {
			Results []struct {
				RuleID    string
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct{ URI string }
						Region           struct{ StartLine int }
					}
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &log); err != nil {
		t.Fatal(err)
	}
	r := log.Runs[0].Results[0]
	if r.RuleID != "PL007" || r.Locations[0].PhysicalLocation.ArtifactLocation.URI != "../../examples/seed/default-deny-all.yaml" ||
		r.Locations[0].PhysicalLocation.Region.StartLine != 1 {
		t.Errorf("result %+v", r)
	}
}

func TestDocumentStarts(t *testing.T) {
	tests := []struct {
		in   string
		want []int
	}{
		{lintBroken, []int{1, 10, 17}},
		{"a: 1\n", []int{1}},
		{"---\n# only a comment\n---\nnull\n---\n\n  x: 1\n--- # c\ny: 2", []int{7, 9}},
		{`{"kind": "Pod"}`, nil},
	}
	for _, tt := range tests {
		if got := documentStarts([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("documentStarts(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
