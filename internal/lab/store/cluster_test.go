package store_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/lab/store"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
)

const clusterPods = `
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  containers: [{name: c, image: nginx, ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client}}
spec:
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: default, labels: {app: other}}
spec:
  containers: [{name: c, image: busybox}]
`

// The Admin tier denies client; the CNP (Baseline) denies every pod
// ingress but other's; the BANP, after it, would deny the rest.
const clusterPolicies = `
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: deny-client}
spec:
  priority: 10
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: web}}}}
  ingress:
  - action: Deny
    from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: client}}}}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: baseline-other}
spec:
  tier: Baseline
  priority: 1
  subject: {namespaces: {}}
  ingress:
  - action: Accept
    from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: other}}}}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  ingress:
  - action: Deny
    from: [{namespaces: {}}]
`

func read(t *testing.T, docs string) []manifest.Object {
	t.Helper()
	objs, err := manifest.Read([]string{"-"}, strings.NewReader(docs), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// Cluster-wide policies of the three kinds go through the store like
// NetworkPolicies: kubectl's lines, kept in the state (a reopened
// session has them), enforced by the lab's nodes, and removed.
func TestSessionClusterPolicies(t *testing.T) {
	fixture.RequireRoot(t)
	const name = "storecluster"
	_ = lab.Down(name)
	t.Cleanup(func() {
		if err := lab.Down(name); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	ctx := context.Background()
	var out bytes.Buffer
	s, err := store.New(ctx, name, 2, read(t, clusterPods), &out)
	if s != nil {
		defer s.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	srv, err := s.Lab.StartServers()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	web := s.Lab.Cluster().Pods[model.Key{Namespace: "default", Name: "web"}].IPs[0]
	reach := func(from string) bool {
		t.Helper()
		ok, err := s.Lab.Probe(ctx, model.Key{Namespace: "default", Name: from}, web, 80, model.TCP, time.Second)
		if err != nil {
			t.Fatalf("probe %s -> web: %v", from, err)
		}
		return ok
	}
	check := func(what string, client, other bool) {
		t.Helper()
		if got := reach("client"); got != client {
			t.Errorf("%s: client -> web allowed = %v, want %v", what, got, client)
		}
		if got := reach("other"); got != other {
			t.Errorf("%s: other -> web allowed = %v, want %v", what, got, other)
		}
	}
	check("no policy", true, true)

	out.Reset()
	if err := s.Apply(ctx, read(t, clusterPolicies), &out); err != nil {
		t.Fatal(err)
	}
	want := "adminnetworkpolicy.policy.networking.k8s.io/deny-client created\n" +
		"clusternetworkpolicy.policy.networking.k8s.io/baseline-other created\n" +
		"baselineadminnetworkpolicy.policy.networking.k8s.io/default created\n"
	if out.String() != want {
		t.Errorf("apply printed\n%s\nwant\n%s", out.String(), want)
	}
	check("three cluster policies", false, true)

	r, err := store.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := len(r.Lab.Cluster().ClusterPolicies); got != 3 {
		t.Errorf("reopened lab: %d cluster policies, want 3", got)
	}
	for _, kind := range []string{model.KindAdminNetworkPolicy, model.KindBaselineAdminNetworkPolicy, model.KindClusterNetworkPolicy} {
		if got := len(r.Find(kind, "", "")); got != 1 {
			t.Errorf("reopened store: %d %s, want 1", got, kind)
		}
	}
	out.Reset()
	if err := r.Apply(ctx, read(t, clusterPolicies), &out); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), " unchanged\n") != 3 {
		t.Errorf("re-apply printed\n%s", out.String())
	}

	// The Baseline CNP goes: the BANP denies other too.
	out.Reset()
	cnp := read(t, clusterPolicies)[1:2]
	if err := r.Remove(ctx, cnp, &out); err != nil {
		t.Fatal(err)
	}
	if want := "clusternetworkpolicy.policy.networking.k8s.io \"baseline-other\" deleted\n"; out.String() != want {
		t.Errorf("remove printed %q, want %q", out.String(), want)
	}
	check("without the CNP", false, false)

	if err := r.Remove(ctx, read(t, clusterPolicies), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "not found: ClusterNetworkPolicy/baseline-other") {
		t.Errorf("removing the CNP twice: %v", err)
	}
	check("no cluster policy", true, true)
}
