package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
)

// ServeKube is the daemon of a lab in kubelet mode (KubeUp). It does what
// Serve does (serve the pods' ports) and what a kubelet and a scheduler do
// for the lab's nodes, from client-go informers on Pods, Services,
// Namespaces and NetworkPolicies:
//
//   - a pending pod (no spec.nodeName) is bound to a lab node, round-robin
//     (pods/binding, as the scheduler does); a pod bound to another node is
//     not the lab's and is left alone;
//   - a pod of a lab node gets its network namespace and addresses (its
//     status.podIPs when they are set and free, else the node's pod CIDR),
//     and its status is written through the status subresource: podIP(s),
//     hostIP(s), phase Running, Ready;
//   - a pod being deleted (deletionTimestamp) is torn down, then deleted
//     with grace period 0, as a kubelet confirms a deletion;
//   - Services get the ClusterIPs the API server allocated, with DNAT in
//     every node and names in the pods' hosts files;
//   - namespaces and policies are kept in the lab's state (for lab get,
//     probe and matrix); enforcement is the agents' job.
//
// After the first pass it starts one `palisade agent` per node (unless the
// lab was made with NoAgents), authenticated as deploy/'s ServiceAccount,
// renews their token at half its lifetime, and writes the pidfile. It runs
// until ctx ends or the lab is removed; then it stops the agents.
func ServeKube(ctx context.Context, name string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if pid := daemonPID(name); pid != 0 && pid != os.Getpid() {
		return fmt.Errorf("lab %s: daemon already running (pid %d)", name, pid)
	}
	ki, err := LoadKube(name)
	if err != nil {
		return err
	}
	l, err := Load(name)
	if err != nil {
		return err
	}
	l.SetLogger(log)
	cfg, err := KubeRESTConfig(ki.Kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	srv, err := l.StartServers()
	if err != nil {
		log.Warn("serving pods", "lab", name, "err", err)
	}
	defer srv.Close()

	kl := &kubelet{lab: l, cs: cs, srv: srv, log: log, warned: map[string]bool{}, poke: make(chan struct{}, 1)}
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
			return err
		}
	}
	ictx, stopInformers := context.WithCancel(ctx)
	defer stopInformers()
	factory.Start(ictx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	synced := factory.WaitForCacheSync(syncCtx.Done())
	cancel()
	for typ, ok := range synced {
		if !ok {
			return fmt.Errorf("lab %s: API server %s: %v not synced within 30s", name, ki.Server, typ)
		}
	}
	if err := kl.reconcile(ctx); err != nil {
		log.Warn("kubelet: first pass", "lab", name, "err", err)
	}

	agentsCtx, stopAgents := context.WithCancel(context.Background())
	agentsDone := make(chan struct{})
	if ki.Agents {
		sup, err := newAgentSupervisor(name, ki.AgentKubeconfig, log)
		if err != nil {
			stopAgents()
			return err
		}
		go func() {
			defer close(agentsDone)
			sup.run(agentsCtx, l.Nodes(), l.NodeNetNS)
		}()
	} else {
		close(agentsDone)
	}
	// On the way out: the agents stop first, and only then does the pidfile
	// go, since Down takes its removal for the daemon (and its agents) gone.
	defer func() {
		stopAgents()
		<-agentsDone
		if daemonPID(name) == os.Getpid() {
			os.Remove(pidfilePath(name))
		}
	}()
	if err := writePidfile(name); err != nil {
		return fmt.Errorf("lab %s: pidfile: %w", name, err)
	}
	log.Info("lab daemon serving in kubelet mode", "lab", name, "server", ki.Server, "pods", len(l.st.Pods), "agents", ki.Agents)

	renew := time.NewTicker(agentTokenTTL / 2)
	defer renew.Stop()
	alive := time.NewTicker(time.Second)
	defer alive.Stop()
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-alive.C:
			if _, err := os.Stat(statePath(name)); errors.Is(err, os.ErrNotExist) {
				log.Info("lab is gone; daemon exits", "lab", name)
				return nil
			}
			continue
		case <-renew.C:
			if err := renewAgentToken(ctx, cs, name); err != nil {
				log.Warn("renewing the agents' token", "lab", name, "err", err)
			}
			continue
		case <-kl.poke:
		case <-retry:
		}
		// Let a burst of events (kubectl apply -f of a whole file) settle.
		time.Sleep(30 * time.Millisecond)
		select {
		case <-kl.poke:
		default:
		}
		retry = nil
		if err := kl.reconcile(ctx); err != nil {
			log.Warn("kubelet: retrying in 1s", "lab", name, "err", err)
			retry = time.After(time.Second)
		}
	}
}

type kubelet struct {
	lab  *Lab
	cs   kubernetes.Interface
	srv  *Servers
	log  *slog.Logger
	pods corelisters.PodLister
	svcs corelisters.ServiceLister
	nss  corelisters.NamespaceLister
	pols netlisters.NetworkPolicyLister
	// warned holds uid/resourceVersion of objects already reported invalid.
	warned map[string]bool
	poke   chan struct{}
}

func (k *kubelet) wake() {
	select {
	case k.poke <- struct{}{}:
	default:
	}
}

// labNode reports whether name is one of this lab's nodes.
func (k *kubelet) labNode(name string) bool {
	i := nodeIndex(name)
	return i >= 1 && i <= k.lab.st.Nodes && nodeName(i) == name
}

func (k *kubelet) invalid(kind string, m metav1.Object, err error) {
	id := string(m.GetUID()) + "/" + m.GetResourceVersion()
	if !k.warned[id] {
		k.warned[id] = true
		k.log.Warn("kubelet: ignoring an object the lab cannot use", "lab", k.lab.st.Name, "kind", kind,
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

// reconcile makes the lab's pods and services those of the API server, and
// writes back bindings, statuses and confirmed deletions.
func (k *kubelet) reconcile(ctx context.Context) error {
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
			m.IPs = nodeIPs(nodeIndex(m.Node))
		case m.HostNetwork:
			m.IPs = nil
		default:
			if len(m.IPs) == 0 {
				m.IPs = requestedIPs(p)
			}
			usable := len(m.IPs) > 0
			for _, ip := range m.IPs {
				if o, ok := owner[ip]; reserved(ip) || (ok && o != key) {
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

	l.SetManifests(docs)
	if err := l.Update(ctx, c); err != nil {
		return err
	}
	if err := k.srv.Sync(l); err != nil {
		k.log.Warn("serving pods", "lab", l.st.Name, "err", err)
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
			}, metav1.CreateOptions{FieldManager: kubeFieldManager})
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("bind pod %s to %s: %w", key, node, err))
				continue
			}
		}
		if patch := statusPatch(p, lp, node); patch != nil {
			_, err := k.cs.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch,
				metav1.PatchOptions{FieldManager: kubeFieldManager}, "status")
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
	for _, ip := range nodeIPs(nodeIndex(node)) {
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
