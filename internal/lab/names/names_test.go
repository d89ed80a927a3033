package names

import (
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/model"
)

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{
		"default": true, "lab2": true, "a": true,
		"": false, "my-lab": false, "Lab": false, "2lab": false, "a/b": false, strings.Repeat("a", 21): false,
	} {
		if err := ValidName(name); (err == nil) != ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestNames(t *testing.T) {
	k := model.Key{Namespace: "x", Name: "a"}
	if got, want := PodNetNS("default", k), "palisade-default-x.a"; got != want {
		t.Errorf("PodNetNS = %q, want %q", got, want)
	}
	long := model.Key{Namespace: strings.Repeat("n", 63), Name: strings.Repeat("p", 200)}
	if got := PodNetNS("default", long); len(got) > 120 || !strings.HasPrefix(got, "palisade-default-") || !strings.Contains(got, ".") {
		t.Errorf("PodNetNS(long) = %q, want a short prefixed name with a '.'", got)
	}
	for _, k := range []model.Key{k, long} {
		if v := PodVeth(k); len(v) > 15 {
			t.Errorf("PodVeth(%s) = %q: longer than 15", k, v)
		}
	}
	if PodVeth(k) == PodVeth(model.Key{Namespace: "x", Name: "b"}) {
		t.Error("PodVeth: two pods share a veth name")
	}
	for node, want := range map[string]int{"node1": 1, "node12": 12, "node": 0, "node01": 0, "nodeX": 0, "kind-worker": 0} {
		if got := NodeIndex(node); got != want {
			t.Errorf("NodeIndex(%q) = %d, want %d", node, got, want)
		}
	}
}
