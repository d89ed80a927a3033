package engine_test

import (
	"testing"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
)

// TestPeerKey: rules get the same PeerKey exactly when their peers are the
// same selectors and ipBlocks, whatever the policy, order or repetition.
// The dataplane shares one set between them on that promise.
func TestPeerKey(t *testing.T) {
	e := engine.New()
	key := func(ns string, ps ...model.Peer) (string, []engine.PeerID) {
		pol := fixture.Policy(ns+"/p", fixture.Sel(""), fixture.Ingress(fixture.Rule(ps)))
		e.UpsertPolicy(pol)
		r := e.Policy(pol.Key()).Rules[model.Ingress][0]
		return r.PeerKey(), r.PeerIDs()
	}
	same := []struct {
		name string
		a, b []model.Peer
	}{
		{"order and repetition", fixture.Peers(fixture.PodPeer("app=a"), fixture.BlockPeer("10.0.0.0/8", "10.1.0.0/16", "10.2.0.0/16")),
			fixture.Peers(fixture.BlockPeer("10.0.0.0/8", "10.2.0.0/16", "10.1.0.0/16"), fixture.PodPeer("app=a"), fixture.PodPeer("app=a"))},
		{"label order", fixture.Peers(fixture.PodPeer("app=a,tier=b")), fixture.Peers(fixture.PodPeer("tier=b,app=a"))},
	}
	for _, tc := range same {
		a, _ := key("x", tc.a...)
		b, _ := key("x", tc.b...)
		if a != b {
			t.Errorf("%s: keys differ: %q, %q", tc.name, a, b)
		}
	}
	// Namespace-bound selectors differ by namespace; namespace selectors
	// do not.
	kx, _ := key("x", fixture.PodPeer("app=a"))
	ky, _ := key("y", fixture.PodPeer("app=a"))
	if kx == ky {
		t.Errorf("pod selectors of namespaces x and y share key %q", kx)
	}
	nx, _ := key("x", fixture.NsPodPeer("team=t", "app=a"))
	ny, ids := key("y", fixture.NsPodPeer("team=t", "app=a"))
	if nx != ny {
		t.Errorf("the same namespace selector in x and y: keys %q, %q", nx, ny)
	}
	if ids[0].Desc != "pods app=a in namespaces team=t" || ids[0].Short != "ns:team=t.app=a" {
		t.Errorf("ids = %+v", ids)
	}
	bx, _ := key("x", fixture.BlockPeer("10.0.0.0/8", "10.1.0.0/16"))
	by, _ := key("x", fixture.BlockPeer("10.0.0.0/8"))
	if bx == by {
		t.Errorf("different exceptions share key %q", bx)
	}
}
