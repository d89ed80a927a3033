package differential

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
)

// world is one generated cluster: API objects as the API server would
// serve them (defaults applied: policyTypes, protocols; empty rule lists
// absent), fed unchanged to both evaluators.
type world struct {
	namespaces []*corev1.Namespace
	nodes      []*corev1.Node
	pods       []*corev1.Pod
	policies   []*networkingv1.NetworkPolicy
	anps       []*v1alpha1.AdminNetworkPolicy
	banp       *v1alpha1.BaselineAdminNetworkPolicy
}

// conn is one generated connection. src or dst may be an address that is
// no pod's (outside the cluster, or a node's for dst).
type conn struct {
	src, dst netip.Addr
	proto    corev1.Protocol
	port     int
}

func (c conn) String() string { return fmt.Sprintf("%s -> %s %d/%s", c.src, c.dst, c.port, c.proto) }

// gen draws small worlds from a seeded source: few label keys and values,
// so that selectors often match and often do not.
type gen struct {
	r *rand.Rand
	// dual is set while drawing a dual-stack world.
	dual bool
}

func newGen(seed uint64) *gen {
	return &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// cidr draws a CIDR of the world's families.
func (g *gen) cidr() string {
	if g.dual && g.chance(0.5) {
		return pick(g, cidrPool6...)
	}
	return pick(g, cidrPool4...)
}

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

func pick[T any](g *gen, xs ...T) T { return xs[g.r.IntN(len(xs))] }

// Label vocabularies: for namespaces, pods and nodes.
var (
	nsLabels   = map[string][]string{"team": {"red", "blue"}, "env": {"prod", "dev"}}
	podLabels  = map[string][]string{"app": {"web", "db", "api"}, "tier": {"fe", "be"}}
	nodeLabels = map[string][]string{"zone": {"a", "b"}, "role": {"infra", "work"}}
)

// containerPorts is the pool pods draw their declared ports from; names
// repeat with different numbers and protocols across pods, as in real
// clusters.
var containerPorts = []corev1.ContainerPort{
	{Name: "http", ContainerPort: 80, Protocol: corev1.ProtocolTCP},
	{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
	{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
	{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
	{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP},
	{ContainerPort: 443, Protocol: corev1.ProtocolTCP},
}

// ports connections and rules draw from (a pod's declared ports are added
// per connection).
var portPool = []int{53, 80, 443, 8080, 9090, 5000, 5432}

// cidrs peers draw from, per family: pod ranges (10.244.N.0/24 and
// fd00:10:244:N::/64 per namespace), a node range, external ranges and
// everything. Dual-stack worlds draw from both.
var (
	cidrPool4 = []string{"10.244.0.0/16", "10.244.1.0/24", "10.244.0.2/32", "172.18.0.0/24", "192.0.2.0/24", "198.51.100.0/25", "0.0.0.0/0"}
	cidrPool6 = []string{"fd00:10:244::/48", "fd00:10:244:1::/64", "fd00:10:244::2/128", "fd00:172:18::/64", "2001:db8::/32", "2001:db8:1::/48", "::/0"}
)

// external are addresses that are no pod's and no node's: outside the
// cluster, and one in the pod range that no pod has (yet).
var (
	external4 = []string{"192.0.2.10", "198.51.100.20", "198.51.100.200", "203.0.113.5", "10.244.1.250"}
	external6 = []string{"2001:db8::10", "2001:db8:1::20", "2001:db8:2::5", "fd00:10:244:1::fa"}
)

func (g *gen) labels(vocab map[string][]string) map[string]string {
	m := map[string]string{}
	for _, k := range []string{"team", "env", "app", "tier", "zone", "role"} {
		if vs, ok := vocab[k]; ok && g.chance(0.6) {
			m[k] = pick(g, vs...)
		}
	}
	return m
}

// selector draws a label selector over vocab: empty (everything), labels,
// or one expression of each operator. extra adds key=value pairs that
// match one object by name (kubernetes.io/metadata.name for namespaces).
func (g *gen) selector(vocab map[string][]string, extra map[string][]string) metav1.LabelSelector {
	keys := []string{}
	for _, k := range []string{"team", "env", "app", "tier", "zone", "role"} {
		if _, ok := vocab[k]; ok {
			keys = append(keys, k)
		}
	}
	k := pick(g, keys...)
	v := pick(g, vocab[k]...)
	switch g.r.IntN(8) {
	case 0, 1:
		return metav1.LabelSelector{}
	case 2, 3:
		return metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	case 4:
		return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: k, Operator: metav1.LabelSelectorOpIn, Values: vocab[k]}}}
	case 5:
		return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: k, Operator: metav1.LabelSelectorOpNotIn, Values: []string{v}}}}
	case 6:
		op := pick(g, metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist)
		return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: k, Operator: op}}}
	}
	for ek, evs := range extra {
		return metav1.LabelSelector{MatchLabels: map[string]string{ek: pick(g, evs...)}}
	}
	return metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
}

