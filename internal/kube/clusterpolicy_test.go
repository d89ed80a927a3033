package kube

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
	npafake "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned/fake"

	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/source"
)

// discoClient is a fake clientset whose discovery the test controls.
type discoClient struct {
	*fake.Clientset
	disc *fakeDisco
}

func (c *discoClient) Discovery() discovery.DiscoveryInterfaces { return c.disc }

// fakeDisco serves the policy group versions it is told, or fails.
type fakeDisco struct {
	*fakediscovery.FakeDiscovery
	mu     sync.Mutex
	served []string // versions of policy.networking.k8s.io
	err    error
	calls  int
	glitch map[string]int // version -> answers "not found" still to give
}

func (d *fakeDisco) set(err error, versions ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.served, d.err = versions, err
}

func (d *fakeDisco) ServerResourcesForGroupVersionWithContext(_ context.Context, gv string) (*metav1.APIResourceList, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	if d.err != nil {
		return nil, d.err
	}
	if v := strings.TrimPrefix(gv, PolicyGroup+"/"); d.glitch[v] > 0 {
		d.glitch[v]--
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: PolicyGroup}, gv)
	}
	res := map[string][]string{
		PolicyGroup + "/v1alpha1": {"adminnetworkpolicies", "baselineadminnetworkpolicies"},
		PolicyGroup + "/v1alpha2": {"clusternetworkpolicies"},
		PolicyGroup + "/v1beta1":  {"clusternetworkpolicies"},
	}[gv]
	for _, v := range d.served {
		if PolicyGroup+"/"+v == gv {
			l := &metav1.APIResourceList{GroupVersion: gv}
			for _, r := range res {
				l.APIResources = append(l.APIResources, metav1.APIResource{Name: r})
			}
			return l, nil
		}
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Group: PolicyGroup}, gv)
}

func testANP(name string, prio int32) *v1alpha1.AdminNetworkPolicy {
	return &v1alpha1.AdminNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.AdminNetworkPolicySpec{
			Priority: prio,
			Subject:  v1alpha1.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}},
			Ingress: []v1alpha1.AdminNetworkPolicyIngressRule{{Name: "deny-all", Action: v1alpha1.AdminNetworkPolicyRuleActionDeny,
				From: []v1alpha1.AdminNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}}}},
		},
	}
}

func testBANP() *v1alpha1.BaselineAdminNetworkPolicy {
	return &v1alpha1.BaselineAdminNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec: v1alpha1.BaselineAdminNetworkPolicySpec{
			Subject: v1alpha1.AdminNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
			Egress: []v1alpha1.BaselineAdminNetworkPolicyEgressRule{{Action: v1alpha1.BaselineAdminNetworkPolicyRuleActionDeny,
				To: []v1alpha1.BaselineAdminNetworkPolicyEgressPeer{{Namespaces: &metav1.LabelSelector{}}}}},
		},
	}
}

func testCNP(name string) *v1alpha2.ClusterNetworkPolicy {
	return &v1alpha2.ClusterNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha2.ClusterNetworkPolicySpec{
			Tier: v1alpha2.BaselineTier, Priority: 7,
			Subject: v1alpha2.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}},
			Ingress: []v1alpha2.ClusterNetworkPolicyIngressRule{{Action: v1alpha2.ClusterNetworkPolicyRuleActionAccept,
				From: []v1alpha2.ClusterNetworkPolicyIngressPeer{{Namespaces: &metav1.LabelSelector{}}}}},
		},
	}
}

// startClusterSource runs a source with a controlled discovery and the
// fake policy clientset pc; it does not wait for synced.
func startClusterSource(t *testing.T, disc *fakeDisco, pc *npafake.Clientset, recheck time.Duration) (*Source, *recorder) {
	t.Helper()
	cs := &discoClient{Clientset: fake.NewClientset(), disc: disc}
	disc.FakeDiscovery = cs.Clientset.Discovery().(*fakediscovery.FakeDiscovery)
	src := NewSource(cs, SourceOptions{NodeName: "node-1", Policies: pc, CRDRecheck: recheck, UnhealthyAfter: 100 * time.Millisecond})
	r := newRecorder()
	fixture.RunUntilCleanup(t, func(ctx context.Context) error {
		return src.Run(ctx, r.push, func() { close(r.synced) })
	})
	return src, r
}

