package kube

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
	npaclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/source"
)

// Cluster-wide policies (policy.networking.k8s.io) are custom resources:
// their CRDs may not be installed, or be installed later. The source asks
// discovery which of them the API server serves, watches those, and asks
// again every SourceOptions.CRDRecheck: a kind that becomes served is
// watched from then on; one that stops being served (its CRD deleted,
// which deletes its objects) is no longer watched and its policies go.
// A served kind is watched as NetworkPolicies are: the first sync waits
// for its listing, and a failing list or watch keeps the last rules and
// makes the source unhealthy; it never reads as "no policies".

// PolicyGroup is the API group of cluster-wide policies.
const PolicyGroup = "policy.networking.k8s.io"

// clusterAPI is one cluster policy kind at one served version.
type clusterAPI struct {
	kind     string // model.Kind...
	version  string
	resource string
	// informer builds the informer of this kind through pc.
	informer func(s *Source, pc npaclient.Interface) informer
	// list lists it for ReadCluster.
	list func(ctx context.Context, pc npaclient.Interface, size int64) ([]source.Event, error)
}

func (a clusterAPI) groupVersion() string { return PolicyGroup + "/" + a.version }

// clusterKinds are the cluster policy kinds, each with its versions in
// order of preference: ClusterNetworkPolicy as v1alpha2 where served,
// else v1beta1.
var clusterKinds = [][]clusterAPI{
	{{
		kind: model.KindAdminNetworkPolicy, version: "v1alpha1", resource: "adminnetworkpolicies",
		informer: func(s *Source, pc npaclient.Interface) informer {
			c := pc.PolicyV1alpha1().AdminNetworkPolicies()
			return s.newInformer("adminnetworkpolicies", &v1alpha1.AdminNetworkPolicy{}, pc,
				func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) },
				func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return c.Watch(ctx, o) })
		},
		list: func(ctx context.Context, pc npaclient.Interface, size int64) ([]source.Event, error) {
			return listAll(ctx, size, pc.PolicyV1alpha1().AdminNetworkPolicies().List,
				func(l *v1alpha1.AdminNetworkPolicyList) []v1alpha1.AdminNetworkPolicy { return l.Items }, anpEvent)
		},
	}},
	{{
		kind: model.KindBaselineAdminNetworkPolicy, version: "v1alpha1", resource: "baselineadminnetworkpolicies",
		informer: func(s *Source, pc npaclient.Interface) informer {
			c := pc.PolicyV1alpha1().BaselineAdminNetworkPolicies()
			return s.newInformer("baselineadminnetworkpolicies", &v1alpha1.BaselineAdminNetworkPolicy{}, pc,
				func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) },
				func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return c.Watch(ctx, o) })
		},
		list: func(ctx context.Context, pc npaclient.Interface, size int64) ([]source.Event, error) {
			return listAll(ctx, size, pc.PolicyV1alpha1().BaselineAdminNetworkPolicies().List,
				func(l *v1alpha1.BaselineAdminNetworkPolicyList) []v1alpha1.BaselineAdminNetworkPolicy { return l.Items }, banpEvent)
		},
	}},
	{{
		kind: model.KindClusterNetworkPolicy, version: "v1alpha2", resource: "clusternetworkpolicies",
		informer: func(s *Source, pc npaclient.Interface) informer {
			c := pc.PolicyV1alpha2().ClusterNetworkPolicies()
			return s.newInformer("clusternetworkpolicies", &v1alpha2.ClusterNetworkPolicy{}, pc,
				func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) },
				func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return c.Watch(ctx, o) })
		},
		list: func(ctx context.Context, pc npaclient.Interface, size int64) ([]source.Event, error) {
			return listAll(ctx, size, pc.PolicyV1alpha2().ClusterNetworkPolicies().List,
				func(l *v1alpha2.ClusterNetworkPolicyList) []v1alpha2.ClusterNetworkPolicy { return l.Items }, cnpEvent)
		},
	}, {
		kind: model.KindClusterNetworkPolicy, version: "v1beta1", resource: "clusternetworkpolicies",
		informer: func(s *Source, pc npaclient.Interface) informer {
			c := pc.PolicyV1beta1().ClusterNetworkPolicies()
			return s.newInformer("clusternetworkpolicies", &v1beta1.ClusterNetworkPolicy{}, pc,
				func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return c.List(ctx, o) },
				func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) { return c.Watch(ctx, o) })
		},
		list: func(ctx context.Context, pc npaclient.Interface, size int64) ([]source.Event, error) {
			return listAll(ctx, size, pc.PolicyV1beta1().ClusterNetworkPolicies().List,
				func(l *v1beta1.ClusterNetworkPolicyList) []v1beta1.ClusterNetworkPolicy { return l.Items }, cnpV1beta1Event)
		},
	}},
}

