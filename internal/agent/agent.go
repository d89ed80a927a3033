package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/source"
)

// Dataplane programs one node's kernel. *Node is the real one.
type Dataplane interface {
	// Compile returns the node's ruleset for e; it only reads e.
	Compile(e *engine.Engine) *dataplane.Ruleset
	// Apply makes the kernel's table equal to rs in one transaction.
	Apply(ctx context.Context, rs *dataplane.Ruleset) (dataplane.Stats, error)
	// ReadDrops reads the per-pod drop counter sets back from the kernel
	// (dataplane.ReadDrops).
	ReadDrops() (*dataplane.Ruleset, error)
}

// IncrementalDataplane is a Dataplane that compiles incrementally (*Node
// does): the agent gives it every Changes the engine reports, in order.
type IncrementalDataplane interface {
	Dataplane
	// CompileChanges returns what Compile(e) would, given ch, what
	// changed in e since the last call.
	CompileChanges(e *engine.Engine, ch engine.Changes) *dataplane.Ruleset
}

// Options configure an Agent.
type Options struct {
	// NodeName is the node whose pods the agent enforces for.
	NodeName string
	// Logger receives the agent's logs, and the deny log's lines.
	Logger *slog.Logger
	// DenyLog, when set, is read for NFLOG records of denied connections,
	// each turned into one log line (--log-denied). The agent closes it
	// when Run returns.
	DenyLog LogReader
	// Flows, when set, is swept after every sync that changed policy
	// (policies, namespaces, nodes, pods' labels): flows that policy now
	// denies and that involve a pod of this node are cut
	// (--terminate-denied). Sweeps run one at a time beside the loop,
	// locking the engine for each entry's decision only.
	Flows FlowTable
	// ReadyGrace is how long the source may be unhealthy, or syncs
	// failing, before Ready reports it; 10 s when zero.
	ReadyGrace time.Duration
	// RetryMin and RetryMax bound the backoff between failed syncs;
	// 200 ms and 30 s when zero.
	RetryMin, RetryMax time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// BeforeReady, when set, runs once after the first reconcile is in
	// the kernel and before the agent reports ready. The CLI lifts its
	// start's memory limit there, and has the start's transient memory
	// returned to the OS (debug.FreeOSMemory, in the background).
	BeforeReady func()
	// GuardUnknownPods says the dataplane's unknown-pod guard is on
	// (dataplane.Options.AllowUnknown unset, --drop-unknown-pod-ips):
	// the agent warns when the node has no pod CIDR for it to work with.
	GuardUnknownPods bool
}

// maxPendingLatencies bounds the receipt times kept for events not yet
// in the kernel (while syncs fail under churn); later ones are not
// observed, the earliest (the worst) are.
const maxPendingLatencies = 100_000

// Agent is the node daemon's reconcile loop: events from a Source go
// into the engine as they come; when the queue drains, one sync (Compile
// and Apply: one nftables transaction) brings the kernel up to date, at
// most one in flight, so a burst of events becomes one transaction. The
// first sync waits for the source's initial state and replaces the table
// whole; failed syncs are retried with backoff while the kernel keeps the
// previous rules.
type Agent struct {
	src  source.Source
	dp   Dataplane
	opts Options
	log  *slog.Logger
	now  func() time.Time
	q    *queue
	m    *metrics

	// mu guards e and what the loop shares with readers (deny log, drop
	// counters, conntrack sweep): the loop writes under it, the others
	// read under it.
	mu sync.Mutex
	e  *engine.Engine

	// Loop-only state.
	rejected   map[qkey]struct{}
	namespaces map[string]struct{} // namespaces with a good version applied
	own        ownership           // which local pod owns each local address
	pending    []time.Time         // receipt times of events not yet in the kernel
	polChanged bool                // policy changed since the last successful sync
	// sweepReq asks sweepLoop for a conntrack sweep (--terminate-denied);
	// sweepsPending counts those asked for and not done.
	sweepReq      chan struct{}
	sweepsPending atomic.Int64
	counts        counts
	// guard is what the unknown-pod guard covered at the last sync, by
	// family; guardSeen once a sync has set it.
	guard     [2]bool
	guardSeen bool

	reconciled atomic.Bool
	started    time.Time
	// loading is the time spent applying events to the engine before
	// the first reconcile, for its log line.
	loading time.Duration

	// afterSync, when set (by tests), runs in the loop after every
	// successful sync.
	afterSync func()

	notReady notReadyLog

	stmu        sync.Mutex
	syncErr     error
	failingFrom time.Time
}

// counts are the gauges of known objects, kept as events apply (the
// engine's listings sort, which costs at 100k pods).
type counts struct {
	pods, local, policies, clusterPolicies int
}

func (a *Agent) isLocal(p *model.Pod) bool {
	return p != nil && p.Node == a.opts.NodeName && !p.HostNetwork && len(p.IPs) > 0
}

