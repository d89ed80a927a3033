package apiconv_test

// An external test package: it reads policies through internal/manifest,
// which imports apiconv.

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	yaml "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
)

var (
	alpha1 = v1alpha1.GroupVersion.String()
	alpha2 = v1alpha2.GroupVersion.String()
	beta1  = v1beta1.GroupVersion.String()
)

// TestClusterPolicyToAPIRoundTrip checks that the kind's reader reads back
// exactly (nil and empty apart) what ClusterPolicyToAPI writes, for every
// cluster policy of the examples and conformance scenarios and for random
// ones. The generator also makes what the API cannot say or the readers
// refuse; each such policy must fail where expected (see randomCases).
func TestClusterPolicyToAPIRoundTrip(t *testing.T) {
	cases := fileCases(t)
	files := len(cases)
	cases = append(cases, randomCases(600)...)

	counts := map[string]int{}
	for i, tc := range cases {
		origin := "file"
		if i >= files {
			origin = "random"
		}
		obj, err := apiconv.ClusterPolicyToAPI(tc.p)
		if tc.writeErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.writeErr) {
				t.Errorf("%s: got error %v, want one containing %q", tc.name, err, tc.writeErr)
			}
			counts[origin+" not expressible"]++
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		want := *tc.p
		if want.APIVersion == "" {
			want.APIVersion = alpha1
			if want.Kind == model.KindClusterNetworkPolicy {
				want.APIVersion = alpha2
			}
		}
		if gvk := obj.GetObjectKind().GroupVersionKind(); gvk.GroupVersion().String() != want.APIVersion || gvk.Kind != want.Kind {
			t.Errorf("%s: wrote apiVersion %q kind %q, want %q %q", tc.name, gvk.GroupVersion(), gvk.Kind, want.APIVersion, want.Kind)
		}
		got, err := readBack(obj)
		if tc.readErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.readErr) {
				t.Errorf("%s: read back error %v, want one containing %q", tc.name, err, tc.readErr)
			}
			counts[origin+" refused by the reader"]++
			continue
		}
		if err != nil {
			t.Errorf("%s: wrote an object its reader refuses: %v\n%+v", tc.name, err, obj)
			continue
		}
		if diff := cmp.Diff(&want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
			t.Errorf("%s: read back differs (-want +got):\n%s", tc.name, diff)
			continue
		}
		counts[origin+" round-tripped "+want.Kind+" "+want.APIVersion]++
	}
	if files == 0 {
		t.Error("no cluster policies found in the examples and scenarios")
	}
	t.Logf("%d policies from files, %d random", files, len(cases)-files)
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		t.Logf("%5d %s", counts[k], k)
	}
}

type roundTripCase struct {
	name string
	p    *model.ClusterPolicy
	// writeErr, when set, is part of the error ClusterPolicyToAPI must
	// return; readErr part of the error the reader must return.
	writeErr, readErr string
}

