// Package layering holds the test that keeps the house's layering: what
// each package may depend on, read from `go list -deps`, so that a
// source never pulls in the dataplane and the core never pulls in a
// front end.
package layering

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/palisade-net/palisade/"

// rules: for each package (relative to the module), the module packages
// it may depend on (directly or not; "" entries none), and outside
// packages it must not reach. Packages not listed are not checked.
var rules = []struct {
	pkg     string
	allowed []string // module packages, relative; a trailing "/..." allows a subtree
	banned  []string // import path prefixes outside the module
}{
	{"internal/model", nil, []string{"k8s.io/", "github.com/google/nftables"}},
	{"internal/source", []string{"internal/model"}, []string{"k8s.io/", "github.com/google/nftables"}},
	{"internal/engine", []string{"internal/model"}, []string{"k8s.io/", "github.com/google/nftables"}},
	{"internal/truth", []string{"internal/model", "internal/engine"}, []string{"k8s.io/", "github.com/google/nftables"}},
	{"internal/reachdiff", []string{"internal/model", "internal/engine", "internal/truth"}, []string{"k8s.io/", "github.com/google/nftables"}},
	{"internal/render", []string{"internal/model", "internal/engine", "internal/truth"}, []string{"k8s.io/", "github.com/google/nftables"}},
	{"internal/apiconv", []string{"internal/model"}, []string{"github.com/google/nftables", "k8s.io/client-go"}},
	{"internal/manifest", []string{"internal/model", "internal/apiconv"}, []string{"github.com/google/nftables", "k8s.io/client-go"}},
	{"internal/fixture", []string{"internal/model", "internal/apiconv"}, []string{"github.com/google/nftables", "k8s.io/client-go"}},
	{"internal/dataplane", []string{"internal/model", "internal/engine"}, []string{"k8s.io/"}},
	{"internal/kube", []string{"internal/model", "internal/apiconv", "internal/manifest", "internal/source"},
		[]string{"github.com/google/nftables", "github.com/vishvananda/netlink", "github.com/prometheus/"}},
	{"internal/agent", []string{"internal/model", "internal/source", "internal/engine", "internal/dataplane", "internal/netns"}, []string{"k8s.io/client-go"}},
	{"internal/findings", []string{"internal/model", "internal/engine", "internal/apiconv", "internal/manifest"},
		[]string{"github.com/google/nftables", "k8s.io/client-go"}},
	{"internal/conformance", []string{"internal/model", "internal/apiconv", "internal/manifest", "internal/engine", "internal/truth"},
		[]string{"github.com/google/nftables", "k8s.io/client-go"}},
}

func TestLayering(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			cmd := exec.Command("go", "list", "-deps", "./"+r.pkg)
			cmd.Dir = root
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list -deps ./%s: %v", r.pkg, err)
			}
			for _, dep := range strings.Fields(string(out)) {
				if rel, ok := strings.CutPrefix(dep, module); ok {
					if rel != r.pkg && !allowedDep(rel, r.allowed) {
						t.Errorf("%s depends on %s", r.pkg, rel)
					}
					continue
				}
				for _, b := range r.banned {
					if strings.HasPrefix(dep, b) {
						t.Errorf("%s depends on %s", r.pkg, dep)
					}
				}
			}
		})
	}
}

func allowedDep(rel string, allowed []string) bool {
	for _, a := range allowed {
		if sub, ok := strings.CutSuffix(a, "/..."); ok {
			if rel == sub || strings.HasPrefix(rel, sub+"/") {
				return true
			}
		} else if rel == a {
			return true
		}
	}
	return false
}

// TestFrontEndsOnTop: nothing but the command depends on the CLI, and
// nothing below the front ends depends on the lab.
func TestFrontEndsOnTop(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	top := map[string][]string{
		"internal/cli": {"cmd/palisade"},
		"internal/lab": {"cmd/palisade", "internal/cli", "internal/lab/...", "bench/dataplane"},
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], module)
		for _, dep := range f[1:] {
			rel, ok := strings.CutPrefix(dep, module)
			if !ok {
				continue
			}
			if users, ok := top[rel]; ok && !allowedDep(pkg, users) {
				t.Errorf("%s depends on %s", pkg, rel)
			}
		}
	}
}
