package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// The synthetic cluster has the shape of internal/engine's scaleCluster
// (namespaces per team and environment, pods of 8 apps and 3 tiers with
// named ports, kube-dns in kube-system, policies of ten realistic kinds),
// written as API objects. Two differences: pods are spread over nodes
// node-0..node-99 at random (scaleCluster's i%nodes put every pod of
// node-0 in the same two namespaces), and there are always 100 nodes, so
// that the agent, as node-0, enforces for about 1% of the pods.

const (
	nsNameLabel = "kubernetes.io/metadata.name"
	localNode   = "node-0"
)

type scale struct {
	name                      string
	pods, namespaces, polices int
}

var scales = map[string]scale{
	"1k":  {"1k", 1000, 50, 1000},
	"10k": {"10k", 10000, 200, 10000},
}

type cluster struct {
	namespaces []*corev1.Namespace
	nodes      []*corev1.Node
	pods       []*corev1.Pod // with the status to write through the subresource
	policies   []*networkingv1.NetworkPolicy
	local      []*corev1.Pod // the pods of node-0
}

func genCluster(seed uint64, sc scale, nodes int, wide bool) *cluster {
	r := rand.New(rand.NewPCG(seed, seed))
	c := &cluster{}
	envs := []string{"prod", "staging", "dev"}
	tiers := []string{"web", "api", "db"}
	nsNames := make([]string, sc.namespaces)
	for i := range nsNames {
		name := fmt.Sprintf("ns-%03d", i)
		switch i {
		case 0:
			name = "monitoring"
		case 1:
			name = "kube-system"
		}
		nsNames[i] = name
		c.namespaces = append(c.namespaces, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: map[string]string{"team": fmt.Sprintf("team-%d", i%10), "env": envs[i%3], "group": group(i)},
		}})
	}
	for i := range nodes {
		c.nodes = append(c.nodes, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", i)},
			Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}).String()},
				{Type: corev1.NodeInternalIP, Address: netip.AddrFrom16([16]byte{0xfd, 0x01, 14: byte(i >> 8), 15: byte(i)}).String()},
			}},
		})
	}
	tcp := corev1.ProtocolTCP
	for i := range sc.pods {
		ns := nsNames[i%sc.namespaces]
		app := fmt.Sprintf("app-%d", r.IntN(8))
		ports := []corev1.ContainerPort{
			{Name: "http", ContainerPort: 8080, Protocol: tcp},
			{Name: "metrics", ContainerPort: 9090, Protocol: tcp},
		}
		if r.IntN(4) == 0 {
			ports = append(ports, corev1.ContainerPort{Name: "grpc", ContainerPort: 50051, Protocol: tcp})
		}
		labels := map[string]string{"app": app, "tier": tiers[r.IntN(3)], "version": fmt.Sprintf("v%d", 1+r.IntN(2))}
		if ns == "kube-system" && r.IntN(4) == 0 {
			labels["k8s-app"] = "kube-dns"
			ports = append(ports,
				corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
				corev1.ContainerPort{Name: "dns-tcp", ContainerPort: 53, Protocol: tcp})
		}
		n := i + 1
		v4 := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}).String()
		v6 := netip.AddrFrom16([16]byte{0xfd, 0x00, 13: byte(n >> 16), 14: byte(n >> 8), 15: byte(n)}).String()
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", app, i), Labels: labels},
			Spec: corev1.PodSpec{
				NodeName:   fmt.Sprintf("node-%d", r.IntN(nodes)),
				Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10", Ports: ports}},
			},
			Status: corev1.PodStatus{
				Phase: corev1.PodRunning, PodIP: v4,
				PodIPs: []corev1.PodIP{{IP: v4}, {IP: v6}},
			},
		}
		c.pods = append(c.pods, p)
		if p.Spec.NodeName == localNode {
			c.local = append(c.local, p)
		}
	}
	for i := range sc.polices {
		ns := nsNames[i%sc.namespaces]
		c.policies = append(c.policies, genPolicy(r, ns, fmt.Sprintf("pol-%d", i), i/sc.namespaces, sc.namespaces, wide))
	}
	return c
}

func sel(kv ...string) *metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func portNum(proto corev1.Protocol, n int) networkingv1.NetworkPolicyPort {
	p := intstr.FromInt32(int32(n))
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p}
}

func portName(name string) networkingv1.NetworkPolicyPort {
	proto := corev1.ProtocolTCP
	p := intstr.FromString(name)
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p}
}

var (
	ingressOnly = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	egressOnly  = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	both        = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
)

// group is the label shared by ten neighbouring namespaces.
func group(i int) string { return fmt.Sprintf("group-%d", i/10) }

