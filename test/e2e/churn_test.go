package e2e

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/palisade-net/palisade/internal/cli"
	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/model"
)

// The churn test's cluster: a server, a client that some policy versions
// admit (a), one that the others admit (b), and one that no version ever
// admits (x). Every version isolates the server.
const churnPods = `
apiVersion: v1
kind: Pod
metadata: {name: server, labels: {app: server}}
spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {role: a}}
spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {role: b}}
spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: v1
kind: Pod
metadata: {name: x, labels: {role: x}}
spec: {containers: [{name: c, image: nginx}]}
`

// churnPolicy is version v of the server's policy: it admits role a on
// even versions and role b on odd ones, each time on a different port list
// so that the ruleset really changes.
func churnPolicy(v int) string {
	role := "a"
	if v%2 == 1 {
		role = "b"
	}
	return fmt.Sprintf(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-access}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: %s}}}]
    ports: [{port: 80}, {port: %d}]
`, role, 1000+v%500)
}

const churnEnv = "PALISADE_TEST_CHURN_LAB"

// churnEnforcer is the child process (TestMain runs it when churnEnv
// names a lab): it applies policy versions to the lab through the real
// `lab apply` path, as fast as it can, until killed or its time is up.
func churnEnforcer() {
	name := os.Getenv(churnEnv)
	dir, err := os.MkdirTemp("", "palisade-churn-")
	if err != nil {
		os.Exit(3)
	}
	defer os.RemoveAll(dir)
	deadline := time.Now().Add(20 * time.Second)
	for v := 0; time.Now().Before(deadline); v++ {
		f := filepath.Join(dir, "policy.yaml")
		if err := os.WriteFile(f, []byte(churnPolicy(v)), 0o644); err != nil {
			os.Exit(3)
		}
		code := cli.Main([]string{"lab", "apply", "--name", name, "-f", f}, cli.Streams{In: os.Stdin, Out: io.Discard, Err: os.Stderr})
		if code != 0 {
			os.Exit(code)
		}
	}
	os.Exit(0)
}

func TestEnforcerKilledUnderChurn(t *testing.T) {
	fixture.RequireRoot(t)
	const name = "churntest"
	_ = lab.Down(name)
	t.Cleanup(func() {
		if err := lab.Down(name); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	dir := t.TempDir()
	pods := filepath.Join(dir, "pods.yaml")
	if err := os.WriteFile(pods, []byte(churnPods), 0o644); err != nil {
		t.Fatal(err)
	}
	first := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(first, []byte(churnPolicy(0)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := labOf(t, name, "up", "--nodes", "2", "-f", pods, "-f", first); code != 0 {
		t.Fatalf("lab up: exit %d\n%s%s", code, out, errOut)
	}
	l, err := lab.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	serverIP, ok := l.Cluster().Pods[model.Key{Namespace: "default", Name: "server"}].IP(netip.IPv4Unspecified())
	if !ok {
		t.Fatal("server has no IPv4 address")
	}

	// Probe throughout: x must never get through; a and b must each get
	// through at some point and be refused at another, or the churn did
	// not churn.
	ctx, stop := context.WithCancel(context.Background())
	var xOK, probes atomic.Int64
	var seen sync.Map // "a:true" and so on
	var wg sync.WaitGroup
	for _, from := range []string{"x", "a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000 && ctx.Err() == nil; i++ {
				ok, err := l.Probe(ctx, model.Key{Namespace: "default", Name: from}, serverIP, 80, model.TCP, 150*time.Millisecond)
				if err != nil {
					continue // the context ended
				}
				probes.Add(1)
				seen.Store(fmt.Sprintf("%s:%v", from, ok), true)
				if from == "x" && ok {
					xOK.Add(1)
				}
			}
		}()
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	kills := 0
	for round := 0; round < 6; round++ {
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), churnEnv+"="+name)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(300+round*97) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err == nil {
			kills++
		}
		werr := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Errorf("round %d: the enforcer ended before it was killed: %v", round, werr)
		}
	}
	stop()
	wg.Wait()

	if n := xOK.Load(); n > 0 {
		t.Errorf("x reached the server %d times; every policy version denies it", n)
	}
	for _, k := range []string{"a:true", "a:false", "b:true", "b:false"} {
		if _, ok := seen.Load(k); !ok {
			t.Errorf("never observed %s: the policy did not flip under churn", k)
		}
	}
	t.Logf("%d enforcers killed, %d probes, x never got through", kills, probes.Load())

	// A restart reconciles: one more apply, then every node's table is
	// exactly what a fresh compile of the lab's state gives.
	if code, out, errOut := labOf(t, name, "apply", "-f", first); code != 0 {
		t.Fatalf("lab apply after the kills: exit %d\n%s%s", code, out, errOut)
	}
	l, err = lab.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	e := engine.FromCluster(l.Cluster())
	for _, node := range l.Nodes() {
		got, err := dataplane.Read(l.NodeNetNS(node))
		if err != nil {
			t.Fatal(err)
		}
		got.Live = false
		want := dataplane.Compile(e, node, dataplane.Options{})
		if diff := cmp.Diff(strings.TrimSpace(want.String()), strings.TrimSpace(got.String())); diff != "" {
			t.Errorf("node %s: the kernel's table is not a fresh compile (-want +got):\n%s", node, diff)
		}
	}
}
