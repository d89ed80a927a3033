package engine_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// TestPodsOnNode follows pods that come, move between nodes, lose their
// addresses, go to the host network and go, through PodsOnNode's index.
func TestPodsOnNode(t *testing.T) {
	ip := netip.MustParseAddr
	pod := func(name, node string, host bool, ips ...netip.Addr) *model.Pod {
		return &model.Pod{Namespace: "ns", Name: name, Node: node, HostNetwork: host, IPs: ips}
	}
	e := engine.New()
	for _, step := range []struct {
		name string
		do   func()
		a, b []string // PodsOnNode("a"), PodsOnNode("b")
	}{
		{"add", func() {
			e.UpsertPod(pod("p1", "a", false, ip("10.0.0.1")))
			e.UpsertPod(pod("p2", "a", false, ip("10.0.0.2")))
			e.UpsertPod(pod("p3", "b", false, ip("10.0.1.3")))
		}, []string{"p1", "p2"}, []string{"p3"}},
		{"move p2 to b", func() { e.UpsertPod(pod("p2", "b", false, ip("10.0.1.2"))) }, []string{"p1"}, []string{"p2", "p3"}},
		{"p1 loses its address", func() { e.UpsertPod(pod("p1", "a", false)) }, nil, []string{"p2", "p3"}},
		{"p3 on the host network", func() { e.UpsertPod(pod("p3", "b", true, ip("192.0.2.1"))) }, nil, []string{"p2"}},
		{"delete p2, p1 back", func() {
			e.DeletePod(model.Key{Namespace: "ns", Name: "p2"})
			e.UpsertPod(pod("p1", "a", false, ip("10.0.0.1")))
		}, []string{"p1"}, nil},
		{"delete all", func() {
			for _, n := range []string{"p1", "p3"} {
				e.DeletePod(model.Key{Namespace: "ns", Name: n})
			}
		}, nil, nil},
	} {
		step.do()
		for node, want := range map[string][]string{"a": step.a, "b": step.b} {
			var got []string
			for _, p := range e.PodsOnNode(node) {
				got = append(got, p.Name)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: PodsOnNode(%q) = %v, want %v", step.name, node, got, want)
			}
		}
	}
}