func (g *gen) world() *world {
	w := &world{}
	// A third of the worlds are dual-stack.
	g.dual = g.chance(0.3)
	var nsNames []string
	for i := range 2 + g.r.IntN(2) {
		name := fmt.Sprintf("ns%d", i)
		nsNames = append(nsNames, name)
		l := g.labels(nsLabels)
		l[corev1.LabelMetadataName] = name
		w.namespaces = append(w.namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}})
	}
	for i := range 1 + g.r.IntN(2) {
		addrs := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("172.18.0.%d", 10+i)}}
		if g.dual {
			addrs = append(addrs, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("fd00:172:18::%d", 10+i)})
		}
		w.nodes = append(w.nodes, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node%d", i), Labels: g.labels(nodeLabels)},
			Status:     corev1.NodeStatus{Addresses: addrs},
		})
	}
	for n, ns := range nsNames {
		for i := range 2 + g.r.IntN(3) {
			var ports []corev1.ContainerPort
			seen := map[string]bool{}
			for range g.r.IntN(3) {
				cp := pick(g, containerPorts...)
				key := fmt.Sprint(cp.ContainerPort, cp.Protocol)
				if (cp.Name != "" && seen[cp.Name]) || seen[key] {
					continue
				}
				seen[cp.Name], seen[key] = cp.Name != "", true
				ports = append(ports, cp)
			}
			ips := []corev1.PodIP{{IP: fmt.Sprintf("10.244.%d.%d", n, i+2)}}
			if g.dual {
				// Canonical, as the kubelet writes it (kube-network-policies
				// looks pods up by the address's string).
				ips = append(ips, corev1.PodIP{IP: netip.MustParseAddr(fmt.Sprintf("fd00:10:244:%d::%d", n, i+2)).String()})
			}
			w.pods = append(w.pods, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: ns, Labels: g.labels(podLabels)},
				Spec: corev1.PodSpec{
					NodeName:   w.nodes[g.r.IntN(len(w.nodes))].Name,
					Containers: []corev1.Container{{Name: "c", Image: "busybox", Ports: ports}},
				},
				Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: ips},
			})
		}
	}
	nsExtra := map[string][]string{corev1.LabelMetadataName: nsNames}
	for i := range g.r.IntN(4) {
		w.policies = append(w.policies, g.networkPolicy(fmt.Sprintf("np%d", i), pick(g, nsNames...), nsExtra))
	}
	// At most two AdminNetworkPolicies share a priority: see tieVariant.
	used := map[int32]int{}
	for i := range g.r.IntN(5) {
		prio := int32(g.r.IntN(4))
		for used[prio] == 2 {
			prio++
		}
		used[prio]++
		w.anps = append(w.anps, g.anp(fmt.Sprintf("anp%d", i), prio, nsExtra))
	}
	if g.chance(0.7) {
		w.banp = g.banp(nsExtra)
	}
	return w
}

