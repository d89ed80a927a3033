package agent

import (
	"context"
	"sync"
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
	numKinds
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
	}
	return "Unknown"
}

// Event is one change of cluster state, already converted to the model by
// the source. On an upsert exactly the field of its Kind is set; a delete
// carries only the Key.
type Event struct {
	Kind Kind
	// Key names the object; Namespace is empty for Namespaces and Nodes.
	Key    model.Key
	Delete bool

	Pod       *model.Pod
	Namespace *model.Namespace
	Policy    *model.Policy
	Node      *model.Node

	// Err is set when the source rejected the object (an *apiconv.Error
	// naming object and field). A rejected NetworkPolicy still carries a
	// Policy: the fail-closed placeholder that replaces it (see
	// kube.ConvertPolicy); other kinds carry nothing, and the agent keeps
	// the last good version it has.
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

// queue collects events between syncs. Events for the same object
// coalesce: the last one wins, and the earliest receipt time is kept, so
// that latency counts from the first change the sync carries.
type queue struct {
	mu      sync.Mutex
	pending map[qkey]Event
	order   []qkey
	synced  bool
	ready   chan struct{} // capacity 1: "something to take"
}

type qkey struct {
	kind Kind
	key  model.Key
}

func newQueue() *queue {
	return &queue{pending: map[qkey]Event{}, ready: make(chan struct{}, 1)}
}

func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// push adds ev, replacing a pending event for the same object.
func (q *queue) push(ev Event) {
	k := qkey{ev.Kind, ev.Key}
	q.mu.Lock()
	if old, ok := q.pending[k]; ok {
		if !old.Received.IsZero() && old.Received.Before(ev.Received) {
			ev.Received = old.Received
		}
	} else {
		q.order = append(q.order, k)
	}
	q.pending[k] = ev
	q.mu.Unlock()
	q.signal()
}

// markSynced records that the source has pushed its initial state.
func (q *queue) markSynced() {
	q.mu.Lock()
	q.synced = true
	q.mu.Unlock()
	q.signal()
}

// take returns the pending events in arrival order, and whether the
// source had synced before the last of them was pushed.
func (q *queue) take() ([]Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]Event, 0, len(q.order))
	for _, k := range q.order {
		out = append(out, q.pending[k])
	}
	if len(q.order) > 0 {
		q.pending = map[qkey]Event{}
		q.order = nil
	}
	return out, q.synced
}
