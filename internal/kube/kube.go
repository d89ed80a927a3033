// Package kube is palisade's client of the Kubernetes API. Config and
// NewClient make clients from a kubeconfig or the in-cluster service
// account; with them kube reads and writes:
//
//   - a Source of cluster state for the agent, built on client-go shared
//     informers (Pods, Namespaces, NetworkPolicies, Nodes, and the
//     cluster-wide policies of policy.networking.k8s.io whose CRDs are
//     installed) whose transforms keep only what apiconv reads;
//   - ReadCluster, one listing of a whole cluster, for check, explain and
//     matrix --kubeconfig;
//   - Apply, Delete and WaitPodsRunning, which send the objects of
//     manifests to the API server (server-side apply, printing what
//     kubectl prints), for the lab's kubelet mode and the demo.
//
// Every object read goes through apiconv on its way in; a NetworkPolicy
// or cluster policy apiconv rejects becomes a fail-closed placeholder
// (ConvertPolicy, and placeholder in clusterpolicy.go).
//
// kube imports apiconv, manifest, model and source (the contract with the
// agent), never the agent or the dataplane; the CLI and the lab's object
// store import it. The lab, which plays the kubelet, has client-go code
// of its own.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	npaclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/palisade-net/palisade/internal/source"
)

// Config returns the client configuration from the kubeconfig file, or
// the in-cluster one (service account) when kubeconfig is "". Lists and
// watches use protobuf.
func Config(kubeconfig, userAgent string) (*rest.Config, error) {
	var (
		cfg *rest.Config
		err error
	)
	if kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config (use --kubeconfig outside a cluster): %w", err)
		}
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
	}
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	cfg.UserAgent = userAgent
	return cfg, nil
}

// RouteKlog sends client-go's own logs (klog) to log, so that the
// process writes one log format. It changes klog's process-wide state:
// call it from main's side only.
func RouteKlog(log *slog.Logger) {
	klog.SetSlogLogger(log.With("component", "client-go"))
}

