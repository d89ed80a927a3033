package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// seedSides copies examples/seed into two directories: old without
// default-deny-all.yaml, new with it.
func seedSides(t *testing.T) (old, new string) {
	t.Helper()
	old, new = t.TempDir(), t.TempDir()
	for _, f := range []string{"sample-app.yaml", "frontend-policy.yaml", "default-deny-all.yaml"} {
		b, err := os.ReadFile(filepath.Join("../../examples/seed", f))
		if err != nil {
			t.Fatal(err)
		}
		if f != "default-deny-all.yaml" {
			if err := os.WriteFile(filepath.Join(old, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(new, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return old, new
}

func TestDiff(t *testing.T) {
	old, new := seedSides(t)
	nowhere := filepath.Join(t.TempDir(), "kubeconfig")
	kc := `apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: u}}]
current-context: nowhere
`
	if err := os.WriteFile(nowhere, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		args      []string
		code      int
		out, errs []string // substrings of stdout and stderr
		noOut     []string
	}{
		{name: "identical", args: []string{"--old", new, "--new", new}, code: 0,
			out: []string{"ports compared: 80/TCP", "no connection gained or lost"}},
		{name: "new default deny", args: []string{"--old", old, "--new", new}, code: 1,
			out: []string{
				"policies: added default/default-deny-all",
				"lost   default/backend -> default/frontend  80/TCP",
				"egress of default/backend: before not isolated; now isolated by new policy default/default-deny-all with no rule allowing it",
				"5 connections lost, 0 gained",
			},
			noOut: []string{"gained "}},
		{name: "deny removed", args: []string{"--old", new, "--new", old}, code: 1,
			out: []string{"policies: deleted default/default-deny-all", "gained default/backend -> default/frontend  80/TCP",
				"egress of default/backend: before isolated by default/default-deny-all (deleted since) with no rule allowing it; now not isolated",
				"0 connections lost, 5 gained"},
			// frontend-access allowed backend's ingress on both sides:
			// only the directions that deny on a side are explained.
			noOut: []string{"ingress of default/frontend"}},
		{name: "files and pods only on one side", args: []string{"--old", filepath.Join(old, "frontend-policy.yaml"), "--new", old}, code: 1,
			out: []string{"pods only in --new (not compared): default/backend, default/client-pod, default/frontend"}},
		{name: "markdown", args: []string{"--old", old, "--new", new, "-o", "md"}, code: 1,
			out: []string{"| lost | `default/backend` | `default/frontend` | 80/TCP | egress of default/backend", "**5 connections lost, 0 gained**"}},
		{name: "no --new", args: []string{"--old", old}, code: 2, errs: []string{"--new: give a file"}},
		{name: "missing file", args: []string{"--old", filepath.Join(old, "none.yaml"), "--new", new}, code: 2, errs: []string{"error: --old: "}},
		{name: "bad output", args: []string{"--old", old, "--new", new, "-o", "xml"}, code: 2},
		{name: "stdin twice", args: []string{"--old", "-", "--new", "-"}, code: 2},
		{name: "kubeconfig without path", args: []string{"--old", "kubeconfig:", "--new", new}, code: 2},
		{name: "kubeconfig and files", args: []string{"--old", "kubeconfig:/nonexistent", "--old", old, "--new", new}, code: 2},
		{name: "missing kubeconfig", args: []string{"--old", "kubeconfig:/nonexistent/kubeconfig", "--new", new}, code: 2, errs: []string{"error: --old: "}},
		{name: "stray argument", args: []string{"--old", old, "--new", new, "extra"}, code: 2},
		// The live side is read: a server nobody listens on gives no
		// answer, 3, never 1 (a change) or 0.
		{name: "unreachable cluster", args: []string{"--old", "kubeconfig:" + nowhere, "--new", new}, code: 3,
			errs: []string{"--old: ", "connection refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errs bytes.Buffer
			code := Main(append([]string{"diff"}, tc.args...), Streams{In: strings.NewReader(""), Out: &out, Err: &errs})
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out.String(), errs.String())
			}
			for _, s := range tc.out {
				if !strings.Contains(out.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tc.noOut {
				if strings.Contains(out.String(), s) {
					t.Errorf("stdout has %q:\n%s", s, out.String())
				}
			}
			for _, s := range tc.errs {
				if !strings.Contains(errs.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, errs.String())
				}
			}
		})
	}
}

// diffReplicas is two pods of a Deployment's ReplicaSet, by their names.
const diffReplicas = `apiVersion: v1
kind: Pod
metadata: {name: web-7d9f8c6b5d-x2kqz, labels: {app: web}}
spec: {containers: [{name: c, image: nginx, ports: [{containerPort: 8080}]}]}
status: {podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-7d9f8c6b5d-b4ttp, labels: {app: web}}
spec: {containers: [{name: c, image: nginx, ports: [{containerPort: 8080}]}]}
status: {podIP: 10.0.0.2, podIPs: [{ip: 10.0.0.2}]}
`

const diffWebDeny = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-deny}
spec: {podSelector: {matchLabels: {app: web}}}
`

// TestDiffGrouping: replicas group as ns/NAME-* unless --pods.
func TestDiffGrouping(t *testing.T) {
	dir := t.TempDir()
	pods, pol := filepath.Join(dir, "pods.yaml"), filepath.Join(dir, "deny.yaml")
	if err := os.WriteFile(pods, []byte(diffReplicas), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pol, []byte(diffWebDeny), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flags []string
		want  []string
	}{
		{nil, []string{"lost   default/web-* -> default/web-*  8080/TCP\n       pods: default/web-7d9f8c6b5d-b4ttp -> default/web-7d9f8c6b5d-x2kqz, default/web-7d9f8c6b5d-x2kqz -> default/web-7d9f8c6b5d-b4ttp\n"}},
		{[]string{"--pods"}, []string{"lost   default/web-7d9f8c6b5d-b4ttp -> default/web-7d9f8c6b5d-x2kqz  8080/TCP\n", "lost   default/web-7d9f8c6b5d-x2kqz -> default/web-7d9f8c6b5d-b4ttp  8080/TCP\n"}},
	} {
		var out, errs bytes.Buffer
		args := append([]string{"diff", "--old", pods, "--new", pods, "--new", pol}, tc.flags...)
		if code := Main(args, Streams{Out: &out, Err: &errs}); code != 1 {
			t.Fatalf("%v: exit %d, want 1: %s", tc.flags, code, errs.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: stdout lacks %q:\n%s", tc.flags, w, out.String())
			}
		}
	}
}

func TestDiffJSON(t *testing.T) {
	old, new := seedSides(t)
	var out, errs bytes.Buffer
	if code := Main([]string{"diff", "--old", old, "--new", new, "-o", "json"}, Streams{Out: &out, Err: &errs}); code != 1 {
		t.Fatalf("exit %d, want 1: %s", code, errs.String())
	}
	var d diffDoc
	if err := json.Unmarshal(out.Bytes(), &d); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if d.Lost != 5 || d.Gained != 0 || !reflect.DeepEqual(d.Policies.Added, []string{"default/default-deny-all"}) {
		t.Errorf("lost %d gained %d added %q; want 5, 0, [default/default-deny-all]", d.Lost, d.Gained, d.Policies.Added)
	}
	for _, c := range d.Changes {
		if c.Change != "lost" || len(c.Reasons) == 0 {
			t.Errorf("change %+v: want lost, with reasons", c)
		}
		for _, r := range c.Reasons {
			if !reflect.DeepEqual(r.Policies, []string{"default/default-deny-all"}) {
				t.Errorf("%s -> %s: policies %q, want the new deny", c.From, c.To, r.Policies)
			}
		}
	}
}
