// Package kube connects the agent to the Kubernetes API: client
// configuration, and a Source of cluster state built on client-go shared
// informers (Pods, Namespaces, NetworkPolicies, and the agent's own Node)
// whose transforms keep only what apiconv reads. Every object goes
// through apiconv on its way to the agent; a NetworkPolicy apiconv
// rejects becomes a fail-closed placeholder (ConvertPolicy).
//
// kube is the only package that imports client-go. It imports agent (for
// Event and Source), apiconv and model; nothing imports kube but the CLI.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/palisade-net/palisade/internal/agent"
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
	// NodeName is the agent's node: the only Node watched (for its
	// addresses: traffic from a node to its own pods is always allowed).
	NodeName string
	Logger   *slog.Logger
	// UnhealthyAfter is how long a watch may fail before Healthy reports
	// it; 10 s when zero.
	UnhealthyAfter time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Source is the cluster state of a Kubernetes API server, as an
// agent.Source.
type Source struct {
	client kubernetes.Interface
	opts   SourceOptions
	log    *slog.Logger

	mu      sync.Mutex
	failing map[string]failure // by resource
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
func (s *Source) Run(ctx context.Context, push func(agent.Event), synced func()) error {
	cs := s.client
	infs := []informer{
		s.newInformer("pods", &corev1.Pod{},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.CoreV1().Pods("").List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return cs.CoreV1().Pods("").Watch(ctx, o)
			}),
		s.newInformer("namespaces", &corev1.Namespace{},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.CoreV1().Namespaces().List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return cs.CoreV1().Namespaces().Watch(ctx, o)
			}),
		s.newInformer("networkpolicies", &networkingv1.NetworkPolicy{},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return cs.NetworkingV1().NetworkPolicies("").List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return cs.NetworkingV1().NetworkPolicies("").Watch(ctx, o)
			}),
		s.newInformer("nodes", &corev1.Node{},
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				o.FieldSelector = s.nodeSelector()
				return cs.CoreV1().Nodes().List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				o.FieldSelector = s.nodeSelector()
				return cs.CoreV1().Nodes().Watch(ctx, o)
			}),
	}
	transforms := []cache.TransformFunc{podTransform, namespaceTransform, policyTransform, nodeTransform}
	h := handler(s, push)
	var hasSynced []cache.InformerSynced
	for i, in := range infs {
		if err := in.inf.SetTransform(transforms[i]); err != nil {
			return err
		}
		name := in.name
		if err := in.inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
			s.watchFailed(name, err)
		}); err != nil {
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
	s.log.Info("informers started; waiting for the initial listing", "node", s.opts.NodeName)
	if !cache.WaitForCacheSync(ctx.Done(), hasSynced...) {
		return nil // ctx ended
	}
	s.log.Info("informers synced")
	synced()
	<-ctx.Done()
	return nil
}

func (s *Source) nodeSelector() string {
	return fields.OneTermEqualSelector("metadata.name", s.opts.NodeName).String()
}

// newInformer builds an informer whose list and watch calls report their
// success to the source's health (the watch error handler reports the
// failures).
func (s *Source) newInformer(name string, example runtime.Object,
	list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error),
) informer {
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			obj, err := list(ctx, o)
			s.report(name, err)
			return obj, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w, err := watchFn(ctx, o)
			s.report(name, err)
			return w, err
		},
	}
	inf := cache.NewSharedIndexInformerWithOptions(
		cache.ToListWatcherWithWatchListSemantics(lw, s.client),
		example,
		cache.SharedIndexInformerOptions{ObjectDescription: name},
	)
	return informer{name: name, inf: inf}
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
func handler(s *Source, push func(agent.Event)) cache.ResourceEventHandler {
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
			push(agent.Event{Kind: e.ev.Kind, Key: e.ev.Key, Delete: true, Received: received})
		},
	}
}

// NewClient returns a clientset for the kubeconfig file, or the in-cluster
// configuration when kubeconfig is "" (see Config).
func NewClient(kubeconfig, userAgent string) (kubernetes.Interface, error) {
	cfg, err := Config(kubeconfig, userAgent)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}
