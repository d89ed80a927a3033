package e2e

// diff with a live cluster on one side (kubeconfig:PATH): the palisade
// binary against a real kube-apiserver holding the seed article's app,
// compared with the seed manifests with and without frontend-policy.yaml.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/palisade-net/palisade/internal/kube"
	"github.com/palisade-net/palisade/internal/lab/kubetest"
)

// What diff prints for the seed app before and after frontend-policy.yaml:
// only client-pod loses frontend (backend is allowed by the policy's rule).
const (
	seedPolicyLost = `policies: added default/frontend-access
ports compared: 80/TCP

lost   default/client-pod -> default/frontend  80/TCP
       ingress of default/frontend: before not isolated; now isolated by new policy default/frontend-access with no rule allowing it

1 connection lost, 0 gained
`
	seedPolicyGained = `policies: deleted default/frontend-access
ports compared: 80/TCP

gained default/client-pod -> default/frontend  80/TCP
       ingress of default/frontend: before isolated by default/frontend-access (deleted since) with no rule allowing it; now not isolated

0 connections lost, 1 gained
`
	seedNoChange = `ports compared: 80/TCP
no connection gained or lost
`
)

// manifestDir copies files into a fresh directory, a SOURCE for diff.
func manifestDir(t *testing.T, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runBinary runs the palisade binary bin and returns its exit code and
// streams; a failure to start it fails the test.
func runBinary(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return exit.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("%s %v: %v\n%s", bin, args, err, errb.String())
	return 0, "", ""
}

// TestLiveDiff: the seed app on a real API server, first without a
// policy, then with frontend-policy.yaml applied; palisade diff compares
// the cluster (kubeconfig:PATH) with the seed manifests, both ways, and
// with itself. Each run must print exactly the expected connections and
// exit 1 on a change, 0 on none.
func TestLiveDiff(t *testing.T) {
	srv := kubetest.Start(t)
	bin := buildPalisade(t)
	cfg, err := kube.Config(srv.Kubeconfig, "palisade-live-diff-test")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	live := "kubeconfig:" + srv.Kubeconfig
	appOnly := manifestDir(t, seedApp)
	withPolicy := manifestDir(t, seedApp, seedPolicy)

	type diffCase struct {
		name     string
		old, new string
		code     int
		out      string
	}
	check := func(t *testing.T, cases []diffCase) {
		t.Helper()
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				code, out, errOut := runBinary(t, bin, "diff", "--old", tc.old, "--new", tc.new)
				if code != tc.code || out != tc.out || errOut != "" {
					t.Errorf("palisade diff --old %s --new %s: exit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s",
						tc.old, tc.new, code, tc.code, out, tc.out, errOut)
				}
			})
		}
	}

	// The cluster holds the app, no policy yet.
	applyToAPIServer(t, cs, seedApp)
	t.Run("without policy", func(t *testing.T) {
		check(t, []diffCase{
			{"live to manifests with policy", live, withPolicy, 1, seedPolicyLost},
			{"manifests with policy to live", withPolicy, live, 1, seedPolicyGained},
			{"live to its own manifests", live, appOnly, 0, seedNoChange},
			{"live to live", live, live, 0, seedNoChange},
		})
	})

	// frontend-policy.yaml applied: the cluster now is the "after" state.
	applyToAPIServer(t, cs, seedPolicy)
	t.Run("with policy", func(t *testing.T) {
		check(t, []diffCase{
			{"manifests without policy to live", appOnly, live, 1, seedPolicyLost},
			{"live to manifests without policy", live, appOnly, 1, seedPolicyGained},
			{"live to its own manifests", live, withPolicy, 0, seedNoChange},
			{"live to live", live, live, 0, seedNoChange},
		})
	})
}
