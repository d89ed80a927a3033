package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	npaclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/source"
)

// DefaultPageSize is how many objects one list request of ReadCluster
// asks for, unless ClusterSource.PageSize says otherwise.
const DefaultPageSize = 500

// maxReported is how many invalid objects ReadCluster's error names.
const maxReported = 20

// ErrKubeconfig is what ReadCluster's error wraps (errors.Is) when the
// kubeconfig is the problem: unreadable or malformed, no such context, no
// current context, or a context that does not make a client
// configuration. A missing file also wraps fs.ErrNotExist. Such an error
// is bad input; any other is the cluster's (unreachable, forbidden) or
// an invalid object's (an *apiconv.Error, see ReadCluster).
var ErrKubeconfig = errors.New("bad kubeconfig")

// kubeconfigError is an error of the kubeconfig: it is ErrKubeconfig and
// wraps its cause.
type kubeconfigError struct{ err error }

func (e *kubeconfigError) Error() string        { return e.err.Error() }
func (e *kubeconfigError) Unwrap() error        { return e.err }
func (e *kubeconfigError) Is(target error) bool { return target == ErrKubeconfig }

func kubeconfigErrorf(format string, args ...any) error {
	return &kubeconfigError{fmt.Errorf(format, args...)}
}

// ClusterSource says which live cluster ReadCluster reads.
type ClusterSource struct {
	Kubeconfig string // path to the kubeconfig file
	Context    string // its context; "" for the current one
	// PageSize is the limit of each list request (continue tokens fetch
	// the rest); DefaultPageSize when 0.
	PageSize int64
	// Warnings gets one line per warning (an address that two live pods
	// report); os.Stderr when nil.
	Warnings io.Writer
}

// ReadCluster lists the cluster's Pods, Namespaces, Services,
// NetworkPolicies, Nodes and cluster-wide policies (those of the kinds
// whose CRDs are installed; ClusterNetworkPolicy as v1alpha2 where served,
// else v1beta1) into a model.Cluster, validated as manifests are, and
// returns the context's namespace ("default" when it names none).
//
// Every object goes through the conversion the agent uses (podEvent,
// namespaceEvent, policyEvent, nodeEvent; apiconv.Service for Services,
// which the agent does not watch), so a pod that has terminated (phase
// Succeeded or Failed) is left out, as the agent deletes it. An object
// that fails conversion is an error naming kind, object and field; a
// NetworkPolicy too (the agent enforces a fail-closed placeholder for it,
// but a tool that answers questions must not answer from a stand-in).
//
// When two live pods report one address (an address being reused while
// the old pod's status lags), the address goes to one of them, the other
// keeps its other addresses, and a warning says so: see ownAddresses.
func ReadCluster(ctx context.Context, src ClusterSource) (*model.Cluster, string, error) {
	cfg, ctxName, ns, err := clusterConfig(src)
	if err != nil {
		return nil, "", err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", kubeconfigErrorf("kubeconfig %s, context %s: %w", src.Kubeconfig, ctxName, err)
	}
	size := src.PageSize
	if size <= 0 {
		size = DefaultPageSize
	}
	where := fmt.Sprintf("context %s (%s)", ctxName, cfg.Host)
	listErr := func(resource string, err error) error {
		return fmt.Errorf("%s: listing %s: %w", where, resource, err)
	}

	c := model.NewCluster()
	var invalid []error
	note := func(err error) {
		if err != nil {
			invalid = append(invalid, err)
		}
	}

	// Namespaces first, so that the ones listed keep their labels; the
	// others (a namespace deleted while the rest was listed) get the name
	// label only, as manifest.Cluster does.
	nss, err := listAll(ctx, size, cs.CoreV1().Namespaces().List,
		func(l *corev1.NamespaceList) []corev1.Namespace { return l.Items }, namespaceEvent)
	if err != nil {
		return nil, "", listErr("namespaces", err)
	}
	for _, ev := range nss {
		note(ev.Err)
		if ev.Namespace != nil {
			c.Namespaces[ev.Namespace.Name] = ev.Namespace
		}
	}

	pods, err := listAll(ctx, size, cs.CoreV1().Pods("").List,
		func(l *corev1.PodList) []corev1.Pod { return l.Items }, podEvent)
	if err != nil {
		return nil, "", listErr("pods", err)
	}
	var live []source.Event
	for _, ev := range pods {
		if ev.Delete { // finished: the agent deletes it too
			continue
		}
		note(ev.Err)
		if ev.Pod != nil {
			live = append(live, ev)
		}
	}
	for _, p := range ownAddresses(live, warner(src.Warnings)) {
		c.Pods[p.Key()] = p
		c.EnsureNamespace(p.Namespace)
	}

	svcs, err := listAll(ctx, size, cs.CoreV1().Services("").List,
		func(l *corev1.ServiceList) []corev1.Service { return l.Items }, serviceResult)
	if err != nil {
		return nil, "", listErr("services", err)
	}
	for _, r := range svcs {
		note(r.err)
		if r.svc != nil {
			c.Services[r.svc.Key()] = r.svc
			c.EnsureNamespace(r.svc.Namespace)
		}
	}

	pols, err := listAll(ctx, size, cs.NetworkingV1().NetworkPolicies("").List,
		func(l *networkingv1.NetworkPolicyList) []networkingv1.NetworkPolicy { return l.Items }, policyEvent)
	if err != nil {
		return nil, "", listErr("networkpolicies", err)
	}
	for _, ev := range pols {
		if ev.Err != nil { // ev.Policy is the agent's placeholder: not used here
			note(ev.Err)
			continue
		}
		c.Policies[ev.Policy.Key()] = ev.Policy
		c.EnsureNamespace(ev.Policy.Namespace)
	}

	nodes, err := listAll(ctx, size, cs.CoreV1().Nodes().List,
		func(l *corev1.NodeList) []corev1.Node { return l.Items }, nodeEvent)
	if err != nil {
		return nil, "", listErr("nodes", err)
	}
	for _, ev := range nodes {
		note(ev.Err)
		if ev.Node != nil {
			c.Nodes[ev.Node.Name] = ev.Node
		}
	}

	// Cluster-wide policies, of the kinds whose CRDs are installed.
	pc, err := npaclient.NewForConfig(PolicyConfig(cfg))
	if err != nil {
		return nil, "", kubeconfigErrorf("kubeconfig %s, context %s: %w", src.Kubeconfig, ctxName, err)
	}
	served, err := servedClusterAPIs(ctx, cs.Discovery())
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", where, err)
	}
	for _, vs := range served {
		if len(vs) == 0 {
			continue // not installed: there are none
		}
		evs, err := vs[0].list(ctx, pc, size)
		if err != nil {
			return nil, "", listErr(vs[0].resource+"."+vs[0].groupVersion(), err)
		}
		for _, ev := range evs {
			if ev.Err != nil { // ev.ClusterPolicy is the agent's placeholder
				note(ev.Err)
				continue
			}
			c.ClusterPolicies[ev.ClusterKey] = ev.ClusterPolicy
		}
	}

	if len(invalid) > 0 {
		return nil, "", invalidObjects(where, invalid)
	}
	return c, ns, nil
}

