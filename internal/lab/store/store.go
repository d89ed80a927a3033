// Package store keeps a lab's objects the way an API server keeps them
// for kubectl: the manifests applied to the lab, stored in its state, from
// which every change rebuilds the lab's cluster (pods, services) and its
// node's enforcer (policies). The CLI's lab verbs (apply, delete, get,
// describe) and `palisade demo` use it; a lab in kubelet mode keeps its
// objects in its API server instead.
package store

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/kube"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
)

// Session is a lab with its objects, open for changes: Apply and Remove
// push every change into the lab (pods, services) and its node's enforcer
// (policies) before they return. Close it when done.
type Session struct {
	Lab  *lab.Lab
	objs []manifest.Object
	enf  *lab.PolicyEnforcer
}

// kindOrder is the order objects are stored and listed in: namespaces
// before what lives in them.
var kindOrder = map[string]int{"Namespace": 0, "Node": 1, "Service": 2, "Pod": 3, "NetworkPolicy": 4,
	model.KindAdminNetworkPolicy: 5, model.KindBaselineAdminNetworkPolicy: 6, model.KindClusterNetworkPolicy: 7}

// Open loads the lab called name and its objects.
func Open(name string) (*Session, error) {
	l, err := lab.Load(name)
	if err != nil {
		return nil, err
	}
	s := &Session{Lab: l, enf: lab.NewPolicyEnforcer(dataplane.Options{})}
	l.SetEnforcer(s.enf)
	for i, doc := range l.Manifests() {
		obj, err := manifest.DecodeObject(doc, fmt.Sprintf("lab %s object %d", name, i))
		if err != nil {
			return nil, fmt.Errorf("lab %s: stored object: %w", name, err)
		}
		s.objs = append(s.objs, obj)
	}
	return s, nil
}

// New builds a new lab called name with nodes nodes, applies objs and
// prints kubectl's line for each to out. On an error after the lab is
// built, it returns the Session too: the caller closes it and takes the
// lab down.
func New(ctx context.Context, name string, nodes int, objs []manifest.Object, out io.Writer) (*Session, error) {
	l, err := lab.Up(ctx, name, model.NewCluster(), lab.Options{Nodes: nodes})
	if err != nil {
		return nil, err
	}
	s := &Session{Lab: l, enf: lab.NewPolicyEnforcer(dataplane.Options{})}
	l.SetEnforcer(s.enf)
	if err := s.enf.Sync(ctx, l); err != nil {
		return s, err
	}
	if len(objs) > 0 {
		if err := s.Apply(ctx, objs, out); err != nil {
			return s, err
		}
	}
	return s, s.save()
}

// Close stops the enforcer the Session holds; the lab stays.
func (s *Session) Close() {
	if s.enf != nil {
		s.enf.Close()
	}
}

// objectKey is kind/namespace/name, kind/name for a cluster-scoped object.
func objectKey(o manifest.Object) string {
	if o.Key.Namespace == "" {
		return o.Kind + "/" + o.Key.Name
	}
	return o.Kind + "/" + o.Key.String()
}

// Meta is an object's metadata, nil for an object without.
func Meta(o manifest.Object) metav1.Object {
	m, _ := o.API.(metav1.Object)
	return m
}

// specJSON is an object without its metadata timestamps, to tell
// "configured" from "unchanged".
func specJSON(o manifest.Object) string {
	m := Meta(o)
	if m == nil {
		return ""
	}
	saved := m.GetCreationTimestamp()
	m.SetCreationTimestamp(metav1.Time{})
	b, _ := json.Marshal(o.API)
	m.SetCreationTimestamp(saved)
	return string(b)
}

// Apply creates or replaces objects, pushes the result into the lab and
// prints kubectl apply's created, configured or unchanged for each.
func (s *Session) Apply(ctx context.Context, objs []manifest.Object, out io.Writer) error {
	index := map[string]int{}
	for i, o := range s.objs {
		index[objectKey(o)] = i
	}
	var lines []string
	for _, o := range objs {
		k := objectKey(o)
		m := Meta(o)
		i, exists := index[k]
		switch {
		case !exists:
			if m != nil {
				m.SetCreationTimestamp(metav1.NewTime(time.Now().Truncate(time.Second)))
			}
			index[k] = len(s.objs)
			s.objs = append(s.objs, o)
			lines = append(lines, kube.ResourceName(o)+" created")
		case specJSON(s.objs[i]) == specJSON(o):
			lines = append(lines, kube.ResourceName(o)+" unchanged")
		default:
			if m != nil {
				if old := Meta(s.objs[i]); old != nil {
					m.SetCreationTimestamp(old.GetCreationTimestamp())
				}
			}
			s.objs[i] = o
			lines = append(lines, kube.ResourceName(o)+" configured")
		}
	}
	if err := s.push(ctx); err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	return nil
}

