package e2e

// check, explain and matrix on a live cluster (--kubeconfig) give what
// they give on the same objects as manifests: the seed article's
// manifests applied to a real kube-apiserver, pod addresses written
// through the status subresource as a kubelet writes them.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/palisade-net/palisade/internal/kube"
	"github.com/palisade-net/palisade/internal/lab/kubetest"
)

// The seed article's manifests.
const (
	seedApp    = "../../examples/seed/sample-app.yaml"
	seedPolicy = "../../examples/seed/frontend-policy.yaml"
)

// applyToAPIServer creates the objects of manifest files, in their
// namespace or default, and writes each pod's status from the file
// (phase Running when it gives none).
func applyToAPIServer(t *testing.T, cs kubernetes.Interface, files ...string) {
	t.Helper()
	ctx := context.Background()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
		for {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if err := createObject(ctx, cs, obj); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
	}
}

func createObject(ctx context.Context, cs kubernetes.Interface, obj runtime.Object) error {
	ns := func(s string) string {
		if s == "" {
			return "default"
		}
		return s
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		status := o.Status
		if status.Phase == "" {
			status.Phase = corev1.PodRunning
		}
		p, err := cs.CoreV1().Pods(ns(o.Namespace)).Create(ctx, o, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		p.Status = status
		_, err = cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		return err
	case *corev1.Service:
		_, err := cs.CoreV1().Services(ns(o.Namespace)).Create(ctx, o, metav1.CreateOptions{})
		return err
	case *networkingv1.NetworkPolicy:
		_, err := cs.NetworkingV1().NetworkPolicies(ns(o.Namespace)).Create(ctx, o, metav1.CreateOptions{})
		return err
	case *corev1.Namespace:
		_, err := cs.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
		return err
	}
	return errors.New("unexpected kind " + obj.GetObjectKind().GroupVersionKind().Kind)
}

// withoutScenario drops the "scenario" field of matrix's JSON document.
func withoutScenario(t *testing.T, doc string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("%v:\n%s", err, doc)
	}
	delete(m, "scenario")
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLiveMatchesManifests: on a real API server holding the seed app and
// its policy, check, matrix and explain with --kubeconfig print what they
// print for the manifests, with the same exit codes. The live cluster
// also holds what the manifests do not: the API server's namespaces and
// Service, and a finished Job pod that once had the frontend's address,
// which changes nothing.
func TestLiveMatchesManifests(t *testing.T) {
	srv := kubetest.Start(t)
	cfg, err := kube.Config(srv.Kubeconfig, "palisade-live-test")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	applyToAPIServer(t, cs, seedApp, seedPolicy)
	ctx := context.Background()
	job, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "migrate-x7k2p", Labels: map[string]string{"app": "frontend"}},
		Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	job.Status = corev1.PodStatus{Phase: corev1.PodSucceeded, PodIP: "10.20.0.11", PodIPs: []corev1.PodIP{{IP: "10.20.0.11"}}}
	if _, err := cs.CoreV1().Pods("default").UpdateStatus(ctx, job, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	live := []string{"--kubeconfig", srv.Kubeconfig}
	offline := []string{"-f", seedApp, "-f", seedPolicy}
	for _, tt := range []struct {
		name       string
		verb       string
		live, args []string // live: flags only the live run takes
		code       int
		contains   string
	}{
		{"check backend to frontend", "check", nil,
			[]string{"--from", "default/backend", "--to", "default/frontend", "--port", "80/TCP"}, 0, "ALLOW default/backend -> default/frontend 80/TCP"},
		{"check client to frontend", "check", nil,
			[]string{"--from", "default/client-pod", "--to", "default/frontend", "--port", "80/TCP"}, 1, "DENY default/client-pod -> default/frontend 80/TCP"},
		{"check through the service", "check", nil,
			[]string{"--from", "default/client-pod", "--to", "default/frontend-service", "--port", "80"}, 1, "DENY default/client-pod -> service default/frontend-service 80/TCP"},
		{"check by address", "check", nil,
			[]string{"--from", "fd00:10:20::12", "--to", "fd00:10:20::11", "--port", "80"}, 0, "ALLOW default/backend -> fd00:10:20::11"},
		{"check json", "check", nil,
			[]string{"-o", "json", "--from", "default/backend", "--to", "default/frontend", "--port", "81"}, 1, `"DENY"`},
		{"matrix -A", "matrix", []string{"-A"}, nil, 0, "default/client-pod  .                .                   X\n"},
		{"matrix in the context's namespace", "matrix", nil, nil, 0, "default/client-pod  .                .                   X\n"},
		{"matrix json", "matrix", []string{"-A"}, []string{"-o", "json", "--port", "80/TCP", "--port", "53/UDP"}, 0, `"allowed"`},
		{"explain -n default", "explain", []string{"-n", "default"}, nil, 0, "from pods app=backend in namespace default: default/backend on 80/TCP"},
		{"explain a pod", "explain", nil, []string{"default/frontend"}, 0, "ingress: isolated by default/frontend-access"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			offCode, offOut, offErr := run(t, "", append(append([]string{tt.verb}, offline...), tt.args...)...)
			liveArgs := append(append(append([]string{tt.verb}, live...), tt.live...), tt.args...)
			code, out, errOut := run(t, "", liveArgs...)
			if code != tt.code || offCode != tt.code {
				t.Fatalf("exit %d live, %d offline, want %d\nlive %v:\n%s%s\noffline:\n%s%s", code, offCode, tt.code, liveArgs, out, errOut, offOut, offErr)
			}
			if tt.verb == "matrix" && strings.Contains(strings.Join(tt.args, " "), "-o json") {
				// The document names its input: the files, or nothing for
				// a live cluster.
				out, offOut = withoutScenario(t, out), withoutScenario(t, offOut)
			}
			if out != offOut {
				t.Errorf("live output differs from the manifests'\nlive %v:\n%s\nmanifests:\n%s", liveArgs, out, offOut)
			}
			if !strings.Contains(out, tt.contains) {
				t.Errorf("output lacks %q:\n%s", tt.contains, out)
			}
			if errOut != "" {
				t.Errorf("stderr: %s", errOut)
			}
		})
	}

	// A second live pod reporting the frontend's address (the address
	// reused while the old pod's status lags) does not make the cluster
	// unreadable: the newer pod takes the address, with a warning.
	newer := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "frontend-2", Labels: map[string]string{"app": "frontend", "gen": "2"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}
	frontend, err := cs.CoreV1().Pods("default").Get(ctx, "frontend", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for time.Now().Truncate(time.Second).Equal(frontend.CreationTimestamp.Time) {
		time.Sleep(50 * time.Millisecond) // creation times have one-second resolution
	}
	newer, err = cs.CoreV1().Pods("default").Create(ctx, newer, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newer.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.20.0.11", PodIPs: []corev1.PodIP{{IP: "10.20.0.11"}}}
	if _, err := cs.CoreV1().Pods("default").UpdateStatus(ctx, newer, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "", "check", "--kubeconfig", srv.Kubeconfig, "--from", "default/client-pod", "--to", "10.20.0.11", "--port", "80")
	if code != 1 || !strings.HasPrefix(out, "DENY default/client-pod -> 10.20.0.11 ") || !strings.Contains(out, "ingress of default/frontend-2:") {
		t.Errorf("check to the shared address: exit %d, want 1 (DENY to frontend-2)\n%s%s", code, out, errOut)
	}
	warning := "warning: pods default/frontend and default/frontend-2 both report address 10.20.0.11: taking it as default/frontend-2's (newer)\n"
	if errOut != warning {
		t.Errorf("check to the shared address: stderr %q, want %q", errOut, warning)
	}
	code, out, errOut = run(t, "", "matrix", "--kubeconfig", srv.Kubeconfig)
	if code != 0 || !strings.Contains(out, "default/frontend-2") || errOut != warning {
		t.Errorf("matrix with a shared address: exit %d\n%s%s", code, out, errOut)
	}

}
