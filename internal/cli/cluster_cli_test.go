package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const clusterPolicyFile = "testdata/cluster-policy.yaml"

// TestClusterPolicyVerbs runs check, explain, matrix, lint and diff on
// manifests with an AdminNetworkPolicy (a Deny and a Pass), a
// NetworkPolicy and a BaselineAdminNetworkPolicy.
func TestClusterPolicyVerbs(t *testing.T) {
	f := []string{"-f", clusterPolicyFile}
	runCases(t, "check", []cliCase{
		{name: "Admin Deny", args: append(f, "--from", "shop/web", "--to", "shop/db", "--port", "5432"), code: 1,
			exactOut: `DENY shop/web -> shop/db 5432/TCP
  egress of shop/web: not isolated (no policy selects it for Egress): allowed
  ingress of shop/db: denied by the Admin tier (NetworkPolicy not consulted)
    decided by AdminNetworkPolicy/db-guard (Admin tier, priority 10) ingress rule 0 "no-web": Deny
`},
		{name: "Admin Pass to NetworkPolicy", args: append(f, "--from", "shop/cache", "--to", "shop/db", "--port", "5432"), code: 0,
			exactOut: `ALLOW shop/cache -> shop/db 5432/TCP
  egress of shop/cache: not isolated (no policy selects it for Egress): allowed
  ingress of shop/db: isolated by shop/db-allow
    not matched: AdminNetworkPolicy/db-guard (Admin tier, priority 10) ingress rule 0 "no-web": Deny: source shop/cache is not a peer of this rule
    passed by AdminNetworkPolicy/db-guard (Admin tier, priority 10) ingress rule 1 "to-np": Pass → NetworkPolicy decides
    allowed by shop/db-allow ingress[0]
`},
		{name: "Baseline Deny", args: append(f, "--from", "tools/probe", "--to", "shop/web", "--port", "80"), code: 1,
			exactOut: `DENY tools/probe -> shop/web 80/TCP
  egress of tools/probe: not isolated (no policy selects it for Egress): allowed
  ingress of shop/web: not isolated by NetworkPolicy; denied by the Baseline tier
    decided by BaselineAdminNetworkPolicy/default (Baseline tier, priority 1001) ingress rule 0 "no-other-namespaces": Deny
`},
		{name: "no cluster rule applies", args: append(f, "--from", "shop/web", "--to", "tools/probe", "--port", "80"), code: 0,
			out: []string{"ingress of tools/probe: not isolated (no policy selects it for Ingress): allowed"}},
		{name: "-o json", args: append(f, "--from", "shop/web", "--to", "shop/db", "--port", "5432", "-o", "json"), code: 1,
			out: []string{`"stage": "admin"`, `"clusterRule": {`, `"policy": "AdminNetworkPolicy/db-guard"`, `"tier": "Admin"`, `"priority": 10`, `"rule": "no-web"`, `"action": "Deny"`}},
		{name: "-o yaml", args: append(f, "--from", "shop/cache", "--to", "shop/db", "--port", "5432", "-o", "yaml"), code: 0,
			out: []string{"stage: networkPolicy", "passedBy:", "rule: to-np", "action: Pass", "clusterNotMatched:", "reason: source shop/cache is not a peer of this rule"}},
	})
	runCases(t, "explain", []cliCase{
		{name: "a pod's cluster policies come first, in evaluation order", args: append(f, "shop/db"), code: 0,
			out: []string{"  ingress: cluster policies apply",
				"    AdminNetworkPolicy/db-guard (Admin tier, priority 10), subject pods app=db in namespaces kubernetes.io/metadata.name=shop\n" +
					"      rule 0 \"no-web\": Deny from pods app=web in namespaces <all>: shop/web on any port\n" +
					"      rule 1 \"to-np\": Pass from pods app=cache in namespaces <all>: shop/cache on any port\n" +
					"    BaselineAdminNetworkPolicy/default (Baseline tier, priority 1001)",
				"  ingress: isolated by shop/db-allow\n    (NetworkPolicy decides what the Admin tier passes or does not match; the Baseline tier is never reached for this direction)"}},
		{name: "-o json", args: append(f, "shop/web", "-o", "json"), code: 0,
			out: []string{`"clusterPolicies": [`, `"policy": "BaselineAdminNetworkPolicy/default"`, `"tier": "Baseline"`, `"priority": 1001`, `"action": "Deny"`}},
	})
	runCases(t, "matrix", []cliCase{
		{name: "csv explanations name the cluster rule", args: append(f, "-o", "csv", "--port", "80"), code: 0,
			out: []string{`80/TCP,shop/web,shop/db,80,TCP,deny,"denied: egress of shop/web not isolated; ingress of shop/db denied by the Admin tier: AdminNetworkPolicy/db-guard (Admin tier, priority 10) ingress rule 0 ""no-web"": Deny"`,
				`80/TCP,tools/probe,shop/web,80,TCP,deny,"denied: egress of tools/probe not isolated; ingress of shop/web not isolated by NetworkPolicy, denied by the Baseline tier: BaselineAdminNetworkPolicy/default (Baseline tier, priority 1001) ingress rule 0 ""no-other-namespaces"": Deny"`}},
	})
}

