// Package manifest reads Kubernetes manifests the way kubectl apply -f
// does (files, directories, -R, stdin; YAML or JSON; several documents per
// file; List kinds) into typed API objects and, through internal/apiconv,
// into the model. It reads the kinds palisade needs (Namespace, Pod,
// Service, NetworkPolicy, Node), the cluster-wide policies of
// policy.networking.k8s.io (AdminNetworkPolicy and
// BaselineAdminNetworkPolicy v1alpha1, ClusterNetworkPolicy v1alpha2 and
// v1beta1: cluster-scoped, so a metadata.namespace on them is cleared, as
// the API server does) and the workloads whose pod templates
// stand for their pods (Deployment, ReplicaSet, StatefulSet, DaemonSet,
// Job, CronJob, ReplicationController: one model.Pod each, named
// "NAME[KIND]"). It skips other kinds, finished pods and, in directories,
// files that hold no Kubernetes objects, counting them in one warning
// line each, and names other APIs' policies (Cilium, Calico, Antrea...)
// in a "not evaluated" warning; it rejects invalid input as a whole,
// naming file, document, object and field.
//
// Decoding is strict, like kubectl's server-side field validation: an
// unknown or repeated field is an error, and so is a kind that its
// apiVersion does not have (kind: networkpolicy) in the groups palisade
// reads from. YAML scalars follow YAML 1.2: an unquoted y, yes or on is a
// string (so a label value y stays "y"), and only true and false are
// booleans. Inputs are bounded: a file, pipe or stdin of at most 64 MiB,
// only regular files and pipes (not devices or sockets), and alias
// expansion bounded in bytes.
//
// manifest imports model and apiconv; it knows nothing of the engine, the
// dataplane or clients.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	sjson "sigs.k8s.io/json"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/model"
)

// Object is one Kubernetes object read from the input.
type Object struct {
	// Source says where the object came from: "FILE#N" for the N-th
	// non-empty document of FILE ("<stdin>#N" for stdin), with
	// ".items[I]" appended for an item of a List.
	Source string
	// Kind is one of Namespace, Pod, Service, NetworkPolicy, Node,
	// AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy,
	// or a workload kind (apiconv.WorkloadKinds).
	Kind string
	// Key names the object (a workload by its own name, not its model
	// pod's). The namespace is defaulted to "default" for namespaced kinds
	// and empty for cluster-scoped ones (Namespace, Node, the cluster-wide
	// policies).
	Key model.Key
	// API is the decoded object (*corev1.Pod, *appsv1.Deployment, ...),
	// as written except that apiVersion and kind are always set and
	// metadata.namespace is defaulted as in Key (cleared for cluster-scoped
	// kinds). No other API defaulting is applied.
	API runtime.Object
	// Model is the converted object: *model.Namespace, *model.Pod (for a
	// Pod and for a workload), *model.Service, *model.Policy,
	// *model.ClusterPolicy or *model.Node.
	Model any
}

// ErrInvalid matches every *Error with errors.Is: the input (not palisade)
// is at fault, which a CLI reports with exit status 2.
var ErrInvalid = errors.New("invalid input")

// Error is a problem with one input document: it cannot be read or decoded,
// or the object in it is invalid. Read joins one Error per bad document.
type Error struct {
	// Source is the document ("FILE#N", see Object.Source), or the path
	// when the file itself cannot be read.
	Source string
	// Kind and Key name the object when they are known.
	Kind string
	Key  model.Key
	// Err is the cause: an *apiconv.Error for an invalid object, otherwise
	// a decoding or I/O error.
	Err error
}

