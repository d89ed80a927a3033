package truth

import (
	"net/netip"
	"reflect"
	"sort"
	"testing"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"default/web", "default/web"},
		{"café/ñandú", "café/ñandú"}, // printable non-ASCII stays
		{"a\x1b[2Jb", `a\x1b[2Jb`},
		{"line\rforged", `line\rforged`},
		{"two\nlines\ttab", `two\nlines\ttab`},
		{"bidi\u202eevil", `bidi\u202eevil`},
		{"isolate\u2066x", `isolate\u2066x`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"del\x7f c1\u009b", `del\x7f c1\u009b`},
		{`back\slash "quote"`, `back\slash "quote"`}, // escapes nothing printable
		{"", ""},
	}
	for _, tt := range tests {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestMatrixOrder(t *testing.T) {
	keys := []string{
		"b/web[Deployment]", "a/db[StatefulSet]", "a-b/x", "a/x", "a/db[Deployment]",
		"a/web-api[Deployment]", "a/web[Deployment]", "b/a",
	}
	sort.Slice(keys, func(i, j int) bool { return Less(keys[i], keys[j]) })
	want := []string{
		"a/x", "a-b/x", "b/a", // pods by namespace, then name
		"a/db[Deployment]", "a/db[StatefulSet]", "a/web[Deployment]", "a/web-api[Deployment]", "b/web[Deployment]",
	}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("order %v\nwant  %v", keys, want)
	}
	if g := NewGrid(keys[:3], 80, model.TCP); !reflect.DeepEqual(g.Pods, want[:3]) {
		t.Errorf("grid %v", g.Pods)
	}
}

// A workload of several replicas talks to itself under policy; a pod, or
// a workload of one replica, talks to itself freely. Pods without IPs are
// predicted by identity.
func TestMatrixPredictWorkloads(t *testing.T) {
	c := model.NewCluster()
	c.EnsureNamespace("default")
	for _, p := range []*model.Pod{
		{Namespace: "default", Name: "api[Deployment]", Workload: "Deployment", Replicas: 3, Labels: map[string]string{"app": "api"}},
		{Namespace: "default", Name: "one[Deployment]", Workload: "Deployment", Replicas: 1, Labels: map[string]string{"app": "api"}},
		{Namespace: "default", Name: "pod", Labels: map[string]string{"app": "api"}, IPs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
	} {
		c.Pods[p.Key()] = p
	}
	deny := &model.Policy{Namespace: "default", Name: "deny", Ingress: true}
	c.Policies[deny.Key()] = deny
	e := engine.FromCluster(c)
	g := Predict(e, c.SortedPods(), netip.Addr{}, 80, model.TCP)
	pods := []string{"default/pod", "default/api[Deployment]", "default/one[Deployment]"}
	allow := [][]bool{{true, false, false}, {false, false, false}, {false, false, true}}
	if !reflect.DeepEqual(g.Pods, pods) || !reflect.DeepEqual(g.Allow, allow) {
		t.Errorf("grid %v %v, want %v %v", g.Pods, g.Allow, pods, allow)
	}
}
