package kube

// Writes to the API server for the lab in kubelet mode (`palisade lab
// apply|delete` against an API server, `lab up -f`): server-side apply
// with client-go's typed clients, and plain deletes, printed the way
// kubectl prints them.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
)

// FieldManager owns the fields Apply writes. Apply forces: palisade apply
// takes over fields another manager (kubectl) set, as a re-apply by the
// same user would.
const FieldManager = "palisade"

// ResourceName is how kubectl apply names an object in its output.
func ResourceName(o manifest.Object) string {
	return resourceOf(o) + "/" + o.Key.Name
}

// Deleted is kubectl delete's line for an object.
func Deleted(o manifest.Object) string {
	r := resourceOf(o)
	if o.Kind == "NetworkPolicy" {
		r = "networkpolicy"
	}
	return fmt.Sprintf("%s %q deleted", r, o.Key.Name)
}

// resourceOf is kubectl's name of o's kind: qualified by its group but
// for the core group.
func resourceOf(o manifest.Object) string {
	kind := strings.ToLower(o.Kind)
	switch o.Kind {
	case "NetworkPolicy":
		return kind + ".networking.k8s.io"
	case model.KindAdminNetworkPolicy, model.KindBaselineAdminNetworkPolicy, model.KindClusterNetworkPolicy:
		return kind + "." + PolicyGroup
	}
	return kind
}

// typedClient is what Apply and Delete use of a typed client-go client
// (PodInterface, ServiceInterface, ...).
type typedClient[T metav1.Object] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (T, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
}

// object is one object's client: its resourceVersion ("" when there is
// none), server-side apply, and delete.
type object interface {
	version(ctx context.Context) (string, error)
	apply(ctx context.Context, body []byte) (string, error)
	delete(ctx context.Context, opts metav1.DeleteOptions) error
}

type typed[T metav1.Object] struct {
	c    typedClient[T]
	name string
}

func (r typed[T]) version(ctx context.Context) (string, error) {
	o, err := r.c.Get(ctx, r.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return o.GetResourceVersion(), nil
}

func (r typed[T]) apply(ctx context.Context, body []byte) (string, error) {
	force := true
	o, err := r.c.Patch(ctx, r.name, types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: FieldManager, Force: &force})
	if err != nil {
		return "", err
	}
	return o.GetResourceVersion(), nil
}

func (r typed[T]) delete(ctx context.Context, opts metav1.DeleteOptions) error {
	return r.c.Delete(ctx, r.name, opts)
}

// objectOf returns the client of o, nil for a kind Apply skips
// (workloads: the lab runs no controllers).
func objectOf(cs kubernetes.Interface, o manifest.Object) object {
	ns, name := o.Key.Namespace, o.Key.Name
	switch o.Kind {
	case "Namespace":
		return typed[*corev1.Namespace]{cs.CoreV1().Namespaces(), name}
	case "Node":
		return typed[*corev1.Node]{cs.CoreV1().Nodes(), name}
	case "Pod":
		return typed[*corev1.Pod]{cs.CoreV1().Pods(ns), name}
	case "Service":
		return typed[*corev1.Service]{cs.CoreV1().Services(ns), name}
	case "NetworkPolicy":
		return typed[*networkingv1.NetworkPolicy]{cs.NetworkingV1().NetworkPolicies(ns), name}
	case model.KindAdminNetworkPolicy, model.KindBaselineAdminNetworkPolicy, model.KindClusterNetworkPolicy:
		c, ok := cs.(*Client)
		if !ok || c.Policies == nil {
			return noClient{o.Kind}
		}
		pc := c.Policies
		switch o.API.(type) {
		case *v1alpha1.AdminNetworkPolicy:
			return typed[*v1alpha1.AdminNetworkPolicy]{pc.PolicyV1alpha1().AdminNetworkPolicies(), name}
		case *v1alpha1.BaselineAdminNetworkPolicy:
			return typed[*v1alpha1.BaselineAdminNetworkPolicy]{pc.PolicyV1alpha1().BaselineAdminNetworkPolicies(), name}
		case *v1beta1.ClusterNetworkPolicy:
			return typed[*v1beta1.ClusterNetworkPolicy]{pc.PolicyV1beta1().ClusterNetworkPolicies(), name}
		default:
			return typed[*v1alpha2.ClusterNetworkPolicy]{pc.PolicyV1alpha2().ClusterNetworkPolicies(), name}
		}
	}
	return nil
}

