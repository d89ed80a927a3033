// Package manifest reads Kubernetes manifests the way kubectl -f does
// (files, directories, stdin; YAML or JSON; several documents per file;
// List kinds) into typed API objects and, through internal/apiconv, into
// the model. It reads the kinds palisade needs (Namespace, Pod, Service,
// NetworkPolicy, Node), skips other kinds with a warning, and rejects
// invalid input as a whole, naming file, document, object and field.
//
// Decoding is strict, like kubectl's server-side field validation: an
// unknown or repeated field is an error. YAML scalars follow YAML 1.2: an
// unquoted y, yes or on is a string (so a label value y stays "y"), and only
// true and false are booleans.
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
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	sjson "sigs.k8s.io/json"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/model"
)

// Object is one Kubernetes object read from the input.
type Object struct {
	// Source says where the object came from: "FILE#N" for the N-th
	// non-empty document of FILE ("<stdin>#N" for stdin), with
	// ".items[I]" appended for an item of a List.
	Source string
	// Kind is one of Namespace, Pod, Service, NetworkPolicy, Node.
	Kind string
	// Key names the object. The namespace is defaulted to "default" for
	// namespaced kinds and empty for Namespace and Node.
	Key model.Key
	// API is the decoded object: *corev1.Namespace, *corev1.Pod,
	// *corev1.Service, *networkingv1.NetworkPolicy or *corev1.Node, as
	// written except that apiVersion and kind are always set and
	// metadata.namespace is defaulted as in Key (cleared for cluster-scoped
	// kinds). No other API defaulting is applied.
	API runtime.Object
	// Model is the converted object: *model.Namespace, *model.Pod,
	// *model.Service, *model.Policy or *model.Node.
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
	apiVersion string
	namespaced bool
}

// lookupKind returns what palisade knows of kind, and false for kinds it
// skips.
func lookupKind(kind string) (kindInfo, bool) {
	switch kind {
	case "Pod", "Service":
		return kindInfo{"v1", true}, true
	case "Namespace", "Node":
		return kindInfo{"v1", false}, true
	case "NetworkPolicy":
		return kindInfo{"networking.k8s.io/v1", true}, true
	}
	return kindInfo{}, false
}

const readKinds = "palisade reads Namespace, Pod, Service, NetworkPolicy, Node"

// maxListDepth bounds Lists nested in Lists.
const maxListDepth = 8

// Options change how ReadWith reads.
type Options struct {
	// Recursive reads directories' subdirectories too (kubectl -R).
	Recursive bool
	// Quiet drops the warning line about skipped objects.
	Quiet bool
}

// ReadWith is Read with options.
func ReadWith(paths []string, stdin io.Reader, warn io.Writer, opt Options) ([]Object, error) {
	return Read(paths, stdin, warn)
}

// Read reads every path like kubectl -f: a file, a directory (its *.yaml,
// *.yml and *.json files in name order, not recursively), or "-" for stdin
// (at most once). It returns the objects in input order, or, if anything is
// wrong anywhere, no objects and every problem found, joined; each is an
// *Error (errors.Is(err, ErrInvalid) holds). Each skipped object of another
// kind gets one warning line on warn (which may be nil).
func Read(paths []string, stdin io.Reader, warn io.Writer) ([]Object, error) {
	r := reader{warn: warn}
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
			data, err := io.ReadAll(stdin)
			if err != nil {
				r.fail(&Error{Source: "<stdin>", Err: err})
				continue
			}
			r.stream("<stdin>", data)
			continue
		}
		r.path(p)
	}
	if len(r.errs) > 0 {
		return nil, errors.Join(r.errs...)
	}
	return r.objs, nil
}

// DecodeObject decodes one YAML or JSON document holding one object of a
// kind palisade reads, naming it source in errors (used as given, without
// a document number). Lists, other kinds and empty documents are errors.
// Errors are *Error values.
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
	return r.objs[0], nil
}

// reader accumulates objects and errors over all inputs.
type reader struct {
	warn   io.Writer
	single bool // DecodeObject: no Lists, other kinds are errors
	objs   []Object
	errs   []error
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

func (r *reader) path(p string) {
	fi, err := os.Stat(p)
	if err != nil {
		r.fail(&Error{Source: p, Err: pathError(err)})
		return
	}
	if !fi.IsDir() {
		r.file(p)
		return
	}
	entries, err := os.ReadDir(p) // sorted by name
	if err != nil {
		r.fail(&Error{Source: p, Err: pathError(err)})
		return
	}
	for _, e := range entries {
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".yaml", ".yml", ".json":
		default:
			continue
		}
		name := filepath.Join(p, e.Name())
		if fi, err := os.Stat(name); err == nil && fi.IsDir() {
			continue
		}
		r.file(name)
	}
}

