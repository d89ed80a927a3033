package store_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/lab/store"
	"github.com/palisade-net/palisade/internal/manifest"
)

func seed(t *testing.T, files ...string) []manifest.Object {
	t.Helper()
	var objs []manifest.Object
	for _, f := range files {
		data, err := os.ReadFile("../../../examples/seed/" + f)
		if err != nil {
			t.Fatal(err)
		}
		o, err := manifest.Read([]string{"-"}, bytes.NewReader(data), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o...)
	}
	return objs
}

// TestSession applies, re-applies and removes the seed's objects in a
// one-node lab, reopens it from its state, and checks kubectl's lines and
// what the lab's kubelet fills in.
func TestSession(t *testing.T) {
	fixture.RequireRoot(t)
	const name = "storetest"
	_ = lab.Down(name)
	t.Cleanup(func() {
		if err := lab.Down(name); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	ctx := context.Background()
	var out bytes.Buffer
	s, err := store.New(ctx, name, 1, seed(t, "sample-app.yaml"), &out)
	if s != nil {
		defer s.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	step := func(what string, err error, want string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if out.String() != want {
			t.Errorf("%s printed\n%s\nwant\n%s", what, out.String(), want)
		}
		out.Reset()
	}
	step("new", nil, "pod/frontend created\nservice/frontend-service created\npod/backend created\nservice/backend-service created\npod/client-pod created\n")
	step("apply policy", s.Apply(ctx, seed(t, "frontend-policy.yaml"), &out), "networkpolicy.networking.k8s.io/frontend-access created\n")

	r, err := store.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	step("apply again", r.Apply(ctx, seed(t, "frontend-policy.yaml"), &out), "networkpolicy.networking.k8s.io/frontend-access unchanged\n")
	if got := len(r.Find("Pod", "default", "")); got != 3 {
		t.Errorf("reopened: %d pods, want 3", got)
	}
	pods := r.Enrich(r.Find("Pod", "", "frontend"))
	if p := pods[0].API.(*corev1.Pod); p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || p.Spec.NodeName == "" {
		t.Errorf("enriched pod: phase %q, IP %q, node %q", p.Status.Phase, p.Status.PodIP, p.Spec.NodeName)
	}
	if ns := r.Namespaces(""); len(ns) != 1 || ns[0].Key.Name != "default" {
		t.Errorf("namespaces: %v", ns)
	}
	step("remove", r.Remove(ctx, seed(t, "frontend-policy.yaml"), &out), "networkpolicy \"frontend-access\" deleted\n")
	err = r.Remove(ctx, seed(t, "frontend-policy.yaml"), &out)
	if err == nil || !strings.Contains(err.Error(), "not found: NetworkPolicy/default/frontend-access") {
		t.Errorf("removing twice: %v", err)
	}
}
