package apiconv

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/palisade-net/palisade/internal/model"
)

var (
	addrCmp   = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	prefixCmp = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
)

func pod(tweaks ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "prod", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "nginx", Image: "nginx",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80}},
		}}},
	}
	for _, t := range tweaks {
		t(p)
	}
	return p
}

func ports(ps ...corev1.ContainerPort) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.Containers[0].Ports = ps }
}

func podIPsTweak(podIP string, ips ...string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.PodIP = podIP
		for _, ip := range ips {
			p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
		}
	}
}

func TestPodValidation(t *testing.T) {
	tests := []struct {
		name   string
		pod    *corev1.Pod
		paths  []string
		substr string
	}{
		{name: "minimal", pod: pod()},
		{name: "no containers, no namespace", pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"}}},
		{name: "bad name", pod: pod(func(p *corev1.Pod) { p.Name = "-x" }), paths: []string{"metadata.name"}},
		{name: "bad label key", pod: pod(func(p *corev1.Pod) { p.Labels = map[string]string{"app": "ok", "bad/key/x": "v"} }),
			paths: []string{"metadata.labels"}, substr: `Pod prod/web: metadata.labels: Invalid value: "bad/key/x"`},
		{name: "bad label value", pod: pod(func(p *corev1.Pod) { p.Labels = map[string]string{"app": strings.Repeat("x", 64)} }),
			paths: []string{"metadata.labels"}, substr: "must be no more than 63 bytes"},
		{name: "nodeName", pod: pod(func(p *corev1.Pod) { p.Spec.NodeName = "node-1.example" })},
		{name: "bad nodeName", pod: pod(func(p *corev1.Pod) { p.Spec.NodeName = "Node_1" }), paths: []string{"spec.nodeName"}},
		{name: "podIP", pod: pod(podIPsTweak("10.0.0.1"))},
		{name: "podIPs dual stack", pod: pod(podIPsTweak("10.0.0.1", "10.0.0.1", "fd00::1"))},
		{name: "podIPs only", pod: pod(podIPsTweak("", "fd00::1", "10.0.0.1"))},
		{name: "bad podIP", pod: pod(podIPsTweak("10.0.0.300")), paths: []string{"status.podIP"}, substr: "must be a valid IP address"},
		{name: "bad podIPs[1]", pod: pod(podIPsTweak("10.0.0.1", "10.0.0.1", "fd00::zz")),
			paths: []string{"status.podIPs[1]"}},
		{name: "podIP leading zeros", pod: pod(podIPsTweak("010.0.0.1")), paths: []string{"status.podIP"}, substr: "leading 0s"},
		{name: "podIP v4-mapped", pod: pod(podIPsTweak("::ffff:10.0.0.1")), paths: []string{"status.podIP"}},
		{name: "podIP zone", pod: pod(podIPsTweak("fe80::1%eth0")), paths: []string{"status.podIP"}},
		{name: "two IPv4", pod: pod(podIPsTweak("", "10.0.0.1", "10.0.0.2")),
			paths: []string{"status.podIPs"}, substr: "no more than one IP for each IP family"},
		{name: "podIP disagrees", pod: pod(podIPsTweak("10.0.0.2", "10.0.0.1")), paths: []string{"status.podIPs[0].ip"}},
		{name: "port protocols", pod: pod(ports(
			corev1.ContainerPort{Name: "a", ContainerPort: 80, Protocol: "TCP"},
			corev1.ContainerPort{Name: "b", ContainerPort: 80, Protocol: "UDP"},
			corev1.ContainerPort{ContainerPort: 80, Protocol: "SCTP"},
		))},
		{name: "port bad name", pod: pod(ports(corev1.ContainerPort{Name: "http_1", ContainerPort: 80})),
			paths: []string{"spec.containers[0].ports[0].name"}},
		{name: "port duplicate name", pod: pod(ports(corev1.ContainerPort{Name: "http", ContainerPort: 80}, corev1.ContainerPort{Name: "http", ContainerPort: 81})),
			paths: []string{"spec.containers[0].ports[1].name"}, substr: "Duplicate value"},
		{name: "port missing", pod: pod(ports(corev1.ContainerPort{Name: "http"})),
			paths: []string{"spec.containers[0].ports[0].containerPort"}, substr: "Required value"},
		{name: "port too big", pod: pod(ports(corev1.ContainerPort{ContainerPort: 70000})),
			paths: []string{"spec.containers[0].ports[0].containerPort"}},
		{name: "port bad protocol", pod: pod(ports(corev1.ContainerPort{ContainerPort: 80, Protocol: "ICMP"})),
			paths: []string{"spec.containers[0].ports[0].protocol"}},
		{name: "second container", pod: pod(func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "b", Ports: []corev1.ContainerPort{{ContainerPort: -1}}})
		}), paths: []string{"spec.containers[1].ports[0].containerPort"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Pod(tt.pod)
			if diff := cmp.Diff(tt.paths, fieldPaths(t, err)); diff != "" {
				t.Fatalf("Pod() error paths mismatch (-want +got):\n%s\nerror: %v", diff, err)
			}
			if err == nil && got == nil {
				t.Fatal("Pod() = nil, nil")
			}
			if err != nil && !strings.Contains(err.Error(), tt.substr) {
				t.Errorf("Pod() error = %q, want it to contain %q", err, tt.substr)
			}
		})
	}
}