// genPolicy is scalePolicy's mix: the first policy of a namespace is its
// default deny, later ones are of a random kind. Unless wide, the two
// kinds whose peers span the cluster in scaleCluster (a tier of a team's
// namespaces: a tenth of the cluster; every non-dev namespace: two
// thirds) select by the namespace label "group" instead, as
// bench/dataplane does by default: with wide peers every such policy
// that isolates a local pod carries its own set of thousands of
// addresses (see BENCHMARKS.md).
func genPolicy(r *rand.Rand, ns, name string, nth, namespaces int, wide bool) *networkingv1.NetworkPolicy {
	app := func() *metav1.LabelSelector { return sel("app", fmt.Sprintf("app-%d", r.IntN(8))) }
	tier := func() *metav1.LabelSelector { return sel("tier", []string{"web", "api", "db"}[r.IntN(3)]) }
	tcp := corev1.ProtocolTCP
	p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	s := &p.Spec
	kind := nth % 10
	if nth >= 10 {
		kind = 1 + r.IntN(9)
	}
	switch kind {
	case 0: // default deny ingress
		s.PolicyTypes = ingressOnly
	case 1, 2: // allow from another app of the namespace
		s.PodSelector = *app()
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{PodSelector: app()}}, Ports: []networkingv1.NetworkPolicyPort{portNum(tcp, 8080)}}}
		s.PolicyTypes = ingressOnly
	case 3: // a tier, from a tier of a team's namespaces, on named ports
		s.PodSelector = *tier()
		team := sel("team", fmt.Sprintf("team-%d", r.IntN(10)))
		if !wide {
			team = sel("group", group(r.IntN(namespaces)))
		}
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: team, PodSelector: tier()}},
			Ports: []networkingv1.NetworkPolicyPort{portName("http"), portName("grpc")}}}
		s.PolicyTypes = ingressOnly
	case 4: // monitoring scrapes everything
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel(nsNameLabel, "monitoring")}},
			Ports: []networkingv1.NetworkPolicyPort{portName("metrics")}}}
		s.PolicyTypes = ingressOnly
	case 5: // DNS egress
		s.PodSelector = *app()
		s.Egress = []networkingv1.NetworkPolicyEgressRule{
			{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel(nsNameLabel, "kube-system"), PodSelector: sel("k8s-app", "kube-dns")}},
				Ports: []networkingv1.NetworkPolicyPort{portNum(corev1.ProtocolUDP, 53), portNum(tcp, 53)}},
			{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}},
		}
		s.PolicyTypes = egressOnly
	case 6: // egress to the internet and the own namespace
		s.PodSelector = *app()
		s.Egress = []networkingv1.NetworkPolicyEgressRule{
			{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.0.0.0/8", "172.16.0.0/12"}}}},
				Ports: []networkingv1.NetworkPolicyPort{portNum(tcp, 443)}},
			{To: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{}}}, Ports: []networkingv1.NetworkPolicyPort{portName("http")}},
		}
		s.PolicyTypes = both
	case 7: // matchExpressions and a port range
		s.PodSelector = metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"api", "db"}}}}
		end := int32(8100)
		pr := portNum(tcp, 8000)
		pr.EndPort = &end
		nsSel := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"dev"}}}}
		if !wide {
			nsSel.MatchExpressions = append(nsSel.MatchExpressions, metav1.LabelSelectorRequirement{Key: "group", Operator: metav1.LabelSelectorOpIn, Values: []string{group(r.IntN(namespaces))}})
		}
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: nsSel,
				PodSelector:       &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "version", Operator: metav1.LabelSelectorOpExists}}},
			}},
			Ports: []networkingv1.NetworkPolicyPort{pr}}}
		s.PolicyTypes = ingressOnly
	case 8: // a load balancer's addresses
		s.PodSelector = *tier()
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.0.2.0/24", Except: []string{"192.0.2.128/25"}}}},
			Ports: []networkingv1.NetworkPolicyPort{portNum(tcp, 8080), portNum(tcp, 8443)}}}
		s.PolicyTypes = ingressOnly
	default: // both directions between apps of the namespace
		s.PodSelector = *app()
		s.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: app()}, {PodSelector: app()}}}}
		s.Egress = []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{PodSelector: app()}}, Ports: []networkingv1.NetworkPolicyPort{portName("http")}}}
		s.PolicyTypes = both
	}
	return p
}

// parallel runs fn(i) for i in [0, n) on workers goroutines and returns
// the first error.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && err != context.Canceled {
		return err
	}
	return ctx.Err()
}

// populate writes the cluster into the API server: namespaces (kube-system
// exists already: its labels are updated), nodes with their addresses,
// pods bound to their nodes with their IPs written through the status
// subresource, and policies.
func populate(ctx context.Context, cs kubernetes.Interface, c *cluster, workers int, logf func(string, ...any)) error {
	start := time.Now()
	err := parallel(ctx, len(c.namespaces), workers, func(ctx context.Context, i int) error {
		ns := c.namespaces[i]
		_, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			cur, gerr := cs.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
			if gerr != nil {
				return gerr
			}
			for k, v := range ns.Labels {
				cur.Labels[k] = v
			}
			_, err = cs.CoreV1().Namespaces().Update(ctx, cur, metav1.UpdateOptions{})
		}
		if err != nil {
			return fmt.Errorf("namespace %s: %w", ns.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = parallel(ctx, len(c.nodes), workers, func(ctx context.Context, i int) error {
		n := c.nodes[i]
		created, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: n.ObjectMeta}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		created.Status = n.Status
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("node %s status: %w", n.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	logf("  %d namespaces, %d nodes in %s", len(c.namespaces), len(c.nodes), time.Since(start).Round(time.Millisecond))
	t := time.Now()
	err = parallel(ctx, len(c.pods), workers, func(ctx context.Context, i int) error {
		p := c.pods[i]
		in := p.DeepCopy()
		in.Status = corev1.PodStatus{}
		created, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, in, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
		}
		created.Status = p.Status
		if _, err := cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("pod %s/%s status: %w", p.Namespace, p.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	logf("  %d pods (create + status) in %s", len(c.pods), time.Since(t).Round(time.Millisecond))
	t = time.Now()
	err = parallel(ctx, len(c.policies), workers, func(ctx context.Context, i int) error {
		p := c.policies[i]
		if _, err := cs.NetworkingV1().NetworkPolicies(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("policy %s/%s: %w", p.Namespace, p.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	logf("  %d policies in %s", len(c.policies), time.Since(t).Round(time.Millisecond))
	return nil
}
