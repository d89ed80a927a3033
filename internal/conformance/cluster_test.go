package conformance

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/truth"
)

// recordingObserver answers each step's probe with that step's expected
// grid (a lab that enforces as the spec says), and records what Run asked
// of it.
type recordingObserver struct {
	sc    *Scenario
	syncs int
	calls []string
}

func (o *recordingObserver) Setup(context.Context, *model.Cluster) error {
	o.calls = append(o.calls, "setup")
	return nil
}

func (o *recordingObserver) Sync(context.Context, *model.Cluster) error {
	o.calls = append(o.calls, "sync")
	o.syncs++
	return nil
}

func (o *recordingObserver) Probe(_ context.Context, pods []*model.Pod, _ netip.Addr, _ uint16, _ model.Protocol) (*truth.Grid, bool, error) {
	o.calls = append(o.calls, "probe")
	return Expected(pods, o.sc.Steps[o.syncs-1].Probes[0]), false, nil
}

func (o *recordingObserver) Teardown() error {
	o.calls = append(o.calls, "teardown")
	return nil
}

// enforcingObserver enforces the kinds in enforces.
type enforcingObserver struct {
	*recordingObserver
	enforces []string
}

func (o enforcingObserver) EnforcesClusterPolicyKind(kind string) bool {
	return slices.Contains(o.enforces, kind)
}

// denyYIntoX is an Admin-tier policy denying ingress from namespace y to
// namespace x, built without a decoder.
func denyYIntoX() *model.ClusterPolicy {
	ns := func(name string) *model.Selector {
		return &model.Selector{MatchLabels: map[string]string{model.NamespaceNameLabel: name}}
	}
	return &model.ClusterPolicy{
		Kind: model.KindClusterNetworkPolicy, Name: "deny-y-into-x", Tier: model.AdminTier, Priority: 10,
		Subject:      model.ClusterSubject{Namespaces: ns("x")},
		IngressRules: []model.ClusterRule{{Action: model.Deny, Peers: []model.ClusterPeer{{Namespaces: ns("y")}}}},
	}
}

// clusterScenario applies denyYIntoX, then deletes it; each step probes
// TCP 80 with the expectation the spec gives.
func clusterScenario() *Scenario {
	p := denyYIntoX()
	probe := func(rules ...ExpectRule) Probe {
		return Probe{Family: netip.IPv4Unspecified(), Port: 80, Protocol: model.TCP, Default: true, Rules: rules}
	}
	return &Scenario{Name: "cluster", Cluster: Standard(), Steps: []Step{
		{Do: []Action{{Apply: &manifest.Object{Kind: p.Kind, Key: model.Key{Name: p.Name}, Model: p}}},
			Probes: []Probe{probe(ExpectRule{From: "y/*", To: "x/*"})}},
		{Do: []Action{{Delete: &ObjectRef{Kind: p.Kind, Name: p.Name}}}, Probes: []Probe{probe()}},
	}}
}

// TestRunClusterPolicy: the engine runner applies and deletes a cluster
// policy, and a wrong expectation about it fails.
func TestRunClusterPolicy(t *testing.T) {
	sc := clusterScenario()
	if got := ClusterPolicyKinds(sc); !slices.Equal(got, []string{model.KindClusterNetworkPolicy}) {
		t.Fatalf("ClusterPolicyKinds = %q", got)
	}
	if r := Run(context.Background(), sc, nil); !r.Pass {
		t.Fatalf("failures: %q", r.Failures)
	}
	sc.Steps[1].Probes[0].Rules = []ExpectRule{{From: "y/a", To: "x/b"}}
	r := Run(context.Background(), sc, nil)
	if r.Pass || !strings.Contains(strings.Join(r.Failures, "\n"), "step 2, 80/TCP, predicted: y/a -> x/b: want deny, got allow") {
		t.Errorf("pass %v, failures %q", r.Pass, r.Failures)
	}
	sc.Steps[1].Do[0].Delete.Name = "gone"
	r = Run(context.Background(), sc, nil)
	if r.Pass || !strings.Contains(strings.Join(r.Failures, "\n"), "delete: no ClusterNetworkPolicy gone") {
		t.Errorf("pass %v, failures %q", r.Pass, r.Failures)
	}
}

// TestObserverWithoutClusterPolicies: an observer that does not enforce a
// kind of cluster-wide policy is never asked to build a scenario that
// uses it, and the scenario fails saying so, though the engine agrees
// with the expectation; one that enforces the kind is run as usual.
func TestObserverWithoutClusterPolicies(t *testing.T) {
	tests := []struct {
		name     string
		enforces []string // nil: no EnforcesClusterPolicyKind method
		accepted bool
	}{
		{"no method", nil, false},
		{"other kinds", []string{model.KindAdminNetworkPolicy, model.KindBaselineAdminNetworkPolicy}, false},
		{"its kind", []string{model.KindClusterNetworkPolicy}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := clusterScenario()
			rec := &recordingObserver{sc: sc}
			var obs Observer = rec
			if tt.enforces != nil {
				obs = enforcingObserver{rec, tt.enforces}
			}
			r := Run(context.Background(), sc, obs)
			calls := strings.Join(rec.calls, " ")
			if tt.accepted {
				if !r.Pass || r.Observed == nil || len(r.Observed.Steps) != 2 || calls != "setup sync probe sync probe teardown" {
					t.Errorf("pass %v, failures %q, observed %v, calls %q", r.Pass, r.Failures, r.Observed, calls)
				}
				return
			}
			want := fmt.Sprintf("observed: not run: the observer (%T) does not enforce ClusterNetworkPolicy, which this scenario uses", obs)
			if r.Pass || len(r.Failures) != 1 || r.Failures[0] != want || r.Observed != nil || calls != "" {
				t.Errorf("pass %v, failures %q, observed %v, calls %q; want only %q", r.Pass, r.Failures, r.Observed, calls, want)
			}
			if len(r.Predicted.Steps) != 2 {
				t.Errorf("%d predicted steps, want the engine run anyway", len(r.Predicted.Steps))
			}
		})
	}
}
