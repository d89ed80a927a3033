package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/source"
)

const testNode = "n1"

// fakeSource is a Source the test drives: it hands push and synced to
// the test and reports the health it is told.
type fakeSource struct {
	push   chan func(source.Event)
	synced chan func()
	health atomic.Pointer[error]
}

func newFakeSource() *fakeSource {
	return &fakeSource{push: make(chan func(source.Event), 1), synced: make(chan func(), 1)}
}

func (s *fakeSource) Run(ctx context.Context, push func(source.Event), synced func()) error {
	s.push <- push
	s.synced <- synced
	<-ctx.Done()
	return nil
}

func (s *fakeSource) Healthy() error {
	if p := s.health.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *fakeSource) setHealth(err error) { s.health.Store(&err) }

// fakeDP compiles for real (dataplane.Compile is pure) and records the
// applies instead of sending them to a kernel.
type fakeDP struct {
	mu       sync.Mutex
	compiles int
	applies  []*dataplane.Ruleset
	fail     error         // Apply fails with it while set
	delay    time.Duration // each Apply takes this long
	applied  chan struct{} // a signal per successful Apply
	comp     *dataplane.Compiler
}

func newFakeDP() *fakeDP { return &fakeDP{applied: make(chan struct{}, 1000)} }

func (d *fakeDP) Compile(e *engine.Engine) *dataplane.Ruleset {
	d.mu.Lock()
	d.compiles++
	d.mu.Unlock()
	return dataplane.Compile(e, testNode, dataplane.Options{})
}

// CompileChanges takes the agent's incremental path (as *Node does) and
// checks it against the full Compile.
func (d *fakeDP) CompileChanges(e *engine.Engine, ch engine.Changes) *dataplane.Ruleset {
	d.mu.Lock()
	d.compiles++
	if d.comp == nil {
		d.comp = dataplane.NewCompiler(testNode, dataplane.Options{})
	}
	comp := d.comp
	d.mu.Unlock()
	rs := comp.Compile(e, ch)
	if got, want := rs.String(), dataplane.Compile(e, testNode, dataplane.Options{}).String(); got != want {
		panic("incremental compile differs from the full one:\n" + got + "\n---\n" + want)
	}
	return rs
}

func (d *fakeDP) Apply(ctx context.Context, rs *dataplane.Ruleset) (dataplane.Stats, error) {
	d.mu.Lock()
	delay, fail := d.delay, d.fail
	d.mu.Unlock()
	time.Sleep(delay)
	if fail != nil {
		return dataplane.Stats{Duration: delay}, fail
	}
	d.mu.Lock()
	d.applies = append(d.applies, rs)
	d.mu.Unlock()
	d.applied <- struct{}{}
	return dataplane.Stats{Messages: 1, Duration: delay}, nil
}

func (d *fakeDP) ReadDrops() (*dataplane.Ruleset, error) { return d.last(), nil }

func (d *fakeDP) last() *dataplane.Ruleset {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.applies) == 0 {
		return nil
	}
	return d.applies[len(d.applies)-1]
}

func (d *fakeDP) count() (compiles, applies int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.compiles, len(d.applies)
}

func (d *fakeDP) setFail(err error) {
	d.mu.Lock()
	d.fail = err
	d.mu.Unlock()
}

// harness runs an agent on a fake source and dataplane.
type harness struct {
	t      *testing.T
	a      *Agent
	src    *fakeSource
	dp     *fakeDP
	push   func(source.Event)
	synced func()

	markers atomic.Int64
	want    atomic.Pointer[marker]
	settled chan struct{}
}

func startAgent(t *testing.T, opts Options) *harness {
	t.Helper()
	src, dp := newFakeSource(), newFakeDP()
	opts.NodeName = testNode
	a := New(src, dp, opts)
	h := &harness{t: t, a: a, src: src, dp: dp, settled: make(chan struct{}, 1)}
	a.afterSync = h.afterSync
	fixture.RunUntilCleanup(t, a.Run)
	h.push, h.synced = <-src.push, <-src.synced
	return h
}

