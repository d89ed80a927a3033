package kube

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/source"
)

// ConvertPolicy converts a NetworkPolicy through apiconv. When apiconv
// rejects it (an *apiconv.Error naming object and fields), it returns
// that error together with a fail-closed placeholder of the same name:
// it isolates, in the policy's directions, the pods the policy would
// select, and allows nothing. The podSelector is the policy's if that
// part is valid, else every pod of its namespace; the directions are the
// valid policyTypes (absent ones defaulted as the API does: Ingress, plus
// Egress when spec.egress has rules), else both.
func ConvertPolicy(np *networkingv1.NetworkPolicy) (*model.Policy, error) {
	p, err := apiconv.Policy(np)
	if err == nil {
		return p, nil
	}
	ns := np.Namespace
	if ns == "" {
		ns = apiconv.DefaultNamespace
	}
	ph := &model.Policy{Namespace: ns, Name: np.Name, Ingress: true, Egress: true}
	// Each part is checked alone, in an otherwise empty policy with a
	// name known to be valid.
	probe := func(spec networkingv1.NetworkPolicySpec) (*model.Policy, bool) {
		q, err := apiconv.Policy(&networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "probe", Name: "probe"},
			Spec:       spec,
		})
		return q, err == nil
	}
	if q, ok := probe(networkingv1.NetworkPolicySpec{PodSelector: np.Spec.PodSelector}); ok {
		ph.PodSelector = q.PodSelector
	}
	if len(np.Spec.PolicyTypes) == 0 {
		ph.Ingress, ph.Egress = true, len(np.Spec.Egress) > 0
	} else if q, ok := probe(networkingv1.NetworkPolicySpec{PolicyTypes: np.Spec.PolicyTypes}); ok {
		ph.Ingress, ph.Egress = q.Ingress, q.Egress
	}
	return ph, err
}

// podEvent converts a pod. A pod that has terminated (phase Succeeded or
// Failed) is a delete: its IPs go back to the pool.
func podEvent(p *corev1.Pod) source.Event {
	ev := source.Event{Kind: source.KindPod, Key: model.Key{Namespace: p.Namespace, Name: p.Name}}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		ev.Delete = true
		return ev
	}
	ev.Pod, ev.Err = apiconv.Pod(p)
	// Which of two pods reporting one address owns it (agent, ownip.go).
	ev.Created, ev.Deleting = p.CreationTimestamp.Time, p.DeletionTimestamp != nil
	if ev.Pod != nil {
		ev.Pod.Images = nil // only the lab reads them
	}
	return ev
}

func namespaceEvent(n *corev1.Namespace) source.Event {
	ev := source.Event{Kind: source.KindNamespace, Key: model.Key{Name: n.Name}}
	ev.Namespace, ev.Err = apiconv.Namespace(n)
	return ev
}

// policyEvent converts a policy. Of its metadata only the name counts: a
// policy's own labels play no part in enforcement, so an invalid one
// cannot make the policy fail closed.
func policyEvent(np *networkingv1.NetworkPolicy) source.Event {
	ev := source.Event{Kind: source.KindPolicy, Key: model.Key{Namespace: np.Namespace, Name: np.Name}}
	ev.Policy, ev.Err = ConvertPolicy(&networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: np.Namespace, Name: np.Name},
		Spec:       np.Spec,
	})
	return ev
}

func nodeEvent(n *corev1.Node) source.Event {
	ev := source.Event{Kind: source.KindNode, Key: model.Key{Name: n.Name}}
	ev.Node, ev.Err = apiconv.Node(n)
	return ev
}
