package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const policyTests = "../../examples/policy-tests/"

// TestUserTestExample runs examples/policy-tests as docs/testing.md shows:
// the expectations pass on the shop's policies and fail on the broken
// variant, whose failing line names the pair and the rule that let it in.
func TestUserTestExample(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
		excludes []string
	}{
		{"passes", []string{"-f", policyTests + "tests/shop.yaml"}, 0,
			[]string{"PASS shop-policies checks[7]: monitoring/toolbox[Deployment] -> shop/db[StatefulSet] 9187/TCP: deny", "9 passed, 0 failed, in 1 file"},
			[]string{"FAIL"}},
		{"-R finds the same file", []string{"-R", policyTests + "tests"}, 0,
			[]string{"9 passed, 0 failed, in 1 file"}, nil},
		{"broken policy fails", []string{"-f", policyTests + "tests-broken/shop-broken.yaml"}, 1,
			[]string{
				"FAIL shop-policies-broken checks[7]: monitoring/toolbox[Deployment] -> shop/db[StatefulSet] 9187/TCP: want deny, got allow: egress: not isolated; ingress allowed by shop/db-ingress ingress[1]\n",
				"    ingress of shop/db[StatefulSet]: isolated by shop/db-ingress, shop/default-deny-ingress\n      allowed by shop/db-ingress ingress[1]\n" +
					"        from[0] every pod in namespaces kubernetes.io/metadata.name=monitoring: matches\n" +
					"        from[1] pods app=prometheus in namespace shop: monitoring/toolbox[Deployment] is in namespace `monitoring`; without a namespaceSelector this peer selects only pods in `shop`\n",
				"PASS shop-policies-broken checks[6]: monitoring/prometheus[Deployment] -> shop/db[StatefulSet] 9187/TCP: allow",
				"8 passed, 1 failed, in 1 file"},
			nil},
		{"both directories", []string{"-R", policyTests + "tests", "-R", policyTests + "tests-broken"}, 1,
			[]string{"17 passed, 1 failed, in 2 files"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(t, "", append([]string{"test"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.code, out, errs)
			}
			for _, s := range tt.contains {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tt.excludes {
				if strings.Contains(out, s) {
					t.Errorf("output has %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestUserTestJSON(t *testing.T) {
	code, out, errs := run(t, "", "test", "-o", "json", "-f", policyTests+"tests-broken/shop-broken.yaml")
	if code != 1 || !strings.Contains(errs, "8 passed, 1 failed") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var docs []testFileJSON
	if err := json.Unmarshal([]byte(out), &docs); err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 || docs[0].Pass || len(docs[0].Checks) != 9 {
		t.Fatalf("docs %+v", docs)
	}
	c := docs[0].Checks[8]
	if c.Pass || c.Expect != "deny" || c.Got != "allow" || c.Ingress == nil || c.Ingress.AllowedBy == nil ||
		c.Ingress.AllowedBy.Policy != "shop/db-ingress" || c.Ingress.AllowedBy.Index != 1 ||
		len(c.Ingress.AllowedByPeers) != 2 || !strings.HasSuffix(c.Ingress.AllowedByPeers[0], ": matches") {
		t.Errorf("failing check %+v", c)
	}
}

// TestUserTestDenyPeers: a check meant to be allowed that is denied prints
// what check prints for the pair, per-peer lines included, one level
// deeper under the FAIL line.
func TestUserTestDenyPeers(t *testing.T) {
	k8s, policies := policyTests+"k8s", policyTests+"broken/policies.yaml"
	_, want, _ := run(t, "", "check", "-f", k8s, "-f", policies, "--from", "shop/web", "--to", "shop/db", "--port", "5432")
	_, explained, ok := strings.Cut(want, "\n")
	if !ok || !strings.Contains(explained, "        from[0] pods app=api in namespace shop: ") {
		t.Fatalf("check prints no peer line:\n%s", want)
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	f := filepath.Join(t.TempDir(), "deny.yaml")
	body := "name: t\nmanifests: [" + abs(k8s) + ", " + abs(policies) + "]\nchecks:\n- {from: shop/web, to: shop/db, port: 5432, verdict: allow}\n"
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, "", "test", "-f", f)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errs)
	}
	deeper := strings.ReplaceAll(strings.TrimSuffix(explained, "\n"), "\n", "\n  ")
	if !strings.Contains(out, "\n  "+deeper+"\n") {
		t.Errorf("test's explanation differs from check's:\n%s\nwant, indented by two:\n%s", out, explained)
	}
}

// TestUserTestBadInput: a file that cannot be read as expectations is
// exit 2, with an error naming the file and the field.
func TestUserTestBadInput(t *testing.T) {
	dir := t.TempDir()
	k8s, err := filepath.Abs(policyTests + "k8s")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, body, want string }{
		{"unknown field", "name: t\nmanifests: [" + k8s + "]\nchecks:\n- {from: shop/web, to: shop/api, port: 9090, verdit: allow}\n",
			"field verdit not found"},
		{"misspelled pod", "name: t\nmanifests: [" + k8s + "]\nchecks:\n- {from: shop/webb, to: shop/api, port: 9090, verdict: allow}\n",
			`scenario t: checks[0].from: "shop/webb" matches no pod`},
		{"bad verdict", "name: t\nmanifests: [" + k8s + "]\nchecks:\n- {from: shop/web, to: shop/api, port: 9090, verdict: yes}\n",
			`checks[0].verdict: "yes": want allow or deny`},
		{"bad protocol", "name: t\nmanifests: [" + k8s + "]\nchecks:\n- {from: shop/web, to: shop/api, port: 9090, protocol: tcp, verdict: allow}\n",
			`checks[0].protocol: "tcp": want TCP, UDP or SCTP`},
		{"no port", "name: t\nmanifests: [" + k8s + "]\nchecks:\n- {from: shop/web, to: shop/api, verdict: allow}\n",
			"checks[0].port: required"},
		{"missing manifests", "name: t\nmanifests: [nowhere/]\nchecks:\n- {from: a/b, to: a/c, port: 80, verdict: allow}\n",
			"scenario t: manifests:"},
		{"cluster and manifests", "name: t\ncluster: standard\nmanifests: [" + k8s + "]\nchecks:\n- {from: x/a, to: x/b, port: 80, verdict: allow}\n",
			"cluster and manifests: give one of them"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml")
			if err := os.WriteFile(f, []byte(tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs := run(t, "", "test", "-f", f)
			if code != 2 || !strings.Contains(errs, f) || !strings.Contains(errs, tt.want) {
				t.Errorf("case %d: exit %d, stderr %q, want 2 and %q naming %s\n%s", i, code, errs, tt.want, f, out)
			}
		})
	}
	for _, args := range [][]string{{"test"}, {"test", "-o", "xml", "-f", policyTests + "tests"}, {"test", "stray"}, {"test", "-R", dir + "/none"}} {
		if code, _, errs := run(t, "", args...); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errs)
		}
	}
}
