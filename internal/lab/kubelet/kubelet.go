// Package kubelet plays the kubelet and the scheduler for a lab's nodes
// against a real API server: it registers the nodes, binds pending pods to
// them, turns the API's Pods, Services, Namespaces, NetworkPolicies and
// cluster-wide policies into the lab's cluster, writes back pod status, confirms deletions, and
// removes the nodes' objects when the lab goes. It is apart from package
// lab so that the API side of the kube lab (client-go, informers) reads
// apart from the network it drives, which it sees only through Lab.
package kubelet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	netlisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	npaclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"
	npainformers "sigs.k8s.io/network-policy-api/pkg/client/informers/externalversions"
	npalisters "sigs.k8s.io/network-policy-api/pkg/client/listers/apis/v1alpha1"
	npalisters2 "sigs.k8s.io/network-policy-api/pkg/client/listers/apis/v1alpha2"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/lab/ipam"
	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
)

// LabLabel marks the Node objects a lab registers; its value is the lab's
// name.
const LabLabel = "palisade.dev/lab"

// Lab is what the kubelet drives: the lab's nodes ("node1" ...) and its
// cluster, which Update makes that of the API server.
type Lab interface {
	Name() string
	Nodes() []string
	Cluster() *model.Cluster
	PodNode(model.Key) string
	SetManifests(docs [][]byte)
	Update(ctx context.Context, c *model.Cluster) error
}

// New returns the kubelet of l, with informers on cs's Pods, Services,
// Namespaces and NetworkPolicies, and on pc's cluster-wide policies of the
// kinds the API server serves (pc nil: none) (not started yet). log
// receives warnings.
func New(cs kubernetes.Interface, pc npaclient.Interface, l Lab, log *slog.Logger) (*Kubelet, error) {
	kl := &Kubelet{lab: l, cs: cs, log: log, warned: map[string]bool{}, poke: make(chan struct{}, 1)}
	factory := informers.NewSharedInformerFactory(cs, 0)
	kl.pods = factory.Core().V1().Pods().Lister()
	kl.svcs = factory.Core().V1().Services().Lister()
	kl.nss = factory.Core().V1().Namespaces().Lister()
	kl.pols = factory.Networking().V1().NetworkPolicies().Lister()
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { kl.wake() },
		UpdateFunc: func(any, any) { kl.wake() },
		DeleteFunc: func(any) { kl.wake() },
	}
	for _, inf := range []cache.SharedIndexInformer{
		factory.Core().V1().Pods().Informer(), factory.Core().V1().Services().Informer(),
		factory.Core().V1().Namespaces().Informer(), factory.Networking().V1().NetworkPolicies().Informer(),
	} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return nil, err
		}
	}
	kl.factory = factory
	if pc != nil {
		if err := kl.watchClusterPolicies(cs, pc, handler); err != nil {
			return nil, err
		}
	}
	return kl, nil
}

// watchClusterPolicies adds the informers of the cluster policy kinds
// the API server serves (lab.KubeUp installs their CRDs; a server with an
// older or no ClusterNetworkPolicy v1alpha2 goes without it, logged).
func (k *Kubelet) watchClusterPolicies(cs kubernetes.Interface, pc npaclient.Interface, h cache.ResourceEventHandler) error {
	serves := func(gv, resource string) (bool, error) {
		l, err := cs.Discovery().ServerResourcesForGroupVersion(gv)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return slices.ContainsFunc(l.APIResources, func(r metav1.APIResource) bool { return r.Name == resource }), nil
	}
	f := npainformers.NewSharedInformerFactory(pc, 0)
	var infs []cache.SharedIndexInformer
	for _, kind := range []struct{ gv, resource string }{
		{v1alpha1.GroupVersion.String(), "adminnetworkpolicies"},
		{v1alpha1.GroupVersion.String(), "baselineadminnetworkpolicies"},
		{v1alpha2.GroupVersion.String(), "clusternetworkpolicies"},
	} {
		ok, err := serves(kind.gv, kind.resource)
		if err != nil {
			return fmt.Errorf("discovery of %s: %w", kind.gv, err)
		}
		if !ok {
			k.log.Warn("kubelet: the API server does not serve a cluster policy kind: the lab's state leaves it out",
				"lab", k.lab.Name(), "resource", kind.resource, "version", kind.gv)
			continue
		}
		switch kind.resource {
		case "adminnetworkpolicies":
			k.anps = f.Policy().V1alpha1().AdminNetworkPolicies().Lister()
			infs = append(infs, f.Policy().V1alpha1().AdminNetworkPolicies().Informer())
		case "baselineadminnetworkpolicies":
			k.banps = f.Policy().V1alpha1().BaselineAdminNetworkPolicies().Lister()
			infs = append(infs, f.Policy().V1alpha1().BaselineAdminNetworkPolicies().Informer())
		default:
			k.cnps = f.Policy().V1alpha2().ClusterNetworkPolicies().Lister()
			infs = append(infs, f.Policy().V1alpha2().ClusterNetworkPolicies().Informer())
		}
	}
	for _, inf := range infs {
		if _, err := inf.AddEventHandler(h); err != nil {
			return err
		}
	}
	k.policyFactory = f
	return nil
}

