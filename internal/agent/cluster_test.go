package agent

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/source"
)

func clusterEv(p *model.ClusterPolicy) source.Event {
	return source.Event{Kind: source.KindClusterPolicy, ClusterKey: p.Key(), ClusterPolicy: p, Received: time.Now()}
}

func clusterDel(kind, name string) source.Event {
	return source.Event{Kind: source.KindClusterPolicy, ClusterKey: model.ClusterKey{Kind: kind, Name: name}, Delete: true, Received: time.Now()}
}

// denyFrom is an Admin-tier policy of kind denying ingress to the pods
// labelled app=to from those labelled app=from.
func denyFrom(kind, name string, prio int32, to, from string) *model.ClusterPolicy {
	tier := model.AdminTier
	if kind == model.KindBaselineAdminNetworkPolicy {
		tier = model.BaselineTier
	}
	return &model.ClusterPolicy{
		Kind: kind, Name: name, Tier: tier, Priority: prio,
		Subject: model.ClusterSubject{Pods: &model.NamespacedPods{PodSelector: model.Selector{MatchLabels: map[string]string{"app": to}}}},
		IngressRules: []model.ClusterRule{{Action: model.Deny, Peers: []model.ClusterPeer{
			{Pods: &model.NamespacedPods{PodSelector: model.Selector{MatchLabels: map[string]string{"app": from}}}},
		}}},
	}
}

// Cluster policy events of every kind reach the engine, keyed by kind and
// name (two kinds may share a name); a rejected one with a placeholder
// enforces it, one without keeps the last good version; the gauges and
// the rejected count follow; the flows they deny are cut.
func TestClusterPolicyEvents(t *testing.T) {
	ip := netip.MustParseAddr
	flows := &fakeFlows{flows: []Flow{{model.TCP, ip("10.0.1.1"), ip("10.0.0.1"), 80}}}
	h := startAgent(t, Options{Flows: flows})
	web := pod("shop", "web", testNode, "10.0.0.1", "app", "web")
	client := pod("shop", "client", "n2", "10.0.1.1", "app", "client")
	h.push(nsEv("shop"))
	h.push(podEv(web))
	h.push(podEv(client))
	h.synced()
	h.settle()
	if !h.allowed(client.Key(), web.Key()) {
		t.Fatal("client must reach web before any policy")
	}
	known := func() []model.ClusterKey {
		var out []model.ClusterKey
		h.a.withEngine(func(e *engine.Engine) {
			for _, p := range e.ClusterPolicies() {
				out = append(out, p.Key())
			}
		})
		return out
	}
	anp := model.KindAdminNetworkPolicy
	cnp := model.KindClusterNetworkPolicy
	steps := []struct {
		name     string
		events   []source.Event
		allowed  bool
		known    int
		rejected map[string]float64
	}{
		{"ANP denies", []source.Event{clusterEv(denyFrom(anp, "x", 10, "web", "client"))}, false, 1, nil},
		{"CNP of the same name is another policy", []source.Event{clusterEv(denyFrom(cnp, "x", 20, "web", "other"))}, false, 2, nil},
		{"ANP deleted: the CNP does not match client", []source.Event{clusterDel(anp, "x")}, true, 1, nil},
		{"rejected CNP without placeholder keeps its last good version", []source.Event{{
			Kind: source.KindClusterPolicy, ClusterKey: model.ClusterKey{Kind: cnp, Name: "x"}, Err: errors.New("bad"), Received: time.Now(),
		}}, true, 1, map[string]float64{cnp: 1, anp: 0}},
		{"rejected ANP with a placeholder enforces it", []source.Event{{
			Kind: source.KindClusterPolicy, ClusterKey: model.ClusterKey{Kind: anp, Name: "y"}, Err: errors.New("bad"),
			ClusterPolicy: denyFrom(anp, "y", 5, "web", "client"), Received: time.Now(),
		}}, false, 2, map[string]float64{cnp: 1, anp: 1}},
		{"good versions clear the rejections", []source.Event{
			clusterEv(denyFrom(anp, "y", 5, "web", "nobody")), clusterEv(denyFrom(cnp, "x", 20, "web", "other")),
		}, true, 2, map[string]float64{cnp: 0, anp: 0}},
		{"all deleted", []source.Event{clusterDel(anp, "y"), clusterDel(cnp, "x"), clusterDel(anp, "never-seen")}, true, 0, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			for _, ev := range st.events {
				h.push(ev)
			}
			h.settle()
			if got := h.allowed(client.Key(), web.Key()); got != st.allowed {
				t.Errorf("client -> web allowed = %v, want %v", got, st.allowed)
			}
			if got := known(); len(got) != st.known {
				t.Errorf("engine has %v, want %d policies", got, st.known)
			}
			if g := gauge(t, h.a, "palisade_cluster_policies"); g != float64(st.known) {
				t.Errorf("palisade_cluster_policies = %v, want %d", g, st.known)
			}
			for kind, want := range st.rejected {
				if g := gauge(t, h.a, "palisade_rejected_objects", "kind", kind); g != want {
					t.Errorf("palisade_rejected_objects{kind=%s} = %v, want %v", kind, g, want)
				}
			}
			if st.name == "ANP denies" {
				h.sweepsDone()
				if got, _ := flows.get(); len(got) != 0 {
					t.Errorf("the denied flow was not cut: %+v", got)
				}
			}
		})
	}
}

// The rejected gauge exports zeros for the three cluster kinds, and the
// unserved gauge follows a source that reports unserved kinds.
func TestClusterMetricsExported(t *testing.T) {
	src := &unservedSource{fakeSource: newFakeSource(), unserved: []string{model.KindAdminNetworkPolicy}}
	a := New(src, newFakeDP(), Options{NodeName: testNode})
	for _, k := range []string{model.KindAdminNetworkPolicy, model.KindBaselineAdminNetworkPolicy, model.KindClusterNetworkPolicy} {
		if g := gauge(t, a, "palisade_rejected_objects", "kind", k); g != 0 {
			t.Errorf("rejected %s = %v", k, g)
		}
		want := 0.0
		if k == model.KindAdminNetworkPolicy {
			want = 1
		}
		if g := gauge(t, a, "palisade_api_kind_unserved", "kind", k); g != want {
			t.Errorf("unserved %s = %v, want %v", k, g, want)
		}
	}
}

type unservedSource struct {
	*fakeSource
	unserved []string
}

func (s *unservedSource) Unserved() []string { return s.unserved }