// countPod updates the counts for pod k going from old to p (nil: absent).
func (a *Agent) countPod(old, p *model.Pod) {
	a.counts.pods += b2i(p != nil) - b2i(old != nil)
	a.counts.local += b2i(a.isLocal(p)) - b2i(a.isLocal(old))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// New returns an agent that enforces, through dp, the state src delivers.
func New(src source.Source, dp Dataplane, opts Options) *Agent {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReadyGrace == 0 {
		opts.ReadyGrace = 10 * time.Second
	}
	if opts.RetryMin == 0 {
		opts.RetryMin = 200 * time.Millisecond
	}
	if opts.RetryMax == 0 {
		opts.RetryMax = 30 * time.Second
	}
	a := &Agent{
		src:        src,
		dp:         dp,
		opts:       opts,
		log:        opts.Logger,
		now:        opts.Now,
		q:          newQueue(),
		e:          engine.New(),
		rejected:   map[qkey]struct{}{},
		namespaces: map[string]struct{}{},
		own:        newOwnership(),
		sweepReq:   make(chan struct{}, 1),
		started:    opts.Now(),
	}
	a.m = newMetrics(a)
	return a
}

// Run enforces until ctx ends, then returns nil: the rules stay in the
// kernel. It returns an error only if the source fails for good.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	srcDone := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		srcDone <- a.src.Run(ctx, a.q.push, a.q.markSynced)
	}()
	if a.opts.Flows != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.sweepLoop(ctx)
		}()
	}
	if a.opts.DenyLog != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.denyLogLoop(ctx, a.opts.DenyLog)
		}()
	}
	a.log.Info("agent started; waiting for the initial state", "node", a.opts.NodeName)

	var (
		retry   <-chan time.Time
		backoff time.Duration
		dirty   = true // the first reconcile happens even with nothing to load
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-srcDone:
			if ctx.Err() != nil {
				return nil
			}
			if err == nil {
				err = errors.New("source stopped")
			}
			return fmt.Errorf("agent: %w", err)
		case <-a.q.ready:
		case <-retry:
			retry = nil
		}
		evs, synced := a.q.take()
		if len(evs) > 0 {
			t := a.now()
			a.applyEvents(evs)
			if !a.reconciled.Load() {
				a.loading += a.now().Sub(t)
			}
			dirty = true
		}
		if !synced || !dirty || retry != nil {
			continue
		}
		if err := a.sync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			backoff = min(max(2*backoff, a.opts.RetryMin), a.opts.RetryMax)
			a.log.Error("sync failed; the kernel keeps the previous rules; retrying",
				"error", err.Error(), "retry_in", backoff.String())
			retry = time.After(backoff)
			continue
		}
		backoff = 0
		dirty = false
		if a.afterSync != nil {
			a.afterSync()
		}
	}
}

// applyEvents applies a batch to the engine.
func (a *Agent) applyEvents(evs []source.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range evs {
		a.applyEvent(&evs[i])
	}
	if a.reconciled.Load() {
		for i := range evs {
			if len(a.pending) < maxPendingLatencies && !evs[i].Received.IsZero() {
				a.pending = append(a.pending, evs[i].Received)
			}
		}
	}
}

