package e2e

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/palisade-net/palisade/internal/cli"
	"github.com/palisade-net/palisade/internal/kube"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/lab/kubetest"
)

// cliEnv makes the test binary run the palisade CLI with its arguments
// (the process-level agent test starts it so).
const cliEnv = "PALISADE_KUBE_TEST_CLI"

// TestMain runs the tests, then stops the API server if one of them
// started it. A watcher process stops it too if this process dies
// without getting there (a panic, a timeout, a kill).
//
// The test binary also plays palisade when started as one: lab exec
// re-runs it to enter a pod, `lab up` run in-process starts it again as
// the lab's pod-serving daemon, the process tests run it as the CLI, and
// the churn test runs it as the enforcer it kills.
func TestMain(m *testing.M) {
	lab.MaybeNSExec()
	isLabDaemon := len(os.Args) > 2 && os.Args[1] == "lab" && os.Args[2] == "daemon"
	if os.Getenv(cliEnv) == "1" || isLabDaemon {
		os.Exit(cli.Main(os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
	}
	if os.Getenv(churnEnv) != "" {
		churnEnforcer()
	}
	// client-go's own logs (reflector warnings while a test stops the
	// API server) would interleave with the test output.
	kube.RouteKlog(slog.New(slog.DiscardHandler))
	code := m.Run()
	if err := stopAPIServer(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the API server:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// run runs the palisade command line in this process and returns its exit
// code and streams.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(args, cli.Streams{In: strings.NewReader(stdin), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

// labOf runs a lab verb against the lab called name.
func labOf(t *testing.T, name string, args ...string) (int, string, string) {
	t.Helper()
	return run(t, "", append([]string{"lab", args[0], "--name", name}, args[1:]...)...)
}

// buildPalisade builds cmd/palisade into the test's temporary directory:
// the lab runs its daemon and agents from its own executable, which must
// be palisade, not this test binary.
func buildPalisade(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "palisade")
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build palisade: %v", err)
	}
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/palisade")
	cmd.Dir = kubetest.ModuleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/palisade: %v\n%s", err, out)
	}
	return bin
}

// apiServer is the package's one kube-apiserver and etcd (hack/apiserver),
// started by the first test that needs it.
var apiServer struct {
	once       sync.Once
	mu         sync.Mutex
	kubeconfig string
	stateDir   string
	skip       string // why there is none, when the binaries are missing
	err        error
}

// server is a running API server started by up.sh.
type server struct {
	Kubeconfig, StateDir string
}

// needAPIServer returns the package's API server, starting it on first
// use. Without cached binaries the test is skipped with the reason; under
// CI=true it fails instead.
func needAPIServer(t *testing.T) server {
	t.Helper()
	apiServer.once.Do(func() {
		s, skip, err := startAPIServer()
		apiServer.mu.Lock()
		defer apiServer.mu.Unlock()
		apiServer.kubeconfig, apiServer.stateDir, apiServer.skip, apiServer.err = s.Kubeconfig, s.StateDir, skip, err
	})
	apiServer.mu.Lock()
	defer apiServer.mu.Unlock()
	if apiServer.err != nil {
		t.Fatalf("API server: %v", apiServer.err)
	}
	if apiServer.skip != "" {
		skipOrFail(t, apiServer.skip)
	}
	return server{apiServer.kubeconfig, apiServer.stateDir}
}

func stopAPIServer() error {
	apiServer.mu.Lock()
	defer apiServer.mu.Unlock()
	if apiServer.stateDir == "" {
		return nil
	}
	err := downAPIServer(apiServer.stateDir)
	apiServer.stateDir = ""
	return err
}

// startAPIServer starts one API server with up.sh and a watcher that
// stops it when this process ends. skip is set when the binaries are not
// built.
func startAPIServer() (s server, skip string, err error) {
	root, kas, etcd, skip, err := apiBinaries()
	if skip != "" || err != nil {
		return s, skip, err
	}
	return upAPIServer(root, kas, etcd)
}

// apiBinaries finds the kube-apiserver and etcd binaries:
// KUBE_APISERVER_BIN and ETCD_BIN, else build.sh's cache; skip says why
// there are none.
func apiBinaries() (root, kas, etcd, skip string, err error) {
	root, err = kubetest.FindModuleRoot()
	if err != nil {
		return
	}
	kas, etcd, err = kubetest.Binaries(root)
	if err != nil {
		return
	}
	if !kubetest.Executable(kas) || !kubetest.Executable(etcd) {
		skip = fmt.Sprintf("no kube-apiserver and etcd binaries (not in KUBE_APISERVER_BIN/ETCD_BIN, nor cached at %s and %s): "+
			"run `bash hack/apiserver/build.sh` once (about 8 minutes)", kas, etcd)
	}
	return
}

// skipOrFail skips the test with reason, or fails it under CI=true.
func skipOrFail(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true, not skipping: %s", reason)
	}
	t.Skip(reason)
}

// upAPIServer runs up.sh and starts the watcher.
func upAPIServer(root, kas, etcd string) (server, string, error) {
	cmd := exec.Command("bash", filepath.Join(root, "hack", "apiserver", "up.sh"))
	cmd.Env = append(os.Environ(), "KUBE_APISERVER_BIN="+kas, "ETCD_BIN="+etcd)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	vars := kubetest.Assignments(out)
	s := server{Kubeconfig: vars["KUBECONFIG"], StateDir: vars["STATE_DIR"]}
	if s.StateDir != "" {
		// The watcher: when this process is gone, down.sh (which does
		// nothing if the state dir is already removed).
		w := exec.Command("bash", "-c", `while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; exec bash "$2" "$3"`,
			"watcher", fmt.Sprint(os.Getpid()), filepath.Join(root, "hack", "apiserver", "down.sh"), s.StateDir)
		w.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if werr := w.Start(); werr != nil {
			downAPIServer(s.StateDir)
			return server{}, "", fmt.Errorf("starting the API server's watcher: %w", werr)
		}
		go w.Wait()
	}
	if err != nil || s.Kubeconfig == "" {
		if s.StateDir != "" {
			downAPIServer(s.StateDir)
		}
		return server{}, "", fmt.Errorf("hack/apiserver/up.sh: %v\n%s", err, stderr.String())
	}
	return s, "", nil
}

func downAPIServer(stateDir string) error {
	root, err := kubetest.FindModuleRoot()
	if err != nil {
		return err
	}
	if out, err := exec.Command("bash", filepath.Join(root, "hack", "apiserver", "down.sh"), stateDir).CombinedOutput(); err != nil {
		return fmt.Errorf("hack/apiserver/down.sh: %v: %s", err, out)
	}
	return nil
}
