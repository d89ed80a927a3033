package apiconv

import (
	"encoding/json"
	"errors"
	"testing"

	"sigs.k8s.io/network-policy-api/apis/v1alpha1"
	"sigs.k8s.io/network-policy-api/apis/v1alpha2"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/palisade-net/palisade/internal/model"
)

// FuzzClusterPolicy feeds arbitrary JSON to the four cluster policy
// converters (kind picks one): none may panic, each returns exactly one of
// a policy or an *Error, and a policy accepted satisfies the model's
// invariants.
func FuzzClusterPolicy(f *testing.F) {
	for _, s := range []string{
		`{"metadata":{"name":"a"},"spec":{"priority":1,"subject":{"namespaces":{}}}}`,
		`{"metadata":{"name":"default"},"spec":{"subject":{"pods":{"namespaceSelector":{},"podSelector":{"matchLabels":{"a":"b"}}}},"egress":[{"action":"Allow","to":[{"networks":["10.0.0.0/8","::/0"]},{"nodes":{}}],"ports":[{"portRange":{"start":1,"end":2}},{"portNumber":{"protocol":"UDP","port":53}}]}]}}`,
		`{"metadata":{"name":"a"},"spec":{"tier":"Admin","priority":3,"subject":{"namespaces":{}},"ingress":[{"action":"Pass","from":[{"pods":{"podSelector":{}}}],"protocols":[{"tcp":{"destinationPort":{"number":80}}},{"udp":{"destinationPort":{"range":{"start":5,"end":9}}}},{"destinationNamedPort":"x"}]}]}}`,
		`{"metadata":{"name":"a"},"spec":{"tier":"Baseline","subject":{},"egress":[{"action":"Deny","to":[{},{"networks":[]},{"domainNames":["a.b"]}],"protocols":[{"tcp":{}}]}]}}`,
		`{"metadata":{"name":"a"},"spec":{"priority":1,"subject":{"namespaces":{}},"ingress":[{"action":"Allow","from":[{"namespaces":{}}],"ports":[{"namedPort":""},{}]}]}}`,
	} {
		for kind := range uint8(4) {
			f.Add(kind, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		var (
			p   *model.ClusterPolicy
			err error
		)
		switch kind % 4 {
		case 0:
			var o v1alpha1.AdminNetworkPolicy
			if json.Unmarshal(data, &o) != nil {
				return
			}
			p, err = AdminNetworkPolicy(&o)
		case 1:
			var o v1alpha1.BaselineAdminNetworkPolicy
			if json.Unmarshal(data, &o) != nil {
				return
			}
			p, err = BaselineAdminNetworkPolicy(&o)
		case 2:
			var o v1alpha2.ClusterNetworkPolicy
			if json.Unmarshal(data, &o) != nil {
				return
			}
			p, err = ClusterNetworkPolicy(&o)
		case 3:
			var o v1beta1.ClusterNetworkPolicy
			if json.Unmarshal(data, &o) != nil {
				return
			}
			p, err = ClusterNetworkPolicyV1beta1(&o)
		}
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) || len(ae.Errs) == 0 || p != nil {
				t.Fatalf("got %v, %v (%T), want nil and an *Error", p, err, err)
			}
			return
		}
		checkClusterPolicy(t, p)
	})
}

// checkClusterPolicy fails unless p satisfies what the converters promise.
func checkClusterPolicy(t *testing.T, p *model.ClusterPolicy) {
	t.Helper()
	if p == nil || p.Name == "" || p.Kind == "" || p.APIVersion == "" {
		t.Fatalf("got %+v, want a named policy with kind and apiVersion", p)
	}
	if p.Kind == model.KindBaselineAdminNetworkPolicy {
		if p.Name != "default" || p.Tier != model.BaselineTier || p.Priority != model.BaselinePriority {
			t.Fatalf("BANP %s tier %v priority %d", p.Name, p.Tier, p.Priority)
		}
	} else if p.Priority < 0 || p.Priority > 1000 {
		t.Fatalf("priority %d accepted", p.Priority)
	}
	if (p.Subject.Namespaces == nil) == (p.Subject.Pods == nil) {
		t.Fatalf("subject %+v: want exactly one field", p.Subject)
	}
	for _, rules := range [][]model.ClusterRule{p.IngressRules, p.EgressRules} {
		for _, r := range rules {
			if r.Action < model.Accept || r.Action > model.Pass || len(r.Peers) == 0 {
				t.Fatalf("rule %+v: bad action or no peers", r)
			}
			if r.Ports != nil && len(r.Ports) == 0 {
				t.Fatalf("rule %+v: empty ports accepted", r)
			}
			named := false
			for _, pt := range r.Ports {
				switch {
				case pt.Name != "":
					named = true
					if pt.Protocol != 0 || pt.First != 0 || pt.Last != 0 {
						t.Fatalf("named port %+v with a number", pt)
					}
				case pt.Protocol != model.TCP && pt.Protocol != model.UDP && pt.Protocol != model.SCTP:
					t.Fatalf("port %+v: bad protocol", pt)
				case pt.First == 0 || pt.First > pt.Last:
					t.Fatalf("port %+v: bad range", pt)
				}
			}
			for _, pe := range r.Peers {
				n := 0
				for _, set := range []bool{pe.Namespaces != nil, pe.Pods != nil, pe.Nodes != nil, pe.Networks != nil} {
					if set {
						n++
					}
				}
				if n != 1 {
					t.Fatalf("peer %+v: want exactly one field", pe)
				}
				if pe.Networks != nil && len(pe.Networks) == 0 {
					t.Fatalf("empty networks accepted")
				}
				if named && (pe.Networks != nil || pe.Nodes != nil) {
					t.Fatalf("named port with an address peer accepted")
				}
				for _, c := range pe.Networks {
					if !c.IsValid() || c != c.Masked() || c.Addr().Is4In6() {
						t.Fatalf("network %v not valid and masked", c)
					}
				}
			}
		}
	}
}