var (
	anpTransform        = transform(anpEvent)
	banpTransform       = transform(banpEvent)
	cnpTransform        = transform(cnpEvent)
	cnpV1beta1Transform = transform(cnpV1beta1Event)
)

// servedClusterAPIs asks discovery which versions of each cluster policy
// kind the API server serves: per kind (as clusterKinds), the served
// ones in order of preference, none when the kind is not served. An
// error is an unanswered question, not "not served": the caller must
// not act on it.
func servedClusterAPIs(ctx context.Context, disc discovery.DiscoveryInterfaces) ([][]*clusterAPI, error) {
	resources := map[string][]string{} // group version -> resources; absent: not served
	for _, v := range []string{"v1alpha1", "v1alpha2", "v1beta1"} {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		gv := PolicyGroup + "/" + v
		l, err := disc.ServerResourcesForGroupVersionWithContext(ctx, gv)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("discovery of %s: %w", gv, err)
		}
		names := []string{}
		for _, r := range l.APIResources {
			names = append(names, r.Name)
		}
		resources[gv] = names
	}
	out := make([][]*clusterAPI, len(clusterKinds))
	for i, versions := range clusterKinds {
		for j := range versions {
			if slices.Contains(resources[versions[j].groupVersion()], versions[j].resource) {
				out[i] = append(out[i], &versions[j])
			}
		}
	}
	return out, nil
}

// clusterWatch runs the informers of the cluster policy kinds the API
// server serves, and follows discovery.
type clusterWatch struct {
	s    *Source
	pc   npaclient.Interface
	h    cache.ResourceEventHandler
	push func(source.Event)

	mu      sync.Mutex
	running []*runningKind // by clusterKinds index; nil: not watched
	// missing counts, by clusterKinds index, the discoveries in a row that
	// did not list the version watched.
	missing []int
	known   bool // discovery has answered once
	wg      sync.WaitGroup
}

// goneAfter is how many discoveries in a row must miss a watched version
// before the source stops watching it. One is not enough: a restarting
// API server may list a CRD's versions a moment after it serves again,
// and dropping the kind's policies (Deny rules among them) for a recheck
// interval would open what they close. A CRD really deleted has had its
// objects deleted first, which the informer has already delivered.
const goneAfter = 2

type runningKind struct {
	api    *clusterAPI
	inf    informer
	synced cache.InformerSynced
	cancel context.CancelFunc
	done   chan struct{}
}

// Unserved names the cluster policy kinds not watched because the API
// server does not serve them (source.Unserved); all of them until
// discovery has answered, and when the source has no client for them.
func (s *Source) Unserved() []string {
	cw := s.cluster.Load()
	var out []string
	for i, versions := range clusterKinds {
		if cw == nil || !cw.watching(i) {
			out = append(out, versions[0].kind)
		}
	}
	return out
}

func (cw *clusterWatch) watching(i int) bool {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return cw.known && cw.running[i] != nil
}