// Error returns one line per problem, each "SOURCE: KIND NS/NAME: PROBLEM"
// (the object part only when it is known).
func (e *Error) Error() string {
	prefix := e.Source + ": "
	var ae *apiconv.Error
	if e.Kind != "" && !errors.As(e.Err, &ae) {
		prefix += apiconv.Describe(e.Kind, e.Key) + ": "
	}
	msg := "invalid"
	if e.Err != nil {
		msg = e.Err.Error()
	}
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// kindInfo describes a kind that palisade reads.
type kindInfo struct {
	// versions are the kind's apiVersions palisade reads, each with its
	// Go type; an object of another version of the same group is an error.
	versions   []kindVersion
	namespaced bool
	// groupOnly: other APIs have kinds of the same name (Antrea's
	// ClusterNetworkPolicy, crd.antrea.io), so an object of this kind in
	// another group is another API's, skipped, not an error.
	groupOnly bool
}

type kindVersion struct {
	apiVersion string
	newAPI     func() apiObject
}

// newAPI returns a new object of apiVersion, or nil when palisade does
// not read the kind in that version.
func (k kindInfo) newAPI(apiVersion string) apiObject {
	for _, v := range k.versions {
		if v.apiVersion == apiVersion {
			return v.newAPI()
		}
	}
	return nil
}

// unsupportedVersion is the error for an apiVersion the kind lacks.
func (k kindInfo) unsupportedVersion(apiVersion string) error {
	quoted := make([]string, len(k.versions))
	for i, v := range k.versions {
		quoted[i] = fmt.Sprintf("%q", v.apiVersion)
	}
	return fmt.Errorf("apiVersion: Unsupported value: %q: supported values: %s", apiVersion, strings.Join(quoted, ", "))
}

// one is a kind read in one apiVersion.
func one(apiVersion string, namespaced bool, newAPI func() apiObject) kindInfo {
	return kindInfo{versions: []kindVersion{{apiVersion, newAPI}}, namespaced: namespaced}
}

// apiObject is a typed API object.
type apiObject interface {
	runtime.Object
	metav1.Object
}

// readable holds the kinds palisade reads.
var readable = map[string]kindInfo{
	"Namespace":             one("v1", false, func() apiObject { return &corev1.Namespace{} }),
	"Node":                  one("v1", false, func() apiObject { return &corev1.Node{} }),
	"Pod":                   one("v1", true, func() apiObject { return &corev1.Pod{} }),
	"Service":               one("v1", true, func() apiObject { return &corev1.Service{} }),
	"NetworkPolicy":         one("networking.k8s.io/v1", true, func() apiObject { return &networkingv1.NetworkPolicy{} }),
	"Deployment":            one("apps/v1", true, func() apiObject { return &appsv1.Deployment{} }),
	"ReplicaSet":            one("apps/v1", true, func() apiObject { return &appsv1.ReplicaSet{} }),
	"StatefulSet":           one("apps/v1", true, func() apiObject { return &appsv1.StatefulSet{} }),
	"DaemonSet":             one("apps/v1", true, func() apiObject { return &appsv1.DaemonSet{} }),
	"Job":                   one("batch/v1", true, func() apiObject { return &batchv1.Job{} }),
	"CronJob":               one("batch/v1", true, func() apiObject { return &batchv1.CronJob{} }),
	"ReplicationController": one("v1", true, func() apiObject { return &corev1.ReplicationController{} }),

	model.KindAdminNetworkPolicy: {groupOnly: true, versions: []kindVersion{
		{v1alpha1.GroupVersion.String(), func() apiObject { return &v1alpha1.AdminNetworkPolicy{} }}}},
	model.KindBaselineAdminNetworkPolicy: {groupOnly: true, versions: []kindVersion{
		{v1alpha1.GroupVersion.String(), func() apiObject { return &v1alpha1.BaselineAdminNetworkPolicy{} }}}},
	model.KindClusterNetworkPolicy: {groupOnly: true, versions: []kindVersion{
		{v1alpha2.GroupVersion.String(), func() apiObject { return &v1alpha2.ClusterNetworkPolicy{} }},
		{v1beta1.GroupVersion.String(), func() apiObject { return &v1beta1.ClusterNetworkPolicy{} }}}},
}

// lookupKind returns what palisade knows of kind in apiVersion, and false
// for kinds it skips: kinds it does not read, and another group's kind of
// the same name as a groupOnly kind.
func lookupKind(kind, apiVersion string) (kindInfo, bool) {
	info, ok := readable[kind]
	if ok && info.groupOnly && group(apiVersion) != group(info.versions[0].apiVersion) {
		return kindInfo{}, false
	}
	return info, ok
}

// group returns an apiVersion's group ("" for v1).
func group(apiVersion string) string {
	g, _, ok := strings.Cut(apiVersion, "/")
	if !ok {
		return ""
	}
	return g
}

const readKinds = "palisade reads Namespace, Pod, Service, NetworkPolicy, Node, " +
	"the policy.networking.k8s.io AdminNetworkPolicy, BaselineAdminNetworkPolicy and ClusterNetworkPolicy, and the pod templates of " +
	"Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob, ReplicationController"

// groupKinds holds every kind of the API versions palisade reads from
// (v1, apps/v1, batch/v1, networking.k8s.io/v1, policy.networking.k8s.io
// v1alpha1, v1alpha2 and v1beta1), by apiVersion. A kind
// those versions do not have is a mistake that kubectl rejects ("no
// matches for kind"), not an object to skip.
var groupKinds = func() map[string]map[string]bool {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, networkingv1.AddToScheme,
		v1alpha1.Install, v1alpha2.Install, v1beta1.Install} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	out := map[string]map[string]bool{}
	for gvk := range s.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal {
			continue
		}
		av := gvk.GroupVersion().String()
		if out[av] == nil {
			out[av] = map[string]bool{}
		}
		out[av][gvk.Kind] = true
	}
	return out
}()

