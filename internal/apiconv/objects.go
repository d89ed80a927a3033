package apiconv

import (
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/palisade-net/palisade/internal/model"
)

// Pod validates and converts the parts of a Pod that policy depends on:
// metadata, spec.nodeName, spec.hostNetwork, spec.containers[].ports and
// images, and status.podIP/podIPs. A missing namespace is "default".
//
// Fields palisade ignores are not checked, and neither are fields the API
// server requires but palisade does not need (containers[].name, image):
// informer transforms may strip them. status.podIP alone, status.podIPs
// alone, or both (agreeing on the first address) are accepted, as the v1 API
// converts between them.
func Pod(p *corev1.Pod) (*model.Pod, error) {
	if p == nil {
		return nil, nilInput("Pod")
	}
	ns := defaultNS(p.Namespace)
	errs := validateMeta(p.Name, ns, true, p.Labels, apimachineryvalidation.NameIsDNSSubdomain)
	out := &model.Pod{Namespace: ns, Name: p.Name, Labels: copyLabels(p.Labels)}
	errs = append(errs, podSpec(out, &p.Spec, field.NewPath("spec"))...)
	ips, e := podIPs(&p.Status)
	errs = append(errs, e...)
	out.IPs = ips

	if err := objectErrors("Pod", out.Key(), errs); err != nil {
		return nil, err
	}
	return out, nil
}

// podSpec converts into out what policy reads of a pod spec: nodeName,
// hostNetwork, containers' ports and images. path is where the spec is:
// "spec" in a Pod, "spec.template.spec" in a Deployment, so that errors
// name the field as the user wrote it.
func podSpec(out *model.Pod, spec *corev1.PodSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	out.Node = spec.NodeName
	out.HostNetwork = spec.HostNetwork
	if spec.NodeName != "" {
		for _, msg := range apimachineryvalidation.NameIsDNSSubdomain(spec.NodeName, false) {
			errs = append(errs, field.Invalid(path.Child("nodeName"), spec.NodeName, msg))
		}
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		cpath := path.Child("containers").Index(i)
		if c.Image != "" {
			out.Images = append(out.Images, c.Image)
		}
		ports, e := containerPorts(c.Ports, cpath.Child("ports"))
		errs = append(errs, e...)
		out.Ports = append(out.Ports, ports...)
	}
	return errs
}

// containerPorts validates one container's ports as upstream's
// validateContainerPorts does (hostPort aside); protocol defaults to TCP.
func containerPorts(ports []corev1.ContainerPort, path *field.Path) ([]model.ContainerPort, field.ErrorList) {
	var (
		out   []model.ContainerPort
		errs  field.ErrorList
		names = sets.New[string]()
	)
	for i, cp := range ports {
		ipath := path.Index(i)
		if cp.Name != "" {
			if e := portName(ipath.Child("name"), cp.Name); len(e) > 0 {
				errs = append(errs, e...)
			} else if names.Has(cp.Name) {
				errs = append(errs, field.Duplicate(ipath.Child("name"), cp.Name))
			} else {
				names.Insert(cp.Name)
			}
		}
		if cp.ContainerPort == 0 {
			errs = append(errs, field.Required(ipath.Child("containerPort"), ""))
		} else {
			errs = append(errs, portNum(ipath.Child("containerPort"), cp.ContainerPort)...)
		}
		proto, e := protocol(ipath.Child("protocol"), string(cp.Protocol))
		errs = append(errs, e...)
		if cp.ContainerPort > 0 && cp.ContainerPort <= 65535 {
			out = append(out, model.ContainerPort{Name: cp.Name, Port: uint16(cp.ContainerPort), Protocol: proto})
		}
	}
	return out, errs
}

