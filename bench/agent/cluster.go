package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/fixture/apiobj"
)

// The synthetic cluster is fixture.Scale's (the shape of every benchmark
// of BENCHMARKS.md), written as API objects: pods spread over nodes
// node-0..node-99 at random, always 100 nodes, so that the agent, as
// node-0, enforces for about 1% of the pods.

const localNode = "node-0"

type scale struct {
	name                      string
	pods, namespaces, polices int
}

var scales = map[string]scale{
	"1k":  {"1k", 1000, 50, 1000},
	"10k": {"10k", 10000, 200, 10000},
	"50k": {"50k", 50000, 1000, 20000},
}

type cluster struct {
	namespaces []*corev1.Namespace
	nodes      []*corev1.Node
	pods       []*corev1.Pod // with the status to write through the subresource
	policies   []*networkingv1.NetworkPolicy
	local      []*corev1.Pod // the pods of node-0
}

// genCluster generates the cluster; unless wide, two kinds of policy
// select a group of ten namespaces instead of peers across the cluster
// (fixture.Spec.Wide).
func genCluster(seed uint64, sc scale, nodes int, wide bool) *cluster {
	o := apiobj.FromCluster(fixture.Scale(fixture.Spec{Seed: seed, Pods: sc.pods, Namespaces: sc.namespaces, Policies: sc.polices, Nodes: nodes, Wide: wide}))
	c := &cluster{namespaces: o.Namespaces, nodes: o.Nodes, pods: o.Pods, policies: o.Policies}
	for _, p := range c.pods {
		if p.Spec.NodeName == localNode {
			c.local = append(c.local, p)
		}
	}
	return c
}

// API object builders for latency.go's policies.

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

var ingressOnly = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}

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