// unknownKind explains a kind that h.APIVersion, one of groupKinds, does
// not have, with a "did you mean" when a kind differs from it only in case
// or by a plural ending, or is in another of those versions.
func unknownKind(h header) error {
	low := strings.ToLower(h.Kind)
	var same, other []string
	for av, kinds := range groupKinds {
		for k := range kinds {
			kl := strings.ToLower(k)
			if low != kl && low != kl+"s" && low != kl+"es" && low != strings.TrimSuffix(kl, "y")+"ies" {
				continue
			}
			if av == h.APIVersion {
				same = append(same, fmt.Sprintf("kind: %s", k))
			} else {
				other = append(other, fmt.Sprintf("apiVersion: %s, kind: %s", av, k))
			}
		}
	}
	sort.Strings(same)
	sort.Strings(other)
	hint := append(same, other...)
	msg := fmt.Sprintf("kind: Invalid value: %q: %s has no such kind (kubectl: no matches for kind)", h.Kind, h.APIVersion)
	if len(hint) > 0 {
		msg += "; did you mean " + strings.Join(hint, " or ") + "?"
	}
	return errors.New(msg)
}

// maxListDepth bounds Lists nested in Lists.
const maxListDepth = 8

// maxInputBytes bounds one file or stdin: more is an error, never a
// read of endless input.
const maxInputBytes = 64 << 20

// Options change how ReadWith reads.
type Options struct {
	// Recursive reads directories' subdirectories too (kubectl -R).
	Recursive bool
	// Quiet drops the warning lines about what was skipped.
	Quiet bool
}

// Read is ReadWith without options.
func Read(paths []string, stdin io.Reader, warn io.Writer) ([]Object, error) {
	return ReadWith(paths, stdin, warn, Options{})
}

// ReadWith reads every path like kubectl apply -f: a file, a directory
// (its *.yaml, *.yml and *.json files in name order; with
// opt.Recursive its subdirectories' too, in the same order), or "-" for
// stdin (at most once). Only regular files are read, each of at most
// maxInputBytes.
//
// It returns the objects in input order, or, if anything is wrong
// anywhere, no objects and every problem found, joined; each is an *Error
// (errors.Is(err, ErrInvalid) holds).
//
// What it skips is counted on warn (which may be nil) unless opt.Quiet,
// after a successful read: one line for objects of kinds palisade does
// not read, finished pods (status.phase Succeeded or Failed, which the
// agent ignores too) and NetworkPolicies' status fields; one line for the
// files found in directories that hold no Kubernetes objects (documents
// without apiVersion and kind, e.g. a Helm values.yaml). Such a file
// named explicitly is an error.
func ReadWith(paths []string, stdin io.Reader, warn io.Writer, opt Options) ([]Object, error) {
	r := reader{opt: opt, skipped: map[string]int{}, otherPolicies: map[string]int{}}
	stdinRead := false
	for _, p := range paths {
		if p == "-" {
			if stdinRead {
				r.fail(&Error{Source: "<stdin>", Err: errors.New(`"-" (stdin) given more than once`)})
				continue
			}
			stdinRead = true
			if stdin == nil {
				stdin = bytes.NewReader(nil)
			}
			data, err := readAll(stdin)
			if err != nil {
				r.fail(&Error{Source: "<stdin>", Err: err})
				continue
			}
			r.stream("<stdin>", data, false)
			continue
		}
		r.path(p)
	}
	if len(r.errs) > 0 {
		return nil, errors.Join(r.errs...)
	}
	if warn != nil && !opt.Quiet {
		r.warnings(warn)
	}
	if warn != nil && len(r.otherPolicies) > 0 {
		// Not silenced by -q: the answer is partial.
		fmt.Fprintf(warn, "warning: not evaluated: %s; palisade evaluates networking.k8s.io/v1 NetworkPolicy and policy.networking.k8s.io "+
			"AdminNetworkPolicy, BaselineAdminNetworkPolicy and ClusterNetworkPolicy only, so its answers leave these out\n", countKinds(r.otherPolicies))
	}
	return r.objs, nil
}