// clusterPolicies converts the cluster policies the informers hold, and
// renders each as a manifest document, sorted by kind and name.
func (k *Kubelet) clusterPolicies(c *model.Cluster, docs [][]byte) ([][]byte, error) {
	type item struct {
		obj     metav1.Object
		kind    string
		version string
		convert func() (*model.ClusterPolicy, error)
	}
	var items []item
	if k.anps != nil {
		l, err := k.anps.List(labels.Everything())
		if err != nil {
			return docs, err
		}
		for _, p := range l {
			items = append(items, item{p, model.KindAdminNetworkPolicy, v1alpha1.GroupVersion.String(), func() (*model.ClusterPolicy, error) { return apiconv.AdminNetworkPolicy(p) }})
		}
	}
	if k.banps != nil {
		l, err := k.banps.List(labels.Everything())
		if err != nil {
			return docs, err
		}
		for _, p := range l {
			items = append(items, item{p, model.KindBaselineAdminNetworkPolicy, v1alpha1.GroupVersion.String(), func() (*model.ClusterPolicy, error) { return apiconv.BaselineAdminNetworkPolicy(p) }})
		}
	}
	if k.cnps != nil {
		l, err := k.cnps.List(labels.Everything())
		if err != nil {
			return docs, err
		}
		for _, p := range l {
			items = append(items, item{p, model.KindClusterNetworkPolicy, v1alpha2.GroupVersion.String(), func() (*model.ClusterPolicy, error) { return apiconv.ClusterNetworkPolicy(p) }})
		}
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].kind != items[j].kind {
			return items[i].kind < items[j].kind
		}
		return items[i].obj.GetName() < items[j].obj.GetName()
	})
	for _, it := range items {
		m, err := it.convert()
		if err != nil {
			k.invalid(it.kind, it.obj, err)
			continue
		}
		c.ClusterPolicies[m.Key()] = m
		docs = appendDoc(docs, mirror(it.obj.(runtime.Object), it.version, it.kind))
	}
	return docs, nil
}

// Start starts the informers, which run until ctx ends, and waits (at
// most 30 s) until they hold the API server's objects.
func (k *Kubelet) Start(ctx context.Context) error {
	k.factory.Start(ctx.Done())
	if k.policyFactory != nil {
		k.policyFactory.Start(ctx.Done())
	}
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	synced := k.factory.WaitForCacheSync(syncCtx.Done())
	if k.policyFactory != nil {
		for typ, ok := range k.policyFactory.WaitForCacheSync(syncCtx.Done()) {
			synced[typ] = ok
		}
	}
	for typ, ok := range synced {
		if !ok {
			return fmt.Errorf("%v not synced within 30s", typ)
		}
	}
	return nil
}

// Kubelet is the kubelet and scheduler of a lab's nodes, fed by informers.
type Kubelet struct {
	lab  Lab
	cs   kubernetes.Interface
	log  *slog.Logger
	pods corelisters.PodLister
	svcs corelisters.ServiceLister
	nss  corelisters.NamespaceLister
	pols netlisters.NetworkPolicyLister
	// The cluster policies' listers, nil for a kind not watched.
	anps  npalisters.AdminNetworkPolicyLister
	banps npalisters.BaselineAdminNetworkPolicyLister
	cnps  npalisters2.ClusterNetworkPolicyLister
	// warned holds uid/resourceVersion of objects already reported invalid.
	warned map[string]bool
	poke   chan struct{}

	factory       informers.SharedInformerFactory
	policyFactory npainformers.SharedInformerFactory // nil without cluster policies
}

