package apiconv

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
)

// TestPolicyToAPIRoundTrip checks that Policy reads back what PolicyToAPI
// writes, for the scale cluster's policies (both peer variants) and for
// random ones: random selectors (matchLabels, every operator, empty),
// peers of every kind (ipBlocks with exceptions) and ports (numbers,
// ranges, names, protocol only), with and without policyTypes.
//
// Two things legitimately do not round-trip, and the comparison allows
// for them:
//   - empty and nil are one: an absent matchLabels or rule list reads back
//     as nil whichever the model held (the API cannot tell them apart);
//   - rules of a direction the policy does not affect (ingress rules of
//     an Egress-only policy): PolicyToAPI leaves them out, as they have no
//     effect; the comparison drops them from the original.
func TestPolicyToAPIRoundTrip(t *testing.T) {
	type tcase struct {
		name string
		p    *model.Policy
	}
	var cases []tcase
	for _, wide := range []bool{false, true} {
		c := fixture.Scale(fixture.Spec{Seed: 7, Pods: 100, Namespaces: 20, Policies: 400, Wide: wide})
		for _, p := range c.SortedPolicies() {
			cases = append(cases, tcase{fmt.Sprintf("scale (wide %v) %s", wide, p.Key()), p})
		}
	}
	for seed := range uint64(3000) {
		g := &fixture.Gen{Src: rand.New(rand.NewPCG(seed, 0x70a91)), NamedBlocks: seed%4 == 0}
		cases = append(cases, tcase{fmt.Sprintf("random seed %d", seed), g.Policy(g.PolicyKey())})
	}
	for _, tc := range cases {
		np := PolicyToAPI(tc.p)
		got, err := Policy(np)
		if err != nil {
			t.Errorf("%s: PolicyToAPI wrote an invalid policy: %v\n%+v", tc.name, err, np.Spec)
			continue
		}
		if diff := cmp.Diff(effective(tc.p), got, cmpopts.EquateEmpty(), prefixCmp); diff != "" {
			t.Errorf("%s: read back differs (-want +got):\n%s", tc.name, diff)
		}
	}
}

// effective is p without the rules of a direction it does not affect.
func effective(p *model.Policy) *model.Policy {
	q := *p
	if !q.Ingress {
		q.IngressRules = nil
	}
	if !q.Egress {
		q.EgressRules = nil
	}
	return &q
}
