package agent

import (
	"sync"

	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/source"
)

// queue collects events between syncs. Events for the same object
// coalesce: the last one wins, and the earliest receipt time is kept, so
// that latency counts from the first change the sync carries.
type queue struct {
	mu      sync.Mutex
	pending map[qkey]source.Event
	order   []qkey
	synced  bool
	ready   chan struct{} // capacity 1: "something to take"
}

type qkey struct {
	kind    source.Kind
	key     model.Key
	cluster model.ClusterKey // KindClusterPolicy only
}

func keyOf(ev *source.Event) qkey { return qkey{ev.Kind, ev.Key, ev.ClusterKey} }

func newQueue() *queue {
	return &queue{pending: map[qkey]source.Event{}, ready: make(chan struct{}, 1)}
}

func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// push adds ev, replacing a pending event for the same object.
func (q *queue) push(ev source.Event) {
	k := keyOf(&ev)
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
func (q *queue) take() ([]source.Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]source.Event, 0, len(q.order))
	for _, k := range q.order {
		out = append(out, q.pending[k])
	}
	if len(q.order) > 0 {
		q.pending = map[qkey]source.Event{}
		q.order = nil
	}
	return out, q.synced
}