// Poked receives when an object changed in the API server: time to
// Reconcile.
func (k *Kubelet) Poked() <-chan struct{} { return k.poke }

func (k *Kubelet) wake() {
	select {
	case k.poke <- struct{}{}:
	default:
	}
}

// labNode reports whether name is one of this lab's nodes.
func (k *Kubelet) labNode(name string) bool { return slices.Contains(k.lab.Nodes(), name) }

func (k *Kubelet) invalid(kind string, m metav1.Object, err error) {
	id := string(m.GetUID()) + "/" + m.GetResourceVersion()
	if !k.warned[id] {
		k.warned[id] = true
		k.log.Warn("kubelet: ignoring an object the lab cannot use", "lab", k.lab.Name(), "kind", kind,
			"object", m.GetNamespace()+"/"+m.GetName(), "err", err)
	}
}

// mirror renders an API object as a manifest document for the lab's state
// (what lab get and describe read), or nil if the manifest reader would
// not take it back.
func mirror(obj runtime.Object, apiVersion, kind string) []byte {
	obj = obj.DeepCopyObject()
	obj.GetObjectKind().SetGroupVersionKind(schema.FromAPIVersionAndKind(apiVersion, kind))
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return nil
	}
	if _, err := manifest.DecodeObject(b, "api"); err != nil {
		return nil
	}
	return b
}

