package manifest

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/model"
)

// summary renders objects as "SOURCE KIND NS/NAME" lines.
func summary(objs []Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Source+" "+apiconv.Describe(o.Kind, o.Key))
	}
	return out
}

func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestRead(t *testing.T) {
	tests := []struct {
		name  string
		paths []string
		stdin string
		want  []string // summary of the objects
		warn  []string
		errs  []string // the error's lines, exactly
	}{
		{
			name:  "multi-document file",
			paths: []string{"testdata/sample-app.yaml"},
			want: []string{
				"testdata/sample-app.yaml#1 Pod default/frontend",
				"testdata/sample-app.yaml#2 Service default/frontend-service",
				"testdata/sample-app.yaml#3 Pod default/backend",
				"testdata/sample-app.yaml#4 NetworkPolicy default/frontend-access",
			},
		},
		{
			name:  "directory: yaml, yml and json, sorted, not recursive",
			paths: []string{"testdata/dir"},
			want: []string{
				"testdata/dir/a.yaml#1 Namespace a",
				"testdata/dir/b.json#1 Pod a/b",
				"testdata/dir/b.json#2 Pod a/c",
				"testdata/dir/c.yml#1 Node node-1",
			},
		},
		{
			name:  "List and PodList, with a skipped item",
			paths: []string{"testdata/list.yaml"},
			want: []string{
				"testdata/list.yaml#1.items[0] Namespace prod",
				"testdata/list.yaml#1.items[2] Pod prod/web",
				"testdata/list.yaml#2.items[0] Pod prod/a",
				"testdata/list.yaml#2.items[1] Pod default/b",
			},
			warn: []string{
				"warning: testdata/list.yaml#1.items[1]: skipping apps/v1 Deployment prod/web (palisade reads Namespace, Pod, Service, NetworkPolicy, Node)",
			},
		},
		{
			name:  "other kinds warn once each",
			paths: []string{"testdata/unknown.yaml"},
			warn: []string{
				"warning: testdata/unknown.yaml#1: skipping apps/v1 Deployment default/web (palisade reads Namespace, Pod, Service, NetworkPolicy, Node)",
				"warning: testdata/unknown.yaml#2: skipping v1 ConfigMap settings (palisade reads Namespace, Pod, Service, NetworkPolicy, Node)",
				"warning: testdata/unknown.yaml#3: skipping rbac.authorization.k8s.io/v1 ClusterRole reader (palisade reads Namespace, Pod, Service, NetworkPolicy, Node)",
			},
		},
		{
			name:  "stdin and a file",
			paths: []string{"-", "testdata/dir/a.yaml"},
			stdin: "---\n# nothing\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: z}\n---\n",
			want: []string{
				"<stdin>#1 Namespace z",
				"testdata/dir/a.yaml#1 Namespace a",
			},
		},
		{
			name:  "stdin JSON",
			paths: []string{"-"},
			stdin: `  {"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "j"}}]}`,
			want:  []string{"<stdin>#1.items[0] Namespace j"},
		},
		{
			name:  "YAML flow mapping that is not JSON",
			paths: []string{"-"},
			stdin: "{apiVersion: v1, kind: Namespace, metadata: {name: f}}\n",
			want:  []string{"<stdin>#1 Namespace f"},
		},
		{
			name:  "empty input",
			paths: []string{"-"},
			stdin: "\n# only a comment\n",
		},
		{
			name:  "invalid objects: every error, with file, object and field",
			paths: []string{"testdata/bad.yaml", "testdata/sample-app.yaml"},
			errs: []string{
				"testdata/bad.yaml#1: NetworkPolicy default/frontend-access: spec.ingress[0].ports[1].endPort: Invalid value: 79: must be greater than or equal to port (80)",
				`testdata/bad.yaml#2: Pod prod/web: unknown field "spec.containers[0].portz"`,
			},
		},
		{
			name:  "missing file",
			paths: []string{"testdata/nope.yaml", "testdata/dir/a.yaml"},
			errs:  []string{"testdata/nope.yaml: no such file or directory"},
		},
		{
			name:  "stdin twice",
			paths: []string{"-", "-"},
			errs:  []string{`<stdin>: "-" (stdin) given more than once`},
		},
		{
			name:  "no kind",
			paths: []string{"-"},
			stdin: "apiVersion: v1\nmetadata: {name: x}\n",
			errs:  []string{"<stdin>#1: kind: Required value: the document has no kind"},
		},
		{
			name:  "no apiVersion",
			paths: []string{"-"},
			stdin: "kind: Pod\nmetadata: {name: x}\n",
			errs:  []string{"<stdin>#1: Pod default/x: apiVersion: Required value"},
		},
		{
			name:  "wrong apiVersion",
			paths: []string{"-"},
			stdin: "apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: x, namespace: n}\nspec: {}\n",
			errs:  []string{`<stdin>#1: NetworkPolicy n/x: apiVersion: Unsupported value: "extensions/v1beta1": supported values: "networking.k8s.io/v1"`},
		},
		{
			name:  "wrong List apiVersion",
			paths: []string{"-"},
			stdin: "apiVersion: v2\nkind: List\nitems: []\n",
			errs:  []string{`<stdin>#1: List: apiVersion: Unsupported value: "v2": supported values: "v1"`},
		},
		{
			name:  "unknown field in a List",
			paths: []string{"-"},
			stdin: "apiVersion: v1\nkind: List\nitemz: []\n",
			errs:  []string{`<stdin>#1: List: unknown field "itemz"`},
		},
		{
			name:  "duplicate YAML key",
			paths: []string{"-"},
			stdin: "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n",
			errs:  []string{`<stdin>#1: yaml: line 5: mapping key "name" already defined at line 4`},
		},
		{
			name:  "duplicate JSON key",
			paths: []string{"-"},
			stdin: `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "name": "b"}}`,
			errs:  []string{`<stdin>#1: Namespace b: duplicate field "metadata.name"`},
		},
		{
			name:  "wrong type",
			paths: []string{"-"},
			stdin: "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {hostNetwork: yes}\n",
			errs:  []string{"<stdin>#1: Pod default/a: json: cannot unmarshal string into Go struct field PodSpec.spec.hostNetwork of type bool"},
		},
		{
			name:  "syntax error after good documents",
			paths: []string{"-"},
			stdin: "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: [\n",
			errs:  []string{"<stdin>#2: yaml: line 5: did not find expected node content"},
		},
		{
			name:  "not an object",
			paths: []string{"-"},
			stdin: "- a\n- b\n",
			errs:  []string{"<stdin>#1: document is not an object"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var warn bytes.Buffer
			objs, err := Read(tt.paths, strings.NewReader(tt.stdin), &warn)
			if diff := cmp.Diff(tt.want, summary(objs)); diff != "" {
				t.Errorf("Read() objects mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.warn, lines(warn.String())); diff != "" {
				t.Errorf("Read() warnings mismatch (-want +got):\n%s", diff)
			}
			var got []string
			if err != nil {
				got = lines(err.Error())
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("Read() error is not ErrInvalid: %v", err)
				}
				var me *Error
				if !errors.As(err, &me) {
					t.Errorf("Read() error is not a *manifest.Error: %v", err)
				}
				if objs != nil {
					t.Errorf("Read() returned %d objects with an error", len(objs))
				}
			}
			if diff := cmp.Diff(tt.errs, got); diff != "" {
				t.Errorf("Read() error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReadInvalidObjectError checks that an invalid object's error can be
// taken apart: the document, then the apiconv.Error with the field.
func TestReadInvalidObjectError(t *testing.T) {
	_, err := Read([]string{"testdata/bad.yaml"}, nil, io.Discard)
	var ae *apiconv.Error
	if !errors.As(err, &ae) {
		t.Fatalf("Read() error %v holds no *apiconv.Error", err)
	}
	if ae.Kind != "NetworkPolicy" || ae.Key != (model.Key{Namespace: "default", Name: "frontend-access"}) || len(ae.Errs) != 1 ||
		ae.Errs[0].Field != "spec.ingress[0].ports[1].endPort" {
		t.Errorf("apiconv.Error = %+v, want NetworkPolicy default/frontend-access with spec.ingress[0].ports[1].endPort", ae)
	}
}

// TestYAMLTrap loads namespace y, unquoted, as FORMAT.md warns.
func TestYAMLTrap(t *testing.T) {
	objs, err := Read([]string{"testdata/y-trap.yaml"}, nil, io.Discard)
	if err != nil {
		t.Fatalf("Read() error: %v", err)
	}
	ns := objs[0].Model.(*model.Namespace)
	if diff := cmp.Diff(map[string]string{"ns": "y", model.NamespaceNameLabel: "y"}, ns.Labels); diff != "" {
		t.Errorf("namespace labels mismatch (-want +got):\n%s", diff)
	}
	pol := objs[1].Model.(*model.Policy)
	peer := pol.IngressRules[0].Peers[0]
	if diff := cmp.Diff(map[string]string{model.NamespaceNameLabel: "y"}, peer.NamespaceSelector.MatchLabels); diff != "" {
		t.Errorf("namespaceSelector mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"y", "n", "yes", "on", "2024-01-02"}, peer.PodSelector.Exprs[0].Values); diff != "" {
		t.Errorf("matchExpressions values mismatch (-want +got):\n%s", diff)
	}
	// The typed object keeps the string too, so it prints back as written.
	out, err := yaml.Marshal(objs[1].API)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `kubernetes.io/metadata.name: "y"`) {
		t.Errorf("printed policy lost the string y:\n%s", out)
	}
}

func TestReadTypedObject(t *testing.T) {
	objs, err := Read([]string{"testdata/sample-app.yaml"}, nil, io.Discard)
	if err != nil {
		t.Fatalf("Read() error: %v", err)
	}
	np, ok := objs[3].API.(*networkingv1.NetworkPolicy)
	if !ok {
		t.Fatalf("API is %T, want *networkingv1.NetworkPolicy", objs[3].API)
	}
	if np.APIVersion != "networking.k8s.io/v1" || np.Kind != "NetworkPolicy" || np.Namespace != "default" {
		t.Errorf("typed policy: apiVersion %q kind %q namespace %q, want networking.k8s.io/v1 NetworkPolicy default", np.APIVersion, np.Kind, np.Namespace)
	}
	if np.Spec.PolicyTypes != nil {
		t.Errorf("typed policy was defaulted: policyTypes %v", np.Spec.PolicyTypes)
	}
	pod := objs[0].Model.(*model.Pod)
	if pod.Images[0] != "nginx" || pod.Labels["app"] != "frontend" {
		t.Errorf("pod = %+v", pod)
	}

	objs, err = Read([]string{"testdata/list.yaml"}, nil, io.Discard)
	if err != nil {
		t.Fatalf("Read() error: %v", err)
	}
	p, ok := objs[2].API.(*corev1.Pod)
	if !ok || p.Kind != "Pod" || p.APIVersion != "v1" {
		t.Errorf("PodList item: %T kind %q apiVersion %q, want a v1 Pod", objs[2].API, p.Kind, p.APIVersion)
	}
	want := []netip.Addr{netip.MustParseAddr("10.0.0.6"), netip.MustParseAddr("fd00::6")}
	if got := objs[2].Model.(*model.Pod).IPs; !cmp.Equal(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })) {
		t.Errorf("pod IPs = %v, want %v", got, want)
	}
}

func TestDecodeObject(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // summary line
		err  string
	}{
		{name: "YAML policy", doc: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: x}\nspec: {podSelector: {}}\n",
			want: "scenario.yaml:12 NetworkPolicy x/p"},
		{name: "JSON namespace", doc: `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"y","labels":{"kubernetes.io/metadata.name":"y"}}}`,
			want: "scenario.yaml:12 Namespace y"},
		{name: "List", doc: "apiVersion: v1\nkind: List\nitems: []\n",
			err: "scenario.yaml:12: List: want a single object, not a list"},
		{name: "other kind", doc: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
			err: "scenario.yaml:12: unsupported kind: v1 ConfigMap c (palisade reads Namespace, Pod, Service, NetworkPolicy, Node)"},
		{name: "two documents", doc: "kind: A\n---\nkind: B\n",
			err: "scenario.yaml:12: want one object, found 2 documents"},
		{name: "empty", doc: "",
			err: "scenario.yaml:12: want one object, found 0 documents"},
		{name: "invalid", doc: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {policyTypes: [Both]}\n",
			err: `scenario.yaml:12: NetworkPolicy default/p: spec.policyTypes[0]: Unsupported value: "Both": supported values: "Ingress", "Egress"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := DecodeObject([]byte(tt.doc), "scenario.yaml:12")
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("DecodeObject() error = %v, want %s", err, tt.err)
				}
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("DecodeObject() error is not ErrInvalid")
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeObject() error: %v", err)
			}
			if got := summary([]Object{obj})[0]; got != tt.want {
				t.Errorf("DecodeObject() = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestCluster(t *testing.T) {
	read := func(t *testing.T, docs string) []Object {
		t.Helper()
		objs, err := Read([]string{"-"}, strings.NewReader(docs), io.Discard)
		if err != nil {
			t.Fatalf("Read() error: %v", err)
		}
		return objs
	}
	t.Run("implicit namespaces and replacement", func(t *testing.T) {
		objs := read(t, `
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {v: "1"}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: z}
spec: {podSelector: {}}
---
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: blue}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {v: "2"}}
---
apiVersion: v1
kind: Node
metadata: {name: n1}
`)
		c, err := Cluster(objs)
		if err != nil {
			t.Fatalf("Cluster() error: %v", err)
		}
		wantNS := map[string]*model.Namespace{
			"x":       {Name: "x", Labels: map[string]string{"team": "blue", model.NamespaceNameLabel: "x"}},
			"z":       {Name: "z", Labels: map[string]string{model.NamespaceNameLabel: "z"}},
			"default": {Name: "default", Labels: map[string]string{model.NamespaceNameLabel: "default"}},
		}
		if diff := cmp.Diff(wantNS, c.Namespaces); diff != "" {
			t.Errorf("namespaces mismatch (-want +got):\n%s", diff)
		}
		if len(c.Pods) != 1 || c.Pods[model.Key{Namespace: "x", Name: "a"}].Labels["v"] != "2" {
			t.Errorf("pods = %v, want x/a with the later labels", c.Pods)
		}
		if len(c.Policies) != 1 || len(c.Services) != 1 || len(c.Nodes) != 1 {
			t.Errorf("cluster has %d policies, %d services, %d nodes, want 1 each", len(c.Policies), len(c.Services), len(c.Nodes))
		}
	})
	t.Run("duplicate pod IPs", func(t *testing.T) {
		objs := read(t, `
apiVersion: v1
kind: Pod
metadata: {name: a}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: b}
status: {podIP: 10.0.0.1}
---
apiVersion: v1
kind: Pod
metadata: {name: h}
spec: {hostNetwork: true}
status: {podIP: 10.0.0.1}
`)
		_, err := Cluster(objs)
		want := "<stdin>#2: Pod default/b: status.podIPs: address 10.0.0.1 is also pod default/a's"
		if err == nil || err.Error() != want {
			t.Errorf("Cluster() error = %v, want %s", err, want)
		}
	})
	t.Run("object without model", func(t *testing.T) {
		_, err := Cluster([]Object{{Source: "s#1", Kind: "Pod", Key: model.Key{Namespace: "a", Name: "b"}}})
		if err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("Cluster() error = %v, want an *Error", err)
		}
	})
}