func (r *reader) file(name string) {
	data, err := os.ReadFile(name)
	if err != nil {
		r.fail(&Error{Source: name, Err: pathError(err)})
		return
	}
	r.stream(name, data)
}

// stream reads every document of one input.
func (r *reader) stream(name string, data []byte) {
	docs, bad, err := splitDocuments(data)
	for _, d := range docs {
		r.document(fmt.Sprintf("%s#%d", name, d.index), d.json, nil, 0)
	}
	if err != nil {
		r.fail(&Error{Source: fmt.Sprintf("%s#%d", name, bad), Err: err})
	}
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
	info, known := lookupKind(h.Kind)
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

	if base, ok := listOf(h.Kind); ok {
		r.list(source, data, h, base, depth)
		return
	}
	if !known {
		r.skip(source, h, name, namespace)
		return
	}
	if h.APIVersion != info.apiVersion {
		r.fail(&Error{Source: source, Kind: h.Kind, Key: key,
			Err: fmt.Errorf("apiVersion: Unsupported value: %q: supported values: %q", h.APIVersion, info.apiVersion)})
		return
	}
	obj, err := decode(h, info, data)
	if err != nil {
		r.fail(&Error{Source: source, Kind: h.Kind, Key: key, Err: err})
		return
	}
	obj.Source = source
	r.objs = append(r.objs, obj)
}

// listOf reports whether kind is a list palisade expands, and the kind of
// its items ("" for List, whose items name their own kinds).
func listOf(kind string) (string, bool) {
	if kind == "List" {
		return "", true
	}
	base, ok := strings.CutSuffix(kind, "List")
	if !ok {
		return "", false
	}
	if _, known := lookupKind(base); !known {
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
	want := "v1"
	if base != "" {
		info, _ := lookupKind(base)
		want = info.apiVersion
	}
	if h.APIVersion != want {
		r.fail(&Error{Source: source, Kind: h.Kind,
			Err: fmt.Errorf("apiVersion: Unsupported value: %q: supported values: %q", h.APIVersion, want)})
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

// skip warns about an object of a kind palisade does not read (an error in
// DecodeObject).
func (r *reader) skip(source string, h header, name, namespace string) {
	what := h.APIVersion + " " + h.Kind
	switch {
	case name != "" && namespace != "":
		what += " " + namespace + "/" + name
	case name != "":
		what += " " + name
	}
	if r.single {
		r.fail(&Error{Source: source, Err: fmt.Errorf("unsupported kind: %s (%s)", what, readKinds)})
		return
	}
	if r.warn != nil {
		fmt.Fprintf(r.warn, "warning: %s: skipping %s (%s)\n", source, what, readKinds)
	}
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

// decode decodes a known kind strictly, defaults its namespace and converts
// it to the model.
func decode(h header, info kindInfo, data []byte) (Object, error) {
	var (
		api interface {
			runtime.Object
			metav1.Object
		}
		conv func() (any, error)
	)
	switch h.Kind {
	case "Pod":
		o := &corev1.Pod{}
		api, conv = o, func() (any, error) { return apiconv.Pod(o) }
	case "Service":
		o := &corev1.Service{}
		api, conv = o, func() (any, error) { return apiconv.Service(o) }
	case "Namespace":
		o := &corev1.Namespace{}
		api, conv = o, func() (any, error) { return apiconv.Namespace(o) }
	case "Node":
		o := &corev1.Node{}
		api, conv = o, func() (any, error) { return apiconv.Node(o) }
	case "NetworkPolicy":
		o := &networkingv1.NetworkPolicy{}
		api, conv = o, func() (any, error) { return apiconv.Policy(o) }
	default:
		return Object{}, fmt.Errorf("unsupported kind %q", h.Kind)
	}
	if err := strictUnmarshal(data, api); err != nil {
		return Object{}, err
	}
	api.GetObjectKind().SetGroupVersionKind(schema.FromAPIVersionAndKind(h.APIVersion, h.Kind))
	if info.namespaced {
		if api.GetNamespace() == "" {
			api.SetNamespace(apiconv.DefaultNamespace)
		}
	} else {
		api.SetNamespace("")
	}
	m, err := conv()
	if err != nil {
		return Object{}, err
	}
	return Object{
		Kind:  h.Kind,
		Key:   model.Key{Namespace: api.GetNamespace(), Name: api.GetName()},
		API:   api,
		Model: m,
	}, nil
}