// Reconcile makes the lab's pods and services those of the API server, and
// writes back bindings, statuses and confirmed deletions.
func (k *Kubelet) Reconcile(ctx context.Context) error {
	l := k.lab
	c := model.NewCluster()
	var docs [][]byte

	nss, err := k.nss.List(labels.Everything())
	if err != nil {
		return err
	}
	sort.Slice(nss, func(i, j int) bool { return nss[i].Name < nss[j].Name })
	for _, n := range nss {
		m, err := apiconv.Namespace(n)
		if err != nil {
			k.invalid("Namespace", n, err)
			continue
		}
		c.Namespaces[m.Name] = m
		docs = appendDoc(docs, mirror(n, "v1", "Namespace"))
	}
	svcs, err := k.svcs.List(labels.Everything())
	if err != nil {
		return err
	}
	sort.Slice(svcs, func(i, j int) bool { return objLess(svcs[i], svcs[j]) })
	for _, s := range svcs {
		m, err := apiconv.Service(s)
		if err != nil {
			k.invalid("Service", s, err)
			continue
		}
		if len(m.ClusterIPs) == 0 {
			continue // headless or ExternalName: no ClusterIP to DNAT
		}
		c.Services[m.Key()] = m
		c.EnsureNamespace(m.Namespace)
		docs = appendDoc(docs, mirror(s, "v1", "Service"))
	}

	// Pods: the lab's IPs stay its own; a pod's status.podIPs are taken only
	// when no other pod holds them and they are not in a lab range.
	cur := l.Cluster()
	owner := map[netip.Addr]model.Key{}
	for _, p := range cur.Pods {
		if !p.HostNetwork {
			for _, ip := range p.IPs {
				owner[ip] = p.Key()
			}
		}
	}
	pods, err := k.pods.List(labels.Everything())
	if err != nil {
		return err
	}
	sort.Slice(pods, func(i, j int) bool { return objLess(pods[i], pods[j]) })
	mine := map[model.Key]*corev1.Pod{}
	var finish []*corev1.Pod
	for _, p := range pods {
		if p.Spec.NodeName != "" && !k.labNode(p.Spec.NodeName) {
			continue // another kubelet's
		}
		if p.DeletionTimestamp != nil {
			if p.Spec.NodeName != "" {
				finish = append(finish, p)
			}
			continue
		}
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		m, err := apiconv.Pod(p)
		if err != nil {
			k.invalid("Pod", p, err)
			continue
		}
		key := m.Key()
		switch {
		case m.HostNetwork && m.Node != "":
			m.IPs = ipam.NodeIPs(names.NodeIndex(m.Node))
		case m.HostNetwork:
			m.IPs = nil
		default:
			if len(m.IPs) == 0 {
				m.IPs = requestedIPs(p)
			}
			usable := len(m.IPs) > 0
			for _, ip := range m.IPs {
				if o, ok := owner[ip]; ipam.Reserved(ip) || (ok && o != key) {
					usable = false
				}
			}
			if !usable {
				m.IPs = nil
			}
			for _, ip := range m.IPs {
				owner[ip] = key
			}
		}
		c.Pods[key] = m
		c.EnsureNamespace(m.Namespace)
		mine[key] = p
		docs = appendDoc(docs, mirror(p, "v1", "Pod"))
	}

	pols, err := k.pols.List(labels.Everything())
	if err != nil {
		return err
	}
	sort.Slice(pols, func(i, j int) bool { return objLess(pols[i], pols[j]) })
	for _, np := range pols {
		m, err := apiconv.Policy(np)
		if err != nil {
			k.invalid("NetworkPolicy", np, err)
			continue
		}
		c.Policies[m.Key()] = m
		c.EnsureNamespace(m.Namespace)
		docs = appendDoc(docs, mirror(np, "networking.k8s.io/v1", "NetworkPolicy"))
	}
	docs, err = k.clusterPolicies(c, docs)
	if err != nil {
		return err
	}

	l.SetManifests(docs)
	if err := l.Update(ctx, c); err != nil {
		return err
	}

	// Write back what a scheduler and a kubelet would.
	var errs []error
	built := l.Cluster()
	keys := make([]model.Key, 0, len(mine))
	for key := range mine {
		keys = append(keys, key)
	}
	model.SortKeys(keys)
	for _, key := range keys {
		p, lp, node := mine[key], built.Pods[key], l.PodNode(key)
		if lp == nil || node == "" {
			continue
		}
		if p.Spec.NodeName == "" {
			err := k.cs.CoreV1().Pods(p.Namespace).Bind(ctx, &corev1.Binding{
				ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
				Target:     corev1.ObjectReference{Kind: "Node", Name: node},
			}, metav1.CreateOptions{FieldManager: names.FieldManager})
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("bind pod %s to %s: %w", key, node, err))
				continue
			}
		}
		if patch := statusPatch(p, lp, node); patch != nil {
			_, err := k.cs.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch,
				metav1.PatchOptions{FieldManager: names.FieldManager}, "status")
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("pod %s status: %w", key, err))
			}
		}
	}
	zero := int64(0)
	for _, p := range finish {
		err := k.cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("confirm deletion of pod %s/%s: %w", p.Namespace, p.Name, err))
		}
	}
	return errors.Join(errs...)
}

func appendDoc(docs [][]byte, d []byte) [][]byte {
	if d == nil {
		return docs
	}
	return append(docs, d)
}

func objLess(a, b metav1.Object) bool {
	if a.GetNamespace() != b.GetNamespace() {
		return a.GetNamespace() < b.GetNamespace()
	}
	return a.GetName() < b.GetName()
}

// statusPatch returns the merge patch that makes a pod's status what the
// lab built (Running and Ready on node, with the lab's addresses), or nil
// when it already is.
func statusPatch(p *corev1.Pod, lp *model.Pod, node string) []byte {
	var podIPs []corev1.PodIP
	for _, ip := range lp.IPs {
		podIPs = append(podIPs, corev1.PodIP{IP: ip.String()})
	}
	var hostIPs []corev1.HostIP
	for _, ip := range ipam.NodeIPs(names.NodeIndex(node)) {
		hostIPs = append(hostIPs, corev1.HostIP{IP: ip.String()})
	}
	ready := false
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if p.Status.Phase == corev1.PodRunning && ready && slices.Equal(p.Status.PodIPs, podIPs) &&
		slices.Equal(p.Status.HostIPs, hostIPs) && len(podIPs) > 0 && p.Status.PodIP == podIPs[0].IP {
		return nil
	}
	now := metav1.Now()
	start := p.Status.StartTime
	if start == nil {
		start = &now
	}
	var conds []corev1.PodCondition
	for _, t := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled} {
		conds = append(conds, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	var cstat []corev1.ContainerStatus
	started := true
	for _, c := range p.Spec.Containers {
		cstat = append(cstat, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, Ready: true, Started: &started,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: *start}},
		})
	}
	st := corev1.PodStatus{
		Phase: corev1.PodRunning, Conditions: conds, HostIP: hostIPs[0].IP, HostIPs: hostIPs,
		StartTime: start, ContainerStatuses: cstat,
	}
	if len(podIPs) > 0 {
		st.PodIP, st.PodIPs = podIPs[0].IP, podIPs
	}
	b, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		return nil
	}
	return b
}

