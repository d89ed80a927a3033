package differential

import (
	"flag"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/test/differential/knp"
)

var (
	seedFlag   = flag.Uint64("seed", 0, "seed of the first world (0: from the clock)")
	worldsFlag = flag.Int("worlds", 0, "number of worlds (0: 2000, or 300 with -short)")
)

// connsPerWorld is how many connections each world is asked about.
const connsPerWorld = 40

// TestDifferential compares Palisade's verdict with kube-network-policies'
// (v0.8.0, its own evaluation code, linked in by package knp) on random
// worlds: namespaces, nodes, pods, NetworkPolicies, AdminNetworkPolicies
// and a BaselineAdminNetworkPolicy, and random connections. Both read the
// same API objects, Palisade through apiconv; where kube-network-policies
// reads a field otherwise than the API defines it, it is given the
// field spelled out as the API means it (nodesAsNetworks,
// namedAsNumbers). Connections where it departs from the API in a way
// that cannot be spelled out are left out and counted (excluded), and
// where the API lets implementations differ either answer is accepted
// (tieVariant) or the case is not generated.
func TestDifferential(t *testing.T) {
	worlds := *worldsFlag
	if worlds == 0 {
		worlds = 2000
		if testing.Short() {
			worlds = 300
		}
	}
	base := *seedFlag
	if base == 0 {
		base = uint64(time.Now().UnixNano())
	}
	ref, err := knp.New()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var st stats
	for i := range worlds {
		seed := base + uint64(i)
		g := newGen(seed)
		w := g.world()
		conns := make([]conn, connsPerWorld)
		for j := range conns {
			conns[j] = g.conn(w)
		}
		results, err := compare(ref, w, conns)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		for j, r := range results {
			st.add(r, conns[j])
			if r.excluded == "" && !r.agree() {
				w, c := shrink(ref, w, conns[j])
				t.Fatalf("seed %d: Palisade and kube-network-policies disagree (minimal case below)\n%s\nrerun: cd test/differential && go test -run TestDifferential -seed %d -worlds 1",
					seed, describe(t, ref, w, c), seed)
			}
		}
	}
	t.Logf("%d worlds, %d connections in %v, seeds %d..%d: %d compared (%d allowed, %d denied; %d IPv6; %d where an Admin tie could go either way), %d left out: %s",
		worlds, st.total, time.Since(start).Round(time.Millisecond), base, base+uint64(worlds)-1,
		st.compared, st.allowed, st.compared-st.allowed, st.ipv6, st.tied, st.total-st.compared, st.excludedSummary())
	// A generator that stopped producing some class would make this test
	// pass vacuously.
	if worlds >= 300 {
		if st.compared < st.total/2 || st.allowed == 0 || st.allowed == st.compared {
			t.Errorf("too few cases compared, or one verdict only: %d of %d, %d allowed", st.compared, st.total, st.allowed)
		}
	}
}

// result is one connection's two verdicts. knp holds kube-network-policies'
// verdict for the world as generated and, when AdminNetworkPolicies share
// a priority, for the same world with each tie ordered the other way.
type result struct {
	excluded string
	palisade bool
	knp      []bool
}

// agree reports whether Palisade gave one of the verdicts an ordering of
// the ties allows.
func (r result) agree() bool {
	for _, v := range r.knp {
		if v == r.palisade {
			return true
		}
	}
	return false
}

type stats struct {
	total, compared, allowed, tied, ipv6 int
	excluded                             map[string]int
}

func (s *stats) add(r result, c conn) {
	s.total++
	if r.excluded != "" {
		if s.excluded == nil {
			s.excluded = map[string]int{}
		}
		s.excluded[r.excluded]++
		return
	}
	s.compared++
	if c.dst.Is6() {
		s.ipv6++
	}
	if r.palisade {
		s.allowed++
	}
	if len(r.knp) > 1 && r.knp[0] != r.knp[1] {
		s.tied++
	}
}

