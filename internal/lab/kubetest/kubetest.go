// Package kubetest starts a real kube-apiserver and etcd for tests, with the
// scripts of hack/apiserver (up.sh, down.sh). It is for tests only.
package kubetest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Server is a running API server.
type Server struct {
	// Kubeconfig is an admin kubeconfig (system:masters).
	Kubeconfig string
	// StateDir holds the certificates, logs and etcd data; removed when the
	// test ends.
	StateDir string
}

// Start starts an API server with hack/apiserver/up.sh and stops it, and
// removes its state, when the test ends (also when it fails).
//
// The binaries come from KUBE_APISERVER_BIN and ETCD_BIN, else from
// hack/apiserver/build.sh's cache. Without them the test is skipped with
// the reason, except under CI=true, where build.sh builds them (about 8
// minutes cold) and a failure fails the test.
func Start(t testing.TB) *Server {
	t.Helper()
	root := ModuleRoot(t)
	kas, etcd, err := Binaries(root)
	if err != nil {
		t.Fatalf("hack/apiserver/build.sh: %v", err)
	}
	if !Executable(kas) || !Executable(etcd) {
		if os.Getenv("CI") != "true" {
			t.Skipf("no kube-apiserver and etcd binaries (KUBE_APISERVER_BIN, ETCD_BIN, or the cache of hack/apiserver/build.sh, which builds them in about 8 minutes): run `bash hack/apiserver/build.sh` once")
		}
		out, err := exec.Command("bash", filepath.Join(root, "hack", "apiserver", "build.sh")).Output()
		if err != nil {
			t.Fatalf("CI=true and no cached API server: hack/apiserver/build.sh: %v", err)
		}
		vars := Assignments(out)
		kas, etcd = vars["KUBE_APISERVER_BIN"], vars["ETCD_BIN"]
	}
	cmd := exec.Command("bash", filepath.Join(root, "hack", "apiserver", "up.sh"))
	cmd.Env = append(os.Environ(), "KUBE_APISERVER_BIN="+kas, "ETCD_BIN="+etcd)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	vars := Assignments(out)
	s := &Server{Kubeconfig: vars["KUBECONFIG"], StateDir: vars["STATE_DIR"]}
	if s.StateDir != "" {
		t.Cleanup(func() {
			if out, err := exec.Command("bash", filepath.Join(root, "hack", "apiserver", "down.sh"), s.StateDir).CombinedOutput(); err != nil {
				t.Errorf("hack/apiserver/down.sh: %v: %s", err, out)
			}
		})
	}
	if err != nil || s.Kubeconfig == "" {
		t.Fatalf("hack/apiserver/up.sh: %v\n%s", err, stderr.String())
	}
	return s
}

// Executable reports whether path names an executable file.
func Executable(path string) bool {
	if path == "" {
		return false
	}
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Binaries returns the kube-apiserver and etcd to run:
// KUBE_APISERVER_BIN and ETCD_BIN when both are executables, else where
// hack/apiserver/build.sh caches them (which may not exist yet: check
// with Executable).
func Binaries(root string) (kubeAPIServer, etcd string, err error) {
	kubeAPIServer, etcd = os.Getenv("KUBE_APISERVER_BIN"), os.Getenv("ETCD_BIN")
	if Executable(kubeAPIServer) && Executable(etcd) {
		return kubeAPIServer, etcd, nil
	}
	return CachedBinaries(root)
}

// CachedBinaries returns where hack/apiserver/build.sh (under the module
// root) keeps the binaries of the versions it builds by default (or of
// KUBE_VERSION and ETCD_VERSION), without building anything.
func CachedBinaries(root string) (kubeAPIServer, etcd string, err error) {
	script, err := os.ReadFile(filepath.Join(root, "hack", "apiserver", "build.sh"))
	if err != nil {
		return "", "", err
	}
	version := func(v string) string {
		if s := os.Getenv(v); s != "" {
			return s
		}
		m := regexp.MustCompile(v + `="\$\{` + v + `:-([^}]+)\}"`).FindSubmatch(script)
		if m == nil {
			return ""
		}
		return string(m[1])
	}
	cache := os.Getenv("APISERVER_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "k8s-testbin")
	}
	return filepath.Join(cache, "bin", "kube-apiserver-"+version("KUBE_VERSION")),
		filepath.Join(cache, "bin", "etcd-"+version("ETCD_VERSION")), nil
}

// Assignments reads NAME=VALUE lines (what up.sh and build.sh print).
func Assignments(out []byte) map[string]string {
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
			vars[k] = v
		}
	}
	return vars
}

// ModuleRoot returns the directory of go.mod, above the test's directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := FindModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// FindModuleRoot returns the directory of go.mod, above the working
// directory.
func FindModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
		dir = parent
	}
}
