package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// labSession is a lab with the objects applied to it, the way kubectl sees
// an API server: apply, delete and get work on the stored objects, and
// every change is pushed into the lab (pods, services) and its nodes'
// enforcers (policies) before it returns.
type labSession struct {
	lab  *lab.Lab
	objs []manifest.Object
	enf  *lab.PolicyEnforcer
}

// kindOrder is the order objects are stored and listed in: namespaces
// before what lives in them.
var kindOrder = map[string]int{"Namespace": 0, "Node": 1, "Service": 2, "Pod": 3, "NetworkPolicy": 4}

// openLab loads a lab and its objects.
func openLab(name string) (*labSession, error) {
	l, err := lab.Load(name)
	if err != nil {
		return nil, err
	}
	ls := &labSession{lab: l, enf: lab.NewPolicyEnforcer(dataplane.Options{})}
	l.SetEnforcer(ls.enf)
	for i, doc := range l.Manifests() {
		obj, err := manifest.DecodeObject(doc, fmt.Sprintf("lab %s object %d", name, i))
		if err != nil {
			return nil, fmt.Errorf("lab %s: stored object: %w", name, err)
		}
		ls.objs = append(ls.objs, obj)
	}
	return ls, nil
}

// newLabSession builds a new lab called name from objs.
func newLabSession(ctx context.Context, name string, nodes int, objs []manifest.Object, out io.Writer) (*labSession, error) {
	l, err := lab.Up(ctx, name, model.NewCluster(), lab.Options{Nodes: nodes})
	if err != nil {
		return nil, err
	}
	ls := &labSession{lab: l, enf: lab.NewPolicyEnforcer(dataplane.Options{})}
	l.SetEnforcer(ls.enf)
	if err := ls.enf.Sync(ctx, l); err != nil {
		return ls, err
	}
	if len(objs) > 0 {
		if err := ls.apply(ctx, objs, out); err != nil {
			return ls, err
		}
	}
	return ls, ls.save()
}

func (ls *labSession) close() {
	if ls.enf != nil {
		ls.enf.Close()
	}
}

func objectKey(o manifest.Object) string { return o.Kind + "/" + o.Key.String() }

// resourceName is how kubectl names an object in apply's output.
func resourceName(o manifest.Object) string {
	switch o.Kind {
	case "NetworkPolicy":
		return "networkpolicy.networking.k8s.io/" + o.Key.Name
	default:
		return strings.ToLower(o.Kind) + "/" + o.Key.Name
	}
}

func metaOf(o manifest.Object) metav1.Object {
	m, _ := o.API.(metav1.Object)
	return m
}

// specJSON is an object without its metadata timestamps, to tell
// "configured" from "unchanged".
func specJSON(o manifest.Object) string {
	m := metaOf(o)
	if m == nil {
		return ""
	}
	saved := m.GetCreationTimestamp()
	m.SetCreationTimestamp(metav1.Time{})
	b, _ := json.Marshal(o.API)
	m.SetCreationTimestamp(saved)
	return string(b)
}

// apply creates or replaces objects and pushes the result into the lab.
func (ls *labSession) apply(ctx context.Context, objs []manifest.Object, out io.Writer) error {
	index := map[string]int{}
	for i, o := range ls.objs {
		index[objectKey(o)] = i
	}
	var lines []string
	for _, o := range objs {
		k := objectKey(o)
		m := metaOf(o)
		i, exists := index[k]
		switch {
		case !exists:
			if m != nil {
				m.SetCreationTimestamp(metav1.NewTime(time.Now().Truncate(time.Second)))
			}
			index[k] = len(ls.objs)
			ls.objs = append(ls.objs, o)
			lines = append(lines, resourceName(o)+" created")
		case specJSON(ls.objs[i]) == specJSON(o):
			lines = append(lines, resourceName(o)+" unchanged")
		default:
			if m != nil {
				if old := metaOf(ls.objs[i]); old != nil {
					m.SetCreationTimestamp(old.GetCreationTimestamp())
				}
			}
			ls.objs[i] = o
			lines = append(lines, resourceName(o)+" configured")
		}
	}
	if err := ls.push(ctx); err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Fprintln(out, l)
	}
	return nil
}

// remove deletes objects (by kind and name) and pushes the result.
func (ls *labSession) remove(ctx context.Context, objs []manifest.Object, out io.Writer) error {
	gone := map[string]bool{}
	var lines []string
	for _, o := range objs {
		gone[objectKey(o)] = true
	}
	var keep []manifest.Object
	for _, o := range ls.objs {
		if gone[objectKey(o)] {
			lines = append(lines, fmt.Sprintf("%s %q deleted", strings.ToLower(o.Kind), o.Key.Name))
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
	ls.objs = keep
	if err := ls.push(ctx); err != nil {
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
func (ls *labSession) push(ctx context.Context) error {
	sort.SliceStable(ls.objs, func(i, j int) bool {
		a, b := ls.objs[i], ls.objs[j]
		if kindOrder[a.Kind] != kindOrder[b.Kind] {
			return kindOrder[a.Kind] < kindOrder[b.Kind]
		}
		return a.Key.Less(b.Key)
	})
	c, err := manifest.Cluster(ls.objs)
	if err != nil {
		return err
	}
	if err := ls.lab.Update(ctx, c); err != nil {
		return err
	}
	return ls.save()
}

func (ls *labSession) save() error {
	docs := make([][]byte, 0, len(ls.objs))
	for _, o := range ls.objs {
		b, err := json.Marshal(o.API)
		if err != nil {
			return err
		}
		docs = append(docs, b)
	}
	ls.lab.SetManifests(docs)
	return ls.lab.Save()
}

// find returns the stored objects of kind in namespace ns ("" for all),
// named name ("" for all).
func (ls *labSession) find(kind, ns, name string) []manifest.Object {
	var out []manifest.Object
	for _, o := range ls.objs {
		if o.Kind == kind && (ns == "" || o.Key.Namespace == ns) && (name == "" || o.Key.Name == name) {
			out = append(out, o)
		}
	}
	return out
}

// pod returns the lab's view of a pod: with its IPs and node.
func (ls *labSession) pod(k model.Key) *model.Pod { return ls.lab.Cluster().Pods[k] }