// readAll reads at most maxInputBytes.
func readAll(in io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(in, maxInputBytes+1))
	if err != nil {
		return nil, pathError(err)
	}
	if len(data) > maxInputBytes {
		return nil, errTooBig
	}
	return data, nil
}

var errTooBig = fmt.Errorf("more than %d MiB: palisade reads no larger manifests", maxInputBytes>>20)

// DecodeObject decodes one YAML or JSON document holding one object of a
// kind palisade reads, naming it source in errors (used as given, without
// a document number). Lists, other kinds, finished pods and empty
// documents are errors. Errors are *Error values.
func DecodeObject(doc []byte, source string) (Object, error) {
	docs, _, err := splitDocuments(doc)
	if err != nil {
		return Object{}, &Error{Source: source, Err: err}
	}
	if len(docs) != 1 {
		return Object{}, &Error{Source: source, Err: fmt.Errorf("want one object, found %d documents", len(docs))}
	}
	r := reader{single: true}
	r.document(source, docs[0].json, nil, 0)
	if len(r.errs) > 0 {
		return Object{}, errors.Join(r.errs...)
	}
	if len(r.objs) != 1 {
		return Object{}, &Error{Source: source, Err: errors.New("want one object")}
	}
	return r.objs[0], nil
}

// reader accumulates objects, errors and what was skipped over all
// inputs.
type reader struct {
	opt    Options
	single bool // DecodeObject: no Lists; other kinds and finished pods are errors
	objs   []Object
	errs   []error

	skipped map[string]int // objects of other kinds, by kind
	// otherPolicies counts policies of other APIs, by apiVersion and kind.
	otherPolicies map[string]int
	finished      int      // finished pods
	scaledToZero  int      // workloads that run no pods
	statuses      int      // NetworkPolicies with a status field
	notObjs       []string // files in directories without Kubernetes objects
	subdirs       []string // subdirectories not read (no -R)
}

func (r *reader) fail(err *Error) { r.errs = append(r.errs, err) }

// pathError turns an *fs.PathError into its cause, since Error names the
// path already.
func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// path reads a path given explicitly.
func (r *reader) path(p string) {
	fi, err := os.Stat(p)
	if err != nil {
		r.fail(&Error{Source: p, Err: pathError(err)})
		return
	}
	if fi.IsDir() {
		r.dir(p)
		return
	}
	r.file(p, fi, false)
}

// dir reads a directory's manifest files in name order, and its
// subdirectories with -R (where they fall in that order, as kubectl's
// walk does). Symbolic links to directories are not followed.
func (r *reader) dir(p string) {
	entries, err := os.ReadDir(p) // sorted by name
	if err != nil {
		r.fail(&Error{Source: p, Err: pathError(err)})
		return
	}
	for _, e := range entries {
		name := filepath.Join(p, e.Name())
		if e.IsDir() {
			if r.opt.Recursive {
				r.dir(name)
			} else {
				r.subdirs = append(r.subdirs, name)
			}
			continue
		}
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
		default:
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			r.fail(&Error{Source: name, Err: pathError(err)})
			continue
		}
		if fi.IsDir() {
			continue
		}
		r.file(name, fi, true)
	}
}

// file reads a regular file, or a pipe named with -f; inDir says it was
// found in a directory, not named.
func (r *reader) file(name string, fi fs.FileInfo, inDir bool) {
	// A pipe named on the command line is read like stdin (`-f <(helm
	// template …)`), bounded the same way; devices and sockets never.
	pipe := fi.Mode()&fs.ModeNamedPipe != 0 && !inDir
	if !fi.Mode().IsRegular() && !pipe {
		r.fail(&Error{Source: name, Err: fmt.Errorf("not a regular file (%s): palisade reads files, directories and - (stdin)", fileType(fi.Mode()))})
		return
	}
	if fi.Size() > maxInputBytes {
		r.fail(&Error{Source: name, Err: errTooBig})
		return
	}
	f, err := os.Open(name)
	if err != nil {
		r.fail(&Error{Source: name, Err: pathError(err)})
		return
	}
	defer f.Close()
	data, err := readAll(f)
	if err != nil {
		r.fail(&Error{Source: name, Err: err})
		return
	}
	r.stream(name, data, inDir)
}