// clusterConfig loads the kubeconfig file alone (no KUBECONFIG merging,
// no in-cluster fallback) and returns the client configuration of the
// context, the context's name and its namespace.
func clusterConfig(src ClusterSource) (cfg *rest.Config, ctxName, ns string, err error) {
	if src.Kubeconfig == "" {
		return nil, "", "", kubeconfigErrorf("no kubeconfig file given")
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: src.Kubeconfig}
	raw, err := rules.Load()
	if err != nil {
		return nil, "", "", kubeconfigErrorf("kubeconfig %s: %w", src.Kubeconfig, err)
	}
	ctxName = src.Context
	if ctxName == "" {
		ctxName = raw.CurrentContext
	}
	if ctxName == "" {
		return nil, "", "", kubeconfigErrorf("kubeconfig %s has no current-context: give --context (%s)",
			src.Kubeconfig, contextList(raw.Contexts))
	}
	if _, ok := raw.Contexts[ctxName]; !ok {
		return nil, "", "", kubeconfigErrorf("kubeconfig %s has no context %q (%s)",
			src.Kubeconfig, ctxName, contextList(raw.Contexts))
	}
	cc := clientcmd.NewNonInteractiveClientConfig(*raw, ctxName, &clientcmd.ConfigOverrides{CurrentContext: ctxName}, rules)
	cfg, err = cc.ClientConfig()
	if err != nil {
		return nil, "", "", kubeconfigErrorf("kubeconfig %s, context %s: %w", src.Kubeconfig, ctxName, err)
	}
	ns, _, err = cc.Namespace()
	if err != nil {
		return nil, "", "", kubeconfigErrorf("kubeconfig %s, context %s: %w", src.Kubeconfig, ctxName, err)
	}
	if ns == "" {
		ns = apiconv.DefaultNamespace
	}
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	cfg.UserAgent = "palisade"
	// A handful of list requests, paged: client-go's default of 5 a
	// second would make a large cluster wait on the client's own limiter.
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, ctxName, ns, nil
}

