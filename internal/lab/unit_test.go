package lab

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/palisade-net/palisade/internal/model"
)

// These tests need no root.

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{
		"default": true, "lab2": true, "a": true,
		"": false, "my-lab": false, "Lab": false, "2lab": false, "a/b": false, strings.Repeat("a", 21): false,
	} {
		if err := ValidName(name); (err == nil) != ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestNames(t *testing.T) {
	k := model.Key{Namespace: "x", Name: "a"}
	if got, want := podNetNS("default", k), "palisade-default-x.a"; got != want {
		t.Errorf("podNetNS = %q, want %q", got, want)
	}
	long := model.Key{Namespace: strings.Repeat("n", 63), Name: strings.Repeat("p", 200)}
	if got := podNetNS("default", long); len(got) > 120 || !strings.HasPrefix(got, "palisade-default-") || !strings.Contains(got, ".") {
		t.Errorf("podNetNS(long) = %q, want a short prefixed name with a '.'", got)
	}
	for _, k := range []model.Key{k, long} {
		if v := podVeth(k); len(v) > 15 {
			t.Errorf("podVeth(%s) = %q: longer than 15", k, v)
		}
	}
	if podVeth(k) == podVeth(model.Key{Namespace: "x", Name: "b"}) {
		t.Error("podVeth: two pods share a veth name")
	}
	for node, want := range map[string]int{"node1": 1, "node12": 12, "node": 0, "node01": 0, "nodeX": 0, "kind-worker": 0} {
		if got := nodeIndex(node); got != want {
			t.Errorf("nodeIndex(%q) = %d, want %d", node, got, want)
		}
	}
}

func TestServedPorts(t *testing.T) {
	http := []model.ContainerPort{{Port: 80, Protocol: model.TCP}}
	for _, tc := range []struct {
		name string
		pod  model.Pod
		want []model.ContainerPort
	}{
		{"nginx", model.Pod{Images: []string{"nginx"}}, http},
		{"nginx tag", model.Pod{Images: []string{"nginx:1.27"}}, http},
		{"nginx registry", model.Pod{Images: []string{"docker.io/library/nginx"}}, http},
		{"nginx digest", model.Pod{Images: []string{"registry:5000/lib/nginx@sha256:abcd"}}, http},
		{"httpd", model.Pod{Images: []string{"httpd:2.4"}}, http},
		{"unknown image", model.Pod{Images: []string{"busybox"}}, []model.ContainerPort{}},
		{"declared ports win", model.Pod{Images: []string{"nginx"}, Ports: []model.ContainerPort{
			{Name: "b", Port: 53, Protocol: model.UDP}, {Name: "a", Port: 8080, Protocol: model.TCP}, {Name: "c", Port: 8080, Protocol: model.TCP}}},
			[]model.ContainerPort{{Port: 8080, Protocol: model.TCP}, {Port: 53, Protocol: model.UDP}}},
	} {
		if diff := cmp.Diff(tc.want, ServedPorts(&tc.pod)); diff != "" {
			t.Errorf("%s: ServedPorts (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestHostsFile(t *testing.T) {
	pods := []*model.Pod{
		{Namespace: "default", Name: "frontend", IPs: []netip.Addr{netip.MustParseAddr("10.244.1.2")}},
		{Namespace: "other", Name: "late", IPs: []netip.Addr{netip.MustParseAddr("10.10.5.5")}},
	}
	svcs := []*model.Service{{Namespace: "default", Name: "web", ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")}}}
	got := string(hostsFile("lab", "pod default/frontend", "default", pods, svcs))
	want := "# palisade lab lab: pod default/frontend\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"10.244.1.2\tfrontend\n10.96.0.10\tweb web.default web.default.svc web.default.svc.cluster.local\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("hostsFile (-want +got):\n%s", diff)
	}
	if other := string(hostsFile("lab", "pod other/late", "other", pods, svcs)); strings.Contains(other, "\tweb ") || strings.Contains(other, "frontend") {
		t.Errorf("hostsFile for namespace other = %q: has default's bare names", other)
	}
}

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
	got := serviceRules(c)
	k := s.Key()
	want := []svcRule{
		{k, ip("10.96.0.10"), model.TCP, 80, []dnatTarget{{ip("10.0.0.1"), 8080}}}, // b has no port "http"
		{k, ip("fd00:10:96::a"), model.TCP, 80, nil},                               // a has no IPv6: reject
		{k, ip("10.96.0.10"), model.UDP, 53, []dnatTarget{{ip("10.0.0.1"), 5353}, {ip("10.0.0.2"), 5353}}},
		{k, ip("fd00:10:96::a"), model.UDP, 53, []dnatTarget{{ip("fd00::2"), 5353}}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(svcRule{}, dnatTarget{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("serviceRules (-want +got):\n%s", diff)
	}
}

func TestAllocate(t *testing.T) {
	used := map[netip.Addr]model.Key{netip.MustParseAddr("10.244.1.2"): {}}
	got, err := allocate(netip.MustParsePrefix("10.244.1.0/24"), 2, used)
	if err != nil || got != netip.MustParseAddr("10.244.1.3") {
		t.Errorf("allocate = %v, %v; want 10.244.1.3", got, err)
	}
	full := map[netip.Addr]model.Key{}
	for a := netip.MustParseAddr("10.0.0.2"); a.Less(netip.MustParseAddr("10.0.1.0")); a = a.Next() {
		full[a] = model.Key{}
	}
	if got, err := allocate(netip.MustParsePrefix("10.0.0.0/24"), 2, full); err == nil {
		t.Errorf("allocate in a full /24 = %v, want an error", got)
	}
}
