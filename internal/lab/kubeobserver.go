package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/lab/kubelet"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/truth"
)

// KubeObserver runs conformance scenarios through a real API server: the
// lab plays the kubelet (KubeUp), `palisade agent` processes enforce, and
// the scenario's namespaces, pods and policies are written with client-go,
// as a user would. Probes are real connections in the lab. It implements
// conformance.Observer.
type KubeObserver struct {
	Name       string        // lab name
	Nodes      int           // pods are spread over this many nodes
	Kubeconfig string        // an admin's kubeconfig
	Daemon     []string      // the command that runs `palisade lab daemon --name Name`
	Timeout    time.Duration // per probe
	SyncWait   time.Duration // how long the agents may take to enforce a step

	cs kubernetes.Interface
	// last is what was written to the API server, to know what to
	// delete or update next.
	last *model.Cluster
}

// Setup builds the lab in kubelet mode, starts its daemon and agents, and
// writes c to the API server.
func (o *KubeObserver) Setup(ctx context.Context, c *model.Cluster) error {
	if o.SyncWait == 0 {
		o.SyncWait = 30 * time.Second
	}
	_ = KubeDown(o.Name)
	if _, err := KubeUp(ctx, o.Name, Options{Nodes: o.Nodes}, KubeOptions{Kubeconfig: o.Kubeconfig}); err != nil {
		return err
	}
	if _, err := StartDaemon(o.Name, o.Daemon); err != nil {
		return err
	}
	if err := WaitAgents(ctx, o.Name, 60*time.Second); err != nil {
		return err
	}
	cfg, err := KubeRESTConfig(o.Kubeconfig)
	if err != nil {
		return err
	}
	if o.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	o.last = model.NewCluster()
	// Policies left in these namespaces by an earlier run would change
	// what the scenario means.
	for ns := range c.Namespaces {
		if err := o.cs.NetworkingV1().NetworkPolicies(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return o.Sync(ctx, c)
}

// Sync writes c's namespaces, pods and policies to the API server, then
// waits until the lab runs every pod and every node's kernel holds the
// ruleset that c compiles to.
func (o *KubeObserver) Sync(ctx context.Context, c *model.Cluster) error {
	if err := o.write(ctx, c); err != nil {
		return err
	}
	o.last = c.Clone()
	return o.waitEnforced(ctx, c)
}

func (o *KubeObserver) write(ctx context.Context, c *model.Cluster) error {
	for _, ns := range c.Namespaces {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: ns.Labels}}
		cur, err := o.cs.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = o.cs.CoreV1().Namespaces().Create(ctx, obj, metav1.CreateOptions{})
		case err == nil && !reflect.DeepEqual(cur.Labels, ns.Labels):
			cur.Labels = ns.Labels
			_, err = o.cs.CoreV1().Namespaces().Update(ctx, cur, metav1.UpdateOptions{})
		}
		if err != nil {
			return fmt.Errorf("namespace %s: %w", ns.Name, err)
		}
	}
	for k := range o.last.Pods {
		if c.Pods[k] == nil {
			if err := o.cs.CoreV1().Pods(k.Namespace).Delete(ctx, k.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("pod %s: %w", k, err)
			}
		}
	}
	for k, p := range c.Pods {
		old := o.last.Pods[k]
		switch {
		case old == nil:
			if _, err := o.cs.CoreV1().Pods(k.Namespace).Create(ctx, podToAPI(p), metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("pod %s: %w", k, err)
			}
		case !reflect.DeepEqual(old.Labels, p.Labels):
			cur, err := o.cs.CoreV1().Pods(k.Namespace).Get(ctx, k.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("pod %s: %w", k, err)
			}
			cur.Labels = p.Labels
			if _, err := o.cs.CoreV1().Pods(k.Namespace).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("pod %s: %w", k, err)
			}
		}
	}
	pols := o.cs.NetworkingV1().NetworkPolicies
	for k := range o.last.Policies {
		if c.Policies[k] == nil {
			if err := pols(k.Namespace).Delete(ctx, k.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("networkpolicy %s: %w", k, err)
			}
		}
	}
	for k, p := range c.Policies {
		if old := o.last.Policies[k]; old == p {
			continue
		}
		obj := apiconv.PolicyToAPI(p)
		cur, err := pols(k.Namespace).Get(ctx, k.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = pols(k.Namespace).Create(ctx, obj, metav1.CreateOptions{})
		case err == nil:
			obj.ResourceVersion = cur.ResourceVersion
			_, err = pols(k.Namespace).Update(ctx, obj, metav1.UpdateOptions{})
		}
		if err != nil {
			return fmt.Errorf("networkpolicy %s: %w", k, err)
		}
	}
	return nil
}