func TestPodConversion(t *testing.T) {
	in := pod(
		func(p *corev1.Pod) {
			p.Namespace = ""
			p.Spec.NodeName = "node-1"
			p.Spec.HostNetwork = true
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "dns", Image: "coredns",
				Ports: []corev1.ContainerPort{{Name: "dns", ContainerPort: 53, Protocol: "UDP"}}})
		},
		podIPsTweak("10.0.0.1", "10.0.0.1", "FD00:0::1"),
	)
	want := &model.Pod{
		Namespace: "default", Name: "web",
		Labels:      map[string]string{"app": "web"},
		Node:        "node-1",
		HostNetwork: true,
		IPs:         []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")},
		Ports: []model.ContainerPort{
			{Name: "http", Port: 80, Protocol: model.TCP},
			{Name: "dns", Port: 53, Protocol: model.UDP},
		},
		Images: []string{"nginx", "coredns"},
	}
	got, err := Pod(in)
	if err != nil {
		t.Fatalf("Pod() error: %v", err)
	}
	if diff := cmp.Diff(want, got, addrCmp); diff != "" {
		t.Errorf("Pod() mismatch (-want +got):\n%s", diff)
	}
	got.Labels["app"] = "changed"
	if in.Labels["app"] != "web" {
		t.Error("Pod() shares the labels map with its input")
	}
}

