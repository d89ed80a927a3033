package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	npaclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/kube"
	"github.com/palisade-net/palisade/internal/lab/crds"
	"github.com/palisade-net/palisade/internal/model"
)

// chainsWith returns the chains of rs whose name starts with prefix.
func chainsWith(rs *dataplane.Ruleset, prefix string) []string {
	var out []string
	if rs == nil {
		return nil
	}
	for _, c := range rs.Chains {
		if strings.HasPrefix(c.Name, prefix) {
			out = append(out, c.Name)
		}
	}
	return out
}

// waitMetric polls the agent's /metrics until series has value want.
func waitMetric(t *testing.T, ag *runningAgent, series, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := ag.metric(series)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q after %s, want %q", series, got, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The agent against a real API server without the cluster policy CRDs:
// ready all the same, the kinds reported unserved; the CRDs installed,
// it picks them up within its recheck; an AdminNetworkPolicy, the
// BaselineAdminNetworkPolicy and a ClusterNetworkPolicy created, updated
// and deleted with the typed client reach the engine and the kernel.
// ReadCluster reads them, and tolerates the CRDs' absence.
func TestClusterPoliciesAgainstAPIServer(t *testing.T) {
	fixture.RequireRoot(t)
	srv := ownAPIServer(t)
	ctx := context.Background()
	nsPath := testNetNS(t)
	e := newAPIEnv(t, srv.Kubeconfig)
	node := e.ns + "-node"
	e.createNode(node, "10.250.255.1")
	e.createPod("web", node, map[string]string{"app": "web"}, "10.250.0.1")
	e.createPod("client", "elsewhere", map[string]string{"app": "client"}, "10.250.1.1")

	// No CRDs: ReadCluster reads the rest, no cluster policies.
	c, _ := readCluster(t, kube.ClusterSource{Kubeconfig: srv.Kubeconfig})
	if len(c.ClusterPolicies) != 0 || len(c.Pods) != 2 {
		t.Errorf("ReadCluster without the CRDs: %d cluster policies, %d pods", len(c.ClusterPolicies), len(c.Pods))
	}

	const recheck = 500 * time.Millisecond
	ag := startAgent(t, srv.Kubeconfig, node, nsPath, agentOpts{crdRecheck: recheck})
	ag.waitReady(10 * time.Second)
	kinds := []string{model.KindAdminNetworkPolicy, model.KindBaselineAdminNetworkPolicy, model.KindClusterNetworkPolicy}
	for _, k := range kinds {
		if v := ag.metric(`palisade_api_kind_unserved{kind="` + k + `"}`); v != "1" {
			t.Errorf("%s unserved = %q before its CRD, want 1", k, v)
		}
	}
	if !strings.Contains(ag.logs.String(), "its CRD is not installed") {
		t.Error("no log line says a CRD is not installed")
	}

	if _, err := crds.Install(ctx, e.cs, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	installed := time.Now()
	for _, k := range kinds {
		waitMetric(t, ag, `palisade_api_kind_unserved{kind="`+k+`"}`, "0", 10*time.Second)
	}
	t.Logf("CRDs picked up %s after they were served (recheck every %s)", time.Since(installed).Round(time.Millisecond), recheck)
	if code, body := ag.get("/readyz"); code != 200 {
		t.Errorf("/readyz after the CRDs came: %d %s", code, body)
	}

	cfg, err := kube.Config(srv.Kubeconfig, "palisade-cluster-policy-test")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := npaclient.NewForConfig(kube.PolicyConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	web := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	anp := &v1alpha1.AdminNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-client"},
		Spec: v1alpha1.AdminNetworkPolicySpec{
			Priority: 10,
			Subject:  v1alpha1.AdminNetworkPolicySubject{Pods: &v1alpha1.NamespacedPod{PodSelector: *web}},
			Ingress: []v1alpha1.AdminNetworkPolicyIngressRule{{Action: v1alpha1.AdminNetworkPolicyRuleActionDeny,
				From: []v1alpha1.AdminNetworkPolicyIngressPeer{{Pods: &v1alpha1.NamespacedPod{
					PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}}}}}},
		},
	}
	banp := &v1alpha1.BaselineAdminNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec: v1alpha1.BaselineAdminNetworkPolicySpec{
			Subject: v1alpha1.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
			Ingress: []v1alpha1.BaselineAdminNetworkPolicyIngressRule{{Action: v1alpha1.BaselineAdminNetworkPolicyRuleActionDeny,
				From: []v1alpha1.AdminNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}}}},
		},
	}
	cnp := &v1alpha2.ClusterNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "accept-monitoring"},
		Spec: v1alpha2.ClusterNetworkPolicySpec{
			Tier: v1alpha2.AdminTier, Priority: 5,
			Subject: v1alpha2.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
			Ingress: []v1alpha2.ClusterNetworkPolicyIngressRule{{Action: v1alpha2.ClusterNetworkPolicyRuleActionAccept,
				From: []v1alpha2.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "monitoring"}}}}}},
		},
	}
	created := time.Now()
	if _, err := pc.PolicyV1alpha1().AdminNetworkPolicies().Create(ctx, anp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.PolicyV1alpha1().BaselineAdminNetworkPolicies().Create(ctx, banp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.PolicyV1alpha2().ClusterNetworkPolicies().Create(ctx, cnp, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pc.PolicyV1alpha1().AdminNetworkPolicies().Delete(context.Background(), anp.Name, metav1.DeleteOptions{})
		pc.PolicyV1alpha1().BaselineAdminNetworkPolicies().Delete(context.Background(), banp.Name, metav1.DeleteOptions{})
		pc.PolicyV1alpha2().ClusterNetworkPolicies().Delete(context.Background(), cnp.Name, metav1.DeleteOptions{})
	})
	// web, a local pod, is a subject of all three: an Admin chain (the
	// CNP's Accept, then the ANP's Deny), then, no NetworkPolicy
	// isolating it, the Baseline chain; a deny chain per denying policy.
	waitKernel(t, nsPath, "the three cluster policies' chains", 5*time.Second, func(rs *dataplane.Ruleset) bool {
		return len(chainsWith(rs, "ing-adm-")) > 0 && len(chainsWith(rs, "ing-base-")) > 0 &&
			len(chainsWith(rs, "ing-deny-deny-client")) > 0 && len(chainsWith(rs, "ing-deny-default")) > 0
	})
	t.Logf("three cluster policies created -> their chains in the kernel: %s", time.Since(created).Round(time.Millisecond))
	waitMetric(t, ag, "palisade_cluster_policies", "3", 5*time.Second)
	c, _ = readCluster(t, kube.ClusterSource{Kubeconfig: srv.Kubeconfig})
	for _, k := range []model.ClusterKey{
		{Kind: model.KindAdminNetworkPolicy, Name: "deny-client"},
		{Kind: model.KindBaselineAdminNetworkPolicy, Name: "default"},
		{Kind: model.KindClusterNetworkPolicy, Name: "accept-monitoring"},
	} {
		if p := c.ClusterPolicies[k]; p == nil {
			t.Errorf("ReadCluster: no %s", k)
		}
	}
	if p := c.ClusterPolicies[model.ClusterKey{Kind: model.KindClusterNetworkPolicy, Name: "accept-monitoring"}]; p != nil &&
		(p.Tier != model.AdminTier || p.Priority != 5 || p.APIVersion != kube.PolicyGroup+"/v1alpha2") {
		t.Errorf("ReadCluster's CNP: %+v", p)
	}

	// Update: the ANP no longer applies to web; its deny chain goes.
	cur, err := pc.PolicyV1alpha1().AdminNetworkPolicies().Get(ctx, anp.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Subject.Pods.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "nothing"}}
	if _, err := pc.PolicyV1alpha1().AdminNetworkPolicies().Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	lat := waitKernel(t, nsPath, "the ANP's deny chain gone after its update", 5*time.Second, func(rs *dataplane.Ruleset) bool {
		return rs != nil && len(chainsWith(rs, "ing-deny-deny-client")) == 0 && len(chainsWith(rs, "ing-deny-default")) > 0
	})
	t.Logf("ANP updated -> its chain gone from the kernel: %s", lat.Round(time.Millisecond))
	if lat > time.Second {
		t.Errorf("the ANP's update took %s to reach the kernel, want < 1 s", lat)
	}

	// Delete all three: no cluster chain is left.
	if err := pc.PolicyV1alpha1().AdminNetworkPolicies().Delete(ctx, anp.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pc.PolicyV1alpha1().BaselineAdminNetworkPolicies().Delete(ctx, banp.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pc.PolicyV1alpha2().ClusterNetworkPolicies().Delete(ctx, cnp.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitKernel(t, nsPath, "no cluster chains after the deletes", 5*time.Second, func(rs *dataplane.Ruleset) bool {
		return rs != nil && len(chainsWith(rs, "ing-adm-")) == 0 && len(chainsWith(rs, "ing-base-")) == 0 && len(chainsWith(rs, "ing-deny-")) == 0
	})
	waitMetric(t, ag, "palisade_cluster_policies", "0", 5*time.Second)

	// An ANP the CRD takes and apiconv rejects (a domainNames peer):
	// the agent enforces its fail-closed placeholder, denying web's
	// egress in the Admin tier; ReadCluster refuses to answer from it.
	bad := &v1alpha1.AdminNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "by-name"},
		Spec: v1alpha1.AdminNetworkPolicySpec{
			Priority: 20,
			Subject:  v1alpha1.AdminNetworkPolicySubject{Pods: &v1alpha1.NamespacedPod{PodSelector: *web}},
			Egress: []v1alpha1.AdminNetworkPolicyEgressRule{{Action: v1alpha1.AdminNetworkPolicyRuleActionAllow,
				To: []v1alpha1.AdminNetworkPolicyEgressPeer{{DomainNames: []v1alpha1.DomainName{"example.com"}}}}},
		},
	}
	if _, err := pc.PolicyV1alpha1().AdminNetworkPolicies().Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pc.PolicyV1alpha1().AdminNetworkPolicies().Delete(context.Background(), bad.Name, metav1.DeleteOptions{})
	})
	waitKernel(t, nsPath, "the placeholder's egress deny chain", 5*time.Second, func(rs *dataplane.Ruleset) bool {
		return len(chainsWith(rs, "egr-deny-by-name")) > 0
	})
	waitMetric(t, ag, `palisade_rejected_objects{kind="AdminNetworkPolicy"}`, "1", 5*time.Second)
	if !strings.Contains(ag.logs.String(), "enforcing a fail-closed placeholder") {
		t.Error("no log line says the placeholder is enforced")
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, _, err := kube.ReadCluster(rctx, kube.ClusterSource{Kubeconfig: srv.Kubeconfig}); err == nil ||
		!strings.Contains(err.Error(), "by-name") || !strings.Contains(err.Error(), "domainNames") {
		t.Errorf("ReadCluster with an invalid ANP: %v", err)
	}
	if err := pc.PolicyV1alpha1().AdminNetworkPolicies().Delete(ctx, bad.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitKernel(t, nsPath, "the placeholder gone", 5*time.Second, func(rs *dataplane.Ruleset) bool {
		return rs != nil && len(chainsWith(rs, "egr-")) == 0
	})
	waitMetric(t, ag, `palisade_rejected_objects{kind="AdminNetworkPolicy"}`, "0", 5*time.Second)
}