// waitEnforced waits until the lab runs c's pods (with c's labels and
// addresses) and the kernel of every node holds exactly the ruleset that
// c compiles to with the lab's placement of the pods.
func (o *KubeObserver) waitEnforced(ctx context.Context, c *model.Cluster) error {
	deadline := time.Now().Add(o.SyncWait)
	var why string
	for time.Now().Before(deadline) {
		why = o.enforced(c)
		if why == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("not enforced after %s: %s", o.SyncWait, why)
}

func (o *KubeObserver) enforced(c *model.Cluster) string {
	l, err := Load(o.Name)
	if err != nil {
		return err.Error()
	}
	lc := l.Cluster()
	for k, want := range c.Pods {
		got := lc.Pods[k]
		if got == nil {
			return "pod " + k.String() + " not running yet"
		}
		if !reflect.DeepEqual(got.Labels, want.Labels) || !reflect.DeepEqual(got.IPs, want.IPs) {
			return "pod " + k.String() + " not up to date"
		}
	}
	// What c means with the lab's placement: the pods as the lab runs
	// them, the policies and namespace labels as the scenario wrote them.
	want := lc.Clone()
	want.Policies, want.Namespaces = c.Policies, c.Namespaces
	e := engine.FromCluster(want)
	for _, node := range l.Nodes() {
		got, err := dataplane.Read(l.NodeNetNS(node))
		if err != nil {
			return fmt.Sprintf("node %s: %v", node, err)
		}
		got.Live = false
		if got.String() != dataplane.Compile(e, node, dataplane.Options{}).String() {
			return "node " + node + ": the agent has not enforced the latest state"
		}
	}
	return ""
}

// Probe connects every ordered pair of pods, as Observer.Probe does.
func (o *KubeObserver) Probe(ctx context.Context, pods []*model.Pod, fam netip.Addr, port uint16, proto model.Protocol) (*truth.Grid, bool, error) {
	l, err := Load(o.Name)
	if err != nil {
		return nil, false, err
	}
	return (&Observer{Timeout: o.Timeout}).ProbeLab(ctx, l, pods, fam, port, proto)
}

// Teardown deletes the scenario's policies and removes the lab (its nodes
// and pods go from the API server too).
func (o *KubeObserver) Teardown() error {
	var errs []error
	if o.cs != nil && o.last != nil {
		ctx := context.Background()
		for k := range o.last.Policies {
			if err := o.cs.NetworkingV1().NetworkPolicies(k.Namespace).Delete(ctx, k.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, KubeDown(o.Name))
	return errors.Join(errs...)
}

// podToAPI is the pod a user would create for p: its labels and ports, and
// its addresses requested from the lab's kubelet.
func podToAPI(p *model.Pod) *corev1.Pod {
	var ips []string
	for _, ip := range p.IPs {
		ips = append(ips, ip.String())
	}
	c := corev1.Container{Name: "serve", Image: "palisade-lab"}
	for _, cp := range p.Ports {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: cp.Name, ContainerPort: int32(cp.Port), Protocol: corev1.Protocol(cp.Protocol.String())})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: p.Namespace, Name: p.Name, Labels: p.Labels,
			Annotations: map[string]string{kubelet.RequestedIPsAnnotation: strings.Join(ips, ",")},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{c}, HostNetwork: p.HostNetwork},
	}
}