// discover asks discovery until it answers (or ctx ends), then starts
// and stops informers to match, and returns the HasSynced of the
// informers it started.
func (cw *clusterWatch) discover(ctx context.Context) ([]cache.InformerSynced, error) {
	served, err := untilReachable(ctx, cw.s, "discovery", func(ctx context.Context) ([][]*clusterAPI, error) {
		return servedClusterAPIs(ctx, cw.s.client.Discovery())
	})
	if err != nil {
		return nil, err
	}
	cw.mu.Lock()
	defer cw.mu.Unlock()
	first := !cw.known
	cw.known = true
	var synced []cache.InformerSynced
	for i, vs := range served {
		kind := clusterKinds[i][0].kind
		old := cw.running[i]
		if old != nil && slices.ContainsFunc(vs, func(a *clusterAPI) bool { return a.version == old.api.version }) {
			cw.missing[i] = 0
			continue // still served as watched
		}
		if old != nil {
			if cw.missing[i]++; cw.missing[i] < goneAfter {
				cw.s.log.Warn("discovery does not list a watched cluster policy kind; still watching it until the next check confirms",
					"kind", kind, "version", old.api.groupVersion())
				continue
			}
			cw.missing[i] = 0
			cw.running[i] = nil
			old.cancel()
			<-old.done
			cw.s.report(old.inf.name, nil) // its failures are over
		}
		if len(vs) == 0 {
			switch {
			case old != nil:
				cw.s.log.Error("cluster policy kind no longer served (its CRD was removed): not watched any more; its policies are gone",
					"kind", kind, "version", old.api.version)
				cw.deleteAbsent(old, nil)
			case first:
				cw.s.log.Warn("cluster policy kind not served by the API server (its CRD is not installed): not watched; checked again periodically",
					"kind", kind, "recheck", cw.s.opts.CRDRecheck.String())
			}
			continue
		}
		r, err := cw.start(ctx, vs[0])
		if err != nil {
			return nil, err
		}
		cw.running[i] = r
		synced = append(synced, r.synced)
		switch {
		case first:
			cw.s.log.Info("watching cluster policies", "kind", kind, "version", vs[0].groupVersion())
		case old != nil:
			// Another version: what the old informer had and the new one
			// does not is deleted once the new one has listed.
			cw.s.log.Warn("cluster policy kind now served as another version: watching that", "kind", kind,
				"was", old.api.groupVersion(), "version", vs[0].groupVersion())
			cw.wg.Add(1)
			go func() {
				defer cw.wg.Done()
				if cache.WaitForCacheSync(ctx.Done(), r.synced) {
					cw.deleteAbsent(old, r)
				}
			}()
		default:
			cw.s.log.Warn("cluster policy kind now served (its CRD was installed): watching it", "kind", kind, "version", vs[0].groupVersion())
			start := cw.s.opts.Now()
			cw.wg.Add(1)
			go func() {
				defer cw.wg.Done()
				if cache.WaitForCacheSync(ctx.Done(), r.synced) {
					cw.s.log.Info("cluster policy kind listed", "kind", kind, "after", cw.s.opts.Now().Sub(start).Round(time.Millisecond).String())
				}
			}()
		}
	}
	return synced, nil
}

// start runs the informer of api; cw.mu is held.
func (cw *clusterWatch) start(ctx context.Context, api *clusterAPI) (*runningKind, error) {
	in := api.informer(cw.s, cw.pc)
	tr := map[string]cache.TransformFunc{
		model.KindAdminNetworkPolicy:         anpTransform,
		model.KindBaselineAdminNetworkPolicy: banpTransform,
	}[api.kind]
	if api.kind == model.KindClusterNetworkPolicy {
		tr = cnpTransform
		if api.version == "v1beta1" {
			tr = cnpV1beta1Transform
		}
	}
	if err := cw.s.setup(in, tr); err != nil {
		return nil, err
	}
	reg, err := in.inf.AddEventHandler(cw.h)
	if err != nil {
		return nil, err
	}
	ictx, cancel := context.WithCancel(ctx)
	r := &runningKind{api: api, inf: in, synced: reg.HasSynced, cancel: cancel, done: make(chan struct{})}
	cw.wg.Add(1)
	go func() {
		defer cw.wg.Done()
		defer close(r.done)
		in.inf.RunWithContext(ictx)
	}()
	return r, nil
}

