package e2e

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/fixture"
)

// palisade runs `palisade ARGS` as a process: this test binary, which
// TestMain turns into the CLI.
func palisade(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	return cmd
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// `palisade agent` as the process the DaemonSet (and the lab's kubelet
// mode) runs: flags, health endpoints, SIGTERM leaves the rules, and
// `palisade agent --cleanup` removes the table.
func TestAgentProcess(t *testing.T) {
	fixture.RequireRoot(t)
	srv := needAPIServer(t)
	nsPath := testNetNS(t)
	e := newAPIEnv(t, srv.Kubeconfig)
	node := e.ns + "-node"
	e.createPod("web", node, map[string]string{"app": "web"}, "10.250.0.1")
	e.createPolicy(e.allowFrom("web", "web", "client"))

	addr := freePort(t)
	cmd := palisade("agent", "--kubeconfig", srv.Kubeconfig, "--node-name", node, "--netns", nsPath,
		"--metrics-addr", addr, "--log-denied", "--terminate-denied")
	var stderr fixture.LogBuffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	})

	get := func(path string) int {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(15 * time.Second)
	for get("/readyz") != http.StatusOK {
		select {
		case err := <-exited:
			t.Fatalf("agent exited: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not ready after 15 s:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if get("/healthz") != 200 || get("/metrics") != 200 {
		t.Error("/healthz or /metrics not 200")
	}
	rs, err := dataplane.Read(nsPath)
	if err != nil || !setHas(rs, "ingress4", "10.250.0.1") {
		t.Fatalf("table after ready: %v\n%v", err, rs)
	}
	if !strings.Contains(rs.String(), `log prefix "palisade-drop `) {
		t.Errorf("--log-denied: no NFLOG rule in the table:\n%s", rs)
	}

	// SIGTERM: exit 0, the rules stay.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("agent after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("agent still running 10 s after SIGTERM:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "the rules stay in place") {
		t.Errorf("no shutdown line in the log:\n%s", stderr.String())
	}
	after, err := dataplane.Read(nsPath)
	if err != nil || !setHas(after, "ingress4", "10.250.0.1") {
		t.Fatalf("table after SIGTERM: %v\n%v", err, after)
	}

	// --cleanup removes the table (and needs no API server or node name).
	out, err := palisade("agent", "--cleanup", "--netns", nsPath).CombinedOutput()
	if err != nil {
		t.Fatalf("agent --cleanup: %v\n%s", err, out)
	}
	if _, err := dataplane.Read(nsPath); !errors.Is(err, dataplane.ErrNoTable) {
		t.Errorf("table after --cleanup: %v", err)
	}
	// Twice is fine.
	if out, err := palisade("agent", "--cleanup", "--netns", nsPath).CombinedOutput(); err != nil {
		t.Errorf("second agent --cleanup: %v\n%s", err, out)
	}

	// Bad flags are usage errors (exit 2).
	for _, args := range [][]string{
		{"agent", "--netns", nsPath, "--kubeconfig", srv.Kubeconfig}, // no node name
		{"agent", "--node-name", "x", "extra"},
	} {
		cmd := palisade(args...)
		cmd.Env = append(cmd.Env, "NODE_NAME=")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("palisade %v: %v, want exit 2\n%s", args, err, out)
		}
	}
}