func (g *gen) protocol() corev1.Protocol {
	return pick(g, corev1.ProtocolTCP, corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP)
}

func (g *gen) networkPolicy(name, ns string, nsExtra map[string][]string) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	np.Spec.PodSelector = g.selector(podLabels, nil)
	switch g.r.IntN(3) {
	case 0:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 1:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	default:
		np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	}
	// No rules is nil, as the API server serves an empty list.
	for range g.r.IntN(3) {
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{Ports: g.npPorts(), From: g.npPeers(nsExtra)})
	}
	for range g.r.IntN(3) {
		np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{Ports: g.npPorts(), To: g.npPeers(nsExtra)})
	}
	return np
}

func (g *gen) npPorts() []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for range pick(g, 0, 0, 1, 2) {
		proto := g.protocol()
		p := networkingv1.NetworkPolicyPort{Protocol: &proto}
		switch g.r.IntN(4) {
		case 0: // every port of the protocol
		case 1:
			port := intstr.FromInt32(int32(pick(g, portPool...)))
			p.Port = &port
		case 2:
			start := int32(pick(g, portPool...))
			end := start + int32(g.r.IntN(100))
			port := intstr.FromInt32(start)
			p.Port, p.EndPort = &port, &end
		default:
			port := intstr.FromString(pick(g, "http", "dns", "metrics"))
			p.Port = &port
		}
		out = append(out, p)
	}
	return out
}

func (g *gen) npPeers(nsExtra map[string][]string) []networkingv1.NetworkPolicyPeer {
	var out []networkingv1.NetworkPolicyPeer
	for range pick(g, 0, 1, 1, 2) {
		var p networkingv1.NetworkPolicyPeer
		switch g.r.IntN(4) {
		case 0:
			s := g.selector(podLabels, nil)
			p.PodSelector = &s
		case 1:
			s := g.selector(nsLabels, nsExtra)
			p.NamespaceSelector = &s
		case 2:
			s, n := g.selector(podLabels, nil), g.selector(nsLabels, nsExtra)
			p.PodSelector, p.NamespaceSelector = &s, &n
		default:
			p.IPBlock = g.ipBlock()
		}
		out = append(out, p)
	}
	return out
}

// ipBlock draws a CIDR and, sometimes, an except inside it.
func (g *gen) ipBlock() *networkingv1.IPBlock {
	b := &networkingv1.IPBlock{CIDR: g.cidr()}
	prefix := netip.MustParsePrefix(b.CIDR)
	if prefix.Bits() < 32 && g.chance(0.4) {
		var inside []string
		for _, c := range append(cidrPool4, cidrPool6...) {
			if p := netip.MustParsePrefix(c); p.Bits() > prefix.Bits() && prefix.Contains(p.Addr()) {
				inside = append(inside, c)
			}
		}
		if len(inside) > 0 {
			b.Except = []string{pick(g, inside...)}
		}
	}
	return b
}

func (g *gen) subject(nsExtra map[string][]string) v1alpha1.AdminNetworkPolicySubject {
	if g.chance(0.5) {
		s := g.selector(nsLabels, nsExtra)
		return v1alpha1.AdminNetworkPolicySubject{Namespaces: &s}
	}
	return v1alpha1.AdminNetworkPolicySubject{Pods: g.namespacedPod(nsExtra)}
}

func (g *gen) namespacedPod(nsExtra map[string][]string) *v1alpha1.NamespacedPod {
	return &v1alpha1.NamespacedPod{NamespaceSelector: g.selector(nsLabels, nsExtra), PodSelector: g.selector(podLabels, nil)}
}