// eventually polls cond until it holds (5 s at most).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// settle waits until every event pushed so far is in the kernel: it
// pushes a marker (a Node no test uses) and waits for a sync that
// carries it with nothing left in the queue, then the same for the
// marker's delete. The loop is then idle until the next push.
func (h *harness) settle() {
	h.t.Helper()
	name := fmt.Sprintf("settle-%d", h.markers.Add(1))
	for _, present := range []bool{true, false} {
		h.want.Store(&marker{name, present})
		ev := source.Event{Kind: source.KindNode, Key: model.Key{Name: name}, Node: &model.Node{Name: name}}
		if !present {
			ev = source.Event{Kind: source.KindNode, Key: model.Key{Name: name}, Delete: true}
		}
		h.push(ev)
		select {
		case <-h.settled:
		case <-time.After(5 * time.Second):
			h.t.Fatalf("no sync carrying marker %s (present %v)", name, present)
		}
	}
}

type marker struct {
	name    string
	present bool
}

// afterSync runs in the agent's loop after every sync: it signals settle
// when the sync carried the marker it waits for and the queue is empty.
func (h *harness) afterSync() {
	m := h.want.Load()
	if m == nil || !h.a.q.empty() {
		return
	}
	if (h.a.e.Node(m.name) != nil) == m.present {
		h.want.Store(nil)
		h.settled <- struct{}{}
	}
}

func (q *queue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order) == 0
}

func pod(ns, name, node string, ip string, labels ...string) *model.Pod {
	p := &model.Pod{Namespace: ns, Name: name, Node: node, Labels: map[string]string{}}
	if ip != "" {
		p.IPs = []netip.Addr{netip.MustParseAddr(ip)}
	}
	for i := 0; i+1 < len(labels); i += 2 {
		p.Labels[labels[i]] = labels[i+1]
	}
	return p
}

func podEv(p *model.Pod) source.Event {
	return source.Event{Kind: source.KindPod, Key: p.Key(), Pod: p, Received: time.Now()}
}

func nsEv(name string, labels ...string) source.Event {
	n := &model.Namespace{Name: name}
	l := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		l[labels[i]] = labels[i+1]
	}
	model.SetNamespaceLabels(n, l)
	return source.Event{Kind: source.KindNamespace, Key: model.Key{Name: name}, Namespace: n, Received: time.Now()}
}

func polEv(p *model.Policy) source.Event {
	return source.Event{Kind: source.KindPolicy, Key: p.Key(), Policy: p, Received: time.Now()}
}

func del(kind source.Kind, key model.Key) source.Event {
	return source.Event{Kind: kind, Key: key, Delete: true, Received: time.Now()}
}

// denyAllIngress isolates the pods of ns matching sel for ingress,
// allowing from pods labelled app=allowed.
func allowFrom(ns, name string, podSel map[string]string, fromApp string) *model.Policy {
	return &model.Policy{
		Namespace: ns, Name: name, PodSelector: model.Selector{MatchLabels: podSel}, Ingress: true,
		IngressRules: []model.Rule{{Peers: []model.Peer{{PodSelector: &model.Selector{MatchLabels: map[string]string{"app": fromApp}}}}}},
	}
}

// elems returns the addresses in a set of the last applied ruleset.
func (h *harness) elems(set string) []string {
	rs := h.dp.last()
	if rs == nil {
		return nil
	}
	s := rs.Set(set)
	if s == nil {
		return nil
	}
	var out []string
	for _, e := range s.Elems {
		out = append(out, e.Addr.String())
	}
	return out
}

func (h *harness) chains() []string {
	var out []string
	for _, c := range h.dp.last().Chains {
		out = append(out, c.Name)
	}
	return out
}

func (h *harness) allowed(from, to model.Key) bool {
	var ok bool
	h.a.withEngine(func(e *engine.Engine) {
		f, t := e.Pod(from), e.Pod(to)
		ok = e.Allowed(engine.Conn{From: engine.Endpoint{Pod: f, IP: f.IPs[0]}, To: engine.Endpoint{Pod: t, IP: t.IPs[0]}, Protocol: model.TCP, Port: 80})
	})
	return ok
}