// fileCases reads the cluster policies of examples/cluster-policy and of
// the conformance scenarios' apply steps, as manifest reads them.
func fileCases(t *testing.T) []roundTripCase {
	var cases []roundTripCase
	add := func(source string, o manifest.Object) {
		if p, ok := o.Model.(*model.ClusterPolicy); ok {
			cases = append(cases, roundTripCase{name: source + " " + p.Key().String(), p: p})
		}
	}
	objs, err := manifest.Read([]string{"../../examples/cluster-policy"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		add(o.Source, o)
	}

	files, err := filepath.Glob("../../conformance/scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		// yaml.v3 as internal/conformance reads scenarios: YAML 1.2, where
		// "y" is a string, not sigs.k8s.io/yaml's YAML 1.1 boolean.
		var sc struct {
			Steps []struct {
				Do []struct {
					Apply yaml.Node `yaml:"apply"`
				} `yaml:"do"`
			} `yaml:"steps"`
		}
		data, err := os.ReadFile(file)
		if err == nil {
			err = yaml.Unmarshal(data, &sc)
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for i, st := range sc.Steps {
			for j, do := range st.Do {
				var h struct {
					APIVersion string `yaml:"apiVersion"`
				}
				if do.Apply.Kind == 0 || do.Apply.Decode(&h) != nil || !strings.HasPrefix(h.APIVersion, "policy.networking.k8s.io/") {
					continue
				}
				source := fmt.Sprintf("%s steps[%d].do[%d]", filepath.Base(file), i, j)
				var v any
				if err := do.Apply.Decode(&v); err != nil {
					t.Fatalf("%s: %v", source, err)
				}
				doc, err := json.Marshal(v)
				if err != nil {
					t.Fatalf("%s: %v", source, err)
				}
				o, err := manifest.DecodeObject(doc, source)
				if err != nil {
					t.Fatal(err)
				}
				add(source, o)
			}
		}
	}
	return cases
}

// randomCases makes n cluster policies with a fixed seed, in every kind
// and version (an empty apiVersion too). The generator makes some the API
// cannot say, a port with First 0 (every port of a protocol), and some
// that the readers refuse: a rule with a named port and a nodes or
// networks peer (the CRDs' CEL rule), and a networks entry twice.
func randomCases(n int) []roundTripCase {
	g := &fixture.Gen{Src: rand.New(rand.NewPCG(1, 0xc1)), ClusterPolicies: true}
	var cases []roundTripCase
	for i := range n {
		p := g.ClusterPolicy()
		versions := []string{"", alpha1}
		if p.Kind == model.KindClusterNetworkPolicy {
			versions = []string{"", alpha2, beta1}
		}
		p.APIVersion = versions[i%len(versions)]
		tc := roundTripCase{name: fmt.Sprintf("random %d %s %q", i, p.Key(), p.APIVersion), p: p}
		for _, r := range slices.Concat(p.IngressRules, p.EgressRules) {
			named := false
			for _, pt := range r.Ports {
				named = named || pt.Name != ""
				if pt.Name == "" && pt.First == 0 {
					tc.writeErr = "(First 0) cannot be written"
				}
			}
			for _, pe := range r.Peers {
				if named && (pe.Nodes != nil || pe.Networks != nil) {
					tc.readErr = "cannot be set with namedPorts"
				}
				seen := map[netip.Prefix]bool{}
				for _, c := range pe.Networks {
					if seen[c] {
						tc.readErr = "Duplicate value"
					}
					seen[c] = true
				}
			}
		}
		cases = append(cases, tc)
	}
	return cases
}

// TestClusterPolicyToAPIErrors checks that what no version can say, or
// the version asked for cannot, is an error naming the policy and field.
func TestClusterPolicyToAPIErrors(t *testing.T) {
	all := model.Selector{}
	cnp := func(apiVersion string, edit func(p *model.ClusterPolicy)) *model.ClusterPolicy {
		p := &model.ClusterPolicy{Kind: model.KindClusterNetworkPolicy, Name: "cnp", APIVersion: apiVersion, Priority: 5,
			Subject: model.ClusterSubject{Namespaces: &all}}
		if edit != nil {
			edit(p)
		}
		return p
	}
	tests := []struct {
		name string
		p    *model.ClusterPolicy
		want []string // parts of the error
	}{
		{"nil", nil, []string{"nil policy"}},
		{"unknown kind", &model.ClusterPolicy{Kind: "NetworkPolicy", Name: "np"},
			[]string{"NetworkPolicy np", `kind "NetworkPolicy"`}},
		{"unknown version", cnp("policy.networking.k8s.io/v1", nil),
			[]string{"ClusterNetworkPolicy cnp", `apiVersion "policy.networking.k8s.io/v1"`}},
		{"version without group", cnp("v1alpha2", nil), []string{`apiVersion "v1alpha2"`}},
		{"kind not in version", &model.ClusterPolicy{Kind: model.KindAdminNetworkPolicy, Name: "anp", APIVersion: alpha2},
			[]string{"AdminNetworkPolicy anp", `apiVersion "` + alpha2 + `"`}},
		{"ingress networks peer", cnp(beta1, func(p *model.ClusterPolicy) {
			p.IngressRules = []model.ClusterRule{{Action: model.Deny, Peers: []model.ClusterPeer{{Networks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}}}
		}), []string{"ClusterNetworkPolicy cnp: spec.ingress[0].from[0].networks"}},
		{"every port of a protocol", cnp("", func(p *model.ClusterPolicy) {
			p.EgressRules = []model.ClusterRule{{Action: model.Accept, Peers: []model.ClusterPeer{{Namespaces: &all}},
				Ports: []model.ClusterPort{{Protocol: model.TCP, First: 80, Last: 80}, {Protocol: model.UDP}}}}
		}), []string{"ClusterNetworkPolicy cnp: spec.egress[0].protocols[1]", "every UDP port"}},
		{"unknown tier", cnp("", func(p *model.ClusterPolicy) { p.Tier = 7 }), []string{"spec.tier"}},
		{"Pass in a baseline admin policy", &model.ClusterPolicy{Kind: model.KindBaselineAdminNetworkPolicy, Name: "default",
			Tier: model.BaselineTier, Priority: model.BaselinePriority, Subject: model.ClusterSubject{Namespaces: &all},
			EgressRules: []model.ClusterRule{{Action: model.Pass, Peers: []model.ClusterPeer{{Namespaces: &all}}}}},
			[]string{"BaselineAdminNetworkPolicy default: spec.egress[0].action", "no Pass"}},
		{"admin policy in the Baseline tier", &model.ClusterPolicy{Kind: model.KindAdminNetworkPolicy, Name: "anp",
			Tier: model.BaselineTier, Subject: model.ClusterSubject{Namespaces: &all}},
			[]string{"AdminNetworkPolicy anp: spec", "Baseline"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := apiconv.ClusterPolicyToAPI(tt.p)
			if err == nil {
				t.Fatalf("got %+v, want an error", obj)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// readBack reads obj with its kind's reader.
func readBack(obj runtime.Object) (*model.ClusterPolicy, error) {
	switch o := obj.(type) {
	case *v1alpha1.AdminNetworkPolicy:
		return apiconv.AdminNetworkPolicy(o)
	case *v1alpha1.BaselineAdminNetworkPolicy:
		return apiconv.BaselineAdminNetworkPolicy(o)
	case *v1alpha2.ClusterNetworkPolicy:
		return apiconv.ClusterNetworkPolicy(o)
	case *v1beta1.ClusterNetworkPolicy:
		return apiconv.ClusterNetworkPolicyV1beta1(o)
	}
	return nil, fmt.Errorf("unexpected type %T", obj)
}
