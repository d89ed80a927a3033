package engine_test

import (
	"maps"
	"testing"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
)

// TestNamespaceLabels: a declared namespace's labels, and for one never
// declared (or deleted) only its name label, as selectors see them.
func TestNamespaceLabels(t *testing.T) {
	e := engine.New()
	e.UpsertNamespace(fixture.Namespace("prod", "team=a"))
	for _, tc := range []struct{ ns, want string }{
		{"prod", "team=a,kubernetes.io/metadata.name=prod"},
		{"other", "kubernetes.io/metadata.name=other"},
	} {
		if got := e.NamespaceLabels(tc.ns); !maps.Equal(got, fixture.Labels(tc.want)) {
			t.Errorf("NamespaceLabels(%q) = %v, want %s", tc.ns, got, tc.want)
		}
	}
	e.DeleteNamespace("prod")
	if got := e.NamespaceLabels("prod"); !maps.Equal(got, fixture.Labels("kubernetes.io/metadata.name=prod")) {
		t.Errorf("after delete: NamespaceLabels(prod) = %v", got)
	}
}
