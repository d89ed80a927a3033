package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"reflect"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/kube"
	"github.com/palisade-net/palisade/internal/lab/kubelet"
	"github.com/palisade-net/palisade/internal/manifest"
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
	cs, err := kube.NewClient(o.Kubeconfig, "palisade-conformance")
	if err != nil {
		return err
	}
	o.cs = cs
	o.last = model.NewCluster()
	// Policies left in these namespaces by an earlier run would change
	// what the scenario means.
	for ns := range c.Namespaces {
		if err := o.cs.NetworkingV1().NetworkPolicies(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	if err := o.clearClusterPolicies(ctx); err != nil {
		return err
	}
	return o.Sync(ctx, c)
}

// conformanceLabel marks the cluster policies a run writes: cluster-scoped,
// they outlive the run's namespaces, and only these may be deleted.
const conformanceLabel = "palisade.dev/conformance"

// clearClusterPolicies deletes the cluster policies an earlier run left,
// and refuses to run beside anyone else's: they would change what every
// scenario means.
func (o *KubeObserver) clearClusterPolicies(ctx context.Context) error {
	pc := o.cs.(*kube.Client).Policies
	lists := []struct {
		kind string
		list func() (runtime.Object, error)
	}{
		{model.KindAdminNetworkPolicy, func() (runtime.Object, error) {
			return pc.PolicyV1alpha1().AdminNetworkPolicies().List(ctx, metav1.ListOptions{})
		}},
		{model.KindBaselineAdminNetworkPolicy, func() (runtime.Object, error) {
			return pc.PolicyV1alpha1().BaselineAdminNetworkPolicies().List(ctx, metav1.ListOptions{})
		}},
		{model.KindClusterNetworkPolicy, func() (runtime.Object, error) {
			return pc.PolicyV1alpha2().ClusterNetworkPolicies().List(ctx, metav1.ListOptions{})
		}},
	}
	var objs []manifest.Object
	for _, l := range lists {
		list, err := l.list()
		if apierrors.IsNotFound(err) {
			continue // not served
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", l.kind, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return err
		}
		for _, it := range items {
			m, err := meta.Accessor(it)
			if err != nil {
				return err
			}
			if m.GetLabels()[conformanceLabel] != "true" {
				return fmt.Errorf("the API server holds %s/%s, which the conformance run did not write: it would change what the scenarios mean (delete it, or run against another API server)", l.kind, m.GetName())
			}
			objs = append(objs, clusterPolicyObject(l.kind, m.GetName()))
		}
	}
	return o.deleteClusterPolicies(ctx, objs)
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
	return o.writeClusterPolicies(ctx, c)
}

// writeClusterPolicies deletes the cluster policies c no longer holds and
// applies the new and changed ones, as the API objects a user would write
// (in the kind and version the scenario used), labelled as the run's.
func (o *KubeObserver) writeClusterPolicies(ctx context.Context, c *model.Cluster) error {
	var gone, apply []manifest.Object
	for k := range o.last.ClusterPolicies {
		if c.ClusterPolicies[k] == nil {
			gone = append(gone, clusterPolicyObject(k.Kind, k.Name))
		}
	}
	if err := o.deleteClusterPolicies(ctx, gone); err != nil {
		return err
	}
	for k, p := range c.ClusterPolicies {
		if o.last.ClusterPolicies[k] == p {
			continue
		}
		obj, err := apiconv.ClusterPolicyToAPI(p)
		if err != nil {
			return err
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			return err
		}
		m.SetLabels(map[string]string{conformanceLabel: "true"})
		apply = append(apply, manifest.Object{Kind: k.Kind, Key: model.Key{Name: k.Name}, Source: "conformance", API: obj})
	}
	return kube.Apply(ctx, o.cs, apply, io.Discard)
}

// clusterPolicyObject names a cluster policy for kube.Delete, whose client
// is picked by the type of the object.
func clusterPolicyObject(kind, name string) manifest.Object {
	var api runtime.Object = &v1alpha2.ClusterNetworkPolicy{}
	switch kind {
	case model.KindAdminNetworkPolicy:
		api = &v1alpha1.AdminNetworkPolicy{}
	case model.KindBaselineAdminNetworkPolicy:
		api = &v1alpha1.BaselineAdminNetworkPolicy{}
	}
	return manifest.Object{Kind: kind, Key: model.Key{Name: name}, Source: "conformance", API: api}
}

func (o *KubeObserver) deleteClusterPolicies(ctx context.Context, objs []manifest.Object) error {
	err := kube.Delete(ctx, o.cs, objs, metav1.DeleteOptions{}, o.SyncWait, io.Discard)
	if errors.Is(err, kube.ErrNotFound) {
		return nil
	}
	return err
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
	want.Policies, want.Namespaces, want.ClusterPolicies = c.Policies, c.Namespaces, c.ClusterPolicies
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
		errs = append(errs, o.clearClusterPolicies(ctx))
	}
	errs = append(errs, KubeDown(o.Name))
	return errors.Join(errs...)
}

// podToAPI is the pod a user would create for p: its labels and ports, and
// its addresses requested from the lab's kubelet. A host-network pod is
// bound to its node: it answers on that node's addresses.
func podToAPI(p *model.Pod) *corev1.Pod {
	var ips []string
	for _, ip := range p.IPs {
		ips = append(ips, ip.String())
	}
	c := corev1.Container{Name: "serve", Image: "palisade-lab"}
	for _, cp := range p.Ports {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: cp.Name, ContainerPort: int32(cp.Port), Protocol: corev1.Protocol(cp.Protocol.String())})
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: p.Namespace, Name: p.Name, Labels: p.Labels,
			Annotations: map[string]string{kubelet.RequestedIPsAnnotation: strings.Join(ips, ",")},
		},
		Spec: corev1.PodSpec{Containers: []corev1.Container{c}, HostNetwork: p.HostNetwork},
	}
	if p.HostNetwork {
		pod.Spec.NodeName = p.Node
	}
	return pod
}

// EnforcesClusterPolicyKind reports that the agents enforce every kind:
// KubeUp installs the CRDs the API server lacks before they start. A
// version the server does not serve fails the scenario's apply, loudly.
func (o *KubeObserver) EnforcesClusterPolicyKind(string) bool { return true }
