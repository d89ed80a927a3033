// Package source is the contract between a source of cluster state (the
// Kubernetes API in internal/kube, the lab, a test) and the agent that
// enforces it: events already converted to the model. It imports only the
// model, so that a source never pulls in the dataplane.
package source

import (
	"context"
	"time"

	"github.com/palisade-net/palisade/internal/model"
)

// Kind is the kind of object an Event carries.
type Kind uint8

// Kinds of cluster state the agent follows.
const (
	KindPod Kind = iota
	KindNamespace
	KindPolicy
	KindNode
	// KindClusterPolicy is a cluster-wide policy of any of the three
	// kinds (model.ClusterPolicy.Kind); its key is Event.ClusterKey.
	KindClusterPolicy
	// NumKinds counts the kinds above.
	NumKinds
)

// String returns the Kubernetes kind, e.g. "NetworkPolicy".
func (k Kind) String() string {
	switch k {
	case KindPod:
		return "Pod"
	case KindNamespace:
		return "Namespace"
	case KindPolicy:
		return "NetworkPolicy"
	case KindNode:
		return "Node"
	case KindClusterPolicy:
		return "ClusterPolicy"
	}
	return "Unknown"
}

// Event is one change of cluster state, already converted to the model by
// the source. On an upsert exactly the field of its Kind is set; a delete
// carries only the Key (ClusterKey for a cluster policy).
type Event struct {
	Kind Kind
	// Key names the object; Namespace is empty for Namespaces and Nodes,
	// and Key is zero for cluster policies.
	Key model.Key
	// ClusterKey names a cluster policy (KindClusterPolicy): their names
	// are unique per API kind only.
	ClusterKey model.ClusterKey
	Delete     bool

	Pod           *model.Pod
	Namespace     *model.Namespace
	Policy        *model.Policy
	Node          *model.Node
	ClusterPolicy *model.ClusterPolicy

	// Err is set when the source rejected the object (an *apiconv.Error
	// naming object and field). A rejected NetworkPolicy still carries a
	// Policy: the fail-closed placeholder that replaces it (see
	// kube.ConvertPolicy); other kinds carry nothing, and the agent keeps
	// the last good version it has (for a cluster policy too: a
	// placeholder that denies would be as wrong as dropping it, since
	// its tier decides before NetworkPolicy).
	Err error

	// Received is when the source received the change: the start of the
	// event-to-kernel latency.
	Received time.Time

	// Created (metadata.creationTimestamp) and Deleting
	// (metadata.deletionTimestamp is set) of a pod decide which of two
	// pods of this node reporting one address owns it (see ownip.go).
	// Zero when the source does not say: the later name then wins.
	Created  time.Time
	Deleting bool
}

// KindName is the API kind of the event's object, e.g. "NetworkPolicy",
// or "AdminNetworkPolicy" for a cluster policy, for logs and metrics.
func (ev *Event) KindName() string {
	if ev.Kind == KindClusterPolicy {
		return ev.ClusterKey.Kind
	}
	return ev.Kind.String()
}

// Object names the event's object for logs: namespace/name, the name
// alone for a cluster-scoped object, kind/name for a cluster policy.
func (ev *Event) Object() string {
	switch {
	case ev.Kind == KindClusterPolicy:
		return ev.ClusterKey.String()
	case ev.Key.Namespace == "":
		return ev.Key.Name
	}
	return ev.Key.String()
}

// Source delivers cluster state: the Kubernetes API through informers
// (internal/kube), or anything else that can say what changed.
type Source interface {
	// Run delivers events to push until ctx ends, then returns nil (or
	// the error that stopped it). It calls synced once, after every
	// object of its initial state has been pushed. push and synced are
	// safe to call from any goroutine.
	Run(ctx context.Context, push func(Event), synced func()) error
	// Healthy returns nil while the source is connected, or why it is
	// not (e.g. its watches have been failing for a while).
	Healthy() error
}

// Unserved is implemented by a source whose API may not serve every kind
// it would follow (a CRD not installed): Unserved names those kinds now,
// by API kind (e.g. "AdminNetworkPolicy"), for the agent's metrics.
type Unserved interface {
	Unserved() []string
}

// Claim is what decides which of two pods reporting one address owns it.
type Claim struct {
	Key      model.Key
	Created  time.Time
	Deleting bool
}

// Claim returns the claim of the pod of ev.
func (ev *Event) Claim() Claim { return Claim{ev.Key, ev.Created, ev.Deleting} }

// Beats reports whether c owns an address rather than d, and why: the
// pod not being deleted, else the newer one (by creation), else the one
// later in name order. The agent and kube.ReadCluster both decide so.
func (c Claim) Beats(d Claim) (bool, string) {
	switch {
	case c.Deleting != d.Deleting:
		return !c.Deleting, "the other is being deleted"
	case !c.Created.Equal(d.Created):
		return c.Created.After(d.Created), "newer"
	}
	return d.Key.Less(c.Key), "later in name order"
}
