package kube

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// The transforms below run on every object the informers receive, before
// it is stored: they keep only what apiconv reads (and what the informer
// itself needs: name, namespace, UID, resourceVersion), in a new, small
// object, so that the cache holds no managedFields, annotations, images,
// environment, volumes, conditions... Memory at 100k pods matters. They
// are idempotent, as client-go requires.

// transform wraps fn into a cache.TransformFunc that also reaches into
// tombstones.
func transform[T any](fn func(T) T) cache.TransformFunc {
	return func(obj any) (any, error) {
		switch o := obj.(type) {
		case T:
			return fn(o), nil
		case cache.DeletedFinalStateUnknown:
			if t, ok := o.Obj.(T); ok {
				o.Obj = fn(t)
			}
			return o, nil
		}
		return obj, nil
	}
}

func meta(m *metav1.ObjectMeta, labels bool) metav1.ObjectMeta {
	out := metav1.ObjectMeta{
		Name:            m.Name,
		Namespace:       m.Namespace,
		UID:             m.UID,
		ResourceVersion: m.ResourceVersion,
	}
	if labels {
		out.Labels = m.Labels
	}
	return out
}

// stripPod keeps metadata.labels, spec.nodeName, spec.hostNetwork,
// spec.containers[].name and ports (name, containerPort, protocol),
// status.phase (terminated pods release their IPs), status.podIP(s).
func stripPod(p *corev1.Pod) *corev1.Pod {
	out := &corev1.Pod{
		ObjectMeta: meta(&p.ObjectMeta, true),
		Spec: corev1.PodSpec{
			NodeName:    p.Spec.NodeName,
			HostNetwork: p.Spec.HostNetwork,
		},
		Status: corev1.PodStatus{
			Phase:  p.Status.Phase,
			PodIP:  p.Status.PodIP,
			PodIPs: p.Status.PodIPs,
		},
	}
	if len(p.Spec.Containers) > 0 {
		// Every container stays (error messages index them), with its
		// ports only.
		out.Spec.Containers = make([]corev1.Container, len(p.Spec.Containers))
		for i := range p.Spec.Containers {
			c := &p.Spec.Containers[i]
			out.Spec.Containers[i].Name = c.Name
			if len(c.Ports) > 0 {
				ports := make([]corev1.ContainerPort, len(c.Ports))
				for j, cp := range c.Ports {
					ports[j] = corev1.ContainerPort{Name: cp.Name, ContainerPort: cp.ContainerPort, Protocol: cp.Protocol}
				}
				out.Spec.Containers[i].Ports = ports
			}
		}
	}
	return out
}

// stripNamespace keeps the name and labels.
func stripNamespace(n *corev1.Namespace) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: meta(&n.ObjectMeta, true)}
}

// stripPolicy keeps the spec whole, and of the metadata only what names
// it: a policy's own labels play no part in enforcement, so an invalid
// one cannot make the policy fail closed.
func stripPolicy(p *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{ObjectMeta: meta(&p.ObjectMeta, false), Spec: p.Spec}
}

// stripNode keeps the InternalIP and ExternalIP addresses.
func stripNode(n *corev1.Node) *corev1.Node {
	out := &corev1.Node{ObjectMeta: meta(&n.ObjectMeta, false)}
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP || a.Type == corev1.NodeExternalIP {
			out.Status.Addresses = append(out.Status.Addresses, a)
		}
	}
	return out
}

// The equalities below compare stripped objects apart from their
// resourceVersion: an update that changes nothing policy reads (a pod's
// conditions, a node's heartbeat) is not an event for the engine.

func samePod(a, b *corev1.Pod) bool {
	return a.Name == b.Name && a.Namespace == b.Namespace &&
		maps.Equal(a.Labels, b.Labels) &&
		a.Spec.NodeName == b.Spec.NodeName && a.Spec.HostNetwork == b.Spec.HostNetwork &&
		a.Status.Phase == b.Status.Phase && a.Status.PodIP == b.Status.PodIP &&
		slices.Equal(a.Status.PodIPs, b.Status.PodIPs) &&
		slices.EqualFunc(a.Spec.Containers, b.Spec.Containers, func(x, y corev1.Container) bool {
			return x.Name == y.Name && slices.Equal(x.Ports, y.Ports)
		})
}

// samePolicy compares specs: a policy's labels and annotations change
// nothing (the transform drops them), and an update that changes only
// them would otherwise recompile the policy and, with
// --terminate-denied, sweep conntrack.
func samePolicy(a, b *networkingv1.NetworkPolicy) bool {
	return a.Name == b.Name && a.Namespace == b.Namespace && equality.Semantic.DeepEqual(a.Spec, b.Spec)
}

func sameNode(a, b *corev1.Node) bool {
	return slices.Equal(a.Status.Addresses, b.Status.Addresses)
}
