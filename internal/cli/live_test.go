package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLiveBadKubeconfig: a kubeconfig that cannot name a cluster (no such
// context, no such file) is bad input, exit 2, and the message says
// which; a server nobody listens on gives no answer (exit 3, never 1,
// which check uses for DENY), and the message names the server.
// No API server needed.
func TestLiveBadKubeconfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kubeconfig")
	kc := `apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: x}
contexts:
- name: nowhere
  context: {cluster: nowhere, user: u, namespace: shop}
current-context: nowhere
`
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"matrix", "--kubeconfig", path, "--context", "prod"}, 2, []string{path, `no context "prod"`, "its contexts: nowhere"}},
		{[]string{"explain", "--kubeconfig", path + ".missing"}, 2, []string{path + ".missing"}},
		{[]string{"check", "--kubeconfig", path, "--from", "a", "--to", "b", "--port", "80"}, 3, []string{"context nowhere (https://127.0.0.1:1)", "connection refused"}},
	} {
		code, out, errOut := run(t, "", tt.args...)
		t.Logf("%v: exit %d: %s", tt.args, code, strings.TrimSpace(errOut))
		if code != tt.code || out != "" {
			t.Errorf("%v: exit %d, want %d; stdout %q", tt.args, code, tt.code, out)
		}
		for _, w := range tt.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tt.args, w, errOut)
			}
		}
	}
}