// Remove deletes objects (by kind and name), pushes the result and
// prints kubectl delete's line for each. Objects that were not there are
// an error, after the others are deleted.
func (s *Session) Remove(ctx context.Context, objs []manifest.Object, out io.Writer) error {
	gone := map[string]bool{}
	var lines []string
	for _, o := range objs {
		gone[objectKey(o)] = true
	}
	var keep []manifest.Object
	for _, o := range s.objs {
		if gone[objectKey(o)] {
			lines = append(lines, kube.Deleted(o))
			delete(gone, objectKey(o))
			continue
		}
		keep = append(keep, o)
	}
	var missing []string
	for k := range gone {
		missing = append(missing, k)
	}
	sort.Strings(missing)
	s.objs = keep
	if err := s.push(ctx); err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	if len(missing) > 0 {
		return fmt.Errorf("not found: %s", strings.Join(missing, ", "))
	}
	return nil
}

// push makes the lab and its enforcers match the stored objects, then
// saves them.
func (s *Session) push(ctx context.Context) error {
	sort.SliceStable(s.objs, func(i, j int) bool {
		a, b := s.objs[i], s.objs[j]
		if kindOrder[a.Kind] != kindOrder[b.Kind] {
			return kindOrder[a.Kind] < kindOrder[b.Kind]
		}
		return a.Key.Less(b.Key)
	})
	c, err := manifest.Cluster(s.objs)
	if err != nil {
		return err
	}
	if err := s.Lab.Update(ctx, c); err != nil {
		return err
	}
	return s.save()
}

func (s *Session) save() error {
	docs := make([][]byte, 0, len(s.objs))
	for _, o := range s.objs {
		b, err := json.Marshal(o.API)
		if err != nil {
			return err
		}
		docs = append(docs, b)
	}
	s.Lab.SetManifests(docs)
	return s.Lab.Save()
}

// Find returns the stored objects of kind in namespace ns ("" for all),
// named name ("" for all).
func (s *Session) Find(kind, ns, name string) []manifest.Object {
	var out []manifest.Object
	for _, o := range s.objs {
		if o.Kind == kind && (ns == "" || o.Key.Namespace == ns) && (name == "" || o.Key.Name == name) {
			out = append(out, o)
		}
	}
	return out
}

// Enrich fills in what the lab's kubelet would have: a pod's node, IPs and
// phase, a Service's ClusterIPs.
func (s *Session) Enrich(objs []manifest.Object) []manifest.Object {
	c := s.Lab.Cluster()
	out := make([]manifest.Object, len(objs))
	for i, o := range objs {
		switch api := o.API.(type) {
		case *corev1.Pod:
			p := api.DeepCopy()
			if mp := c.Pods[o.Key]; mp != nil {
				p.Spec.NodeName = mp.Node
				p.Status.PodIPs = nil
				for _, ip := range mp.IPs {
					p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip.String()})
				}
				if len(mp.IPs) > 0 {
					p.Status.PodIP = mp.IPs[0].String()
				}
				p.Status.Phase = corev1.PodRunning
			}
			o.API = p
		case *corev1.Service:
			svc := api.DeepCopy()
			if ms := c.Services[o.Key]; ms != nil {
				svc.Spec.ClusterIPs = nil
				for _, ip := range ms.ClusterIPs {
					svc.Spec.ClusterIPs = append(svc.Spec.ClusterIPs, ip.String())
				}
				if len(ms.ClusterIPs) > 0 {
					svc.Spec.ClusterIP = ms.ClusterIPs[0].String()
				}
			}
			if svc.Spec.Type == "" {
				svc.Spec.Type = corev1.ServiceTypeClusterIP
			}
			o.API = svc
		}
		out[i] = o
	}
	return out
}

// Namespaces lists the lab's namespaces, declared or implied (by a pod,
// and default), or only the one called name when it is not "".
func (s *Session) Namespaces(name string) []manifest.Object {
	c := s.Lab.Cluster()
	declared := map[string]manifest.Object{}
	for _, o := range s.Find("Namespace", "", "") {
		declared[o.Key.Name] = o
	}
	names := map[string]bool{"default": true}
	for n := range c.Namespaces {
		names[n] = true
	}
	var out []manifest.Object
	for n := range names {
		if name != "" && n != name {
			continue
		}
		o, ok := declared[n]
		if !ok {
			nsObj := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}}
			nsObj.Name = n
			nsObj.Labels = map[string]string{model.NamespaceNameLabel: n}
			o = manifest.Object{Kind: "Namespace", Key: model.Key{Name: n}, API: nsObj}
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.Name < out[j].Key.Name })
	return out
}