func waitSynced(t *testing.T, r *recorder) {
	t.Helper()
	select {
	case <-r.synced:
	case <-time.After(5 * time.Second):
		t.Fatal("source never synced")
	}
}

func isCluster(kind, name string, del bool) func(source.Event) bool {
	return func(ev source.Event) bool {
		return ev.Kind == source.KindClusterPolicy && ev.ClusterKey == model.ClusterKey{Kind: kind, Name: name} && ev.Delete == del
	}
}

// The served kinds are listed before synced and followed after: adds,
// updates, deletes; an invalid one comes with its error and a fail-closed
// placeholder.
func TestClusterPolicySource(t *testing.T) {
	ctx := context.Background()
	disc := &fakeDisco{}
	disc.set(nil, "v1alpha1", "v1alpha2", "v1beta1")
	pc := newPolicyClient(testANP("a", 10), testBANP(), testCNP("c"))
	src, r := startClusterSource(t, disc, pc, time.Hour)
	waitSynced(t, r)
	got := map[model.ClusterKey]source.Event{}
	for _, ev := range r.take() {
		if ev.Kind == source.KindClusterPolicy {
			got[ev.ClusterKey] = ev
		}
	}
	for _, tc := range []struct {
		kind, name, version string
		tier                model.Tier
		prio                int32
	}{
		{model.KindAdminNetworkPolicy, "a", "v1alpha1", model.AdminTier, 10},
		{model.KindBaselineAdminNetworkPolicy, "default", "v1alpha1", model.BaselineTier, model.BaselinePriority},
		{model.KindClusterNetworkPolicy, "c", "v1alpha2", model.BaselineTier, 7},
	} {
		ev, ok := got[model.ClusterKey{Kind: tc.kind, Name: tc.name}]
		p := ev.ClusterPolicy
		if !ok || ev.Err != nil || p == nil || p.Tier != tc.tier || p.Priority != tc.prio || ev.Received.IsZero() {
			t.Errorf("%s/%s initial event: %+v (policy %+v)", tc.kind, tc.name, ev, p)
		}
	}
	if len(got) != 3 {
		t.Errorf("initial cluster policy events: %v", got)
	}
	if u := src.Unserved(); len(u) != 0 {
		t.Errorf("Unserved = %v, want none", u)
	}

	anps := pc.PolicyV1alpha1().AdminNetworkPolicies()
	if _, err := anps.Update(ctx, testANP("a", 20), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev, _ := r.waitFor(t, "ANP update", isCluster(model.KindAdminNetworkPolicy, "a", false))
	if ev.ClusterPolicy == nil || ev.ClusterPolicy.Priority != 20 {
		t.Errorf("update: %+v", ev.ClusterPolicy)
	}

	// Invalid: a domainNames peer. The placeholder denies, in the
	// policy's tier and priority, for its subject, the directions it has.
	bad := testANP("bad", 3)
	bad.Spec.Ingress = nil
	bad.Spec.Egress = []v1alpha1.AdminNetworkPolicyEgressRule{{Action: v1alpha1.AdminNetworkPolicyRuleActionAllow,
		To: []v1alpha1.AdminNetworkPolicyEgressPeer{{DomainNames: []v1alpha1.DomainName{"example.com"}}}}}
	if _, err := anps.Create(ctx, bad, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev, _ = r.waitFor(t, "invalid ANP", isCluster(model.KindAdminNetworkPolicy, "bad", false))
	p := ev.ClusterPolicy
	if ev.Err == nil || p == nil {
		t.Fatalf("invalid ANP: err %v, policy %+v", ev.Err, p)
	}
	if p.Tier != model.AdminTier || p.Priority != 3 || len(p.IngressRules) != 0 || len(p.EgressRules) != 1 ||
		p.EgressRules[0].Action != model.Deny || p.Subject.Namespaces == nil || p.Subject.Namespaces.MatchLabels["team"] != "a" {
		t.Errorf("placeholder: %+v", p)
	}

	if err := pc.PolicyV1alpha2().ClusterNetworkPolicies().Delete(ctx, "c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "CNP delete", isCluster(model.KindClusterNetworkPolicy, "c", true))
}

// A kind whose CRD is absent is not watched and does not hold up the
// first sync; once served it is watched, what exists of it arrives; when
// it stops being served its policies are deleted.
func TestClusterPolicyCRDLater(t *testing.T) {
	disc := &fakeDisco{}
	pc := newPolicyClient(testANP("a", 10), testCNP("c"))
	src, r := startClusterSource(t, disc, pc, 20*time.Millisecond)
	waitSynced(t, r)
	for _, ev := range r.take() {
		if ev.Kind == source.KindClusterPolicy {
			t.Errorf("event of an unserved kind: %+v", ev)
		}
	}
	if u := src.Unserved(); len(u) != 3 {
		t.Errorf("Unserved = %v, want all three", u)
	}
	if err := src.Healthy(); err != nil {
		t.Errorf("absent CRDs made the source unhealthy: %v", err)
	}

	disc.set(nil, "v1alpha1")
	r.waitFor(t, "ANP once served", isCluster(model.KindAdminNetworkPolicy, "a", false))
	eventually(t, "ANP and BANP served", func() bool {
		return slices.Equal(src.Unserved(), []string{model.KindClusterNetworkPolicy})
	})

	// Only v1beta1 of ClusterNetworkPolicy: watched as that.
	disc.set(nil, "v1alpha1", "v1beta1")
	betaCNP := &v1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "beta"}, Spec: v1beta1.ClusterNetworkPolicySpec{
		Tier: v1beta1.AdminTier, Priority: 1, Subject: v1beta1.ClusterNetworkPolicySubject{Namespaces: &metav1.LabelSelector{}}}}
	if _, err := pc.PolicyV1beta1().ClusterNetworkPolicies().Create(context.Background(), betaCNP, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev, _ := r.waitFor(t, "v1beta1 CNP", isCluster(model.KindClusterNetworkPolicy, "beta", false))
	if ev.ClusterPolicy == nil || ev.ClusterPolicy.Tier != model.AdminTier || ev.Err != nil {
		t.Errorf("v1beta1 CNP: %+v", ev)
	}

	// One discovery that misses v1alpha1 (a restarting API server) is
	// not taken as the CRD's removal: nothing is deleted.
	disc.mu.Lock()
	disc.glitch = map[string]int{"v1alpha1": 1}
	disc.mu.Unlock()
	eventually(t, "the glitch answered", func() bool {
		disc.mu.Lock()
		defer disc.mu.Unlock()
		return disc.glitch["v1alpha1"] == 0
	})
	time.Sleep(100 * time.Millisecond) // five rechecks
	for _, ev := range r.take() {
		if ev.Delete {
			t.Errorf("deleted after one discovery missed its kind: %+v", ev)
		}
	}
	if u := src.Unserved(); len(u) != 0 {
		t.Errorf("Unserved after one glitch = %v", u)
	}

	// The ANP CRD goes (v1alpha1 no longer served): its policies go.
	disc.set(nil, "v1beta1")
	r.waitFor(t, "ANP delete once unserved", isCluster(model.KindAdminNetworkPolicy, "a", true))
	eventually(t, "ANP and BANP unserved", func() bool {
		return slices.Equal(src.Unserved(), []string{model.KindAdminNetworkPolicy, model.KindBaselineAdminNetworkPolicy})
	})
}

// Discovery that fails (not "not found") holds up the first sync until it
// answers; a list of a served kind that fails holds it up too, and makes
// the source unhealthy: it never reads as "no policies".
func TestClusterPolicyFailuresHoldSync(t *testing.T) {
	t.Run("discovery", func(t *testing.T) {
		disc := &fakeDisco{}
		disc.set(apierrors.NewInternalError(errors.New("boom")), "v1alpha1")
		_, r := startClusterSource(t, disc, newPolicyClient(testANP("a", 1)), time.Hour)
		select {
		case <-r.synced:
			t.Fatal("synced while discovery fails")
		case <-time.After(300 * time.Millisecond):
		}
		disc.set(nil, "v1alpha1")
		waitSynced(t, r)
		if !slices.ContainsFunc(r.take(), isCluster(model.KindAdminNetworkPolicy, "a", false)) {
			t.Error("the ANP was not in the initial state")
		}
	})
	t.Run("list", func(t *testing.T) {
		disc := &fakeDisco{}
		disc.set(nil, "v1alpha1")
		pc := newPolicyClient(testANP("a", 1))
		var fail sync.Mutex
		failing := true
		pc.PrependReactor("list", "adminnetworkpolicies", func(k8stesting.Action) (bool, runtime.Object, error) {
			fail.Lock()
			defer fail.Unlock()
			if failing {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: PolicyGroup, Resource: "adminnetworkpolicies"}, "", errors.New("no RBAC"))
			}
			return false, nil, nil
		})
		src, r := startClusterSource(t, disc, pc, time.Hour)
		select {
		case <-r.synced:
			t.Fatal("synced while the list of a served kind fails")
		case <-time.After(300 * time.Millisecond):
		}
		eventually(t, "unhealthy", func() bool { return src.Healthy() != nil })
		fail.Lock()
		failing = false
		fail.Unlock()
		waitSynced(t, r)
		if !slices.ContainsFunc(r.take(), isCluster(model.KindAdminNetworkPolicy, "a", false)) {
			t.Error("the ANP was not in the initial state")
		}
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newPolicyClient is the policy API's fake clientset. Its NewClientset
// fails on updates (its generated code has no apply schema for these
// types); the simple one tracks objects without field management.
func newPolicyClient(objs ...runtime.Object) *npafake.Clientset {
	return npafake.NewSimpleClientset(objs...)
}

// Every node is watched, with its labels: cluster policies' nodes peers
// select other nodes by label.
func TestSourceAllNodes(t *testing.T) {
	other := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-2", Labels: map[string]string{"role": "db"}},
		Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.0.2"}}}}
	_, r := startSource(t, fake.NewClientset(other), "node-1")
	var n *model.Node
	for _, ev := range r.take() {
		if ev.Kind == source.KindNode && ev.Key.Name == "node-2" {
			n = ev.Node
		}
	}
	if n == nil || n.Labels["role"] != "db" || len(n.IPs) != 1 {
		t.Errorf("node-2: %+v", n)
	}
}

// kubectl's names of the cluster policy kinds; Apply without a client of
// the policy group fails naming it, rather than skipping the object.
func TestClusterPolicyApplyNames(t *testing.T) {
	anp := manifest.Object{Kind: model.KindAdminNetworkPolicy, Key: model.Key{Name: "a"}, API: testANP("a", 1)}
	cnp := manifest.Object{Kind: model.KindClusterNetworkPolicy, Key: model.Key{Name: "c"}, API: testCNP("c")}
	for _, tc := range []struct{ got, want string }{
		{ResourceName(anp), "adminnetworkpolicy.policy.networking.k8s.io/a"},
		{Deleted(cnp), `clusternetworkpolicy.policy.networking.k8s.io "c" deleted`},
		{Deleted(manifest.Object{Kind: "NetworkPolicy", Key: model.Key{Namespace: "x", Name: "n"}}), `networkpolicy "n" deleted`},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	err := Apply(context.Background(), fake.NewClientset(), []manifest.Object{anp}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), PolicyGroup) {
		t.Errorf("Apply without a policy client: %v", err)
	}
	// With one, the ANP goes to its typed client (server-side apply,
	// which the fake may not implement: the calls made are the point).
	pc := newPolicyClient()
	Apply(context.Background(), &Client{Policies: pc}, []manifest.Object{anp}, io.Discard)
	if !slices.ContainsFunc(pc.Actions(), func(a k8stesting.Action) bool {
		return a.GetVerb() == "patch" && a.GetResource().Resource == "adminnetworkpolicies"
	}) {
		t.Errorf("no apply patch of adminnetworkpolicies: %v", pc.Actions())
	}
}