// withoutKind writes clusterPolicyFile without its documents of kind.
func withoutKind(t *testing.T, kind string) string {
	t.Helper()
	data, err := os.ReadFile(clusterPolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, doc := range strings.Split(string(data), "\n---\n") {
		if !strings.Contains(doc, "kind: "+kind+"\n") {
			kept = append(kept, doc)
		}
	}
	path := filepath.Join(t.TempDir(), "old.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(kept, "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestClusterPolicyDiff: cluster-wide policies are policy changes, and
// the connections they flip are explained by them.
func TestClusterPolicyDiff(t *testing.T) {
	runCases(t, "diff", []cliCase{
		{name: "a deleted BaselineAdminNetworkPolicy", args: []string{"--old", clusterPolicyFile, "--new", withoutKind(t, "BaselineAdminNetworkPolicy")}, code: 1,
			out: []string{"policies: deleted BaselineAdminNetworkPolicy/default\n",
				"gained tools/probe -> shop/web  80/TCP, 5432/TCP",
				"gained tools/probe -> shop/cache  80/TCP, 5432/TCP",
				`ingress of shop/web: before not isolated by NetworkPolicy, denied by the Baseline tier: BaselineAdminNetworkPolicy/default (deleted since; Baseline tier, priority 1001) ingress rule 0 "no-other-namespaces": Deny; now not isolated`},
			notOut: []string{"-> shop/db"}},
		// web -> db was denied by NetworkPolicy already: the Deny changes
		// who decides, not what is allowed.
		{name: "an added AdminNetworkPolicy that changes nothing", args: []string{"--old", withoutKind(t, "AdminNetworkPolicy"), "--new", clusterPolicyFile}, code: 0,
			out: []string{"policies: added AdminNetworkPolicy/db-guard\n", "no connection gained or lost"}},
	})
}

// TestClusterPolicyLint: lint reads cluster-wide policies and names them
// by kind and name, with the file and line.
func TestClusterPolicyLint(t *testing.T) {
	extra := `
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: nobody}
spec:
  tier: Baseline
  priority: 5
  subject:
    namespaces: {matchLabels: {team: none}}
  ingress:
  - name: hand-on
    action: Pass
    from:
    - namespaces: {}
`
	data, err := os.ReadFile(clusterPolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "in.yaml")
	if err := os.WriteFile(path, append(data, extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	// The ClusterNetworkPolicy's document starts after a blank line and "---".
	line := fmt.Sprintf("%s:%d: ", path, strings.Count(string(data), "\n")+3)
	runCases(t, "lint", []cliCase{
		{name: "clean", args: []string{"-f", clusterPolicyFile}, code: 0, exactOut: "no findings\n"},
		{name: "findings on a ClusterNetworkPolicy", args: []string{"-f", path, "-n", "tools"}, code: 1,
			out: []string{": info PL016 ClusterNetworkPolicy nobody spec.ingress[0].action: a Pass in the Baseline tier",
				": warning PL013 ClusterNetworkPolicy nobody spec.subject.namespaces: selects no pod",
				line + "info PL016", line + "warning PL013"}},
		{name: "-o json", args: []string{"-f", path, "-o", "json"}, code: 1,
			out: []string{`"kind": "ClusterNetworkPolicy"`, `"namespace": ""`, `"name": "nobody"`, `"code": "PL013"`}},
	})
}