// fileType names what a non-regular file is.
func fileType(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "mode " + m.Type().String()
}

// stream reads every document of one input. A file found in a directory
// whose documents are none of them Kubernetes objects is skipped.
func (r *reader) stream(name string, data []byte, inDir bool) {
	docs, bad, err := splitDocuments(data)
	if err == nil && inDir && len(docs) > 0 && !anyObject(docs) {
		r.notObjs = append(r.notObjs, name)
		return
	}
	for _, d := range docs {
		r.document(fmt.Sprintf("%s#%d", name, d.index), d.json, nil, 0)
	}
	if err != nil {
		r.fail(&Error{Source: fmt.Sprintf("%s#%d", name, bad), Err: err})
	}
}

// anyObject reports whether a document has an apiVersion or a kind at its
// top level, as every Kubernetes object (and List) has.
func anyObject(docs []document) bool {
	for _, d := range docs {
		var m map[string]json.RawMessage
		if json.Unmarshal(d.json, &m) != nil {
			continue
		}
		if _, ok := m["apiVersion"]; ok {
			return true
		}
		if _, ok := m["kind"]; ok {
			return true
		}
	}
	return false
}

// header is the part of every object read before its kind is known.
type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// names reads metadata.name and metadata.namespace, best effort, to name an
// object in warnings and errors.
func names(data []byte) (name, namespace string) {
	var m struct {
		Metadata struct {
			Name      any `json:"name"`
			Namespace any `json:"namespace"`
		} `json:"metadata"`
	}
	if json.Unmarshal(data, &m) != nil {
		return "", ""
	}
	name, _ = m.Metadata.Name.(string)
	namespace, _ = m.Metadata.Namespace.(string)
	return name, namespace
}

// document reads one object (or List) in JSON. inherit, when set, gives
// the apiVersion and kind of a typed List's items, which may omit them.
func (r *reader) document(source string, data []byte, inherit *header, depth int) {
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		r.fail(&Error{Source: source, Err: errors.New("document is not an object")})
		return
	}
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		r.fail(&Error{Source: source, Err: fmt.Errorf("reading apiVersion and kind: %v", err)})
		return
	}
	if inherit != nil {
		if h.Kind == "" {
			h.Kind = inherit.Kind
		}
		if h.APIVersion == "" {
			h.APIVersion = inherit.APIVersion
		}
	}
	name, namespace := names(data)
	if h.Kind == "" {
		r.fail(&Error{Source: source, Err: errors.New("kind: Required value: the document has no kind")})
		return
	}
	info, known := lookupKind(h.Kind, h.APIVersion)
	key := model.Key{Name: name}
	if info.namespaced {
		key.Namespace = namespace
		if key.Namespace == "" {
			key.Namespace = apiconv.DefaultNamespace
		}
	}
	if h.APIVersion == "" {
		r.fail(&Error{Source: source, Kind: h.Kind, Key: key, Err: errors.New("apiVersion: Required value")})
		return
	}

	if base, ok := listOf(h.Kind, h.APIVersion); ok {
		r.list(source, data, h, base, depth)
		return
	}
	if !known {
		if kinds, ok := groupKinds[h.APIVersion]; ok && !kinds[h.Kind] {
			r.fail(&Error{Source: source, Kind: h.Kind, Key: model.Key{Namespace: namespace, Name: name}, Err: unknownKind(h)})
			return
		}
		r.skip(source, h, name, namespace)
		return
	}
	if info.newAPI(h.APIVersion) == nil {
		r.fail(&Error{Source: source, Kind: h.Kind, Key: key, Err: info.unsupportedVersion(h.APIVersion)})
		return
	}
	obj, keep, err := r.decode(h, info, data)
	if err != nil {
		r.fail(&Error{Source: source, Kind: h.Kind, Key: key, Err: err})
		return
	}
	if keep {
		obj.Source = source
		r.objs = append(r.objs, obj)
	}
}