// noClient is the object of a cluster policy when the clientset has no
// client of policy.networking.k8s.io (it is not NewClient's *Client).
type noClient struct{ kind string }

func (n noClient) err() error {
	return fmt.Errorf("%s: no client of %s (a clientset made by kube.NewClient has one)", n.kind, PolicyGroup)
}
func (n noClient) version(context.Context) (string, error)            { return "", n.err() }
func (n noClient) apply(context.Context, []byte) (string, error)      { return "", n.err() }
func (n noClient) delete(context.Context, metav1.DeleteOptions) error { return n.err() }

// Apply applies objects with server-side apply and prints kubectl's
// created, configured or unchanged for each. A Pod's status is not sent:
// its kubelet sets it.
func Apply(ctx context.Context, cs kubernetes.Interface, objs []manifest.Object, out io.Writer) error {
	for _, o := range objs {
		r := objectOf(cs, o)
		if r == nil {
			continue
		}
		before, err := r.version(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", ResourceName(o), err)
		}
		obj := o.API.DeepCopyObject()
		if p, ok := obj.(*corev1.Pod); ok {
			p.Status = corev1.PodStatus{}
		}
		body, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		after, err := r.apply(ctx, body)
		if err != nil {
			return fmt.Errorf("%s (%s): %w", ResourceName(o), o.Source, err)
		}
		switch before {
		case "":
			fmt.Fprintf(out, "%s created\n", ResourceName(o))
		case after:
			fmt.Fprintf(out, "%s unchanged\n", ResourceName(o))
		default:
			fmt.Fprintf(out, "%s configured\n", ResourceName(o))
		}
	}
	return nil
}

// ErrNotFound is Delete's error when objects were not there.
var ErrNotFound = errors.New("not found")

// Delete deletes objects, printing kubectl's line for each, and waits
// until they are gone (a pod once its kubelet has torn it down), at most
// timeout. Objects that were not there are an error (ErrNotFound), after
// the others are deleted. opts is the API's: a grace period of 0 deletes
// a pod without waiting for its kubelet.
func Delete(ctx context.Context, cs kubernetes.Interface, objs []manifest.Object, opts metav1.DeleteOptions, timeout time.Duration, out io.Writer) error {
	var missing []string
	var deleted []manifest.Object
	for _, o := range objs {
		r := objectOf(cs, o)
		if r == nil {
			continue
		}
		err := r.delete(ctx, opts)
		if apierrors.IsNotFound(err) {
			missing = append(missing, o.Kind+"/"+o.Key.String())
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", ResourceName(o), err)
		}
		fmt.Fprintln(out, Deleted(o))
		deleted = append(deleted, o)
	}
	deadline := time.Now().Add(timeout)
	for _, o := range deleted {
		if o.Kind == "Namespace" {
			continue // stays Terminating without a namespace controller
		}
		for r := objectOf(cs, o); ; time.Sleep(100 * time.Millisecond) {
			rv, err := r.version(ctx)
			if err != nil {
				return err
			}
			if rv == "" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: still there after %s", ResourceName(o), timeout)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, strings.Join(missing, ", "))
	}
	return nil
}

// WaitPodsRunning waits, at most timeout, until every Pod among objs is
// Running with an IP: its kubelet has built it.
func WaitPodsRunning(ctx context.Context, cs kubernetes.Interface, objs []manifest.Object, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, o := range objs {
		if o.Kind != "Pod" {
			continue
		}
		for {
			p, err := cs.CoreV1().Pods(o.Key.Namespace).Get(ctx, o.Key.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("pod %s: %w", o.Key, err)
			}
			if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("pod %s: not running after %s (phase %q)", o.Key, timeout, p.Status.Phase)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}
