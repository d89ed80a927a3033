package differential

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/yaml"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/render"
	"github.com/palisade-net/palisade/test/differential/knp"
)

func (w *world) clone() *world {
	out := &world{}
	for _, o := range w.namespaces {
		out.namespaces = append(out.namespaces, o.DeepCopy())
	}
	for _, o := range w.nodes {
		out.nodes = append(out.nodes, o.DeepCopy())
	}
	for _, o := range w.pods {
		out.pods = append(out.pods, o.DeepCopy())
	}
	for _, o := range w.policies {
		out.policies = append(out.policies, o.DeepCopy())
	}
	for _, o := range w.anps {
		out.anps = append(out.anps, o.DeepCopy())
	}
	if w.banp != nil {
		out.banp = w.banp.DeepCopy()
	}
	return out
}

func drop[T any](xs []T, i int) []T { return append(xs[:i:i], xs[i+1:]...) }

// cuts lists the ways to make w one step smaller: drop a pod other than
// c's ends, a policy of any kind, a rule, or a rule's peer or port (a
// cluster rule keeps at least one peer, as the API requires).
func cuts(w *world, c conn) []func(*world) {
	var out []func(*world)
	for i, p := range w.pods {
		if !slices.ContainsFunc(p.Status.PodIPs, func(ip corev1.PodIP) bool { return ip.IP == c.src.String() || ip.IP == c.dst.String() }) {
			out = append(out, func(w *world) { w.pods = drop(w.pods, i) })
		}
	}
	for i, n := range w.nodes {
		if !slices.ContainsFunc(w.pods, func(p *corev1.Pod) bool { return p.Spec.NodeName == n.Name }) &&
			!slices.ContainsFunc(n.Status.Addresses, func(a corev1.NodeAddress) bool { return a.Address == c.dst.String() }) {
			out = append(out, func(w *world) { w.nodes = drop(w.nodes, i) })
		}
	}
	for i, ns := range w.namespaces {
		if !slices.ContainsFunc(w.pods, func(p *corev1.Pod) bool { return p.Namespace == ns.Name }) {
			out = append(out, func(w *world) { w.namespaces = drop(w.namespaces, i) })
		}
	}
	for i, np := range w.policies {
		out = append(out, func(w *world) { w.policies = drop(w.policies, i) })
		for j, r := range np.Spec.Ingress {
			out = append(out, func(w *world) { w.policies[i].Spec.Ingress = drop(w.policies[i].Spec.Ingress, j) })
			for k := range r.From {
				out = append(out, func(w *world) { w.policies[i].Spec.Ingress[j].From = drop(w.policies[i].Spec.Ingress[j].From, k) })
			}
			for k := range r.Ports {
				out = append(out, func(w *world) { w.policies[i].Spec.Ingress[j].Ports = drop(w.policies[i].Spec.Ingress[j].Ports, k) })
			}
		}
		for j, r := range np.Spec.Egress {
			out = append(out, func(w *world) { w.policies[i].Spec.Egress = drop(w.policies[i].Spec.Egress, j) })
			for k := range r.To {
				out = append(out, func(w *world) { w.policies[i].Spec.Egress[j].To = drop(w.policies[i].Spec.Egress[j].To, k) })
			}
			for k := range r.Ports {
				out = append(out, func(w *world) { w.policies[i].Spec.Egress[j].Ports = drop(w.policies[i].Spec.Egress[j].Ports, k) })
			}
		}
	}
	for i, p := range w.anps {
		out = append(out, func(w *world) { w.anps = drop(w.anps, i) })
		for j, r := range p.Spec.Ingress {
			out = append(out, func(w *world) { w.anps[i].Spec.Ingress = drop(w.anps[i].Spec.Ingress, j) })
			if len(r.From) > 1 {
				for k := range r.From {
					out = append(out, func(w *world) { w.anps[i].Spec.Ingress[j].From = drop(w.anps[i].Spec.Ingress[j].From, k) })
				}
			}
			out = append(out, portCuts(r.Ports, func(w *world) **[]v1alpha1.AdminNetworkPolicyPort { return &w.anps[i].Spec.Ingress[j].Ports })...)
		}
		for j, r := range p.Spec.Egress {
			out = append(out, func(w *world) { w.anps[i].Spec.Egress = drop(w.anps[i].Spec.Egress, j) })
			if len(r.To) > 1 {
				for k := range r.To {
					out = append(out, func(w *world) { w.anps[i].Spec.Egress[j].To = drop(w.anps[i].Spec.Egress[j].To, k) })
				}
			}
			out = append(out, portCuts(r.Ports, func(w *world) **[]v1alpha1.AdminNetworkPolicyPort { return &w.anps[i].Spec.Egress[j].Ports })...)
		}
	}
	if b := w.banp; b != nil {
		out = append(out, func(w *world) { w.banp = nil })
		for j, r := range b.Spec.Ingress {
			out = append(out, func(w *world) { w.banp.Spec.Ingress = drop(w.banp.Spec.Ingress, j) })
			if len(r.From) > 1 {
				for k := range r.From {
					out = append(out, func(w *world) { w.banp.Spec.Ingress[j].From = drop(w.banp.Spec.Ingress[j].From, k) })
				}
			}
			out = append(out, portCuts(r.Ports, func(w *world) **[]v1alpha1.AdminNetworkPolicyPort { return &w.banp.Spec.Ingress[j].Ports })...)
		}
		for j, r := range b.Spec.Egress {
			out = append(out, func(w *world) { w.banp.Spec.Egress = drop(w.banp.Spec.Egress, j) })
			if len(r.To) > 1 {
				for k := range r.To {
					out = append(out, func(w *world) { w.banp.Spec.Egress[j].To = drop(w.banp.Spec.Egress[j].To, k) })
				}
			}
			out = append(out, portCuts(r.Ports, func(w *world) **[]v1alpha1.AdminNetworkPolicyPort { return &w.banp.Spec.Egress[j].Ports })...)
		}
	}
	return out
}