// SourceOptions configure a Source.
type SourceOptions struct {
	// NodeName is the agent's node, whose pods it enforces for. Every
	// Node is watched: the agent's own for its addresses (traffic from a
	// node to its own pods is always allowed) and pod CIDRs, all of them
	// for the addresses and labels that cluster policies' nodes peers
	// select.
	NodeName string
	// Policies is the client of the cluster-wide policies
	// (policy.networking.k8s.io); when nil, the one a client made by
	// NewClient carries. With neither, they are not watched (logged, and
	// reported by Unserved).
	Policies npaclient.Interface
	// CRDRecheck is how often discovery is asked again which cluster
	// policy kinds are served; 30 s when zero.
	CRDRecheck time.Duration
	Logger     *slog.Logger
	// UnhealthyAfter is how long a watch may fail before Healthy reports
	// it; 10 s when zero.
	UnhealthyAfter time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Source is the cluster state of a Kubernetes API server, as an
// source.Source.
type Source struct {
	client kubernetes.Interface
	opts   SourceOptions
	log    *slog.Logger

	mu      sync.Mutex
	failing map[string]failure // by resource

	cluster atomic.Pointer[clusterWatch] // set by Run when it has a policy client
}

type failure struct {
	since time.Time
	err   error
}

// NewSource returns a source reading through client.
func NewSource(client kubernetes.Interface, opts SourceOptions) *Source {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.UnhealthyAfter == 0 {
		opts.UnhealthyAfter = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CRDRecheck == 0 {
		opts.CRDRecheck = 30 * time.Second
	}
	if c, ok := client.(*Client); ok && opts.Policies == nil {
		opts.Policies = c.Policies
	}
	return &Source{client: client, opts: opts, log: opts.Logger, failing: map[string]failure{}}
}

// informer is one watched resource.
type informer struct {
	name string
	inf  cache.SharedIndexInformer
}

// Run starts the informers, pushes every event, calls synced once every
// handler has received the initial listing, and returns nil when ctx
// ends (after the informers have stopped).
func (s *Source) Run(ctx context.Context, push func(source.Event), synced func()) error {
	cs := s.client
	infs := []informer{
		s.newInformer("pods", &corev1.Pod{}, cs,
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.CoreV1().Pods("").List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return cs.CoreV1().Pods("").Watch(ctx, o)
			}),
		s.newInformer("namespaces", &corev1.Namespace{}, cs,
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.CoreV1().Namespaces().List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return cs.CoreV1().Namespaces().Watch(ctx, o)
			}),
		s.newInformer("networkpolicies", &networkingv1.NetworkPolicy{}, cs,
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.NetworkingV1().NetworkPolicies("").List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return cs.NetworkingV1().NetworkPolicies("").Watch(ctx, o)
			}),
		s.newInformer("nodes", &corev1.Node{}, cs,
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.CoreV1().Nodes().List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return cs.CoreV1().Nodes().Watch(ctx, o)
			}),
	}
	transforms := []cache.TransformFunc{podTransform, namespaceTransform, policyTransform, nodeTransform}
	h := handler(s, push)
	var hasSynced []cache.InformerSynced
	for i, in := range infs {
		if err := s.setup(in, transforms[i]); err != nil {
			return err
		}
		reg, err := in.inf.AddEventHandler(h)
		if err != nil {
			return err
		}
		hasSynced = append(hasSynced, reg.HasSynced)
	}
	var wg sync.WaitGroup
	for _, in := range infs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.inf.RunWithContext(ctx)
		}()
	}
	defer wg.Wait()
	if s.opts.Policies == nil {
		s.log.Warn("no client for cluster policies (policy.networking.k8s.io): AdminNetworkPolicy, BaselineAdminNetworkPolicy and ClusterNetworkPolicy are not watched")
	} else {
		cw := &clusterWatch{s: s, pc: s.opts.Policies, h: h, push: push, running: make([]*runningKind, len(clusterKinds)), missing: make([]int, len(clusterKinds))}
		defer cw.wg.Wait()
		synced, err := cw.discoverFirst(ctx)
		if err != nil {
			return nil // ctx ended
		}
		s.cluster.Store(cw)
		hasSynced = append(hasSynced, synced...)
		cw.wg.Add(1)
		go func() {
			defer cw.wg.Done()
			cw.recheck(ctx)
		}()
	}
	s.log.Info("informers started; waiting for the initial listing", "node", s.opts.NodeName)
	if !cache.WaitForCacheSync(ctx.Done(), hasSynced...) {
		return nil // ctx ended
	}
	s.log.Info("informers synced")
	synced()
	<-ctx.Done()
	return nil
}

// setup sets the transform of in and reports its watch errors to the
// source's health.
func (s *Source) setup(in informer, tr cache.TransformFunc) error {
	if err := in.inf.SetTransform(tr); err != nil {
		return err
	}
	name := in.name
	return in.inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		s.watchFailed(name, err)
	})
}

// newInformer builds an informer whose list and watch calls report their
// success to the source's health (the watch error handler reports the
// failures). client is the clientset the calls go through.
func (s *Source) newInformer(name string, example runtime.Object, client any,
	list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
) informer {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return untilReachable(ctx, s, name, func(ctx context.Context) (runtime.Object, error) { return list(ctx, o) })
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return untilReachable(ctx, s, name, func(ctx context.Context) (watch.Interface, error) { return watchFn(ctx, o) })
		},
	}
	inf := cache.NewSharedIndexInformerWithOptions(
		cache.ToListWatcherWithWatchListSemantics(lw, client),
		example,
		cache.SharedIndexInformerOptions{ObjectDescription: name},
	)
	return informer{name: name, inf: inf}
}

// Retries of a list or watch call while the API server is unreachable:
// from reachMin, doubling, to reachMax.
const (
	reachMin = 100 * time.Millisecond
	reachMax = time.Second
)