// applyEvent applies one event; a.mu is held.
func (a *Agent) applyEvent(ev *source.Event) {
	k := keyOf(ev)
	if ev.Err != nil && !ev.Delete {
		a.reject(k)
	} else {
		a.unreject(k)
	}
	e := a.e
	switch ev.Kind {
	case source.KindPod:
		old := e.Pod(ev.Key)
		switch {
		case ev.Delete:
			a.deletePod(ev.Key)
		case ev.Err != nil:
			a.logRejected(ev, old != nil)
		default:
			a.upsertPod(ev) // through the ownership of local addresses (ownip.go)
		}
	case source.KindNamespace:
		_, known := a.namespaces[ev.Key.Name]
		switch {
		case ev.Delete:
			e.DeleteNamespace(ev.Key.Name)
			delete(a.namespaces, ev.Key.Name)
		case ev.Err != nil:
			a.logRejected(ev, known)
		default:
			e.UpsertNamespace(ev.Namespace)
			a.namespaces[ev.Key.Name] = struct{}{}
		}
	case source.KindNode:
		switch {
		case ev.Delete:
			e.DeleteNode(ev.Key.Name)
		case ev.Err != nil:
			a.logRejected(ev, e.Node(ev.Key.Name) != nil)
		default:
			e.UpsertNode(ev.Node)
		}
	case source.KindClusterPolicy:
		// A rejected one comes with its fail-closed placeholder, as a
		// NetworkPolicy does (kube.ConvertClusterPolicy).
		had := e.ClusterPolicy(ev.ClusterKey) != nil
		switch {
		case ev.Delete:
			e.DeleteClusterPolicy(ev.ClusterKey)
		case ev.ClusterPolicy == nil: // rejected, without a placeholder
			a.logRejected(ev, had)
		case ev.Err != nil:
			p := ev.ClusterPolicy
			a.log.Error("object rejected; enforcing a fail-closed placeholder that denies, in its tier and at its priority, all traffic of what it selects",
				"kind", ev.KindName(), "object", ev.ClusterKey.Name, "error", ev.Err.Error(),
				"placeholder_tier", p.Tier.String(), "placeholder_priority", p.Priority,
				"placeholder_ingress", len(p.IngressRules) > 0, "placeholder_egress", len(p.EgressRules) > 0)
			e.UpsertClusterPolicy(p)
		default:
			e.UpsertClusterPolicy(ev.ClusterPolicy)
		}
		a.counts.clusterPolicies += b2i(e.ClusterPolicy(ev.ClusterKey) != nil) - b2i(had)
	case source.KindPolicy:
		// A rejected policy is present too, as its placeholder.
		a.counts.policies += b2i(!ev.Delete) - b2i(e.Policy(ev.Key) != nil)
		switch {
		case ev.Delete:
			e.DeletePolicy(ev.Key)
		case ev.Err != nil:
			p := ev.Policy
			if p == nil {
				p = &model.Policy{Namespace: ev.Key.Namespace, Name: ev.Key.Name, Ingress: true, Egress: true}
			}
			a.log.Error("object rejected; enforcing a fail-closed placeholder that isolates what it selects and allows nothing",
				"kind", ev.Kind.String(), "object", ev.Key.String(), "error", ev.Err.Error(),
				"placeholder_pod_selector", p.PodSelector.String(),
				"placeholder_ingress", p.Ingress, "placeholder_egress", p.Egress)
			e.UpsertPolicy(p)
		default:
			e.UpsertPolicy(ev.Policy)
		}
	}
}

func (a *Agent) logRejected(ev *source.Event, haveGood bool) {
	obj := ev.Object()
	if ev.Kind == source.KindClusterPolicy {
		obj = ev.ClusterKey.Name
	}
	if haveGood {
		a.log.Error("object rejected; keeping its last good version", "kind", ev.KindName(), "object", obj, "error", ev.Err.Error())
		return
	}
	a.log.Error("object rejected; skipped (no good version known)", "kind", ev.KindName(), "object", obj, "error", ev.Err.Error())
}

func (a *Agent) reject(k qkey) {
	if _, ok := a.rejected[k]; !ok {
		a.rejected[k] = struct{}{}
		a.m.rejected.WithLabelValues(k.kindName()).Inc()
	}
}

func (a *Agent) unreject(k qkey) {
	if _, ok := a.rejected[k]; ok {
		delete(a.rejected, k)
		a.m.rejected.WithLabelValues(k.kindName()).Dec()
	}
}

// kindName is the API kind of k's object (see source.Event.KindName).
func (k qkey) kindName() string {
	if k.kind == source.KindClusterPolicy {
		return k.cluster.Kind
	}
	return k.kind.String()
}

