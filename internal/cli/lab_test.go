package cli

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/lab/netns"
)

func TestMain(m *testing.M) {
	// lab exec re-runs the test binary to enter a pod; lab up starts it
	// again as the pod-serving daemon.
	lab.MaybeNSExec()
	if os.Getenv(churnEnv) != "" {
		churnEnforcer()
	}
	if len(os.Args) > 2 && os.Args[1] == "lab" && os.Args[2] == "daemon" {
		os.Exit(Main(os.Args[1:], Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
	}
	os.Exit(m.Run())
}

// labOf runs a lab verb against the lab called name.
func labOf(t *testing.T, name string, args ...string) (int, string, string) {
	t.Helper()
	return run(t, "", append([]string{"lab", args[0], "--name", name}, args[1:]...)...)
}

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
	contains(mustLab(0, "matrix"), "observed = predicted")
	rules := mustLab(0, "rules")
	contains(rules, "table inet palisade", "frontend-access")

	// Bad input changes nothing in the kernel.
	mustLab(2, "apply", "-f", "testdata/bad-endport.yaml")
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

// TestLabSkipsWorkloads: the lab has no controllers, so a Deployment read
// with the pods is dropped with one warning, never built as a pod.
func TestLabSkipsWorkloads(t *testing.T) {
	var errb bytes.Buffer
	in := "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c, image: nginx}]}\n---\n" +
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}}\n"
	objs, err := readObjects(Streams{In: strings.NewReader(in), Out: io.Discard, Err: &errb}, []string{"-"})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Kind != "Pod" || objs[0].Key.Name != "web" {
		t.Errorf("objects = %v, want pod web only", objs)
	}
	want := "warning: the lab runs no controllers: skipped 1 workloads (Deployment default/api); give their pods as Pod manifests\n"
	if errb.String() != want {
		t.Errorf("stderr = %q, want %q", errb.String(), want)
	}
}