// untilReachable makes the list or watch call fn, and makes it again
// while it fails because the API server cannot be reached (unreachable),
// at most reachMax apart, until it gets an answer or ctx ends. It reports
// every outcome to the source's health.
//
// The reflector would retry too, but with a jittered exponential backoff
// that reaches 30 to 60 s during an outage of a minute or more, and that
// client-go's shared informers do not let us configure: the agent would
// stay blind that long after the API server returns. The reflector sees
// only the answers (errors of the API server included, such as 410 Gone,
// which it must handle by listing again).
func untilReachable[T any](ctx context.Context, s *Source, name string, fn func(context.Context) (T, error)) (T, error) {
	delay := reachMin
	for {
		v, err := fn(ctx)
		s.report(name, err)
		if err == nil || !unreachable(err) || ctx.Err() != nil {
			return v, err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		delay = min(2*delay, reachMax)
	}
}

// unreachable reports whether err says the API server did not answer (a
// connection refused or reset, a timeout, a TLS failure: no API status)
// or answered that it cannot serve yet (503, as while it starts).
func unreachable(err error) bool {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return true
	}
	return apierrors.IsServiceUnavailable(err)
}

// report records the outcome of a list or watch call.
func (s *Source) report(name string, err error) {
	if err != nil {
		s.watchFailed(name, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.failing[name]; ok {
		delete(s.failing, name)
		s.log.Info("watch recovered", "resource", name, "failed_for", s.opts.Now().Sub(f.since).Round(time.Millisecond).String())
	}
}

// watchFailed records a failed list or watch; the reflector retries with
// backoff. Context cancellation (shutdown) is not a failure.
func (s *Source) watchFailed(name string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.failing[name]
	if !ok {
		f.since = s.opts.Now()
		s.log.Warn("watch failing; keeping the last rules", "resource", name, "error", err.Error())
	}
	f.err = err
	s.failing[name] = f
}

// Healthy returns nil unless a watch has been failing for longer than
// UnhealthyAfter.
func (s *Source) Healthy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	names := make([]string, 0, len(s.failing))
	for n := range s.failing {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := s.failing[n]
		if d := now.Sub(f.since); d > s.opts.UnhealthyAfter {
			return fmt.Errorf("watch of %s failing for %s: %v", n, d.Round(time.Second), f.err)
		}
	}
	return nil
}

// handler turns informer notifications (of entries, see transform) into
// agent events, leaving out updates that change nothing the engine reads.
func handler(s *Source, push func(source.Event)) cache.ResourceEventHandler {
	upsert := func(obj any) {
		e, ok := obj.(*entry)
		if !ok {
			return
		}
		ev := e.ev
		ev.Received = s.opts.Now()
		push(ev)
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: upsert,
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*entry)
			n, ok2 := newObj.(*entry)
			if ok1 && ok2 && sameEvent(&o.ev, &n.ev) {
				return
			}
			upsert(newObj)
		},
		DeleteFunc: func(obj any) {
			received := s.opts.Now()
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			e, ok := obj.(*entry)
			if !ok {
				return
			}
			push(source.Event{Kind: e.ev.Kind, Key: e.ev.Key, ClusterKey: e.ev.ClusterKey, Delete: true, Received: received})
		},
	}
}

// Client is the clientset NewClient returns: the core API's, carrying
// the client of the cluster-wide policies for NewSource.
type Client struct {
	*kubernetes.Clientset
	Policies npaclient.Interface
}

// NewClient returns a clientset for the kubeconfig file, or the in-cluster
// configuration when kubeconfig is "" (see Config). It is a *Client.
func NewClient(kubeconfig, userAgent string) (kubernetes.Interface, error) {
	cfg, err := Config(kubeconfig, userAgent)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	pc, err := npaclient.NewForConfig(PolicyConfig(cfg))
	if err != nil {
		return nil, err
	}
	return &Client{Clientset: cs, Policies: pc}, nil
}

// PolicyConfig returns cfg for the cluster policies' client: custom
// resources are served as JSON only.
func PolicyConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.ContentType = runtime.ContentTypeJSON
	c.AcceptContentTypes = runtime.ContentTypeJSON
	return c
}
