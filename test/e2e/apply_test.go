package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/palisade-net/palisade/internal/kube"
	"github.com/palisade-net/palisade/internal/manifest"
)

// TestApplyDelete applies, re-applies, changes and deletes objects on a
// real API server, and checks the lines kubectl would print.
func TestApplyDelete(t *testing.T) {
	srv := needAPIServer(t)
	cs, err := kube.NewClient(srv.Kubeconfig, "palisade-apply-test")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := "apply-" + randHex(4)
	objects := func(t *testing.T, yaml string) []manifest.Object {
		t.Helper()
		objs, err := manifest.Read([]string{"-"}, strings.NewReader(strings.ReplaceAll(yaml, "NS", ns)), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	const app = `apiVersion: v1
kind: Namespace
metadata: {name: NS}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: NS, labels: {app: web}}
spec: {containers: [{name: c, image: nginx, ports: [{containerPort: 80}]}]}
status: {phase: Running, podIP: 10.0.0.1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: NS}
spec: {selector: {app: web}, ports: [{port: 80}]}
`
	policy := func(port string) string {
		return `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow, namespace: NS}
spec: {podSelector: {matchLabels: {app: web}}, ingress: [{ports: [{port: ` + port + `}]}]}
`
	}
	for _, step := range []struct {
		name, yaml, want string
		delete           bool
		wantErr          string
	}{
		{name: "create", yaml: app + "---\n" + policy("80"),
			want: "namespace/NS created\npod/web created\nservice/web created\nnetworkpolicy.networking.k8s.io/allow created\n"},
		{name: "again", yaml: app,
			want: "namespace/NS unchanged\npod/web unchanged\nservice/web unchanged\n"},
		{name: "change", yaml: policy("81"), want: "networkpolicy.networking.k8s.io/allow configured\n"},
		{name: "delete", yaml: policy("81") + "---\n" + app[strings.Index(app, "apiVersion: v1\nkind: Pod"):], delete: true,
			want: "networkpolicy \"allow\" deleted\npod \"web\" deleted\nservice \"web\" deleted\n"},
		{name: "delete missing", yaml: policy("81"), delete: true, wantErr: "not found: NetworkPolicy/NS/allow"},
	} {
		var out bytes.Buffer
		var err error
		if step.delete {
			err = kube.Delete(ctx, cs, objects(t, step.yaml), metav1.DeleteOptions{}, 30*time.Second, &out)
		} else {
			err = kube.Apply(ctx, cs, objects(t, step.yaml), &out)
		}
		wantErr := strings.ReplaceAll(step.wantErr, "NS", ns)
		if (err == nil) != (wantErr == "") || (err != nil && (err.Error() != wantErr || !errors.Is(err, kube.ErrNotFound))) {
			t.Errorf("%s: error %v, want %q", step.name, err, wantErr)
		}
		if want := strings.ReplaceAll(step.want, "NS", ns); out.String() != want {
			t.Errorf("%s: printed\n%s\nwant\n%s", step.name, out.String(), want)
		}
	}

	// The status in the file was not sent: the pod's kubelet sets it.
	objs := objects(t, app)
	if err := kube.Apply(ctx, cs, objs, io.Discard); err != nil {
		t.Fatal(err)
	}
	err = kube.WaitPodsRunning(ctx, cs, objs, 200*time.Millisecond)
	if want := `pod ` + ns + `/web: not running after 200ms (phase "Pending")`; err == nil || err.Error() != want {
		t.Errorf("WaitPodsRunning without a kubelet: %v, want %s", err, want)
	}
	if err := kube.Delete(ctx, cs, objs[1:], metav1.DeleteOptions{}, 30*time.Second, io.Discard); err != nil {
		t.Error(err)
	}
}