// listOf reports whether kind (of apiVersion) is a list palisade
// expands, and the kind of its items ("" for List, whose items name their
// own kinds).
func listOf(kind, apiVersion string) (string, bool) {
	if kind == "List" {
		return "", true
	}
	base, ok := strings.CutSuffix(kind, "List")
	if !ok {
		return "", false
	}
	if _, known := lookupKind(base, apiVersion); !known {
		return "", false
	}
	return base, true
}

// list expands a List or a typed list (PodList, ...) into its items.
func (r *reader) list(source string, data []byte, h header, base string, depth int) {
	if r.single {
		r.fail(&Error{Source: source, Kind: h.Kind, Err: errors.New("want a single object, not a list")})
		return
	}
	info := one("v1", false, func() apiObject { return nil })
	if base != "" {
		info, _ = lookupKind(base, h.APIVersion)
	}
	if !slices.ContainsFunc(info.versions, func(v kindVersion) bool { return v.apiVersion == h.APIVersion }) {
		r.fail(&Error{Source: source, Kind: h.Kind, Err: info.unsupportedVersion(h.APIVersion)})
		return
	}
	if depth >= maxListDepth {
		r.fail(&Error{Source: source, Kind: h.Kind, Err: errors.New("lists nested too deeply")})
		return
	}
	var l struct {
		metav1.TypeMeta `json:",inline"`
		metav1.ListMeta `json:"metadata,omitempty"`
		Items           []json.RawMessage `json:"items"`
	}
	if err := strictUnmarshal(data, &l); err != nil {
		r.fail(&Error{Source: source, Kind: h.Kind, Err: err})
		return
	}
	var inherit *header
	if base != "" {
		inherit = &header{APIVersion: h.APIVersion, Kind: base}
	}
	for i, item := range l.Items {
		r.document(fmt.Sprintf("%s.items[%d]", source, i), item, inherit, depth+1)
	}
}

// skip counts an object of a kind palisade does not read (an error in
// DecodeObject).
func (r *reader) skip(source string, h header, name, namespace string) {
	if r.single {
		what := h.APIVersion + " " + h.Kind
		switch {
		case name != "" && namespace != "":
			what += " " + namespace + "/" + name
		case name != "":
			what += " " + name
		}
		r.fail(&Error{Source: source, Err: fmt.Errorf("unsupported kind: %s (%s)", what, readKinds)})
		return
	}
	if strings.Contains(h.Kind, "NetworkPolicy") {
		// Another API's policy (Cilium, Calico, Antrea...) changes who
		// can reach whom, and the answer leaves it out.
		r.otherPolicies[h.APIVersion+" "+h.Kind]++
		return
	}
	r.skipped[h.Kind]++
}

// strictUnmarshal decodes JSON into v, rejecting unknown and repeated fields
// as the API server's strict field validation does; the errors name the
// field path ("unknown field \"spec.podSelectr\"").
func strictUnmarshal(data []byte, v any) error {
	strict, err := sjson.UnmarshalStrict(data, v)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// exportedPolicy is a NetworkPolicy that may carry the status field the
// API had before v1.27 (conditions only), which kubectl get -o yaml of
// such clusters prints, often as "status: {}". It is read and ignored.
type exportedPolicy struct {
	networkingv1.NetworkPolicy
	Status *struct {
		Conditions []metav1.Condition `json:"conditions,omitempty"`
	} `json:"status,omitempty"`
}

// decode decodes a known kind strictly, defaults its namespace and
// converts it to the model. keep is false for a finished pod, which is
// counted instead, as the agent ignores such pods.
func (r *reader) decode(h header, info kindInfo, data []byte) (obj Object, keep bool, err error) {
	api := info.newAPI(h.APIVersion)
	var into any = api
	var exported exportedPolicy
	if h.Kind == "NetworkPolicy" {
		into = &exported
	}
	if err := strictUnmarshal(data, into); err != nil {
		return Object{}, false, err
	}
	if h.Kind == "NetworkPolicy" {
		api = &exported.NetworkPolicy
		if exported.Status != nil {
			r.statuses++
		}
	}
	api.GetObjectKind().SetGroupVersionKind(schema.FromAPIVersionAndKind(h.APIVersion, h.Kind))
	if info.namespaced {
		if api.GetNamespace() == "" {
			api.SetNamespace(apiconv.DefaultNamespace)
		}
	} else {
		api.SetNamespace("")
	}
	if p, ok := api.(*corev1.Pod); ok && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
		if r.single {
			return Object{}, false, fmt.Errorf("status.phase: %s: the pod has finished, palisade ignores it", p.Status.Phase)
		}
		r.finished++
		return Object{}, false, nil
	}
	var m any
	switch o := api.(type) {
	case *corev1.Pod:
		m, err = apiconv.Pod(o)
	case *corev1.Service:
		m, err = apiconv.Service(o)
	case *corev1.Namespace:
		m, err = apiconv.Namespace(o)
	case *corev1.Node:
		m, err = apiconv.Node(o)
	case *networkingv1.NetworkPolicy:
		m, err = apiconv.Policy(o)
	case *v1alpha1.AdminNetworkPolicy:
		m, err = apiconv.AdminNetworkPolicy(o)
	case *v1alpha1.BaselineAdminNetworkPolicy:
		m, err = apiconv.BaselineAdminNetworkPolicy(o)
	case *v1alpha2.ClusterNetworkPolicy:
		m, err = apiconv.ClusterNetworkPolicy(o)
	case *v1beta1.ClusterNetworkPolicy:
		m, err = apiconv.ClusterNetworkPolicyV1beta1(o)
	default:
		m, err = apiconv.Workload(o)
		if err == nil && apiconv.RunsNoPods(o) && !r.single {
			r.scaledToZero++
			return Object{}, false, nil
		}
	}
	if err != nil {
		return Object{}, false, err
	}
	return Object{
		Kind:  h.Kind,
		Key:   model.Key{Namespace: api.GetNamespace(), Name: api.GetName()},
		API:   api,
		Model: m,
	}, true, nil
}