// podIPs reads status.podIPs (or status.podIP when podIPs is empty).
func podIPs(st *corev1.PodStatus) ([]netip.Addr, field.ErrorList) {
	status := field.NewPath("status")
	if len(st.PodIPs) == 0 {
		if st.PodIP == "" {
			return nil, nil
		}
		ip, errs := parseIP(status.Child("podIP"), st.PodIP)
		if len(errs) > 0 {
			return nil, errs
		}
		return []netip.Addr{ip}, nil
	}
	path := status.Child("podIPs")
	var (
		ips  []netip.Addr
		errs field.ErrorList
	)
	for i, pip := range st.PodIPs {
		ip, e := parseIP(path.Index(i), pip.IP)
		errs = append(errs, e...)
		if len(e) == 0 {
			ips = append(ips, ip)
		}
	}
	errs = append(errs, dualStack(path, ips, st.PodIPs)...)
	if st.PodIP != "" && st.PodIP != st.PodIPs[0].IP {
		errs = append(errs, field.Invalid(path.Index(0).Child("ip"), st.PodIPs[0].IP, "must be equal to podIP"))
	}
	return ips, errs
}

// Namespace validates and converts a Namespace. Its labels always end with
// kubernetes.io/metadata.name set to its name, as the API server enforces.
func Namespace(n *corev1.Namespace) (*model.Namespace, error) {
	if n == nil {
		return nil, nilInput("Namespace")
	}
	errs := validateMeta(n.Name, "", false, n.Labels, apimachineryvalidation.ValidateNamespaceName)
	out := &model.Namespace{Name: n.Name}
	model.SetNamespaceLabels(out, n.Labels)
	if err := objectErrors("Namespace", model.Key{Name: n.Name}, errs); err != nil {
		return nil, err
	}
	return out, nil
}

// Node validates and converts a Node. Its addresses are the
// status.addresses of type InternalIP and ExternalIP, without repeats; each
// must be an IP address (the API server does not check this; palisade needs
// it). Its pod CIDRs are spec.podCIDRs, or spec.podCIDR when podCIDRs is
// empty, each a CIDR (as parseCIDR checks), without repeats.
func Node(n *corev1.Node) (*model.Node, error) {
	if n == nil {
		return nil, nilInput("Node")
	}
	errs := validateMeta(n.Name, "", false, n.Labels, apimachineryvalidation.NameIsDNSSubdomain)
	out := &model.Node{Name: n.Name, Labels: n.Labels}
	path := field.NewPath("status", "addresses")
	for i, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP && a.Type != corev1.NodeExternalIP {
			continue
		}
		ip, e := parseIP(path.Index(i).Child("address"), a.Address)
		errs = append(errs, e...)
		if len(e) == 0 && !containsAddr(out.IPs, ip) {
			out.IPs = append(out.IPs, ip)
		}
	}
	addCIDR := func(path *field.Path, s string) {
		cidr, e := parseCIDR(path, s)
		errs = append(errs, e...)
		if len(e) == 0 && !slices.Contains(out.PodCIDRs, cidr) {
			out.PodCIDRs = append(out.PodCIDRs, cidr)
		}
	}
	if len(n.Spec.PodCIDRs) > 0 {
		for i, s := range n.Spec.PodCIDRs {
			addCIDR(field.NewPath("spec", "podCIDRs").Index(i), s)
		}
	} else if n.Spec.PodCIDR != "" {
		addCIDR(field.NewPath("spec", "podCIDR"), n.Spec.PodCIDR)
	}
	if err := objectErrors("Node", model.Key{Name: n.Name}, errs); err != nil {
		return nil, err
	}
	return out, nil
}

func containsAddr(ips []netip.Addr, ip netip.Addr) bool {
	for _, x := range ips {
		if x == ip {
			return true
		}
	}
	return false
}

// Service validates and converts a Service: metadata (the name is a
// DNS-1035 label), spec.selector, spec.ports and spec.clusterIP/clusterIPs.
// Protocol defaults to TCP and targetPort to port; "None" or "" cluster IPs
// mean none; an empty selector means none (as it does once stored). An
// ExternalName service has no selector or cluster IPs.
func Service(s *corev1.Service) (*model.Service, error) {
	if s == nil {
		return nil, nilInput("Service")
	}
	ns := defaultNS(s.Namespace)
	errs := validateMeta(s.Name, ns, true, s.Labels, apimachineryvalidation.NameIsDNS1035Label)
	out := &model.Service{Namespace: ns, Name: s.Name}
	spec := field.NewPath("spec")

	external := s.Spec.Type == corev1.ServiceTypeExternalName
	errs = append(errs, validateLabels(s.Spec.Selector, spec.Child("selector"))...)
	if !external {
		out.Selector = copyLabels(s.Spec.Selector)
	}

	names := sets.New[string]()
	seen := sets.New[string]() // port/protocol pairs, which must be unique as the API server requires
	for i := range s.Spec.Ports {
		path := spec.Child("ports").Index(i)
		sp, e := servicePort(&s.Spec.Ports[i], len(s.Spec.Ports) > 1, names, path)
		errs = append(errs, e...)
		out.Ports = append(out.Ports, sp)
		proto := s.Spec.Ports[i].Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		pair := fmt.Sprintf("%d/%s", s.Spec.Ports[i].Port, proto)
		if seen.Has(pair) {
			errs = append(errs, field.Duplicate(path, pair))
		}
		seen.Insert(pair)
	}

	if !external {
		ips, e := clusterIPs(&s.Spec, spec)
		errs = append(errs, e...)
		out.ClusterIPs = ips
	}

	if err := objectErrors("Service", out.Key(), errs); err != nil {
		return nil, err
	}
	return out, nil
}

