package e2e

import (
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/netns"
)

// demoLab is the lab palisade demo builds (cli's demoLab).
const demoLab = "demo"

// TestLabWalkthrough drives a two-node lab through the lab verbs
// in-process: pods, a policy applied, described and probed, bad input
// that changes nothing in the kernel, and lab down leaving no namespace.
func TestLabWalkthrough(t *testing.T) {
	fixture.RequireRoot(t)
	const name = "clitest"
	_ = lab.Down(name)
	t.Cleanup(func() {
		if err := lab.Down(name); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	mustLab := func(wantCode int, args ...string) string {
		t.Helper()
		code, out, errOut := labOf(t, name, args...)
		if code != wantCode {
			t.Fatalf("lab %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, out, errOut)
		}
		return out
	}
	contains := func(out string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	}

	mustLab(0, "up", "--nodes", "2", "-f", seedApp)
	contains(mustLab(0, "exec", "backend", "--", "curl", "-sS", "--max-time", "3", "frontend-service"), "palisade lab: default/frontend")
	contains(mustLab(0, "get", "pods", "-o", "wide"), "10.20.0.11", "node1", "node2", "Running")
	contains(mustLab(0, "get", "services"), "frontend-service", "ClusterIP", "80/TCP")

	contains(mustLab(0, "apply", "-f", seedPolicy), "networkpolicy.networking.k8s.io/frontend-access created")
	contains(mustLab(0, "apply", "-f", seedPolicy), "networkpolicy.networking.k8s.io/frontend-access unchanged")
	contains(mustLab(0, "get", "networkpolicies"), "frontend-access", "app=frontend")
	contains(mustLab(0, "describe", "networkpolicy", "frontend-access"),
		"Name:", "frontend-access", "PodSelector:     app=frontend", "Allowing ingress traffic:",
		"To Port: 80/TCP", "From:\n      PodSelector: app=backend", "Not affecting egress traffic", "Policy Types: Ingress")
	contains(mustLab(0, "probe", "--from", "backend", "--to", "frontend-service", "--port", "80/TCP"), "connected")
	contains(mustLab(1, "probe", "--from", "client-pod", "--to", "frontend-service", "--port", "80/TCP"), "no connection")
	mustLab(28, "exec", "client-pod", "--", "curl", "-sS", "--max-time", "2", "frontend-service")
	contains(mustLab(0, "matrix"), "rows are sources, columns destinations: . allowed, X denied\nports probed: 80/TCP (observed in the lab)\n", "80/TCP: observed = predicted\n")
	rules := mustLab(0, "rules")
	contains(rules, "table inet palisade", "frontend-access")

	// Bad input changes nothing in the kernel.
	mustLab(2, "apply", "-f", "../../internal/cli/testdata/bad-endport.yaml")
	if after := mustLab(0, "rules"); after != rules {
		t.Errorf("a rejected manifest changed the rules:\nbefore:\n%s\nafter:\n%s", rules, after)
	}

	contains(mustLab(0, "delete", "-f", seedPolicy), `networkpolicy "frontend-access" deleted`)
	mustLab(0, "probe", "--from", "client-pod", "--to", "frontend-service", "--port", "80/TCP")

	mustLab(0, "down")
	left, err := netns.List("palisade-" + name + "-")
	if err != nil || len(left) > 0 {
		t.Errorf("after lab down: namespaces %v (%v)", left, err)
	}
}

func TestDemo(t *testing.T) {
	fixture.RequireRoot(t)
	code, out, errOut := run(t, "", "demo")
	if code != 0 || !strings.Contains(out, "Demo passed") {
		t.Fatalf("demo: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"$ kubectl apply -f sample-app.yaml", "pod/frontend created",
		"$ kubectl exec backend -- curl frontend-service", "palisade lab: default/frontend",
		"networkpolicy.networking.k8s.io/frontend-access created",
		"$ kubectl describe networkpolicy frontend-access",
		"blocked (connection timed out): as expected",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if left, _ := netns.List("palisade-" + demoLab + "-"); len(left) > 0 {
		t.Errorf("demo left namespaces behind: %v", left)
	}
}