func TestNamespace(t *testing.T) {
	tests := []struct {
		name  string
		ns    *corev1.Namespace
		want  *model.Namespace
		paths []string
	}{
		{
			name: "labels get the name label",
			ns:   &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "y", Labels: map[string]string{"ns": "y"}}},
			want: &model.Namespace{Name: "y", Labels: map[string]string{"ns": "y", model.NamespaceNameLabel: "y"}},
		},
		{
			name: "wrong name label is overridden",
			ns:   &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x", Labels: map[string]string{model.NamespaceNameLabel: "y"}}},
			want: &model.Namespace{Name: "x", Labels: map[string]string{model.NamespaceNameLabel: "x"}},
		},
		{
			name: "namespace field ignored on a cluster-scoped object",
			ns:   &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "Bad Namespace"}},
			want: &model.Namespace{Name: "x", Labels: map[string]string{model.NamespaceNameLabel: "x"}},
		},
		{
			name:  "name with dots",
			ns:    &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a.b"}},
			paths: []string{"metadata.name"},
		},
		{
			name:  "bad label",
			ns:    &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"x": "a b"}}},
			paths: []string{"metadata.labels"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Namespace(tt.ns)
			if diff := cmp.Diff(tt.paths, fieldPaths(t, err)); diff != "" {
				t.Fatalf("Namespace() error paths mismatch (-want +got):\n%s\nerror: %v", diff, err)
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), "Namespace "+tt.ns.Name+": ") {
					t.Errorf("Namespace() error = %q, want it to start with the kind and name", err)
				}
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Namespace() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNode(t *testing.T) {
	addrs := func(as ...corev1.NodeAddress) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: corev1.NodeStatus{Addresses: as}}
	}
	tests := []struct {
		name  string
		node  *corev1.Node
		want  *model.Node
		paths []string
	}{
		{
			name: "internal and external, hostname skipped, repeats dropped",
			node: addrs(
				corev1.NodeAddress{Type: corev1.NodeHostName, Address: "node-1"},
				corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.1"},
				corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "fd00::1"},
				corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "10.0.0.1"},
				corev1.NodeAddress{Type: corev1.NodeExternalIP, Address: "203.0.113.7"},
			),
			want: &model.Node{Name: "node-1", IPs: []netip.Addr{
				netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1"), netip.MustParseAddr("203.0.113.7"),
			}},
		},
		{
			name:  "bad address",
			node:  addrs(corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "node-1"}),
			paths: []string{"status.addresses[1].address"},
		},
		{
			name:  "bad name",
			node:  &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "Node 1"}},
			paths: []string{"metadata.name"},
		},
		{
			name: "podCIDRs, repeats dropped",
			node: cidrs("10.244.1.0/24", []string{"10.244.1.0/24", "fd00:10:244:1::/64", "10.244.1.0/24"}),
			want: &model.Node{Name: "node-1", PodCIDRs: []netip.Prefix{
				netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("fd00:10:244:1::/64"),
			}},
		},
		{
			name: "podCIDR alone (podCIDRs unset)",
			node: cidrs("10.244.1.0/24", nil),
			want: &model.Node{Name: "node-1", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24")}},
		},
		{
			name: "no pod CIDR",
			node: cidrs("", nil),
			want: &model.Node{Name: "node-1"},
		},
		{
			name:  "bad podCIDRs",
			node:  cidrs("10.244.1.0/24", []string{"10.244.1.0/24", "10.244.1.1/24", "fd00::/129", "pods"}),
			paths: []string{"spec.podCIDRs[1]", "spec.podCIDRs[2]", "spec.podCIDRs[3]"},
		},
		{
			name:  "bad podCIDR",
			node:  cidrs("10.244.01.0/24", nil),
			paths: []string{"spec.podCIDR"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Node(tt.node)
			if diff := cmp.Diff(tt.paths, fieldPaths(t, err)); diff != "" {
				t.Fatalf("Node() error paths mismatch (-want +got):\n%s\nerror: %v", diff, err)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got, addrCmp, prefixCmp); diff != "" {
				t.Errorf("Node() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// cidrs is node-1 with spec.podCIDR and spec.podCIDRs.
func cidrs(podCIDR string, podCIDRs []string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Spec: corev1.NodeSpec{PodCIDR: podCIDR, PodCIDRs: podCIDRs}}
}

func service(tweaks ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "prod"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}
	for _, t := range tweaks {
		t(s)
	}
	return s
}

func svcPorts(ps ...corev1.ServicePort) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.Ports = ps }
}

func TestServiceValidation(t *testing.T) {
	tests := []struct {
		name  string
		svc   *corev1.Service
		paths []string
	}{
		{name: "minimal", svc: service()},
		{name: "name must start with a letter", svc: service(func(s *corev1.Service) { s.Name = "1web" }), paths: []string{"metadata.name"}},
		{name: "bad selector", svc: service(func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "a b"} }), paths: []string{"spec.selector"}},
		{name: "named ports", svc: service(svcPorts(
			corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
			corev1.ServicePort{Name: "dns", Port: 53, Protocol: "UDP", TargetPort: intstr.FromInt32(5353)},
		))},
		{name: "several ports need names", svc: service(svcPorts(corev1.ServicePort{Name: "a", Port: 80}, corev1.ServicePort{Port: 81})),
			paths: []string{"spec.ports[1].name"}},
		{name: "duplicate port names", svc: service(svcPorts(corev1.ServicePort{Name: "a", Port: 80}, corev1.ServicePort{Name: "a", Port: 81})),
			paths: []string{"spec.ports[1].name"}},
		{name: "bad port", svc: service(svcPorts(corev1.ServicePort{Port: 0})), paths: []string{"spec.ports[0].port"}},
		{name: "repeated port and protocol", svc: service(svcPorts(corev1.ServicePort{Name: "a", Port: 80}, corev1.ServicePort{Name: "b", Port: 80, Protocol: "TCP"})),
			paths: []string{"spec.ports[1]"}},
		{name: "one port, two protocols", svc: service(svcPorts(corev1.ServicePort{Name: "a", Port: 53}, corev1.ServicePort{Name: "b", Port: 53, Protocol: "UDP"}))},
		{name: "bad protocol", svc: service(svcPorts(corev1.ServicePort{Port: 80, Protocol: "tcp"})), paths: []string{"spec.ports[0].protocol"}},
		{name: "bad targetPort number", svc: service(svcPorts(corev1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(70000)})),
			paths: []string{"spec.ports[0].targetPort"}},
		{name: "bad targetPort name", svc: service(svcPorts(corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("http_x")})),
			paths: []string{"spec.ports[0].targetPort"}},
		{name: "clusterIP", svc: service(func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0.10" })},
		{name: "clusterIP None", svc: service(func(s *corev1.Service) { s.Spec.ClusterIP = "None" })},
		{name: "clusterIPs dual", svc: service(func(s *corev1.Service) {
			s.Spec.ClusterIP = "10.96.0.10"
			s.Spec.ClusterIPs = []string{"10.96.0.10", "fd00::10"}
		})},
		{name: "bad clusterIP", svc: service(func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.0" }), paths: []string{"spec.clusterIP"}},
		{name: "bad clusterIPs[1]", svc: service(func(s *corev1.Service) { s.Spec.ClusterIPs = []string{"10.96.0.10", "x"} }),
			paths: []string{"spec.clusterIPs[1]"}},
		{name: "clusterIPs disagree", svc: service(func(s *corev1.Service) {
			s.Spec.ClusterIP = "10.96.0.11"
			s.Spec.ClusterIPs = []string{"10.96.0.10"}
		}), paths: []string{"spec.clusterIPs"}},
		{name: "None not alone", svc: service(func(s *corev1.Service) { s.Spec.ClusterIPs = []string{"None", "10.96.0.10"} }),
			paths: []string{"spec.clusterIPs"}},
		{name: "two IPv4 clusterIPs", svc: service(func(s *corev1.Service) { s.Spec.ClusterIPs = []string{"10.96.0.10", "10.96.0.11"} }),
			paths: []string{"spec.clusterIPs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Service(tt.svc)
			if diff := cmp.Diff(tt.paths, fieldPaths(t, err)); diff != "" {
				t.Fatalf("Service() error paths mismatch (-want +got):\n%s\nerror: %v", diff, err)
			}
			if err == nil && got == nil {
				t.Fatal("Service() = nil, nil")
			}
			if err != nil && !strings.HasPrefix(err.Error(), "Service prod/") {
				t.Errorf("Service() error = %q, want it to start with the object", err)
			}
		})
	}
}

func TestServiceConversion(t *testing.T) {
	tests := []struct {
		name string
		svc  *corev1.Service
		want *model.Service
	}{
		{
			name: "defaults",
			svc: service(func(s *corev1.Service) {
				s.Namespace = ""
				s.Spec.ClusterIP = "10.96.0.10"
			}),
			want: &model.Service{
				Namespace: "default", Name: "web",
				Selector:   map[string]string{"app": "web"},
				ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")},
				Ports:      []model.ServicePort{{Protocol: model.TCP, Port: 80, TargetPort: 80}},
			},
		},
		{
			name: "headless, empty selector, target ports",
			svc: service(
				func(s *corev1.Service) {
					s.Spec.ClusterIP = "None"
					s.Spec.Selector = map[string]string{}
				},
				svcPorts(
					corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
					corev1.ServicePort{Name: "dns", Port: 53, Protocol: "UDP", TargetPort: intstr.FromInt32(5353)},
				),
			),
			want: &model.Service{
				Namespace: "prod", Name: "web",
				Ports: []model.ServicePort{
					{Name: "http", Protocol: model.TCP, Port: 80, TargetPortName: "http"},
					{Name: "dns", Protocol: model.UDP, Port: 53, TargetPort: 5353},
				},
			},
		},
		{
			name: "external name",
			svc: service(func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeExternalName
				s.Spec.ExternalName = "example.com"
			}),
			want: &model.Service{
				Namespace: "prod", Name: "web",
				Ports: []model.ServicePort{{Protocol: model.TCP, Port: 80, TargetPort: 80}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Service(tt.svc)
			if err != nil {
				t.Fatalf("Service() error: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, addrCmp); diff != "" {
				t.Errorf("Service() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNilInputs(t *testing.T) {
	if _, err := Pod(nil); err == nil {
		t.Error("Pod(nil) succeeded")
	}
	if _, err := Namespace(nil); err == nil {
		t.Error("Namespace(nil) succeeded")
	}
	if _, err := Service(nil); err == nil {
		t.Error("Service(nil) succeeded")
	}
	if _, err := Node(nil); err == nil {
		t.Error("Node(nil) succeeded")
	}
}