// contextList says which contexts a kubeconfig has.
func contextList[V any](contexts map[string]V) string {
	if len(contexts) == 0 {
		return "it has no contexts"
	}
	names := make([]string, 0, len(contexts))
	for n := range contexts {
		names = append(names, n)
	}
	sort.Strings(names)
	return "its contexts: " + strings.Join(names, ", ")
}

// listAll lists every object of one resource, size at a time, following
// continue tokens, and converts each object as its page arrives (the
// pages' API objects are not all held at once). All pages come from one
// snapshot of the resource. When a continue token expires (the snapshot
// was compacted away, after minutes), the listing starts again as one
// unpaged list, as client-go's pager does.
func listAll[L interface{ GetContinue() string }, T, R any](ctx context.Context, size int64,
	list func(context.Context, metav1.ListOptions) (L, error), items func(L) []T, convert func(*T) R,
) ([]R, error) {
	var out []R
	opts := metav1.ListOptions{Limit: size}
	for {
		l, err := list(ctx, opts)
		if err != nil {
			if opts.Continue != "" && apierrors.IsResourceExpired(err) {
				out, opts = out[:0], metav1.ListOptions{}
				continue
			}
			return nil, err
		}
		objs := items(l)
		for i := range objs {
			out = append(out, convert(&objs[i]))
		}
		if opts.Continue = l.GetContinue(); opts.Continue == "" {
			return out, nil
		}
	}
}

type serviceInfo struct {
	svc *model.Service
	err error
}

func serviceResult(s *corev1.Service) serviceInfo {
	svc, err := apiconv.Service(s)
	return serviceInfo{svc, err}
}

// ownAddresses returns the pods, each address owned by one of them.
// manifest.Cluster rejects two pods with one address; a live cluster can
// briefly show it (an address reused while the old pod's status lags, or
// a pod being deleted), and one such moment must not make the whole
// cluster unreadable. The address goes to the pod the agent enforces it
// for (source.Claim.Beats: not being deleted, else newer, else later in
// name order). The other pod is kept without that address, and warn says
// so. Host-network pods share their node's address and are left alone,
// as in manifest.Cluster.
func ownAddresses(pods []source.Event, warn func(string)) []*model.Pod {
	sort.SliceStable(pods, func(i, j int) bool { return pods[i].Key.Less(pods[j].Key) })
	owner := map[netip.Addr]int{}
	lose := map[int][]netip.Addr{} // pod index -> addresses it does not own
	for i := range pods {
		p := pods[i].Pod
		if p.HostNetwork {
			continue
		}
		for _, ip := range p.IPs {
			j, taken := owner[ip]
			if !taken {
				owner[ip] = i
				continue
			}
			winner, loser := i, j
			wins, why := pods[i].Claim().Beats(pods[j].Claim())
			if !wins {
				winner, loser = j, i
			}
			owner[ip] = winner
			lose[loser] = append(lose[loser], ip)
			warn(fmt.Sprintf("pods %s and %s both report address %s: taking it as %s's (%s)",
				pods[loser].Key, pods[winner].Key, ip, pods[winner].Key, why))
		}
	}
	out := make([]*model.Pod, 0, len(pods))
	for i := range pods {
		p := pods[i].Pod
		if gone := lose[i]; len(gone) > 0 {
			q := *p // model objects are never changed in place
			q.IPs = slices.DeleteFunc(slices.Clone(p.IPs), func(ip netip.Addr) bool { return slices.Contains(gone, ip) })
			if len(q.IPs) == 0 {
				q.IPs = nil
			}
			p = &q
		}
		out = append(out, p)
	}
	return out
}

func warner(w io.Writer) func(string) {
	if w == nil {
		w = os.Stderr
	}
	return func(msg string) { fmt.Fprintf(w, "warning: %s\n", msg) }
}

// invalidObjects reports the objects that failed conversion, each with
// its kind, namespace/name and field (apiconv.Error), at most
// maxReported of them.
func invalidObjects(where string, errs []error) error {
	if len(errs) == 1 {
		return fmt.Errorf("%s: %w", where, errs[0])
	}
	shown := errs
	if len(shown) > maxReported {
		shown = shown[:maxReported]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d invalid objects:", where, len(errs))
	for _, e := range shown {
		b.WriteString("\n")
		b.WriteString(e.Error())
	}
	if n := len(errs) - len(shown); n > 0 {
		fmt.Fprintf(&b, "\n... and %d more", n)
	}
	return &invalidError{msg: b.String(), errs: errs}
}

// invalidError keeps every conversion error for errors.As.
type invalidError struct {
	msg  string
	errs []error
}

func (e *invalidError) Error() string   { return e.msg }
func (e *invalidError) Unwrap() []error { return e.errs }