func gauge(t *testing.T, a *Agent, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := a.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue metrics
				}
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == k && lp.GetValue() == v {
			return true
		}
	}
	return false
}

func k(ns, name string) model.Key { return model.Key{Namespace: ns, Name: name} }

// Events of every kind, added, updated and deleted, reach the engine and
// the kernel's ruleset; the gauges follow.
func TestEventsToEngine(t *testing.T) {
	h := startAgent(t, Options{})
	web := pod("shop", "web", testNode, "10.0.0.1", "app", "web")
	client := pod("shop", "client", "n2", "10.0.1.1", "app", "client")
	other := pod("shop", "other", "n2", "10.0.1.2", "app", "other")
	h.push(nsEv("shop"))
	h.push(podEv(web))
	h.push(podEv(client))
	h.push(podEv(other))
	h.push(source.Event{Kind: source.KindNode, Key: model.Key{Name: testNode}, Node: &model.Node{Name: testNode, IPs: []netip.Addr{netip.MustParseAddr("192.168.0.1")}}})
	if _, n := h.dp.count(); n != 0 {
		t.Fatalf("%d applies before the source synced", n)
	}
	h.synced()
	h.settle()
	if !h.a.Reconciled() {
		t.Fatal("not reconciled after the first sync")
	}
	if got := h.elems("ingress4"); len(got) != 0 {
		t.Errorf("no policy yet, ingress map = %v", got)
	}

	steps := []struct {
		name   string
		events []source.Event
		check  func(t *testing.T)
	}{
		{"policy add isolates web", []source.Event{polEv(allowFrom("shop", "web", map[string]string{"app": "web"}, "client"))}, func(t *testing.T) {
			if got := h.elems("ingress4"); len(got) != 1 || got[0] != "10.0.0.1" {
				t.Errorf("ingress map = %v", got)
			}
			if !h.allowed(client.Key(), web.Key()) || h.allowed(other.Key(), web.Key()) {
				t.Error("client must reach web, other not")
			}
			if g := gauge(t, h.a, "palisade_policies"); g != 1 {
				t.Errorf("palisade_policies = %v", g)
			}
		}},
		{"pod label update moves other into the peers", []source.Event{podEv(pod("shop", "other", "n2", "10.0.1.2", "app", "client"))}, func(t *testing.T) {
			if !h.allowed(other.Key(), web.Key()) {
				t.Error("relabelled other must reach web")
			}
			var peers []string
			for _, s := range h.dp.last().Sets {
				if strings.Contains(s.Name, "peers4") {
					for _, e := range s.Elems {
						peers = append(peers, e.Addr.String()+"-"+e.End.String())
					}
				}
			}
			if fmt.Sprint(peers) != "[10.0.1.1-10.0.1.2]" {
				t.Errorf("peer set = %v", peers)
			}
		}},
		{"policy update to namespace selector", []source.Event{
			nsEv("ops", "team", "ops"),
			podEv(pod("ops", "probe", "n2", "10.0.2.1", "app", "x")),
			polEv(&model.Policy{Namespace: "shop", Name: "web", PodSelector: model.Selector{MatchLabels: map[string]string{"app": "web"}}, Ingress: true,
				IngressRules: []model.Rule{{Peers: []model.Peer{{NamespaceSelector: &model.Selector{MatchLabels: map[string]string{"team": "ops"}}}}}}}),
		}, func(t *testing.T) {
			if !h.allowed(k("ops", "probe"), web.Key()) || h.allowed(client.Key(), web.Key()) {
				t.Error("ops/probe must reach web, shop/client not")
			}
		}},
		{"namespace relabel drops ops from the peers", []source.Event{nsEv("ops", "team", "dev")}, func(t *testing.T) {
			if h.allowed(k("ops", "probe"), web.Key()) {
				t.Error("ops/probe must not reach web after its namespace lost the label")
			}
		}},
		{"node address: traffic from the node allowed", nil, func(t *testing.T) {
			var ok bool
			h.a.withEngine(func(e *engine.Engine) {
				ok = e.Allowed(engine.Conn{From: engine.Endpoint{IP: netip.MustParseAddr("192.168.0.1")}, To: engine.Endpoint{Pod: e.Pod(web.Key()), IP: web.IPs[0]}, Protocol: model.TCP, Port: 80})
			})
			if !ok {
				t.Error("node to own pod must be allowed")
			}
		}},
		{"node delete", []source.Event{del(source.KindNode, model.Key{Name: testNode})}, func(t *testing.T) {
			var n *model.Node
			h.a.withEngine(func(e *engine.Engine) { n = e.Node(testNode) })
			if n != nil {
				t.Error("node still known")
			}
		}},
		{"pod moves IP", []source.Event{podEv(pod("shop", "web", testNode, "10.0.0.9", "app", "web"))}, func(t *testing.T) {
			if got := h.elems("ingress4"); len(got) != 1 || got[0] != "10.0.0.9" {
				t.Errorf("ingress map = %v", got)
			}
		}},
		{"policy delete", []source.Event{del(source.KindPolicy, k("shop", "web"))}, func(t *testing.T) {
			if got := h.elems("ingress4"); len(got) != 0 {
				t.Errorf("ingress map = %v", got)
			}
			for _, c := range h.chains() {
				if strings.HasPrefix(c, "ing-") {
					t.Errorf("stale chain %s", c)
				}
			}
			if g := gauge(t, h.a, "palisade_policies"); g != 0 {
				t.Errorf("palisade_policies = %v", g)
			}
		}},
		{"pod and namespace delete", []source.Event{del(source.KindPod, web.Key()), del(source.KindPod, k("ops", "probe")), del(source.KindNamespace, model.Key{Name: "ops"})}, func(t *testing.T) {
			var p *model.Pod
			h.a.withEngine(func(e *engine.Engine) { p = e.Pod(web.Key()) })
			if p != nil {
				t.Error("web still known")
			}
			if g := gauge(t, h.a, "palisade_pods"); g != 2 {
				t.Errorf("palisade_pods = %v", g)
			}
			if g := gauge(t, h.a, "palisade_local_pods"); g != 0 {
				t.Errorf("palisade_local_pods = %v", g)
			}
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			for _, ev := range st.events {
				h.push(ev)
			}
			h.settle()
			st.check(t)
		})
	}
	if g := gauge(t, h.a, "palisade_event_to_kernel_seconds"); g == 0 {
		t.Error("no event-to-kernel latency observed")
	}
	if g := gauge(t, h.a, "palisade_transaction_errors_total"); g != 0 {
		t.Errorf("transaction errors = %v", g)
	}
}

