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
		opt   Options
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
			warn: []string{"warning: skipped 1 subdirectory (give -R to read them): testdata/dir/sub"},
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
			warn: []string{"warning: skipped 1 object of kinds palisade does not read: ConfigMap (1)"},
		},
		{
			name:  "other kinds are counted in one line",
			paths: []string{"testdata/unknown.yaml", "testdata/list.yaml"},
			want: []string{
				"testdata/list.yaml#1.items[0] Namespace prod",
				"testdata/list.yaml#1.items[2] Pod prod/web",
				"testdata/list.yaml#2.items[0] Pod prod/a",
				"testdata/list.yaml#2.items[1] Pod default/b",
			},
			warn: []string{"warning: skipped 6 objects of kinds palisade does not read: ClusterRole (1), ConfigMap (2), Ingress (2), networkpolicy (1)"},
		},
		{
			name:  "quiet: no line for skipped objects or files",
			paths: []string{"testdata/unknown.yaml", "testdata/tree"},
			opt:   Options{Quiet: true, Recursive: true},
			want: []string{
				"testdata/tree/a/deep/pod.yaml#1 Pod default/deep",
				"testdata/tree/a.yaml#1 Namespace tree",
				"testdata/tree/b/svc.json#1 Service tree/s",
			},
		},
		{
			name:  "many kinds: the line names the first ones",
			paths: []string{"-"},
			stdin: strings.Repeat("apiVersion: v1\nkind: ConfigMap\n---\n", 2) +
				"apiVersion: example.com/v1\nkind: K1\n---\napiVersion: example.com/v1\nkind: K2\n---\napiVersion: example.com/v1\nkind: K3\n---\n" +
				"apiVersion: example.com/v1\nkind: K4\n---\napiVersion: example.com/v1\nkind: K5\n---\napiVersion: example.com/v1\nkind: K6\n---\n" +
				"apiVersion: example.com/v1\nkind: K7\n---\napiVersion: example.com/v1\nkind: K8\n---\napiVersion: example.com/v1\nkind: K9\n",
			warn: []string{"warning: skipped 11 objects of kinds palisade does not read: ConfigMap (2), K1 (1), K2 (1), K3 (1), K4 (1), K5 (1), K6 (1), K7 (1), and 2 more kinds"},
		},
		{
			name:  "workloads",
			paths: []string{"testdata/workloads.yaml"},
			want: []string{
				"testdata/workloads.yaml#1 Deployment prod/web",
				"testdata/workloads.yaml#2 ReplicaSet default/web-1",
				"testdata/workloads.yaml#3 StatefulSet prod/db",
				"testdata/workloads.yaml#4 DaemonSet kube-system/agent",
				"testdata/workloads.yaml#5 Job prod/migrate",
				"testdata/workloads.yaml#6 CronJob prod/backup",
				"testdata/workloads.yaml#7 ReplicationController default/legacy",
			},
		},
		{
			name:  "typed list of workloads",
			paths: []string{"-"},
			stdin: "apiVersion: apps/v1\nkind: DeploymentList\nitems:\n- metadata: {name: d}\n  spec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}}}\n",
			want:  []string{"<stdin>#1.items[0] Deployment default/d"},
		},
		{
			name:  "invalid workloads: the workload's field paths",
			paths: []string{"testdata/bad-workload.yaml"},
			errs: []string{
				"testdata/bad-workload.yaml#1: Deployment prod/web: spec.template.metadata.labels: Invalid value: {\"app\":\"web\"}: `selector` does not match template `labels`",
				`testdata/bad-workload.yaml#1: Deployment prod/web: spec.template.spec.containers[0].ports[0].name: Invalid value: "http_port": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)`,
				"testdata/bad-workload.yaml#2: CronJob default/nightly: spec.jobTemplate.spec.template.spec.containers[0].ports[0].containerPort: Required value",
				`testdata/bad-workload.yaml#3: DaemonSet default/agent: unknown field "spec.template.spec.containers[0].portz"`,
			},
		},
		{
			name:  "workload under an old apiVersion",
			paths: []string{"-"},
			stdin: "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: web}\n",
			errs:  []string{`<stdin>#1: Deployment default/web: apiVersion: Unsupported value: "extensions/v1beta1": supported values: "apps/v1"`},
		},
		{
			name:  "directory, recursive, in name order; files without objects skipped with one line",
			paths: []string{"testdata/tree"},
			opt:   Options{Recursive: true},
			want: []string{
				"testdata/tree/a/deep/pod.yaml#1 Pod default/deep",
				"testdata/tree/a.yaml#1 Namespace tree",
				"testdata/tree/b/svc.json#1 Service tree/s",
			},
			warn: []string{
				"warning: skipped 1 object of kinds palisade does not read: ConfigMap (1)",
				"warning: skipped 2 files in directories that hold no Kubernetes objects (no apiVersion or kind): testdata/tree/a/values.yaml, testdata/tree/b/kustomization.yaml",
			},
		},
		{
			name:  "directory, not recursive",
			paths: []string{"testdata/tree"},
			want:  []string{"testdata/tree/a.yaml#1 Namespace tree"},
			warn: []string{"warning: skipped 1 object of kinds palisade does not read: ConfigMap (1)",
				"warning: skipped 2 subdirectories (give -R to read them): testdata/tree/a, testdata/tree/b"},
		},
		{
			name:  "a file without objects named explicitly is an error",
			paths: []string{"testdata/tree/a/values.yaml"},
			errs:  []string{"testdata/tree/a/values.yaml#1: kind: Required value: the document has no kind"},
		},
		{
			name:  "misspelled kinds in the groups palisade reads from",
			paths: []string{"-"},
			stdin: "apiVersion: networking.k8s.io/v1\nkind: networkpolicy\nmetadata: {name: a}\n---\n" +
				"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicies\nmetadata: {name: b, namespace: x}\n---\n" +
				"apiVersion: v1\nkind: pod\nmetadata: {name: c}\n---\n" +
				"apiVersion: v1\nkind: Pods\nmetadata: {name: d}\n---\n" +
				"apiVersion: apps/v1\nkind: deployment\nmetadata: {name: e}\n---\n" +
				"apiVersion: v1\nkind: Deployment\nmetadata: {name: f}\n---\n" +
				"apiVersion: batch/v1\nkind: Cronjob\nmetadata: {name: g}\n---\n" +
				"apiVersion: v1\nkind: Bogus\nmetadata: {name: h}\n---\n" +
				"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\n" +
				"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: ok}\n",
			errs: []string{
				`<stdin>#1: networkpolicy a: kind: Invalid value: "networkpolicy": networking.k8s.io/v1 has no such kind (kubectl: no matches for kind); did you mean kind: NetworkPolicy?`,
				`<stdin>#2: NetworkPolicies x/b: kind: Invalid value: "NetworkPolicies": networking.k8s.io/v1 has no such kind (kubectl: no matches for kind); did you mean kind: NetworkPolicy?`,
				`<stdin>#3: pod c: kind: Invalid value: "pod": v1 has no such kind (kubectl: no matches for kind); did you mean kind: Pod?`,
				`<stdin>#4: Pods d: kind: Invalid value: "Pods": v1 has no such kind (kubectl: no matches for kind); did you mean kind: Pod?`,
				`<stdin>#5: deployment e: kind: Invalid value: "deployment": apps/v1 has no such kind (kubectl: no matches for kind); did you mean kind: Deployment?`,
				`<stdin>#6: Deployment default/f: apiVersion: Unsupported value: "v1": supported values: "apps/v1"`,
				`<stdin>#7: Cronjob g: kind: Invalid value: "Cronjob": batch/v1 has no such kind (kubectl: no matches for kind); did you mean kind: CronJob?`,
				`<stdin>#8: Bogus h: kind: Invalid value: "Bogus": v1 has no such kind (kubectl: no matches for kind)`,
			},
		},
		{
			name:  "a kind in another group: the hint names it",
			paths: []string{"-"},
			stdin: "apiVersion: apps/v1\nkind: Jobs\nmetadata: {name: j}\n",
			errs:  []string{`<stdin>#1: Jobs j: kind: Invalid value: "Jobs": apps/v1 has no such kind (kubectl: no matches for kind); did you mean apiVersion: batch/v1, kind: Job?`},
		},
		{
			name:  "JSON, then --- and more documents, as kubectl reads it",
			paths: []string{"-"},
			stdin: `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "j1"}}` + "\n---\n" +
				"apiVersion: v1\nkind: Namespace\nmetadata: {name: y2}\n---\n" +
				`{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "j3"}}` + "\n",
			want: []string{"<stdin>#1 Namespace j1", "<stdin>#2 Namespace y2", "<stdin>#3 Namespace j3"},
		},
		{
			name:  "two JSON values, then ---: an error, as in kubectl",
			paths: []string{"-"},
			stdin: `{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "j1"}}` + "\n" +
				`{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "j2"}}` + "\n---\n",
			errs: []string{"<stdin>#3: json: line 3: invalid character '-' in numeric literal"},
		},
		{
			name:  "exported NetworkPolicy with status",
			paths: []string{"-"},
			stdin: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: {}}\nstatus: {}\n---\n" +
				"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: q}\nspec: {podSelector: {}}\nstatus: {conditions: []}\n",
			want: []string{"<stdin>#1 NetworkPolicy default/p", "<stdin>#2 NetworkPolicy default/q"},
			warn: []string{"warning: ignored the status field of 2 NetworkPolicies (no longer in the API)"},
		},
		{
			name:  "NetworkPolicy status: only the old API's fields",
			paths: []string{"-"},
			stdin: "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: {}}\nstatus: {phase: x}\n",
			errs:  []string{`<stdin>#1: NetworkPolicy default/p: unknown field "status.phase"`},
		},
		{
			name:  "finished pods are ignored and counted",
			paths: []string{"-"},
			stdin: "apiVersion: v1\nkind: Pod\nmetadata: {name: done}\nstatus: {phase: Succeeded, podIP: 10.0.0.1}\n---\n" +
				"apiVersion: v1\nkind: Pod\nmetadata: {name: failed}\nstatus: {phase: Failed, podIP: 10.0.0.1}\n---\n" +
				"apiVersion: v1\nkind: Pod\nmetadata: {name: live}\nstatus: {phase: Running, podIP: 10.0.0.1}\n---\n" +
				"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
			want: []string{"<stdin>#3 Pod default/live"},
			warn: []string{"warning: skipped 1 object of kinds palisade does not read: ConfigMap (1); ignored 2 finished pods (status.phase Succeeded or Failed)"},
		},
		{
			name:  "policies of other APIs are named apart: the answer leaves them out; cluster-wide policies are read",
			paths: []string{"-"},
			stdin: "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: a}\n---\n" +
				"apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: b}\nspec: {priority: 1, subject: {namespaces: {}}}\n---\n" +
				"apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: d}\n---\n" +
				"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
			want: []string{"<stdin>#2 AdminNetworkPolicy b"},
			warn: []string{"warning: skipped 1 object of kinds palisade does not read: ConfigMap (1)",
				"warning: not evaluated: cilium.io/v2 CiliumNetworkPolicy (1), crd.antrea.io/v1beta1 ClusterNetworkPolicy (1); palisade evaluates networking.k8s.io/v1 NetworkPolicy and policy.networking.k8s.io AdminNetworkPolicy, BaselineAdminNetworkPolicy and ClusterNetworkPolicy only, so its answers leave these out"},
		},
		{
			name:  "-q does not silence policies of other APIs",
			paths: []string{"-"},
			opt:   Options{Quiet: true},
			stdin: "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
			warn:  []string{"warning: not evaluated: cilium.io/v2 CiliumNetworkPolicy (1); palisade evaluates networking.k8s.io/v1 NetworkPolicy and policy.networking.k8s.io AdminNetworkPolicy, BaselineAdminNetworkPolicy and ClusterNetworkPolicy only, so its answers leave these out"},
		},
		{
			name:  "workloads scaled to zero stand for no pods",
			paths: []string{"-"},
			stdin: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: off}\nspec: {replicas: 0, selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}}\n---\n" +
				"apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec: {parallelism: 0, template: {spec: {restartPolicy: Never, containers: [{name: c, image: i}]}}}\n---\n" +
				"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: on}\nspec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}}\n",
			want: []string{"<stdin>#3 Deployment default/on"},
			warn: []string{"warning: ignored 2 workloads scaled to zero (replicas or parallelism 0: no pods)"},
		},
		{
			name:  "repeated Service port",
			paths: []string{"-"},
			stdin: "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{name: a, port: 80}, {name: b, port: 80, targetPort: 8080}]}\n",
			errs:  []string{`<stdin>#1: Service default/s: spec.ports[1]: Duplicate value: "80/TCP"`},
		},
		{
			name:  "a tab on line 5: line 5, as kubectl says",
			paths: []string{"-"},
			stdin: "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n\tlabels: {}\n",
			errs:  []string{"<stdin>#1: yaml: line 5: found a tab character that violates indentation"},
		},
		{
			name:  "YAML error lines count from the start of the file",
			paths: []string{"-"},
			stdin: "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n\tlabels: {}\n",
			errs:  []string{"<stdin>#2: yaml: line 9: found a tab character that violates indentation"},
		},
		{
			name:  "content after a document end marker, which kubectl would drop",
			paths: []string{"-"},
			stdin: "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n...\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
			errs:  []string{`<stdin>#1: yaml: line 4: content after the document end marker "...": separate documents with ---`},
		},
		{
			name:  "bad document separator",
			paths: []string{"-"},
			stdin: "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n--- {kind: Pod}\n",
			errs:  []string{`<stdin>#1: yaml: line 4: invalid document separator: only a comment may follow --- on its line, not "{kind: Pod}"`},
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
			objs, err := ReadWith(tt.paths, strings.NewReader(tt.stdin), &warn, tt.opt)
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
			err: "scenario.yaml:12: unsupported kind: v1 ConfigMap c (" + readKinds + ")"},
		{name: "finished pod", doc: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus: {phase: Failed}\n",
			err: "scenario.yaml:12: Pod default/p: status.phase: Failed: the pod has finished, palisade ignores it"},
		{name: "workload", doc: "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec: {template: {spec: {containers: [{name: c, image: x}]}}}\n",
			want: "scenario.yaml:12 Job default/j"},
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
