package kube

import (
	"reflect"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/palisade-net/palisade/internal/source"
)

// The informers store entries, not API objects: the transform converts
// every object it receives, before it is stored, into the event the
// agent takes (through apiconv) and keeps only that and the metadata
// client-go needs (name, namespace, UID, resourceVersion). A stored
// corev1.Pod struct alone is over 1 KB, and the engine holds the model
// objects anyway: the entry shares them with it. Memory at 100k pods
// matters.

// entry is what an informer stores for one object. It is not a
// metav1.Object: client-go reads metadata through meta.Accessor, which
// takes GetObjectMeta, made on demand, so that no ObjectMeta struct (over
// 200 bytes) is stored per object.
type entry struct {
	uid types.UID
	rv  string
	// ev is the object as an upsert event (Received unset), or a delete
	// for a pod that has terminated. Its key (ClusterKey for a cluster
	// policy) is the object's namespace and name. Its model objects are never modified, by the agent or the
	// engine.
	ev source.Event
}

// GetObjectMeta gives client-go the name, namespace, UID and
// resourceVersion (metav1.ObjectMetaAccessor).
func (e *entry) GetObjectMeta() metav1.Object {
	name := e.ev.Key.Name
	if e.ev.Kind == source.KindClusterPolicy {
		name = e.ev.ClusterKey.Name
	}
	return &metav1.ObjectMeta{Namespace: e.ev.Key.Namespace, Name: name, UID: e.uid, ResourceVersion: e.rv}
}

// GetObjectKind and DeepCopyObject make entry a runtime.Object. The
// event's model objects are immutable, so a copy shares them.
func (e *entry) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (e *entry) DeepCopyObject() runtime.Object {
	c := *e
	return &c
}

func newEntry(m metav1.Object, ev source.Event) *entry {
	return &entry{uid: m.GetUID(), rv: m.GetResourceVersion(), ev: ev}
}

// transform returns the cache.TransformFunc that turns objects of type T
// into entries through convert, also inside tombstones. Entries pass
// through unchanged (client-go may transform an object twice).
func transform[T metav1.Object](convert func(T) source.Event) cache.TransformFunc {
	return func(obj any) (any, error) {
		switch o := obj.(type) {
		case T:
			return newEntry(o, convert(o)), nil
		case cache.DeletedFinalStateUnknown:
			if t, ok := o.Obj.(T); ok {
				o.Obj = newEntry(t, convert(t))
			}
			return o, nil
		}
		return obj, nil
	}
}

var (
	podTransform       = transform(podEvent)
	namespaceTransform = transform(namespaceEvent)
	policyTransform    = transform(policyEvent)
	nodeTransform      = transform(nodeEvent)
)

// sameEvent reports whether two versions of an object make the same
// event: an update that changes nothing policy reads (a pod's
// conditions, a node's heartbeat, a policy's annotations) is not an
// event for the engine, and with --terminate-denied would sweep
// conntrack for nothing.
func sameEvent(a, b *source.Event) bool {
	return a.Kind == b.Kind && a.Key == b.Key && a.ClusterKey == b.ClusterKey && a.Delete == b.Delete &&
		errText(a.Err) == errText(b.Err) && a.Created.Equal(b.Created) && a.Deleting == b.Deleting &&
		reflect.DeepEqual(a.Pod, b.Pod) && reflect.DeepEqual(a.Namespace, b.Namespace) &&
		reflect.DeepEqual(a.Policy, b.Policy) && reflect.DeepEqual(a.Node, b.Node) &&
		reflect.DeepEqual(a.ClusterPolicy, b.ClusterPolicy)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