// deleteAbsent pushes a delete for each policy the stopped informer old
// held that now (nil: nothing) does not.
func (cw *clusterWatch) deleteAbsent(old, now *runningKind) {
	at := cw.s.opts.Now()
	for _, obj := range old.inf.inf.GetStore().List() {
		e, ok := obj.(*entry)
		if !ok {
			continue
		}
		if now != nil {
			if _, found, _ := now.inf.inf.GetStore().Get(e); found {
				continue
			}
		}
		cw.push(source.Event{Kind: e.ev.Kind, ClusterKey: e.ev.ClusterKey, Delete: true, Received: at})
	}
}

// recheck asks discovery again every CRDRecheck until ctx ends.
func (cw *clusterWatch) recheck(ctx context.Context) {
	t := time.NewTicker(cw.s.opts.CRDRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := cw.discover(ctx); err != nil && ctx.Err() == nil {
			cw.s.log.Warn("discovery of cluster policy kinds failed; trying again later", "error", err.Error())
		}
	}
}

// Conversion. Of a cluster policy's metadata only the name counts, as
// for NetworkPolicy.

func anpEvent(p *v1alpha1.AdminNetworkPolicy) source.Event {
	q := &v1alpha1.AdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: p.Name}, Spec: p.Spec}
	cp, err := apiconv.AdminNetworkPolicy(q)
	if err != nil {
		probe := func(s v1alpha1.AdminNetworkPolicySubject) (*model.ClusterPolicy, error) {
			return apiconv.AdminNetworkPolicy(&v1alpha1.AdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "probe"},
				Spec: v1alpha1.AdminNetworkPolicySpec{Subject: s}})
		}
		cp = placeholder(model.KindAdminNetworkPolicy, "v1alpha1", p.Name, model.AdminTier, p.Spec.Priority,
			subjectOf(probe(p.Spec.Subject)), len(p.Spec.Ingress) > 0, len(p.Spec.Egress) > 0)
	}
	return clusterEvent(model.KindAdminNetworkPolicy, p.Name, cp, err)
}

func banpEvent(p *v1alpha1.BaselineAdminNetworkPolicy) source.Event {
	q := &v1alpha1.BaselineAdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: p.Name}, Spec: p.Spec}
	cp, err := apiconv.BaselineAdminNetworkPolicy(q)
	if err != nil {
		probe := func(s v1alpha1.AdminNetworkPolicySubject) (*model.ClusterPolicy, error) {
			// The API allows the one name "default".
			return apiconv.BaselineAdminNetworkPolicy(&v1alpha1.BaselineAdminNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "default"},
				Spec: v1alpha1.BaselineAdminNetworkPolicySpec{Subject: s}})
		}
		cp = placeholder(model.KindBaselineAdminNetworkPolicy, "v1alpha1", p.Name, model.BaselineTier, model.BaselinePriority,
			subjectOf(probe(p.Spec.Subject)), len(p.Spec.Ingress) > 0, len(p.Spec.Egress) > 0)
	}
	return clusterEvent(model.KindBaselineAdminNetworkPolicy, p.Name, cp, err)
}

func cnpEvent(p *v1alpha2.ClusterNetworkPolicy) source.Event {
	q := &v1alpha2.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: p.Name}, Spec: p.Spec}
	cp, err := apiconv.ClusterNetworkPolicy(q)
	if err != nil {
		probe := func(s v1alpha2.ClusterNetworkPolicySubject) (*model.ClusterPolicy, error) {
			return apiconv.ClusterNetworkPolicy(&v1alpha2.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "probe"},
				Spec: v1alpha2.ClusterNetworkPolicySpec{Tier: v1alpha2.AdminTier, Subject: s}})
		}
		cp = placeholder(model.KindClusterNetworkPolicy, "v1alpha2", p.Name, tierOf(string(p.Spec.Tier)), p.Spec.Priority,
			subjectOf(probe(p.Spec.Subject)), len(p.Spec.Ingress) > 0, len(p.Spec.Egress) > 0)
	}
	return clusterEvent(model.KindClusterNetworkPolicy, p.Name, cp, err)
}

