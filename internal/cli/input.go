package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/kube"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
)

// input holds the flags that say where a tool reads the cluster from,
// manifests (-f, -R) or a live cluster (--kubeconfig, --context), and
// which namespaces it reports on (-n, -A), as kubectl spells them.
type input struct {
	files      stringList
	recursive  bool
	quiet      bool
	kubeconfig string
	context    string
	namespace  string
	all        bool
	// defaultNS is the namespace for names given without one: -n, else
	// the kubeconfig context's, else "default". Set by load.
	defaultNS string
}

// addInput registers the input flags on fs.
func addInput(fs *flag.FlagSet) *input {
	in := &input{}
	fs.Var(&in.files, "f", "manifest file, directory or - (repeatable)")
	fs.BoolVar(&in.recursive, "R", false, "read the directories given with -f recursively")
	fs.BoolVar(&in.recursive, "recursive", false, "same as -R")
	fs.BoolVar(&in.quiet, "q", false, "no warning line for skipped objects")
	fs.StringVar(&in.kubeconfig, "kubeconfig", "", "read the live cluster of this kubeconfig instead of manifests")
	fs.StringVar(&in.context, "context", "", "kubeconfig context (with --kubeconfig)")
	fs.StringVar(&in.namespace, "n", "", "namespace of names given without one; the only namespace reported (default: all for manifests, the context's for a live cluster)")
	fs.StringVar(&in.namespace, "namespace", "", "same as -n")
	fs.BoolVar(&in.all, "A", false, "report on every namespace")
	fs.BoolVar(&in.all, "all-namespaces", false, "same as -A")
	return in
}

// load reads the cluster. A problem with the input (manifests, the
// kubeconfig, an invalid object) is bad input (2); a live cluster that
// cannot be listed gives no answer (3, never 1, which check uses for
// DENY); any other error of the manifest reader is palisade's fault (3).
func (in *input) load(s Streams) (*model.Cluster, error) {
	if in.all && in.namespace != "" {
		return nil, badInputf("-A and -n %s: give one of them", in.namespace)
	}
	if in.kubeconfig != "" {
		if len(in.files) > 0 {
			return nil, badInputf("-f and --kubeconfig: read manifests or a live cluster, not both")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c, ns, err := kube.ReadCluster(ctx, kube.ClusterSource{Kubeconfig: in.kubeconfig, Context: in.context, Warnings: s.Err})
		var ae *apiconv.Error
		switch {
		case err == nil:
		case errors.Is(err, kube.ErrKubeconfig), errors.As(err, &ae):
			return nil, badInput(err)
		default:
			return nil, noAnswer(err) // the cluster's: unreachable, forbidden
		}
		in.defaultNS = ns
		if in.namespace != "" {
			in.defaultNS = in.namespace
		}
		return c, nil
	}
	if in.context != "" {
		return nil, badInputf("--context needs --kubeconfig")
	}
	if len(in.files) == 0 {
		return nil, badInputf("no manifests: give -f FILE|DIR|- (or --kubeconfig for a live cluster)")
	}
	c, err := readManifests(in, s)
	if err != nil {
		if errors.Is(err, manifest.ErrInvalid) {
			return nil, badInput(err)
		}
		return nil, internalError(err)
	}
	in.defaultNS = "default"
	if in.namespace != "" {
		in.defaultNS = in.namespace
	}
	return c, nil
}

// readManifests reads -f's manifests into a cluster. Tests replace it to
// hand a verb a cluster built in Go.
var readManifests = func(in *input, s Streams) (*model.Cluster, error) {
	objs, err := manifest.ReadWith(in.files, s.In, s.Err, manifest.Options{Recursive: in.recursive, Quiet: in.quiet})
	if err != nil {
		return nil, err
	}
	return manifest.Cluster(objs)
}

// describe names the input for a document's scenario field: the -f
// paths, or the kubeconfig and its context.
func (in *input) describe() string {
	if in.kubeconfig == "" {
		return strings.Join(in.files, ",")
	}
	if in.context != "" {
		return in.kubeconfig + " context " + in.context
	}
	return in.kubeconfig
}

// shows reports whether the tool reports on namespace ns: every namespace
// with -A, only -n's with -n, and for a live cluster without either only
// the context's (as kubectl get does); every namespace for manifests.
func (in *input) shows(ns string) bool {
	switch {
	case in.all:
		return true
	case in.namespace != "":
		return ns == in.namespace
	case in.kubeconfig != "":
		return ns == in.defaultNS
	}
	return true
}

// ref is a name from the command line: NAME, NS/NAME, or with kubectl's
// TYPE prefix TYPE/NAME or TYPE/NS/NAME.
type ref struct {
	typ string // "pod", "svc", or "" for either
	key model.Key
}

// refTypes are the TYPEs of TYPE/NAME: a pod (or a workload, which
// stands for pods) or a Service. TYPE/NAME wins over NS/NAME, as in
// kubectl, which has no NS/NAME: a pod of a namespace called svc is
// pod/svc/NAME.
var refTypes = map[string]string{"pod": "pod", "po": "pod", "svc": "svc", "service": "svc"}

const refForms = "NAMESPACE/NAME, NAME, or TYPE/NAME or TYPE/NAMESPACE/NAME with TYPE pod or svc"

// parseRef reads arg; a name without a namespace is in.defaultNS's.
func (in *input) parseRef(arg string) (ref, error) {
	var r ref
	parts := strings.Split(arg, "/")
	if t, ok := refTypes[strings.ToLower(parts[0])]; ok && len(parts) > 1 {
		r.typ, parts = t, parts[1:]
	}
	switch len(parts) {
	case 1:
		r.key = model.Key{Namespace: in.defaultNS, Name: parts[0]}
	case 2:
		r.key = model.Key{Namespace: parts[0], Name: parts[1]}
	}
	if r.key.Namespace == "" || r.key.Name == "" {
		return r, fmt.Errorf("%q: want %s", arg, refForms)
	}
	return r, nil
}

// findPod returns the pod k names: the pod itself, or else the one
// workload of that namespace and name, whatever its kind (web is
// web[Deployment] when there is no pod web). Several workloads of the
// name are an error listing them; nothing is (nil, nil).
func findPod(e *engine.Engine, k model.Key) (*model.Pod, error) {
	if p := e.Pod(k); p != nil {
		return p, nil
	}
	var found []string
	var p *model.Pod
	for _, q := range e.Pods() {
		if q.Workload != "" && q.Namespace == k.Namespace && q.Name == k.Name+"["+q.Workload+"]" {
			found, p = append(found, q.Key().String()), q
		}
	}
	if len(found) > 1 {
		return nil, fmt.Errorf("%s names %d workloads: say which, %s", k, len(found), strings.Join(found, " or "))
	}
	return p, nil
}

// needPod is findPod for a name that must be a pod.
func needPod(e *engine.Engine, k model.Key) (*model.Pod, error) {
	p, err := findPod(e, k)
	if err == nil && p == nil {
		err = fmt.Errorf("no pod %s", k)
	}
	return p, err
}
