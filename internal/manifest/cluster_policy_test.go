package manifest

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/palisade-net/palisade/internal/model"
)

const (
	anpDoc  = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: guard}\nspec: {priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{namespaces: {matchLabels: {team: x}}}]}]}\n"
	banpDoc = "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\nspec: {subject: {namespaces: {}}}\n"
	cnpDoc  = "apiVersion: policy.networking.k8s.io/VERSION\nkind: ClusterNetworkPolicy\nmetadata: {name: NAME}\nspec: {tier: Admin, priority: 2, subject: {namespaces: {}}}\n"
)

func cnpOf(version, name string) string {
	return strings.NewReplacer("VERSION", version, "NAME", name).Replace(cnpDoc)
}

func TestReadClusterPolicies(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		want  []string // summary of the objects
		warn  []string
		errs  []string // the error's lines, exactly
	}{
		{
			name:  "every kind and version",
			stdin: anpDoc + "---\n" + banpDoc + "---\n" + cnpOf("v1alpha2", "a") + "---\n" + cnpOf("v1beta1", "b"),
			want: []string{"<stdin>#1 AdminNetworkPolicy guard", "<stdin>#2 BaselineAdminNetworkPolicy default",
				"<stdin>#3 ClusterNetworkPolicy a", "<stdin>#4 ClusterNetworkPolicy b"},
		},
		{
			name:  "cluster-scoped: a namespace is ignored, as the API server clears it",
			stdin: strings.Replace(cnpOf("v1beta1", "a"), "{name: a}", "{name: a, namespace: team-x}", 1),
			want:  []string{"<stdin>#1 ClusterNetworkPolicy a"},
		},
		{
			name: "typed lists and List",
			stdin: "apiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicyList\nitems: [{metadata: {name: a}, spec: {tier: Baseline, priority: 0, subject: {namespaces: {}}}}]\n---\n" +
				"apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicyList\nitems: [{metadata: {name: b}, spec: {priority: 9, subject: {namespaces: {}}}}]\n---\n" +
				"apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSuffix(banpDoc, "\n"), "\n", "\n  ") + "\n",
			want: []string{"<stdin>#1.items[0] ClusterNetworkPolicy a", "<stdin>#2.items[0] AdminNetworkPolicy b", "<stdin>#3.items[0] BaselineAdminNetworkPolicy default"},
		},
		{
			name: "another API's kinds of the same names are skipped and named",
			stdin: "apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: a}\nspec: {priority: 5}\n---\n" +
				"apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicyList\nitems: []\n---\n" +
				"apiVersion: example.com/v1\nkind: AdminNetworkPolicy\nmetadata: {name: b}\n",
			warn: []string{"warning: not evaluated: crd.antrea.io/v1beta1 ClusterNetworkPolicy (1), crd.antrea.io/v1beta1 ClusterNetworkPolicyList (1), example.com/v1 AdminNetworkPolicy (1); palisade evaluates networking.k8s.io/v1 NetworkPolicy and policy.networking.k8s.io AdminNetworkPolicy, BaselineAdminNetworkPolicy and ClusterNetworkPolicy only, so its answers leave these out"},
		},
		{
			name: "a kind its apiVersion does not have",
			stdin: cnpOf("v1alpha1", "a") + "---\n" +
				strings.Replace(anpDoc, "v1alpha1", "v1beta1", 1) + "---\n" +
				strings.Replace(cnpOf("v1beta1", "c"), "kind: ClusterNetworkPolicy", "kind: ClusterNetworkPolicies", 1) + "---\n" +
				strings.Replace(cnpOf("v1alpha2", "d"), "kind: ClusterNetworkPolicy", "kind: AdminNetworkPolicy", 1) + "---\n" +
				"apiVersion: policy.networking.k8s.io/v1alpha1\nkind: ClusterNetworkPolicyList\nitems: []\n",
			errs: []string{
				`<stdin>#1: ClusterNetworkPolicy a: apiVersion: Unsupported value: "policy.networking.k8s.io/v1alpha1": supported values: "policy.networking.k8s.io/v1alpha2", "policy.networking.k8s.io/v1beta1"`,
				`<stdin>#2: AdminNetworkPolicy guard: apiVersion: Unsupported value: "policy.networking.k8s.io/v1beta1": supported values: "policy.networking.k8s.io/v1alpha1"`,
				`<stdin>#3: ClusterNetworkPolicies c: kind: Invalid value: "ClusterNetworkPolicies": policy.networking.k8s.io/v1beta1 has no such kind (kubectl: no matches for kind); did you mean kind: ClusterNetworkPolicy or apiVersion: policy.networking.k8s.io/v1alpha2, kind: ClusterNetworkPolicy?`,
				`<stdin>#4: AdminNetworkPolicy d: apiVersion: Unsupported value: "policy.networking.k8s.io/v1alpha2": supported values: "policy.networking.k8s.io/v1alpha1"`,
				`<stdin>#5: ClusterNetworkPolicyList: apiVersion: Unsupported value: "policy.networking.k8s.io/v1alpha1": supported values: "policy.networking.k8s.io/v1alpha2", "policy.networking.k8s.io/v1beta1"`,
			},
		},
		{
			name: "unknown fields are errors",
			stdin: strings.Replace(cnpOf("v1beta1", "a"), "priority: 2", "priorty: 2", 1) + "---\n" +
				strings.Replace(anpDoc, "action: Deny", "action: Deny, protocols: []", 1) + "---\n" +
				"apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\nmetadata: {name: default}\nspec: {subject: {namespaces: {}}, egress: [{action: Allow, to: [{domainNames: [a.b]}]}]}\n",
			errs: []string{
				`<stdin>#1: ClusterNetworkPolicy a: unknown field "spec.priorty"`,
				`<stdin>#2: AdminNetworkPolicy guard: unknown field "spec.ingress[0].protocols"`,
				`<stdin>#3: BaselineAdminNetworkPolicy default: unknown field "spec.egress[0].to[0].domainNames"`,
			},
		},
		{
			name: "invalid objects: every field error, named",
			stdin: strings.Replace(cnpOf("v1alpha2", "a"), "tier: Admin", "tier: Top", 1) + "---\n" +
				strings.Replace(banpDoc, "name: default", "name: other", 1) + "---\n" +
				"apiVersion: policy.networking.k8s.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: c}\nspec: {tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Accept, to: [{domainNames: [example.com]}]}]}\n",
			errs: []string{
				`<stdin>#1: ClusterNetworkPolicy a: spec.tier: Unsupported value: "Top": supported values: "Admin", "Baseline"`,
				`<stdin>#2: BaselineAdminNetworkPolicy other: metadata.name: Invalid value: "other": Only one baseline admin network policy with metadata.name="default" can be created in the cluster`,
				`<stdin>#3: ClusterNetworkPolicy c: spec.egress[0].to[0].domainNames: Forbidden: domainNames peers are not supported by Palisade (it enforces by address and cannot follow DNS names)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var warn bytes.Buffer
			objs, err := Read([]string{"-"}, strings.NewReader(tt.stdin), &warn)
			if diff := cmp.Diff(tt.want, summary(objs)); diff != "" {
				t.Errorf("objects mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.warn, lines(warn.String())); diff != "" {
				t.Errorf("warnings mismatch (-want +got):\n%s", diff)
			}
			var got []string
			if err != nil {
				got = lines(err.Error())
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("error is not ErrInvalid: %v", err)
				}
			}
			if diff := cmp.Diff(tt.errs, got); diff != "" {
				t.Errorf("error mismatch (-want +got):\n%s", diff)
			}
			for _, o := range objs {
				p, ok := o.Model.(*model.ClusterPolicy)
				if !ok || p.Kind != o.Kind || p.Name != o.Key.Name || o.Key.Namespace != "" {
					t.Errorf("object %s %s: model %T %+v, want a cluster policy of the same kind and name, no namespace", o.Kind, o.Key, o.Model, o.Model)
				}
				if ns := o.API.(apiObject).GetNamespace(); ns != "" {
					t.Errorf("object %s %s: metadata.namespace %q kept", o.Kind, o.Key, ns)
				}
				if gvk := o.API.GetObjectKind().GroupVersionKind(); gvk.Kind != o.Kind || gvk.GroupVersion().String() != p.APIVersion {
					t.Errorf("object %s %s: API kind %v, model apiVersion %s", o.Kind, o.Key, gvk, p.APIVersion)
				}
			}
		})
	}
}

// TestReadClusterPolicyTypes checks each kind and version decodes into its
// own Go type.
func TestReadClusterPolicyTypes(t *testing.T) {
	objs, err := Read([]string{"-"}, strings.NewReader(anpDoc+"---\n"+banpDoc+"---\n"+cnpOf("v1alpha2", "a")+"---\n"+cnpOf("v1beta1", "b")), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := objs[0].API.(*v1alpha1.AdminNetworkPolicy); !ok {
		t.Errorf("ANP decoded as %T", objs[0].API)
	}
	if _, ok := objs[1].API.(*v1alpha1.BaselineAdminNetworkPolicy); !ok {
		t.Errorf("BANP decoded as %T", objs[1].API)
	}
	if _, ok := objs[2].API.(*v1alpha2.ClusterNetworkPolicy); !ok {
		t.Errorf("v1alpha2 CNP decoded as %T", objs[2].API)
	}
	if _, ok := objs[3].API.(*v1beta1.ClusterNetworkPolicy); !ok {
		t.Errorf("v1beta1 CNP decoded as %T", objs[3].API)
	}
	want := []model.Tier{model.AdminTier, model.BaselineTier, model.AdminTier, model.AdminTier}
	for i, o := range objs {
		if got := o.Model.(*model.ClusterPolicy).Tier; got != want[i] {
			t.Errorf("%s: tier %v, want %v", o.Source, got, want[i])
		}
	}
}

func TestClusterClusterPolicies(t *testing.T) {
	// v1alpha2 and v1beta1 are one resource: the later object of a name
	// replaces the earlier.
	later := strings.Replace(cnpOf("v1beta1", "a"), "priority: 2", "priority: 7", 1)
	objs, err := Read([]string{"-"}, strings.NewReader(anpDoc+"---\n"+banpDoc+"---\n"+cnpOf("v1alpha2", "a")+"---\n"+later), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Cluster(objs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.SortedClusterPolicies() {
		got = append(got, p.Key().String()+" "+p.APIVersion)
	}
	want := []string{
		"AdminNetworkPolicy/guard policy.networking.k8s.io/v1alpha1", // priority 1
		"ClusterNetworkPolicy/a policy.networking.k8s.io/v1beta1",    // priority 7
		"BaselineAdminNetworkPolicy/default policy.networking.k8s.io/v1alpha1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cluster policies mismatch (-want +got):\n%s", diff)
	}
	if p := c.ClusterPolicies[model.ClusterKey{Kind: model.KindClusterNetworkPolicy, Name: "a"}]; p == nil || p.Priority != 7 {
		t.Errorf("ClusterNetworkPolicy a = %+v, want the later one (priority 7)", p)
	}
	if len(c.Namespaces) != 0 {
		t.Errorf("cluster policies made namespaces %v", c.Namespaces)
	}
}

func TestDecodeClusterPolicy(t *testing.T) {
	for _, doc := range []string{anpDoc, banpDoc, cnpOf("v1alpha2", "a"), cnpOf("v1beta1", "a"),
		`{"apiVersion":"policy.networking.k8s.io/v1beta1","kind":"ClusterNetworkPolicy","metadata":{"name":"j"},"spec":{"tier":"Baseline","priority":3,"subject":{"pods":{"podSelector":{}}}}}`} {
		obj, err := DecodeObject([]byte(doc), "scenario.yaml:3")
		if err != nil {
			t.Fatalf("DecodeObject(%s): %v", doc, err)
		}
		if p, ok := obj.Model.(*model.ClusterPolicy); !ok || p.Kind != obj.Kind || obj.Key.Namespace != "" || obj.Source != "scenario.yaml:3" {
			t.Errorf("DecodeObject(%s) = %+v", doc, obj)
		}
	}
	_, err := DecodeObject([]byte("apiVersion: crd.antrea.io/v1beta1\nkind: ClusterNetworkPolicy\nmetadata: {name: a}\n"), "s")
	if want := "s: unsupported kind: crd.antrea.io/v1beta1 ClusterNetworkPolicy a (" + readKinds + ")"; err == nil || err.Error() != want {
		t.Errorf("DecodeObject(Antrea) error = %v, want %s", err, want)
	}
}