// A burst of events becomes few syncs, each one Compile and one Apply,
// and the last one holds the whole burst.
func TestCoalescing(t *testing.T) {
	h := startAgent(t, Options{})
	h.push(nsEv("shop"))
	// The initial state: 500 pods before synced, one transaction.
	for i := range 500 {
		h.push(podEv(pod("shop", fmt.Sprintf("p%d", i), testNode, fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), "app", "a")))
	}
	h.push(polEv(&model.Policy{Namespace: "shop", Name: "iso", Ingress: true}))
	h.synced()
	eventually(t, "the initial reconcile", h.a.Reconciled)
	if c, a := h.dp.count(); c != 1 || a != 1 {
		t.Fatalf("initial state: %d compiles, %d applies, want 1 and 1", c, a)
	}
	if got := len(h.elems("ingress4")); got != 500 {
		t.Fatalf("initial ingress map has %d pods, want 500", got)
	}

	// A burst of N relabels and new pods while each Apply takes 2 ms, as
	// the kernel's would.
	h.dp.mu.Lock()
	h.dp.delay = 2 * time.Millisecond
	h.dp.mu.Unlock()
	const n = 2000
	for i := range n {
		h.push(podEv(pod("shop", fmt.Sprintf("q%d", i), testNode, fmt.Sprintf("10.2.%d.%d", i/250, i%250+1), "app", "b")))
		if i%100 == 0 {
			// Events trickle in a little, as informers deliver them.
			time.Sleep(time.Millisecond)
		}
	}
	h.settle()
	c, a := h.dp.count()
	if c != a {
		t.Errorf("%d compiles for %d applies: each sync is one transaction", c, a)
	}
	syncs := a - 1 - 2 // less the initial one and settle's two (at most)
	t.Logf("%d events -> %d syncs", n, syncs)
	if syncs > n/20 {
		t.Errorf("%d events made %d syncs: not coalesced", n, syncs)
	}
	if got := len(h.elems("ingress4")); got != 500+n {
		t.Errorf("ingress map has %d pods, want %d", got, 500+n)
	}
}