// portCuts drops one port of a cluster rule, or all of them (nil: every
// port); an empty list is not valid.
func portCuts(ports *[]v1alpha1.AdminNetworkPolicyPort, at func(*world) **[]v1alpha1.AdminNetworkPolicyPort) []func(*world) {
	if ports == nil {
		return nil
	}
	out := []func(*world){func(w *world) { *at(w) = nil }}
	if len(*ports) > 1 {
		for k := range *ports {
			out = append(out, func(w *world) {
				p := drop(**at(w), k)
				*at(w) = &p
			})
		}
	}
	return out
}

// shrink returns the smallest world, cut by cut, on which Palisade and
// kube-network-policies still disagree about c.
func shrink(ref *knp.Evaluator, w *world, c conn) (*world, conn) {
	for progress := true; progress; {
		progress = false
		for _, cut := range cuts(w, c) {
			smaller := w.clone()
			cut(smaller)
			r, err := compare(ref, smaller, []conn{c})
			if err == nil && r[0].excluded == "" && !r[0].agree() {
				w, progress = smaller, true
				break
			}
		}
	}
	return w, c
}

// describe prints a case: the objects as YAML, the connection, both
// verdicts and Palisade's explanation.
func describe(t *testing.T, ref *knp.Evaluator, w *world, c conn) string {
	var b strings.Builder
	type typed struct {
		gvk schema.GroupVersionKind
		obj runtime.Object
	}
	var objs []typed
	core, alpha := schema.GroupVersion{Version: "v1"}, schema.GroupVersion(v1alpha1.GroupVersion)
	for _, o := range w.namespaces {
		objs = append(objs, typed{core.WithKind("Namespace"), o})
	}
	for _, o := range w.nodes {
		objs = append(objs, typed{core.WithKind("Node"), o})
	}
	for _, o := range w.pods {
		objs = append(objs, typed{core.WithKind("Pod"), o})
	}
	for _, o := range w.policies {
		objs = append(objs, typed{networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"), o})
	}
	for _, o := range w.anps {
		objs = append(objs, typed{alpha.WithKind("AdminNetworkPolicy"), o})
	}
	if w.banp != nil {
		objs = append(objs, typed{alpha.WithKind("BaselineAdminNetworkPolicy"), w.banp})
	}
	for _, o := range objs {
		cp := o.obj.DeepCopyObject()
		cp.GetObjectKind().SetGroupVersionKind(o.gvk)
		j, err := json.Marshal(cp)
		if err != nil {
			t.Fatal(err)
		}
		var m any
		if err := json.Unmarshal(j, &m); err != nil {
			t.Fatal(err)
		}
		y, err := yaml.Marshal(prune(m))
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	fmt.Fprintf(&b, "connection: %s\n", c)
	rs, err := compare(ref, w, []conn{c})
	if err != nil {
		t.Fatal(err)
	}
	r := rs[0]
	fmt.Fprintf(&b, "kube-network-policies: allowed=%v (ties the other way: %v; given nodes peers as networks and named ports as numbers, see compare)\npalisade: allowed=%v\n", r.knp[0], r.knp[1:], r.palisade)
	e, err := palisade(w)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := palisadeConn(e, c)
	if err != nil {
		t.Fatal(err)
	}
	v := e.Explain(ec)
	fmt.Fprintf(&b, "palisade explains: %s\n", render.Explain(v, ec.From.String(), ec.To.String()))
	for _, d := range []engine.Decision{v.Egress, v.Ingress} {
		for _, m := range d.ClusterMisses {
			fmt.Fprintf(&b, "  %s: passed over %s: %s\n", d.Direction, m.Rule, m.Reason)
		}
	}
	return b.String()
}

// prune drops the empty strings and objects the API types print
// (status: {}, a node's nodeInfo), to keep a case short. Numbers stay:
// priority 0 matters.
func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e = prune(e); e == nil {
				delete(x, k)
			} else {
				x[k] = e
			}
		}
		if len(x) == 0 {
			return nil
		}
	case []any:
		for i := range x {
			x[i] = prune(x[i])
		}
	case string:
		if x == "" {
			return nil
		}
	}
	return v
}