// RequestedIPsAnnotation asks the lab's kubelet for a pod's addresses, as
// Calico's cni.projectcalico.org/ipAddrs does: a comma-separated list, at
// most one per family. The conformance runner uses it so that scenarios'
// ipBlocks name the pods they mean. Addresses that are taken, reserved or
// malformed are ignored and the pod gets addresses from its node's range.
const RequestedIPsAnnotation = "lab.palisade.dev/ips"

func requestedIPs(p *corev1.Pod) []netip.Addr {
	var out []netip.Addr
	seen := map[bool]bool{}
	for _, s := range strings.Split(p.Annotations[RequestedIPsAnnotation], ",") {
		ip, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil || seen[ip.Is6()] {
			continue
		}
		seen[ip.Is6()] = true
		out = append(out, ip)
	}
	return out
}

// RegisterNodes creates (or takes over, if this lab registered it before)
// a Node per lab node, with the lab's addresses and pod CIDRs, Ready.
func RegisterNodes(ctx context.Context, cs kubernetes.Interface, lab string, nodes int) error {
	for i := 1; i <= nodes; i++ {
		name := names.NodeName(i)
		v4, v6 := ipam.PodCIDRs(i)
		want := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				LabLabel:                 lab,
			}},
			Spec: corev1.NodeSpec{PodCIDR: v4.String(), PodCIDRs: []string{v4.String(), v6.String()}},
		}
		node, err := cs.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{FieldManager: names.FieldManager})
		if apierrors.IsAlreadyExists(err) {
			node, err = cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err == nil && node.Labels[LabLabel] != lab {
				return fmt.Errorf("node %s already exists in the API server and is not lab %s's (label %s=%q): use an API server without nodes of its own, or remove it",
					name, lab, LabLabel, node.Labels[LabLabel])
			}
		}
		if err != nil {
			return fmt.Errorf("register node %s: %w", name, err)
		}
		ips := ipam.NodeIPs(i)
		now := metav1.Now()
		node.Status = corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: ips[0].String()},
				{Type: corev1.NodeInternalIP, Address: ips[1].String()},
				{Type: corev1.NodeHostName, Address: name},
			},
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "PalisadeLab",
				Message:           "network namespace " + names.NodeNetNS(lab, name) + " of palisade lab " + lab,
				LastHeartbeatTime: now, LastTransitionTime: now,
			}},
			Capacity:    nodeResources(),
			Allocatable: nodeResources(),
			NodeInfo: corev1.NodeSystemInfo{
				OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: "palisade-lab",
				OSImage: "palisade lab (network namespaces)",
			},
		}
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{FieldManager: names.FieldManager}); err != nil {
			return fmt.Errorf("node %s status: %w", name, err)
		}
	}
	return nil
}

func nodeResources() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourcePods:   resource.MustParse("250"),
		corev1.ResourceCPU:    resource.MustParse("2"),
		corev1.ResourceMemory: resource.MustParse("4Gi"),
	}
}

// RemoveNodes removes from the API server what the nodes of the lab called
// lab held, as Kubernetes' garbage collector does for a deleted node: the
// pods bound to them (deleted at once: no kubelet is left), then the Node
// objects.
func RemoveNodes(ctx context.Context, cs kubernetes.Interface, lab string) error {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: LabLabel + "=" + lab})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	var errs []error
	zero := int64(0)
	for _, n := range nodes.Items {
		pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.Name})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range pods.Items {
			err := cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
				GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				errs = append(errs, fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err))
			}
		}
		if err := cs.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete node %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}