// Events for one object coalesce in the queue: the last wins, the
// earliest receipt time is kept.
func TestQueueCoalesces(t *testing.T) {
	q := newQueue()
	t0 := time.Unix(100, 0)
	p := pod("a", "p", testNode, "10.0.0.1")
	q.push(source.Event{Kind: source.KindPod, Key: p.Key(), Pod: p, Received: t0})
	q.push(source.Event{Kind: source.KindNamespace, Key: model.Key{Name: "a"}, Received: t0.Add(time.Second)})
	q.push(source.Event{Kind: source.KindPod, Key: p.Key(), Delete: true, Received: t0.Add(2 * time.Second)})
	evs, synced := q.take()
	if synced {
		t.Error("synced before markSynced")
	}
	if len(evs) != 2 || evs[0].Kind != source.KindPod || !evs[0].Delete || !evs[0].Received.Equal(t0) || evs[1].Kind != source.KindNamespace {
		t.Errorf("take = %+v", evs)
	}
	q.markSynced()
	if evs, synced := q.take(); len(evs) != 0 || !synced {
		t.Errorf("second take = %v, %v", evs, synced)
	}
}

// A NetworkPolicy the source rejected arrives as its fail-closed
// placeholder: the pods it selects are isolated in its directions and
// nothing is allowed; when a valid version comes, it replaces it.
func TestRejectedPolicyFailsClosed(t *testing.T) {
	h := startAgent(t, Options{})
	web := pod("shop", "web", testNode, "10.0.0.1", "app", "web")
	db := pod("shop", "db", testNode, "10.0.0.2", "app", "db")
	client := pod("shop", "client", "n2", "10.0.1.1", "app", "client")
	h.push(nsEv("shop"))
	for _, p := range []*model.Pod{web, db, client} {
		h.push(podEv(p))
	}
	h.push(polEv(allowFrom("shop", "web", map[string]string{"app": "web"}, "client")))
	h.synced()
	h.settle()
	if !h.allowed(client.Key(), web.Key()) || !h.allowed(client.Key(), db.Key()) {
		t.Fatal("before: client must reach web and db")
	}
	bad := errors.New(`NetworkPolicy shop/web: spec.ingress[0].ports[0].port: Invalid value: "x!"`)

	for _, tc := range []struct {
		name        string
		placeholder *model.Policy
		isolated    []model.Key // from client, denied
		open        []model.Key
		egress      bool
	}{
		{
			name:        "valid selector kept",
			placeholder: &model.Policy{Namespace: "shop", Name: "web", PodSelector: model.Selector{MatchLabels: map[string]string{"app": "web"}}, Ingress: true},
			isolated:    []model.Key{web.Key()},
			open:        []model.Key{db.Key()},
		},
		{
			name:        "invalid selector: every pod of the namespace",
			placeholder: &model.Policy{Namespace: "shop", Name: "web", Ingress: true},
			isolated:    []model.Key{web.Key(), db.Key()},
		},
		{
			name:        "invalid policyTypes: both directions",
			placeholder: &model.Policy{Namespace: "shop", Name: "web", PodSelector: model.Selector{MatchLabels: map[string]string{"app": "web"}}, Ingress: true, Egress: true},
			isolated:    []model.Key{web.Key()},
			open:        []model.Key{db.Key()},
			egress:      true,
		},
		{
			name:        "no placeholder: every pod, both directions",
			placeholder: nil,
			isolated:    []model.Key{web.Key(), db.Key()},
			egress:      true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.push(source.Event{Kind: source.KindPolicy, Key: k("shop", "web"), Policy: tc.placeholder, Err: bad, Received: time.Now()})
			h.settle()
			for _, p := range tc.isolated {
				if h.allowed(client.Key(), p) {
					t.Errorf("client reaches %s through a rejected policy", p)
				}
			}
			for _, p := range tc.open {
				if !h.allowed(client.Key(), p) {
					t.Errorf("client cannot reach %s, which the placeholder does not select", p)
				}
			}
			var egressIso int
			h.a.withEngine(func(e *engine.Engine) { egressIso = len(e.Isolating(web.Key(), model.Egress)) })
			if (egressIso > 0) != tc.egress {
				t.Errorf("web isolated for egress: %v, want %v", egressIso > 0, tc.egress)
			}
			if got := h.elems("ingress4"); len(got) != len(tc.isolated) {
				t.Errorf("kernel ingress map %v, want %d pods", got, len(tc.isolated))
			}
			if g := gauge(t, h.a, "palisade_rejected_objects", "kind", "NetworkPolicy"); g != 1 {
				t.Errorf("rejected NetworkPolicy gauge = %v, want 1", g)
			}
			if g := gauge(t, h.a, "palisade_policies"); g != 1 {
				t.Errorf("palisade_policies = %v, want 1 (the placeholder)", g)
			}
		})
	}
	// A valid version replaces the placeholder and clears the metric.
	h.push(polEv(allowFrom("shop", "web", map[string]string{"app": "web"}, "client")))
	h.settle()
	if !h.allowed(client.Key(), web.Key()) || !h.allowed(client.Key(), db.Key()) {
		t.Error("after the fix: client must reach web and db")
	}
	if g := gauge(t, h.a, "palisade_rejected_objects", "kind", "NetworkPolicy"); g != 0 {
		t.Errorf("rejected gauge after the fix = %v", g)
	}
	// Rejected, then deleted: gone, and not counted.
	h.push(source.Event{Kind: source.KindPolicy, Key: k("shop", "web"), Err: bad, Received: time.Now()})
	h.push(del(source.KindPolicy, k("shop", "web")))
	h.settle()
	if g := gauge(t, h.a, "palisade_rejected_objects", "kind", "NetworkPolicy"); g != 0 {
		t.Errorf("rejected gauge after delete = %v", g)
	}
	if g := gauge(t, h.a, "palisade_policies"); g != 0 {
		t.Errorf("palisade_policies after delete = %v", g)
	}
}

