package kubeproxy

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/palisade-net/palisade/internal/model"
)

func TestServiceRules(t *testing.T) {
	c := model.NewCluster()
	ip := netip.MustParseAddr
	c.Pods[model.Key{Namespace: "d", Name: "a"}] = &model.Pod{Namespace: "d", Name: "a", Labels: map[string]string{"app": "w"},
		IPs: []netip.Addr{ip("10.0.0.1")}, Ports: []model.ContainerPort{{Name: "http", Port: 8080, Protocol: model.TCP}}}
	c.Pods[model.Key{Namespace: "d", Name: "b"}] = &model.Pod{Namespace: "d", Name: "b", Labels: map[string]string{"app": "w"},
		IPs: []netip.Addr{ip("10.0.0.2"), ip("fd00::2")}}
	s := &model.Service{Namespace: "d", Name: "w", Selector: map[string]string{"app": "w"},
		ClusterIPs: []netip.Addr{ip("10.96.0.10"), ip("fd00:10:96::a")},
		Ports: []model.ServicePort{
			{Protocol: model.TCP, Port: 80, TargetPortName: "http"},
			{Protocol: model.UDP, Port: 53, TargetPort: 5353},
		}}
	c.Services[s.Key()] = s
	got := Rules(c)
	k := s.Key()
	want := []Rule{
		{k, ip("10.96.0.10"), model.TCP, 80, []Endpoint{{ip("10.0.0.1"), 8080}}}, // b has no port "http"
		{k, ip("fd00:10:96::a"), model.TCP, 80, nil},                             // a has no IPv6: reject
		{k, ip("10.96.0.10"), model.UDP, 53, []Endpoint{{ip("10.0.0.1"), 5353}, {ip("10.0.0.2"), 5353}}},
		{k, ip("fd00:10:96::a"), model.UDP, 53, []Endpoint{{ip("fd00::2"), 5353}}},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("Rules (-want +got):\n%s", diff)
	}
}