// maxNamed bounds the kinds and files a warning line names.
const maxNamed = 8

// warnings writes what was skipped: one line for objects, one for files.
func (r *reader) warnings(w io.Writer) {
	var parts []string
	if len(r.skipped) > 0 {
		kinds := make([]string, 0, len(r.skipped))
		total := 0
		for k, n := range r.skipped {
			kinds = append(kinds, k)
			total += n
		}
		sort.Strings(kinds)
		named := make([]string, 0, maxNamed+1)
		for i, k := range kinds {
			if i == maxNamed {
				named = append(named, fmt.Sprintf("and %d more kinds", len(kinds)-maxNamed))
				break
			}
			named = append(named, fmt.Sprintf("%s (%d)", k, r.skipped[k]))
		}
		parts = append(parts, fmt.Sprintf("skipped %s of kinds palisade does not read: %s", count(total, "object"), strings.Join(named, ", ")))
	}
	if r.finished > 0 {
		parts = append(parts, fmt.Sprintf("ignored %s (status.phase Succeeded or Failed)", count(r.finished, "finished pod")))
	}
	if r.scaledToZero > 0 {
		parts = append(parts, fmt.Sprintf("ignored %s scaled to zero (replicas or parallelism 0: no pods)", count(r.scaledToZero, "workload")))
	}
	if r.statuses > 0 {
		parts = append(parts, fmt.Sprintf("ignored the status field of %s (no longer in the API)", count(r.statuses, "NetworkPolicy")))
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "warning: %s\n", strings.Join(parts, "; "))
	}
	if len(r.notObjs) > 0 {
		fmt.Fprintf(w, "warning: skipped %s in directories that hold no Kubernetes objects (no apiVersion or kind): %s\n",
			count(len(r.notObjs), "file"), someOf(r.notObjs))
	}
	if len(r.subdirs) > 0 {
		// kubectl says nothing; a matrix computed without them is a
		// partial answer, so say it.
		fmt.Fprintf(w, "warning: skipped %s (give -R to read them): %s\n", count(len(r.subdirs), "subdirectory"), someOf(r.subdirs))
	}
}

// someOf lists at most maxNamed names, and how many more there are.
func someOf(names []string) string {
	if n := len(names); n > maxNamed {
		return strings.Join(names[:maxNamed], ", ") + fmt.Sprintf(" and %d more", n-maxNamed)
	}
	return strings.Join(names, ", ")
}

// countKinds renders a count by kind, "CiliumNetworkPolicy (2), ...".
func countKinds(m map[string]int) string {
	kinds := make([]string, 0, len(m))
	for k := range m {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for i, k := range kinds {
		kinds[i] = fmt.Sprintf("%s (%d)", k, m[k])
	}
	return strings.Join(kinds, ", ")
}

// count renders "1 pod", "2 pods", "2 NetworkPolicies".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "y") {
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(noun, "y"))
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