// sync compiles the engine's state and applies it in one transaction.
func (a *Agent) sync(ctx context.Context) error {
	a.mu.Lock()
	compileStart := a.now()
	ch := a.e.TakeChanges()
	var rs *dataplane.Ruleset
	if idp, ok := a.dp.(IncrementalDataplane); ok {
		rs = idp.CompileChanges(a.e, ch)
	} else {
		rs = a.dp.Compile(a.e)
	}
	// What may deny an established flow: a policy, a cluster policy, a
	// namespace, a node; a pod whose labels change which policies select
	// it, or whom they allow, is reported with those policies
	// (ch.Policies). Cluster policies select pods when asked (no change
	// names them), so any pod change counts while there are some.
	a.polChanged = a.polChanged || len(ch.Policies) > 0 || len(ch.Namespaces) > 0 || len(ch.Nodes) > 0 ||
		ch.ClusterPolicies || (len(ch.Pods) > 0 && len(a.e.ClusterPolicies()) > 0)
	pods, local, pols, cpols := a.counts.pods, a.counts.local, a.counts.policies, a.counts.clusterPolicies
	pending := a.pending
	a.pending = nil
	compiled := a.now().Sub(compileStart)
	a.mu.Unlock()

	st, err := a.dp.Apply(ctx, rs)
	done := a.now()
	a.m.transactions.Inc()
	a.m.txSeconds.Observe(st.Duration.Seconds())
	if err != nil {
		a.m.txErrors.Inc()
		a.mu.Lock()
		// Not in the kernel yet: they count from their receipt until the
		// retry lands.
		a.pending = append(pending, a.pending...)
		if len(a.pending) > maxPendingLatencies {
			a.pending = a.pending[:maxPendingLatencies]
		}
		a.mu.Unlock()
		a.setSyncErr(err)
		return err
	}
	a.setSyncErr(nil)

	a.m.pods.Set(float64(pods))
	a.m.localPods.Set(float64(local))
	a.m.policies.Set(float64(pols))
	a.m.clusterPolicies.Set(float64(cpols))
	a.m.setRuleset(rs)
	a.noteGuard(rs)
	var worst time.Duration
	for _, t := range pending {
		d := done.Sub(t)
		a.m.latency.Observe(d.Seconds())
		worst = max(worst, d)
	}

	if !a.reconciled.Load() {
		var before time.Duration
		if a.opts.BeforeReady != nil {
			t := a.now()
			a.opts.BeforeReady()
			before = a.now().Sub(t)
		}
		a.reconciled.Store(true)
		cold := a.now().Sub(a.started)
		a.m.coldStart.Set(cold.Seconds())
		a.log.Info("initial reconcile done; ready", "node", a.opts.NodeName, "before_ready", before.String(),
			"loading", a.loading.String(), "compile", compiled.String(),
			"pods", pods, "local_pods", local, "policies", pols, "cluster_policies", cpols,
			"chains", len(rs.Chains), "sets", len(rs.Sets), "elements", countElems(rs),
			"transaction", st.String(), "since_start", cold.String())
	} else if !st.Empty() {
		a.log.Info("synced", "events", len(pending), "event_to_kernel_max", worst.String(),
			"compile", compiled.String(), "transaction", st.String())
	}

	if a.opts.Flows != nil && a.polChanged {
		a.sweepNow()
	}
	a.polChanged = false
	return nil
}

// noteGuard exports the families the unknown-pod guard of rs covers, and
// logs it on the first sync and whenever it changes: a warning when the
// guard is meant to be on and the node has no pod CIDR for it.
func (a *Agent) noteGuard(rs *dataplane.Ruleset) {
	g := rs.Guarded()
	for fi, fam := range [...]string{"ipv4", "ipv6"} {
		a.m.guard.WithLabelValues(fam).Set(float64(b2i(g[fi])))
	}
	if a.guardSeen && g == a.guard {
		return
	}
	a.guard, a.guardSeen = g, true
	switch {
	case !a.opts.GuardUnknownPods:
	case g == [2]bool{}:
		a.log.Warn("no pod CIDR for this node (Node spec.podCIDRs unset, no --pod-cidr): pods the agent does not know yet are not guarded, their traffic passes unfiltered until it learns of them",
			"node", a.opts.NodeName)
	default:
		a.log.Info("unknown-pod guard on: traffic from or to an address of the node's pod CIDRs that no known pod of this node has is dropped",
			"node", a.opts.NodeName, "ipv4", g[0], "ipv6", g[1])
	}
}

func (a *Agent) setSyncErr(err error) {
	a.stmu.Lock()
	defer a.stmu.Unlock()
	if err == nil {
		a.syncErr, a.failingFrom = nil, time.Time{}
		return
	}
	if a.syncErr == nil {
		a.failingFrom = a.now()
	}
	a.syncErr = err
}

// Reconciled reports whether the first sync has put the whole initial
// state in the kernel.
func (a *Agent) Reconciled() bool { return a.reconciled.Load() }

// Ready returns nil when the agent enforces the current state: the first
// reconcile is done, the source is healthy, and syncs have not been
// failing for longer than the grace period. Otherwise it says why not.
func (a *Agent) Ready() error {
	if !a.reconciled.Load() {
		if err := a.src.Healthy(); err != nil {
			return fmt.Errorf("initial reconcile not done: %w", err)
		}
		return errors.New("initial reconcile not done")
	}
	if err := a.src.Healthy(); err != nil {
		return err
	}
	a.stmu.Lock()
	defer a.stmu.Unlock()
	if a.syncErr != nil && a.now().Sub(a.failingFrom) > a.opts.ReadyGrace {
		return fmt.Errorf("syncs failing since %s: %w", a.failingFrom.Format(time.RFC3339), a.syncErr)
	}
	return nil
}

// Handler serves /metrics (Prometheus), /healthz (200 while the process
// runs) and /readyz (200 once Ready, else 503 "not ready"; the reason
// goes to the log, not to whoever asks). Serve it with Serve or
// NewHTTPServer, which bound connections and timeouts.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", a.m.handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := a.Ready(); err != nil {
			a.notReady.log(a.log, a.now(), err)
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// withEngine runs fn with the engine locked, for readers outside the loop.
func (a *Agent) withEngine(fn func(e *engine.Engine)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fn(a.e)
}

func countElems(rs *dataplane.Ruleset) int {
	n := 0
	for _, s := range rs.Sets {
		n += len(s.Elems)
	}
	return n
}