// A rejected pod keeps its last good version; one never seen good is
// skipped; the metric counts the objects currently rejected.
func TestRejectedPodKeepsLastGood(t *testing.T) {
	h := startAgent(t, Options{})
	web := pod("shop", "web", testNode, "10.0.0.1", "app", "web")
	client := pod("shop", "client", "n2", "10.0.1.1", "app", "client")
	h.push(nsEv("shop"))
	h.push(podEv(web))
	h.push(podEv(client))
	h.push(polEv(allowFrom("shop", "web", map[string]string{"app": "web"}, "client")))
	h.synced()
	h.settle()
	bad := errors.New(`Pod shop/client: status.podIPs[0]: Invalid value: "300.1.1.1"`)
	h.push(source.Event{Kind: source.KindPod, Key: client.Key(), Err: bad, Received: time.Now()})
	h.push(source.Event{Kind: source.KindPod, Key: k("shop", "new"), Err: bad, Received: time.Now()})
	h.push(source.Event{Kind: source.KindNamespace, Key: model.Key{Name: "shop"}, Err: errors.New("bad label"), Received: time.Now()})
	h.settle()
	var cur, nw *model.Pod
	h.a.withEngine(func(e *engine.Engine) { cur, nw = e.Pod(client.Key()), e.Pod(k("shop", "new")) })
	if cur == nil || cur.IPs[0] != client.IPs[0] || cur.Labels["app"] != "client" {
		t.Errorf("rejected pod: engine has %+v, want the last good version", cur)
	}
	if nw != nil {
		t.Errorf("a pod never seen good must be skipped, engine has %+v", nw)
	}
	if !h.allowed(client.Key(), web.Key()) {
		t.Error("the last good version of client must still reach web")
	}
	if g := gauge(t, h.a, "palisade_rejected_objects", "kind", "Pod"); g != 2 {
		t.Errorf("rejected Pod gauge = %v, want 2", g)
	}
	if g := gauge(t, h.a, "palisade_rejected_objects", "kind", "Namespace"); g != 1 {
		t.Errorf("rejected Namespace gauge = %v, want 1", g)
	}
	// The same object rejected again is still one.
	h.push(source.Event{Kind: source.KindPod, Key: client.Key(), Err: bad, Received: time.Now()})
	h.settle()
	if g := gauge(t, h.a, "palisade_rejected_objects", "kind", "Pod"); g != 2 {
		t.Errorf("rejected Pod gauge after a repeat = %v, want 2", g)
	}
	h.push(podEv(client))
	h.push(del(source.KindPod, k("shop", "new")))
	h.push(nsEv("shop"))
	h.settle()
	for _, kind := range []string{"Pod", "Namespace", "NetworkPolicy", "Node"} {
		if g := gauge(t, h.a, "palisade_rejected_objects", "kind", kind); g != 0 {
			t.Errorf("rejected %s gauge = %v, want 0", kind, g)
		}
	}
	// The metric is exported on /metrics.
	srv := httptest.NewServer(h.a.Handler())
	defer srv.Close()
	body := get(t, srv.URL+"/metrics", 200)
	for _, want := range []string{`palisade_rejected_objects{kind="Pod"} 0`, "palisade_transactions_total", "palisade_event_to_kernel_seconds_bucket", "palisade_ruleset_chains"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func get(t *testing.T, url string, wantCode int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantCode {
		t.Fatalf("GET %s: %d %s, want %d", url, resp.StatusCode, b, wantCode)
	}
	return string(b)
}

// /readyz: 503 before the first reconcile, 200 after; 503 while the
// source is unhealthy or syncs fail beyond the grace; back to 200. A
// failed sync is retried and the kernel ends up right. /readyz answers
// only "not ready": the reason (which may name API errors) is logged.
func TestReadinessAndRetry(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	logs := &fixture.LogBuffer{}
	h := startAgent(t, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Now: now, ReadyGrace: 10 * time.Second, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond})
	srv := httptest.NewServer(h.a.Handler())
	defer srv.Close()
	get(t, srv.URL+"/healthz", 200)
	notReady := func(reason string) {
		t.Helper()
		if body := get(t, srv.URL+"/readyz", 503); body != "not ready\n" {
			t.Errorf("readyz body %q, want only \"not ready\"", body)
		}
		for _, l := range logs.Lines("not ready") {
			if strings.Contains(fmt.Sprint(l["reason"]), reason) {
				return
			}
		}
		t.Errorf("no log line \"not ready\" with reason %q in:\n%s", reason, logs)
	}
	notReady("initial reconcile not done")
	h.push(nsEv("shop"))
	h.push(podEv(pod("shop", "web", testNode, "10.0.0.1", "app", "web")))
	h.push(polEv(&model.Policy{Namespace: "shop", Name: "iso", Ingress: true}))
	time.Sleep(20 * time.Millisecond)
	get(t, srv.URL+"/readyz", 503) // not synced yet: no reconcile
	// Why the initial state does not come is said too.
	h.src.setHealth(errors.New("watch of pods failing for 11s: forbidden"))
	notReady("initial reconcile not done: watch of pods failing for 11s: forbidden")
	h.src.setHealth(nil)
	h.synced()
	h.settle()
	get(t, srv.URL+"/readyz", 200)

	h.src.setHealth(errors.New("watch of pods failing for 11s"))
	notReady("watch of pods failing for 11s")
	h.src.setHealth(nil)
	get(t, srv.URL+"/readyz", 200)

	// Syncs fail: ready within the grace, not after it; the kernel keeps
	// the old ruleset until a retry succeeds.
	h.dp.setFail(errors.New("netlink: no buffer space"))
	h.push(podEv(pod("shop", "db", testNode, "10.0.0.2", "app", "db")))
	eventually(t, "a failed transaction", func() bool {
		return gauge(t, h.a, "palisade_transaction_errors_total") >= 2 // retried
	})
	get(t, srv.URL+"/readyz", 200)
	clock.Add(int64(11 * time.Second))
	notReady("syncs failing since")
	if got := h.elems("ingress4"); len(got) != 1 {
		t.Errorf("while failing, the kernel has %v", got)
	}
	h.dp.setFail(nil)
	eventually(t, "the retry", func() bool { return len(h.elems("ingress4")) == 2 })
	get(t, srv.URL+"/readyz", 200)
}

// TestUnknownPodGuard: the guard's gauge follows the node's pod CIDRs; a
// node without one is warned about once, and the guard coming on is
// logged once; known_pods4 holds every local pod, isolated or not; the
// guard's drop counter is exported per guarded family.
func TestUnknownPodGuard(t *testing.T) {
	logs := &fixture.LogBuffer{}
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	h := startAgent(t, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Now: now, GuardUnknownPods: true})
	node := func(cidrs ...string) source.Event {
		n := &model.Node{Name: testNode}
		for _, c := range cidrs {
			n.PodCIDRs = append(n.PodCIDRs, netip.MustParsePrefix(c))
		}
		return source.Event{Kind: source.KindNode, Key: model.Key{Name: testNode}, Node: n}
	}
	h.push(nsEv("shop"))
	h.push(podEv(pod("shop", "web", testNode, "10.0.0.1", "app", "web")))
	h.push(node())
	h.synced()
	h.settle()
	for _, fam := range []string{"ipv4", "ipv6"} {
		if g := gauge(t, h.a, "palisade_unknown_pod_guard", "family", fam); g != 0 {
			t.Errorf("no pod CIDR: palisade_unknown_pod_guard{family=%q} = %v", fam, g)
		}
	}
	if n := strings.Count(logs.String(), "no pod CIDR for this node"); n != 1 {
		t.Errorf("%d warnings about the missing pod CIDR, want 1:\n%s", n, logs)
	}

	h.push(node("10.0.0.0/24"))
	h.push(podEv(pod("shop", "db", testNode, "10.0.0.2", "app", "db")))
	h.push(polEv(allowFrom("shop", "db-from-web", map[string]string{"app": "db"}, "web")))
	h.settle()
	if g := gauge(t, h.a, "palisade_unknown_pod_guard", "family", "ipv4"); g != 1 {
		t.Errorf("palisade_unknown_pod_guard{family=ipv4} = %v, want 1", g)
	}
	if g := gauge(t, h.a, "palisade_unknown_pod_guard", "family", "ipv6"); g != 0 {
		t.Errorf("palisade_unknown_pod_guard{family=ipv6} = %v, want 0", g)
	}
	if got := strings.Join(h.elems("known_pods4"), " "); got != "10.0.0.1 10.0.0.2" {
		t.Errorf("known_pods4 = %s, want both local pods", got)
	}
	clock.Add(int64(dropsMinInterval)) // the drop counters are read again
	if g := gauge(t, h.a, "palisade_unknown_pod_drops_total", "family", "ipv4"); g != 0 {
		t.Errorf("palisade_unknown_pod_drops_total{family=ipv4} = %v (the fake kernel drops nothing)", g)
	}
	if n := strings.Count(logs.String(), "unknown-pod guard on"); n != 1 {
		t.Errorf("%d logs of the guard coming on, want 1:\n%s", n, logs)
	}
}
