package cli

import (
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/walkthrough"
)

// TestDemoSteps: `palisade demo --steps` prints the walkthrough's steps
// (hack/cluster/demo.sh reads them), without root, and runs nothing.
func TestDemoSteps(t *testing.T) {
	var want strings.Builder
	if err := walkthrough.Lines(&want, walkthrough.Seed); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"demo", "--steps"}, 0, want.String()},
		{[]string{"demo", "--steps", "--keep"}, 2, ""},
		{[]string{"demo", "--steps", "--kubeconfig", "x"}, 2, ""},
	} {
		code, out, errOut := run(t, "", tc.args...)
		if code != tc.code || out != tc.out {
			t.Errorf("%v: exit %d, stdout:\n%s\nstderr: %s\nwant exit %d, stdout:\n%s", tc.args, code, out, errOut, tc.code, tc.out)
		}
	}
}
