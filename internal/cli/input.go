package cli

import (
	"context"
	"flag"
	"time"

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

// load reads the cluster; every problem with the input is bad input.
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
		c, ns, err := kube.ReadCluster(ctx, kube.ClusterSource{Kubeconfig: in.kubeconfig, Context: in.context})
		if err != nil {
			return nil, badInput(err)
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
	objs, err := manifest.ReadWith(in.files, s.In, s.Err, manifest.Options{Recursive: in.recursive, Quiet: in.quiet})
	if err != nil {
		return nil, badInput(err)
	}
	c, err := manifest.Cluster(objs)
	if err != nil {
		return nil, badInput(err)
	}
	in.defaultNS = "default"
	if in.namespace != "" {
		in.defaultNS = in.namespace
	}
	return c, nil
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
