package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/lab/kubetest"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/netns"
)

// requireTool skips (fails under CI=true) without a program the test runs.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and no %s: %v", name, err)
		}
		t.Skipf("needs %s", name)
	}
}

// kubeDemoNS is where palisade demo --kubeconfig puts its objects (cli's
// kubeDemoNS).
const kubeDemoNS = "palisade-demo"

// TestKubeconfigDemo runs `palisade demo --kubeconfig` on a real API server
// (hack/apiserver/up.sh) with the real kubectl: the lab plays the kubelet,
// one palisade agent per node enforces, authenticated as deploy/'s
// ServiceAccount. Then a lab in kubelet mode whose daemon is killed with
// SIGKILL takes its agents along, and lab down leaves nothing behind.
func TestKubeconfigDemo(t *testing.T) {
	fixture.RequireRoot(t)
	requireTool(t, "kubectl")
	requireTool(t, "curl")
	srv := kubetest.Start(t)
	bin := buildPalisade(t)
	cfg, err := lab.KubeRESTConfig(srv.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	palisade := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		return string(out), err
	}
	noLeftovers := func(t *testing.T, name string) {
		t.Helper()
		if nss, err := netns.List(lab.NetNSPrefix(name)); err != nil || len(nss) > 0 {
			t.Errorf("network namespaces of lab %s left: %v %v", name, nss, err)
		}
		if _, err := os.Stat(lab.StateDir(name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("state of lab %s left: %v", name, err)
		}
		if nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: lab.KubeLabLabel + "=" + name}); err != nil || len(nodes.Items) > 0 {
			t.Errorf("nodes of lab %s left in the API server: %v", name, err)
		}
	}

	t.Run("demo", func(t *testing.T) {
		t.Cleanup(func() { palisade("lab", "down", "--name", demoLab) })
		out, err := palisade("demo", "--kubeconfig", srv.Kubeconfig)
		if err != nil || !strings.Contains(out, "Demo passed") {
			t.Fatalf("palisade demo --kubeconfig: %v\n%s", err, out)
		}
		for _, want := range []string{
			"agents authenticate as system:serviceaccount:palisade-system:palisade-agent",
			"$ kubectl apply -f examples/seed/frontend-policy.yaml\nnetworkpolicy.networking.k8s.io/frontend-access created",
			"$ kubectl get networkpolicies\nNAME              POD-SELECTOR   AGE\nfrontend-access   app=frontend",
			"$ kubectl describe networkpolicy frontend-access\nName:         frontend-access",
			"PodSelector:     app=frontend",
			"# succeeded: as expected (article: should succeed)",
			"# blocked (connection timed out): as expected (article: should fail)",
			"comment \"palisade-demo/frontend-access ingress[0]\"",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("demo output lacks %q", want)
			}
		}
		if t.Failed() {
			t.Logf("output:\n%s", out)
		}
		noLeftovers(t, demoLab)
		if pods, err := cs.CoreV1().Pods(kubeDemoNS).List(ctx, metav1.ListOptions{}); err != nil || len(pods.Items) > 0 {
			t.Errorf("pods left in %s: %v", kubeDemoNS, err)
		}
	})

	t.Run("apply and delete", func(t *testing.T) {
		const name = "kubeapply"
		t.Cleanup(func() { palisade("lab", "down", "--name", name) })
		// A cluster-wide policy: lab up installed its CRD.
		anp := filepath.Join(t.TempDir(), "anp.yaml")
		if err := os.WriteFile(anp, []byte(`apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: deny-client}
spec:
  priority: 10
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: frontend}}}}
  ingress:
  - action: Deny
    from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: client}}}}]
`), 0o644); err != nil {
			t.Fatal(err)
		}
		// The lab's kubelet mirrors the policy into the lab's state.
		mirrored := func(want bool) func() {
			return func() {
				deadline := time.Now().Add(10 * time.Second)
				for {
					l, err := lab.Load(name)
					if err != nil {
						t.Fatal(err)
					}
					got := l.Cluster().ClusterPolicies[model.ClusterKey{Kind: model.KindAdminNetworkPolicy, Name: "deny-client"}] != nil
					if got == want {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("the lab's state has the ANP: %v, want %v", got, want)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		}
		for _, step := range []struct {
			args  []string
			want  string
			check func()
		}{
			{[]string{"up", "--kubeconfig", srv.Kubeconfig, "-f", seedApp}, "pod/frontend created\nservice/frontend-service created\n", nil},
			{[]string{"apply", "-f", seedApp}, "pod/frontend unchanged\n", nil},
			{[]string{"apply", "-f", seedPolicy}, "networkpolicy.networking.k8s.io/frontend-access created\n", nil},
			{[]string{"apply", "-f", seedPolicy}, "networkpolicy.networking.k8s.io/frontend-access unchanged\n", nil},
			{[]string{"delete", "-f", seedPolicy}, "networkpolicy \"frontend-access\" deleted\n", nil},
			{[]string{"apply", "-f", anp}, "adminnetworkpolicy.policy.networking.k8s.io/deny-client created\n", mirrored(true)},
			{[]string{"apply", "-f", anp}, "adminnetworkpolicy.policy.networking.k8s.io/deny-client unchanged\n", nil},
			{[]string{"delete", "-f", anp}, "adminnetworkpolicy.policy.networking.k8s.io \"deny-client\" deleted\n", mirrored(false)},
			{[]string{"delete", "-f", seedApp}, "pod \"client-pod\" deleted\n", nil},
			{[]string{"down"}, "lab removed\n", nil},
		} {
			out, err := palisade(append([]string{"lab", step.args[0], "--name", name}, step.args[1:]...)...)
			if err != nil || !strings.Contains(out, step.want) {
				t.Fatalf("lab %s: %v, want %q in\n%s", strings.Join(step.args, " "), err, step.want, out)
			}
			if step.check != nil {
				step.check()
			}
		}
		noLeftovers(t, name)
	})

	t.Run("daemon killed", func(t *testing.T) {
		const name = "kubesigkill"
		t.Cleanup(func() { palisade("lab", "down", "--name", name) })
		if out, err := palisade("lab", "up", "--name", name, "--kubeconfig", srv.Kubeconfig, "--nodes", "2"); err != nil {
			t.Fatalf("lab up --kubeconfig: %v\n%s", err, out)
		}
		agents := lab.Agents(name)
		if len(agents) != 2 {
			t.Fatalf("agents: %+v", agents)
		}
		b, err := os.ReadFile(filepath.Join(lab.StateDir(name), "daemon.pid"))
		if err != nil {
			t.Fatal(err)
		}
		daemon, err := strconv.Atoi(strings.Fields(string(b))[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(daemon, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for _, a := range agents {
			deadline := time.Now().Add(5 * time.Second)
			for !gone(a.PID) {
				if time.Now().After(deadline) {
					t.Fatalf("agent of %s (pid %d) outlived its daemon", a.Node, a.PID)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if out, err := palisade("lab", "down", "--name", name); err != nil {
			t.Fatalf("lab down: %v\n%s", err, out)
		}
		noLeftovers(t, name)
	})
}

// gone reports whether pid has exited (a zombie awaiting its reaper counts).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}