func cnpV1beta1Event(p *v1beta1.ClusterNetworkPolicy) source.Event {
	q := &v1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: p.Name}, Spec: p.Spec}
	cp, err := apiconv.ClusterNetworkPolicyV1beta1(q)
	if err != nil {
		probe := func(s v1beta1.ClusterNetworkPolicySubject) (*model.ClusterPolicy, error) {
			return apiconv.ClusterNetworkPolicyV1beta1(&v1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "probe"},
				Spec: v1beta1.ClusterNetworkPolicySpec{Tier: v1beta1.AdminTier, Subject: s}})
		}
		cp = placeholder(model.KindClusterNetworkPolicy, "v1beta1", p.Name, tierOf(string(p.Spec.Tier)), p.Spec.Priority,
			subjectOf(probe(p.Spec.Subject)), len(p.Spec.Ingress) > 0, len(p.Spec.Egress) > 0)
	}
	return clusterEvent(model.KindClusterNetworkPolicy, p.Name, cp, err)
}

func clusterEvent(kind, name string, cp *model.ClusterPolicy, err error) source.Event {
	return source.Event{Kind: source.KindClusterPolicy, ClusterKey: model.ClusterKey{Kind: kind, Name: name}, ClusterPolicy: cp, Err: err}
}

// tierOf reads a ClusterNetworkPolicy's tier for a placeholder: Baseline
// when it says so, else Admin (an invalid tier: the tier that decides
// first).
func tierOf(t string) model.Tier {
	if t == "Baseline" {
		return model.BaselineTier
	}
	return model.AdminTier
}

// subjectOf is the subject of a probe's result when the probe passed,
// else every namespace's pods.
func subjectOf(p *model.ClusterPolicy, err error) model.ClusterSubject {
	if err == nil && p != nil {
		return p.Subject
	}
	return model.ClusterSubject{Namespaces: &model.Selector{}}
}

// allAddresses is every address of both families.
var allAddresses = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

// placeholder is the fail-closed stand-in for a cluster policy apiconv
// rejects, as ConvertPolicy's is for a NetworkPolicy: in its tier and at
// its priority, for the pods its subject selects (every pod when the
// subject is invalid too), it denies all traffic in each direction the
// policy has rules for. Higher-priority Admin rules still decide first.
func placeholder(kind, version, name string, tier model.Tier, prio int32, subject model.ClusterSubject, ingress, egress bool) *model.ClusterPolicy {
	p := &model.ClusterPolicy{Kind: kind, Name: name, APIVersion: PolicyGroup + "/" + version, Tier: tier, Priority: prio, Subject: subject}
	deny := func() []model.ClusterRule {
		return []model.ClusterRule{{Name: "fail-closed placeholder", Action: model.Deny, Peers: []model.ClusterPeer{
			{Namespaces: &model.Selector{}}, {Networks: allAddresses},
		}}}
	}
	if ingress {
		p.IngressRules = deny()
	}
	if egress {
		p.EgressRules = deny()
	}
	return p
}

// discoverFirst asks discovery until it answers, however it fails
// (logged, and reported to health), and starts the informers of the
// served kinds: the first sync must know what is served. It fails only
// when ctx ends.
func (cw *clusterWatch) discoverFirst(ctx context.Context) ([]cache.InformerSynced, error) {
	delay := reachMax
	for {
		synced, err := cw.discover(ctx)
		if err == nil || ctx.Err() != nil {
			return synced, err
		}
		cw.s.log.Warn("discovery of cluster policy kinds failed; retrying before the first sync", "error", err.Error(), "retry_in", delay.String())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 30*time.Second)
	}
}
