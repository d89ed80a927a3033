package main

import (
	"context"
	"net/netip"
	"os/exec"
	"testing"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
)

// TestChainProbe: the probe finds a pod's ingress chain and its rule
// comments in a real table, and reports a pod that is not isolated.
func TestChainProbe(t *testing.T) {
	fixture.RequireRoot(t)
	name := "palisade-test-chainprobe"
	exec.Command("ip", "netns", "del", name).Run()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", name).Run()
	path := "/run/netns/" + name

	c := model.NewCluster()
	web := &model.Pod{Namespace: "shop", Name: "web", Node: "n1", Labels: map[string]string{"app": "web"},
		IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}
	other := &model.Pod{Namespace: "shop", Name: "other", Node: "n1", Labels: map[string]string{"app": "other"},
		IPs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}}
	c.Pods[web.Key()], c.Pods[other.Key()] = web, other
	pol := &model.Policy{Namespace: "shop", Name: "lat-0001", PodSelector: model.Selector{MatchLabels: map[string]string{"app": "web"}},
		Ingress: true, IngressRules: []model.Rule{{Peers: []model.Peer{{PodSelector: &model.Selector{}}}}}}
	c.Policies[pol.Key()] = pol
	en, err := dataplane.New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer en.Close()
	if _, err := en.Apply(context.Background(), dataplane.Compile(engine.FromCluster(c), "n1", dataplane.Options{})); err != nil {
		t.Fatal(err)
	}
	p, err := newChainProbe(path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, tc := range []struct {
		pod    netip.Addr
		prefix string
		want   bool
	}{
		{web.IPs[0], "shop/lat-0001 ingress[0]", true},
		{web.IPs[0], "shop/lat-0002 ", false},
		{other.IPs[0], "shop/lat-0001 ", false},
	} {
		if got, err := p.hasComment(tc.pod, tc.prefix); err != nil || got != tc.want {
			t.Errorf("hasComment(%s, %q) = %v, %v; want %v", tc.pod, tc.prefix, got, err, tc.want)
		}
	}
}
