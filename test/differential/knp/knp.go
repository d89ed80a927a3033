// Package knp runs kube-network-policies' (v0.8.0) own packet evaluation in
// process, on objects held in its informers' stores: the independent
// evaluator the differential test compares Palisade with.
//
// kube-network-policies evaluates the first packet of a connection in
// (*Controller).evaluatePacket, behind its nfqueue dataplane. That method
// and its packet type are unexported, so this package reaches the method
// by go:linkname (the empty linkname.s lets a function be declared without
// a body) and mirrors the packet's layout. Nothing of its code is copied:
// the verdicts are its own.
package knp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	_ "unsafe" // go:linkname

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	npafake "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned/fake"
	npainformers "sigs.k8s.io/network-policy-api/pkg/client/informers/externalversions"
)

// packet mirrors networkpolicy.packet field for field (v0.8.0's
// pkg/networkpolicy/packet.go): evaluatePacket takes it by value.
type packet struct {
	_       uint32 // id
	family  corev1.IPFamily
	srcIP   net.IP
	dstIP   net.IP
	proto   corev1.Protocol
	srcPort int
	dstPort int
	_       []byte // payload
}

//go:linkname evaluatePacket sigs.k8s.io/kube-network-policies/pkg/networkpolicy.(*Controller).evaluatePacket
func evaluatePacket(c *networkpolicy.Controller, ctx context.Context, p packet) bool

// State is what the evaluator sees: the cluster's objects as the API
// server would serve them.
type State struct {
	Namespaces []*corev1.Namespace
	Nodes      []*corev1.Node
	Pods       []*corev1.Pod
	Policies   []*networkingv1.NetworkPolicy
	ANPs       []*v1alpha1.AdminNetworkPolicy
	BANP       *v1alpha1.BaselineAdminNetworkPolicy
}

// Evaluator is a kube-network-policies controller reading its stores.
// Its informers never run: Load fills the stores, the listers read them.
type Evaluator struct {
	c                                     *networkpolicy.Controller
	ns, nodes, pods, policies, anps, banp cache.Store
}

// New builds an Evaluator with the AdminNetworkPolicy and
// BaselineAdminNetworkPolicy features on and empty stores. One Evaluator
// serves many States: a controller starts goroutines (its event
// broadcaster) that it never stops.
func New() (*Evaluator, error) {
	client := fake.NewClientset()
	f := informers.NewSharedInformerFactory(client, 0)
	npaClient := npafake.NewSimpleClientset()
	nf := npainformers.NewSharedInformerFactory(npaClient, 0)
	np, ns, pods, nodes := f.Networking().V1().NetworkPolicies(), f.Core().V1().Namespaces(), f.Core().V1().Pods(), f.Core().V1().Nodes()
	anp, banp := nf.Policy().V1alpha1().AdminNetworkPolicies(), nf.Policy().V1alpha1().BaselineAdminNetworkPolicies()
	c, err := networkpolicy.NewController(client, np, ns, pods, nodes, npaClient, anp, banp, networkpolicy.Config{
		AdminNetworkPolicy:         true,
		BaselineAdminNetworkPolicy: true,
		NodeName:                   "differential",
	})
	if err != nil {
		return nil, fmt.Errorf("kube-network-policies controller: %w", err)
	}
	return &Evaluator{c: c,
		ns: ns.Informer().GetStore(), nodes: nodes.Informer().GetStore(), pods: pods.Informer().GetStore(),
		policies: np.Informer().GetStore(), anps: anp.Informer().GetStore(), banp: banp.Informer().GetStore(),
	}, nil
}

// Load replaces every store's content with s.
func (e *Evaluator) Load(s State) error {
	var err error
	replace := func(store cache.Store, objs []any) {
		if err == nil {
			err = store.Replace(objs, "")
		}
	}
	replace(e.ns, list(s.Namespaces))
	replace(e.nodes, list(s.Nodes))
	replace(e.pods, list(s.Pods))
	replace(e.policies, list(s.Policies))
	replace(e.anps, list(s.ANPs))
	var banp []any
	if s.BANP != nil {
		banp = []any{s.BANP}
	}
	replace(e.banp, banp)
	if err != nil {
		return fmt.Errorf("kube-network-policies store: %w", err)
	}
	return nil
}

func list[T any](xs []*T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// Conn is a connection's first packet.
type Conn struct {
	Src, Dst         netip.Addr
	Protocol         corev1.Protocol
	SrcPort, DstPort int
}

// Allowed is kube-network-policies' verdict on the first packet of c.
func (e *Evaluator) Allowed(c Conn) bool {
	family := corev1.IPv4Protocol
	if c.Dst.Is6() {
		family = corev1.IPv6Protocol
	}
	return evaluatePacket(e.c, context.Background(), packet{
		family:  family,
		srcIP:   net.IP(c.Src.AsSlice()),
		dstIP:   net.IP(c.Dst.AsSlice()),
		proto:   c.Protocol,
		srcPort: c.SrcPort,
		dstPort: c.DstPort,
	})
}