// servicePort validates a ServicePort as upstream's validateServicePort
// does: names are DNS-1123 labels, unique, and required when there are
// several ports.
func servicePort(sp *corev1.ServicePort, requireName bool, names sets.Set[string], path *field.Path) (model.ServicePort, field.ErrorList) {
	var errs field.ErrorList
	out := model.ServicePort{Name: sp.Name}
	switch {
	case requireName && sp.Name == "":
		errs = append(errs, field.Required(path.Child("name"), ""))
	case sp.Name != "":
		for _, msg := range apimachineryvalidation.NameIsDNSLabel(sp.Name, false) {
			errs = append(errs, field.Invalid(path.Child("name"), sp.Name, msg))
		}
		if names.Has(sp.Name) {
			errs = append(errs, field.Duplicate(path.Child("name"), sp.Name))
		}
		names.Insert(sp.Name)
	}
	e := portNum(path.Child("port"), sp.Port)
	errs = append(errs, e...)
	if len(e) == 0 {
		out.Port = uint16(sp.Port)
	}
	proto, e := protocol(path.Child("protocol"), string(sp.Protocol))
	errs = append(errs, e...)
	out.Protocol = proto

	tp := path.Child("targetPort")
	switch {
	case sp.TargetPort.Type == intstr.String:
		errs = append(errs, portName(tp, sp.TargetPort.StrVal)...)
		out.TargetPortName = sp.TargetPort.StrVal
	case sp.TargetPort.IntVal == 0: // absent: the API defaults it to port
		out.TargetPort = out.Port
	default:
		e := portNum(tp, sp.TargetPort.IntVal)
		errs = append(errs, e...)
		if len(e) == 0 {
			out.TargetPort = uint16(sp.TargetPort.IntVal)
		}
	}
	return out, errs
}

// clusterIPs reads spec.clusterIPs, or spec.clusterIP when clusterIPs is
// empty (the API server fills one from the other on create). Both set must
// agree on the first value.
func clusterIPs(spec *corev1.ServiceSpec, path *field.Path) ([]netip.Addr, field.ErrorList) {
	vals := spec.ClusterIPs
	vpath := path.Child("clusterIPs")
	if len(vals) == 0 {
		if spec.ClusterIP == "" {
			return nil, nil
		}
		vals = []string{spec.ClusterIP}
		vpath = path.Child("clusterIP")
	} else if spec.ClusterIP != "" && spec.ClusterIP != vals[0] {
		return nil, field.ErrorList{field.Invalid(vpath, vals, "first value must match clusterIP")}
	}
	var (
		ips  []netip.Addr
		errs field.ErrorList
	)
	for i, v := range vals {
		ipath := vpath
		if len(spec.ClusterIPs) > 0 {
			ipath = vpath.Index(i)
		}
		if v == corev1.ClusterIPNone || v == "" {
			if len(vals) > 1 {
				errs = append(errs, field.Invalid(vpath, vals, "'None' must be the first and only value"))
			}
			continue
		}
		ip, e := parseIP(ipath, v)
		errs = append(errs, e...)
		if len(e) == 0 {
			ips = append(ips, ip)
		}
	}
	if len(vals) > 2 {
		errs = append(errs, field.Invalid(vpath, vals, "may only hold up to 2 values"))
	}
	errs = append(errs, dualStack(vpath, ips, vals)...)
	return ips, errs
}
