package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/model"
)

// panicWriter stands for a bug: any write panics.
type panicWriter struct{}

func (panicWriter) Write([]byte) (int, error) { panic("broken writer") }

// Exit codes: 0 allow or success, 1 deny or failure, 2 bad input only,
// 3 palisade's own fault.
func TestExitCodes(t *testing.T) {
	f := []string{"-f", expose}
	tests := []struct {
		name  string
		args  []string
		setup func(t *testing.T)
		code  int
		errs  []string
	}{
		{name: "allow", args: append([]string{"check", "--from", "client", "--to", "pod/web", "--port", "5000"}, f...), code: 0},
		{name: "deny", args: append([]string{"check", "--from", "client", "--to", "web-2", "--port", "5000"}, f...), code: 1},
		{name: "partial", args: append([]string{"check", "--from", "client", "--to", "svc/web", "--port", "5001"}, f...), code: 1},
		{name: "success", args: append([]string{"matrix"}, f...), code: 0},
		{name: "unknown verb", args: []string{"nope"}, code: 2, errs: []string{`error: unknown command "nope"`}},
		{name: "bad flag", args: []string{"matrix", "--nope"}, code: 2},
		{name: "invalid manifest", args: []string{"matrix", "-f", "testdata/bad-endport.yaml"}, code: 2},
		{name: "missing file", args: []string{"matrix", "-f", "testdata/none.yaml"}, code: 2},
		{name: "a reader's own failure is internal, not bad input", args: append([]string{"matrix"}, f...),
			setup: func(t *testing.T) {
				orig := readManifests
				t.Cleanup(func() { readManifests = orig })
				readManifests = func(*input, Streams) (*model.Cluster, error) {
					return nil, errors.New("index out of step\nsecond line")
				}
			},
			code: 3, errs: []string{"internal error: index out of step\\nsecond line\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t)
			}
			code, out, errOut := run(t, "", tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, want := range tt.errs {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			if tt.code == 3 && strings.Count(errOut, "\n") != 1 {
				t.Errorf("internal error takes %d lines, want one:\n%s", strings.Count(errOut, "\n"), errOut)
			}
		})
	}
}

func TestExitPanic(t *testing.T) {
	var errb bytes.Buffer
	code := Main([]string{"matrix", "-f", expose}, Streams{In: strings.NewReader(""), Out: panicWriter{}, Err: &errb})
	first, rest, _ := strings.Cut(errb.String(), "\n")
	if code != 3 || first != "internal error: panic: broken writer" || !strings.Contains(rest, "goroutine ") {
		t.Errorf("exit %d, stderr:\n%s", code, errb.String())
	}
}

// rawControl reports the first byte or rune of s a terminal would act on,
// newlines and tabs aside (the writers' own), or "".
func rawControl(s string) string {
	for _, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || r == 0x9b || r == '\u202e' {
			return string(r)
		}
	}
	return ""
}

func TestEscapeOutput(t *testing.T) {
	// A pod with an ESC and a CR in its name and a bidi override in a
	// label, as an unvalidated source could give them.
	evil := &model.Pod{Namespace: "default", Name: "x\x1b[2J\rALLOW", Labels: map[string]string{"app": "client", "note": "a\u202eb"}}
	withPods(t, evil)
	for _, args := range [][]string{
		{"matrix", "-f", expose},
		{"explain", "-f", expose},
		{"explain", "-f", expose, "x\x1b[2J\rALLOW"},
		{"check", "-f", expose, "--from", "x\x1b[2J\rALLOW", "--to", "pod/web", "--port", "5000"},
		{"check", "-f", expose, "--from", "x\x1b[2J\rALLOW", "--to", "x\x1b[2J\rALLOW", "--port", "1"},
	} {
		code, out, errOut := run(t, "", args...)
		if c := rawControl(out + errOut); c != "" || code > 1 {
			t.Errorf("%q: exit %d, raw %q in output:\n%s%s", args, code, c, out, errOut)
		}
		if !strings.Contains(out, `x\x1b[2J\rALLOW`) {
			t.Errorf("%q: the name is not escaped in place:\n%s", args, out)
		}
	}
	_, out, _ := run(t, "", "explain", "-f", expose, "x\x1b[2J\rALLOW")
	if !strings.Contains(out, `note=a\u202eb`) {
		t.Errorf("label not escaped:\n%s", out)
	}
}

func TestEscapeErrors(t *testing.T) {
	// The manifest reader rejects the name, quoting it in its message;
	// Main escapes the rest of the line, where the name is raw.
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	doc := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: \"a\\e[2Jb\\rFORGED\\u202e\"\n"
	if err := os.WriteFile(bad, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, "", "matrix", "-f", bad)
	if c := rawControl(errOut); code != 2 || c != "" || !strings.Contains(errOut, `a\x1b[2Jb\rFORGED\u202e`) {
		t.Errorf("exit %d, raw %q:\n%s", code, c, errOut)
	}
	// A name on the command line, in the error that it does not exist.
	code, _, errOut = run(t, "", "explain", "-f", expose, "\x1b]0;title\a")
	if c := rawControl(errOut); code != 2 || c != "" {
		t.Errorf("exit %d, raw %q:\n%s", code, c, errOut)
	}
}