func (s *stats) excludedSummary() string {
	var parts []string
	for k, n := range s.excluded {
		parts = append(parts, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// compare evaluates each of conns in w on both sides.
func compare(ref *knp.Evaluator, w *world, conns []conn) ([]result, error) {
	out := make([]result, len(conns))
	e, err := palisade(w)
	if err != nil {
		return nil, err
	}
	for i, c := range conns {
		if out[i].excluded = excluded(w, c); out[i].excluded != "" {
			continue
		}
		ec, err := palisadeConn(e, c)
		if err != nil {
			return nil, err
		}
		out[i].palisade = e.Allowed(ec)
	}
	// kube-network-policies is given w with its nodes peers and named
	// ports spelled out as the API defines them: named ports resolve on
	// the destination, so one view per destination.
	base := nodesAsNetworks(w)
	byDst := map[netip.Addr][]int{}
	var dsts []netip.Addr
	for i, c := range conns {
		if out[i].excluded != "" {
			continue
		}
		if _, ok := byDst[c.dst]; !ok {
			dsts = append(dsts, c.dst)
		}
		byDst[c.dst] = append(byDst[c.dst], i)
	}
	named := hasNamedPorts(w)
	for _, dst := range dsts {
		kw := base
		if named {
			kw = namedAsNumbers(base, podByIP(w, dst))
		}
		variants := []*world{kw}
		if tw := tieVariant(kw); tw != nil {
			variants = append(variants, tw)
		}
		for _, v := range variants {
			if err := ref.Load(state(v)); err != nil {
				return nil, err
			}
			for _, i := range byDst[dst] {
				c := conns[i]
				out[i].knp = append(out[i].knp, ref.Allowed(knp.Conn{Src: c.src, Dst: c.dst, Protocol: c.proto, SrcPort: 40000, DstPort: c.port}))
			}
		}
	}
	return out, nil
}

func state(w *world) knp.State {
	return knp.State{Namespaces: w.namespaces, Nodes: w.nodes, Pods: w.pods, Policies: w.policies, ANPs: w.anps, BANP: w.banp}
}

// palisade builds Palisade's engine from w's API objects, through the
// same conversion the agent uses.
func palisade(w *world) (*engine.Engine, error) {
	c := model.NewCluster()
	for _, o := range w.namespaces {
		m, err := apiconv.Namespace(o)
		if err != nil {
			return nil, err
		}
		c.Namespaces[m.Name] = m
	}
	for _, o := range w.nodes {
		m, err := apiconv.Node(o)
		if err != nil {
			return nil, err
		}
		c.Nodes[m.Name] = m
	}
	for _, o := range w.pods {
		m, err := apiconv.Pod(o)
		if err != nil {
			return nil, err
		}
		c.Pods[m.Key()] = m
	}
	for _, o := range w.policies {
		m, err := apiconv.Policy(o)
		if err != nil {
			return nil, err
		}
		c.Policies[m.Key()] = m
	}
	for _, o := range w.anps {
		m, err := apiconv.AdminNetworkPolicy(o)
		if err != nil {
			return nil, err
		}
		c.ClusterPolicies[m.Key()] = m
	}
	if w.banp != nil {
		m, err := apiconv.BaselineAdminNetworkPolicy(w.banp)
		if err != nil {
			return nil, err
		}
		c.ClusterPolicies[m.Key()] = m
	}
	return engine.FromCluster(c), nil
}

func palisadeConn(e *engine.Engine, c conn) (engine.Conn, error) {
	proto, err := model.ParseProtocol(string(c.proto))
	if err != nil {
		return engine.Conn{}, err
	}
	return engine.Conn{
		From:     engine.Endpoint{Pod: e.PodByIP(c.src), IP: c.src},
		To:       engine.Endpoint{Pod: e.PodByIP(c.dst), IP: c.dst},
		Protocol: proto, Port: uint16(c.port),
	}, nil
}

// tieVariant returns w with the order of every two AdminNetworkPolicies
// of one priority swapped, or nil when no two share one. "If two (or
// more) policies with the same priority could both match a connection,
// then the implementation can apply any of the matching policies"
// (AdminNetworkPolicySpec.Priority): so Palisade agrees when it gives
// either order's verdict. Both evaluators order ties by name, so renaming
// swaps them; the generator lets at most two share a priority, so the
// two orders are all there are.
func tieVariant(w *world) *world {
	byPrio := map[int32][]int{}
	for i, p := range w.anps {
		byPrio[p.Spec.Priority] = append(byPrio[p.Spec.Priority], i)
	}
	var out *world
	for _, idx := range byPrio {
		if len(idx) < 2 {
			continue
		}
		if out == nil {
			cp := *w
			cp.anps = append([]*v1alpha1.AdminNetworkPolicy(nil), w.anps...)
			out = &cp
		}
		// Order by name, then give the first the name that sorts last.
		sort.Slice(idx, func(a, b int) bool { return w.anps[idx[a]].Name < w.anps[idx[b]].Name })
		for rank, i := range idx {
			p := w.anps[i].DeepCopy()
			p.Name = fmt.Sprintf("tie%d-%s", len(idx)-1-rank, p.Name)
			out.anps[i] = p
		}
	}
	return out
}

// Classes of connections left out, each where kube-network-policies
// v0.8.0 departs from the API (sigs.k8s.io/network-policy-api v0.3.0,
// apis/v1alpha1) and Palisade follows it. A connection is left out only
// when the departure can change its verdict's inputs.
const (
	// "If a pod is selected by a NetworkPolicy with egress rules, any
	// egress traffic from the pod, if not explicitly allowed ..., will be
	// dropped due to this isolation effect and thus will not be evaluated
	// further against BaselineAdminNetworkPolicy rules. The same applies
	// for ingress direction traffic." (site-src/blog/posts/Getting Started
	// with ANP.md): isolation is per direction. kube-network-policies
	// skips the BaselineAdminNetworkPolicy in a direction whenever any
	// NetworkPolicy selects the pod, also one of the other policyType
	// only.
	excludeNotIsolating = "NetworkPolicy selects the pod without isolating it in this direction"
)

// Not generated at all, for the same reasons:
//   - traffic from a node (or a host-network pod) to a pod: NetworkPolicy
//     lets a node reach its own pods and leaves the rest to the
//     implementation; Palisade always allows node to own pod, which
//     kube-network-policies does not model;
//   - host-network pods: "host-networked pods are not included" in
//     subjects and pod peers, and kube-network-policies does not index
//     them by address, but what reaches them is the node's traffic;
//   - a pod to itself: never subject to policy in Palisade (loopback),
//     left to the implementation by the API;
//   - domainNames peers: Palisade rejects them (it enforces by address);
//   - more than two AdminNetworkPolicies of one priority: see tieVariant;
//   - IPv6 addresses written other than canonically: kube-network-policies
//     looks pods up by the address's string.
//
// And objects are written as the API server serves them, which
// kube-network-policies relies on: NetworkPolicy policyTypes and port
// protocols set (defaulted), no rules as an absent list (it reads an
// empty, non-nil ingress list as "allow all").

// nodesAsNetworks returns w as kube-network-policies is given it: each
// nodes peer replaced by a networks peer of the addresses (/32, /128) of the nodes it
// selects. A nodes peer "selects the nodeIPs as the peer type by matching
// on the IPs present in the node.Status.Addresses field of the node"
// (AdminNetworkPolicyEgressPeer), and networks peers kube-network-policies
// reads as the API does; its nodes peers (nodeSelector) match instead the
// pods scheduled on the selected nodes, and never a node's address. So
// Palisade's nodes peers are checked against their meaning. (A peer that
// selects no node becomes one with no networks, which matches nothing in
// kube-network-policies, as the nodes peer does.)
func nodesAsNetworks(w *world) *world {
	ips := func(sel *metav1.LabelSelector) []v1alpha1.CIDR {
		var out []v1alpha1.CIDR
		for _, n := range w.nodes {
			if selects(sel, n.Labels) {
				for _, a := range n.Status.Addresses {
					addr := netip.MustParseAddr(a.Address)
					out = append(out, v1alpha1.CIDR(netip.PrefixFrom(addr, addr.BitLen()).String()))
				}
			}
		}
		return out
	}
	out := *w
	out.anps = make([]*v1alpha1.AdminNetworkPolicy, len(w.anps))
	for i, p := range w.anps {
		p = p.DeepCopy()
		for j := range p.Spec.Egress {
			for k := range p.Spec.Egress[j].To {
				if to := &p.Spec.Egress[j].To[k]; to.Nodes != nil {
					to.Networks, to.Nodes = ips(to.Nodes), nil
				}
			}
		}
		out.anps[i] = p
	}
	if w.banp != nil {
		p := w.banp.DeepCopy()
		for j := range p.Spec.Egress {
			for k := range p.Spec.Egress[j].To {
				if to := &p.Spec.Egress[j].To[k]; to.Nodes != nil {
					to.Networks, to.Nodes = ips(to.Nodes), nil
				}
			}
		}
		out.banp = p
	}
	return &out
}

// namedAsNumbers returns w with every named port of its cluster rules
// replaced by the port numbers it names on dst, for connections to dst:
// NamedPort "selects a port on a pod(s) based on name"
// (AdminNetworkPolicyPort), the pod that receives the traffic, in either
// direction; an address that is no pod's has no named ports (a
// PortNumber of 0, which no connection has, stands for none).
// kube-network-policies (evaluateAdminNetworkPolicyPort) instead matches
// a name whenever the pod declares it, whatever the connection's port and
// protocol, and for ingress rules looks it up on the source pod
// (evaluatePacket passes srcPod to evaluateAdminIngress).
func namedAsNumbers(w *world, dst *corev1.Pod) *world {
	resolve := func(ports *[]v1alpha1.AdminNetworkPolicyPort) *[]v1alpha1.AdminNetworkPolicyPort {
		if ports == nil {
			return nil
		}
		var out []v1alpha1.AdminNetworkPolicyPort
		for _, p := range *ports {
			if p.NamedPort == nil {
				out = append(out, p)
				continue
			}
			none := true
			if dst != nil {
				for _, cp := range dst.Spec.Containers[0].Ports {
					if cp.Name == *p.NamedPort {
						out = append(out, v1alpha1.AdminNetworkPolicyPort{PortNumber: &v1alpha1.Port{Protocol: cp.Protocol, Port: cp.ContainerPort}})
						none = false
					}
				}
			}
			if none {
				out = append(out, v1alpha1.AdminNetworkPolicyPort{PortNumber: &v1alpha1.Port{Protocol: corev1.ProtocolTCP, Port: 0}})
			}
		}
		return &out
	}
	out := *w
	out.anps = make([]*v1alpha1.AdminNetworkPolicy, len(w.anps))
	for i, p := range w.anps {
		p = p.DeepCopy()
		for j := range p.Spec.Ingress {
			p.Spec.Ingress[j].Ports = resolve(p.Spec.Ingress[j].Ports)
		}
		for j := range p.Spec.Egress {
			p.Spec.Egress[j].Ports = resolve(p.Spec.Egress[j].Ports)
		}
		out.anps[i] = p
	}
	if w.banp != nil {
		p := w.banp.DeepCopy()
		for j := range p.Spec.Ingress {
			p.Spec.Ingress[j].Ports = resolve(p.Spec.Ingress[j].Ports)
		}
		for j := range p.Spec.Egress {
			p.Spec.Egress[j].Ports = resolve(p.Spec.Egress[j].Ports)
		}
		out.banp = p
	}
	return &out
}

// hasNamedPorts reports whether a cluster rule of w names a port.
func hasNamedPorts(w *world) bool {
	var all []*[]v1alpha1.AdminNetworkPolicyPort
	for _, p := range w.anps {
		for _, r := range p.Spec.Ingress {
			all = append(all, r.Ports)
		}
		for _, r := range p.Spec.Egress {
			all = append(all, r.Ports)
		}
	}
	if w.banp != nil {
		for _, r := range w.banp.Spec.Ingress {
			all = append(all, r.Ports)
		}
		for _, r := range w.banp.Spec.Egress {
			all = append(all, r.Ports)
		}
	}
	for _, ports := range all {
		if ports != nil && slices.ContainsFunc(*ports, func(p v1alpha1.AdminNetworkPolicyPort) bool { return p.NamedPort != nil }) {
			return true
		}
	}
	return false
}

// excluded names the class c falls in when kube-network-policies' reading
// of w departs from the API for c, or "".
func excluded(w *world, c conn) string {
	if w.banp == nil {
		return ""
	}
	if src := podByIP(w, c.src); src != nil && len(w.banp.Spec.Egress) > 0 && subjectSelects(w, w.banp.Spec.Subject, src) &&
		selectedNotIsolated(w, src, networkingv1.PolicyTypeEgress) {
		return excludeNotIsolating
	}
	if dst := podByIP(w, c.dst); dst != nil && len(w.banp.Spec.Ingress) > 0 && subjectSelects(w, w.banp.Spec.Subject, dst) &&
		selectedNotIsolated(w, dst, networkingv1.PolicyTypeIngress) {
		return excludeNotIsolating
	}
	return ""
}

// selectedNotIsolated reports whether some NetworkPolicy selects pod but
// none isolates it for dir.
func selectedNotIsolated(w *world, pod *corev1.Pod, dir networkingv1.PolicyType) bool {
	selected, isolated := false, false
	for _, np := range w.policies {
		if np.Namespace != pod.Namespace || !selects(&np.Spec.PodSelector, pod.Labels) {
			continue
		}
		selected = true
		for _, t := range np.Spec.PolicyTypes {
			if t == dir {
				isolated = true
			}
		}
	}
	return selected && !isolated
}

func subjectSelects(w *world, s v1alpha1.AdminNetworkPolicySubject, pod *corev1.Pod) bool {
	nsl := nsLabelsOf(w, pod.Namespace)
	if s.Namespaces != nil {
		return selects(s.Namespaces, nsl)
	}
	return s.Pods != nil && selects(&s.Pods.NamespaceSelector, nsl) && selects(&s.Pods.PodSelector, pod.Labels)
}

func selects(s *metav1.LabelSelector, l map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		panic(err) // the generator writes valid selectors
	}
	return sel.Matches(labels.Set(l))
}

func nsLabelsOf(w *world, name string) map[string]string {
	for _, ns := range w.namespaces {
		if ns.Name == name {
			return ns.Labels
		}
	}
	return nil
}

func podByIP(w *world, ip netip.Addr) *corev1.Pod {
	for _, p := range w.pods {
		for _, pip := range p.Status.PodIPs {
			if pip.IP == ip.String() {
				return p
			}
		}
	}
	return nil
}