// adminPorts draws a rule's ports: nil (every port) or one or two of a
// number, a range (start < end) and a name.
func (g *gen) adminPorts() *[]v1alpha1.AdminNetworkPolicyPort {
	if g.chance(0.4) {
		return nil
	}
	var out []v1alpha1.AdminNetworkPolicyPort
	for range 1 + g.r.IntN(2) {
		switch g.r.IntN(3) {
		case 0:
			out = append(out, v1alpha1.AdminNetworkPolicyPort{PortNumber: &v1alpha1.Port{Protocol: g.protocol(), Port: int32(pick(g, portPool...))}})
		case 1:
			start := int32(pick(g, portPool...))
			out = append(out, v1alpha1.AdminNetworkPolicyPort{PortRange: &v1alpha1.PortRange{Protocol: g.protocol(), Start: start, End: start + 1 + int32(g.r.IntN(100))}})
		default:
			name := pick(g, "http", "dns", "metrics")
			out = append(out, v1alpha1.AdminNetworkPolicyPort{NamedPort: &name})
		}
	}
	return &out
}

// withoutNamed drops the named ports: "networks/nodes/domainNames peer
// cannot be set with namedPorts" (the CRDs' CEL rule on an egress rule).
// A list left empty becomes nil (every port), as an empty one is invalid.
func withoutNamed(ports *[]v1alpha1.AdminNetworkPolicyPort) *[]v1alpha1.AdminNetworkPolicyPort {
	if ports == nil {
		return nil
	}
	var out []v1alpha1.AdminNetworkPolicyPort
	for _, p := range *ports {
		if p.NamedPort == nil {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return &out
}

func (g *gen) ingressPeers(nsExtra map[string][]string) []v1alpha1.AdminNetworkPolicyIngressPeer {
	var out []v1alpha1.AdminNetworkPolicyIngressPeer
	for range 1 + g.r.IntN(2) {
		if g.chance(0.5) {
			s := g.selector(nsLabels, nsExtra)
			out = append(out, v1alpha1.AdminNetworkPolicyIngressPeer{Namespaces: &s})
		} else {
			out = append(out, v1alpha1.AdminNetworkPolicyIngressPeer{Pods: g.namespacedPod(nsExtra)})
		}
	}
	return out
}

// egressPeer draws one peer of an egress rule: namespaces, pods, nodes or
// networks. Both kinds' egress peers have these four fields.
func (g *gen) egressPeer(nsExtra map[string][]string) (ns *metav1.LabelSelector, pods *v1alpha1.NamespacedPod, nodes *metav1.LabelSelector, nets []v1alpha1.CIDR) {
	switch g.r.IntN(4) {
	case 0:
		s := g.selector(nsLabels, nsExtra)
		return &s, nil, nil, nil
	case 1:
		return nil, g.namespacedPod(nsExtra), nil, nil
	case 2:
		s := g.selector(nodeLabels, nil)
		return nil, nil, &s, nil
	}
	nets = []v1alpha1.CIDR{v1alpha1.CIDR(g.cidr())}
	if c := v1alpha1.CIDR(g.cidr()); g.chance(0.3) && c != nets[0] {
		nets = append(nets, c)
	}
	return nil, nil, nil, nets
}

func (g *gen) anp(name string, prio int32, nsExtra map[string][]string) *v1alpha1.AdminNetworkPolicy {
	p := &v1alpha1.AdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}
	p.Spec.Priority = prio
	p.Spec.Subject = g.subject(nsExtra)
	action := func() v1alpha1.AdminNetworkPolicyRuleAction {
		return pick(g, v1alpha1.AdminNetworkPolicyRuleActionAllow, v1alpha1.AdminNetworkPolicyRuleActionDeny, v1alpha1.AdminNetworkPolicyRuleActionPass)
	}
	for i := range g.r.IntN(4) {
		p.Spec.Ingress = append(p.Spec.Ingress, v1alpha1.AdminNetworkPolicyIngressRule{Name: fmt.Sprintf("in%d", i), Action: action(), From: g.ingressPeers(nsExtra), Ports: g.adminPorts()})
	}
	for i := range g.r.IntN(4) {
		r := v1alpha1.AdminNetworkPolicyEgressRule{Name: fmt.Sprintf("out%d", i), Action: action(), Ports: g.adminPorts()}
		for range 1 + g.r.IntN(2) {
			ns, pods, nodes, nets := g.egressPeer(nsExtra)
			r.To = append(r.To, v1alpha1.AdminNetworkPolicyEgressPeer{Namespaces: ns, Pods: pods, Nodes: nodes, Networks: nets})
			if nodes != nil || nets != nil {
				r.Ports = withoutNamed(r.Ports)
			}
		}
		p.Spec.Egress = append(p.Spec.Egress, r)
	}
	return p
}

func (g *gen) banp(nsExtra map[string][]string) *v1alpha1.BaselineAdminNetworkPolicy {
	p := &v1alpha1.BaselineAdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	p.Spec.Subject = g.subject(nsExtra)
	action := func() v1alpha1.BaselineAdminNetworkPolicyRuleAction {
		return pick(g, v1alpha1.BaselineAdminNetworkPolicyRuleActionAllow, v1alpha1.BaselineAdminNetworkPolicyRuleActionDeny)
	}
	for i := range g.r.IntN(4) {
		p.Spec.Ingress = append(p.Spec.Ingress, v1alpha1.BaselineAdminNetworkPolicyIngressRule{Name: fmt.Sprintf("in%d", i), Action: action(), From: g.ingressPeers(nsExtra), Ports: g.adminPorts()})
	}
	for i := range g.r.IntN(4) {
		r := v1alpha1.BaselineAdminNetworkPolicyEgressRule{Name: fmt.Sprintf("out%d", i), Action: action(), Ports: g.adminPorts()}
		for range 1 + g.r.IntN(2) {
			ns, pods, nodes, nets := g.egressPeer(nsExtra)
			r.To = append(r.To, v1alpha1.BaselineAdminNetworkPolicyEgressPeer{Namespaces: ns, Pods: pods, Nodes: nodes, Networks: nets})
			if nodes != nil || nets != nil {
				r.Ports = withoutNamed(r.Ports)
			}
		}
		p.Spec.Egress = append(p.Spec.Egress, r)
	}
	return p
}

// conn draws a connection: from a pod (or, sometimes, from outside) to
// another pod, a node or an outside address; never a pod to itself and
// never from a node (see excluded).
func (g *gen) conn(w *world) conn {
	var c conn
	// The family: IPv6 for half the connections of a dual-stack world.
	fam := 0
	if len(w.pods[0].Status.PodIPs) > 1 && g.chance(0.5) {
		fam = 1
	}
	external := external4
	if fam == 1 {
		external = external6
	}
	src := w.pods[g.r.IntN(len(w.pods))]
	c.src = netip.MustParseAddr(src.Status.PodIPs[fam].IP)
	var dst *corev1.Pod
	switch x := g.r.Float64(); {
	case x < 0.1:
		c.dst = netip.MustParseAddr(w.nodes[g.r.IntN(len(w.nodes))].Status.Addresses[fam].Address)
	case x < 0.3:
		c.dst = netip.MustParseAddr(pick(g, external...))
	default:
		for dst == nil || dst == src {
			dst = w.pods[g.r.IntN(len(w.pods))]
		}
		c.dst = netip.MustParseAddr(dst.Status.PodIPs[fam].IP)
		if g.chance(0.15) {
			c.src = netip.MustParseAddr(pick(g, external...))
		}
	}
	c.proto, c.port = g.protocol(), pick(g, portPool...)
	if dst != nil && len(dst.Spec.Containers[0].Ports) > 0 && g.chance(0.5) {
		cp := pick(g, dst.Spec.Containers[0].Ports...)
		c.proto, c.port = cp.Protocol, int(cp.ContainerPort)
	}
	return c
}
