package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/lab/kubetest"
)

// docFiles are the documents whose console examples of the offline tools
// are run as written, so that what a reader copies gives what they read.
var docFiles = []string{"README.md", "docs/cluster-policy.md"}

// consoleExample is one `$ bin/palisade …` command of a console block and
// the output printed under it.
type consoleExample struct {
	file, cmd string
	line      int
	args      []string
	want      string
	wantExit  int // from a trailing `; echo "exit $?"`, else 0 or 1 (any)
	exitGiven bool
}

var exitLine = regexp.MustCompile(`(?m)^exit (\d+)\n?$`)

// consoleExamples extracts every offline palisade command (not lab,
// agent or demo, which need root and are tested elsewhere) from the
// ```console blocks of a markdown file.
func consoleExamples(t *testing.T, root, file string) []consoleExample {
	data, err := os.ReadFile(filepath.Join(root, file))
	if err != nil {
		t.Fatal(err)
	}
	var out []consoleExample
	lines := strings.Split(string(data), "\n")
	inBlock := false
	var cur *consoleExample
	flush := func() {
		if cur != nil {
			cur.want = strings.TrimRight(cur.want, "\n")
			if m := exitLine.FindStringSubmatch(cur.want); m != nil {
				cur.wantExit, _ = strconv.Atoi(m[1])
				cur.exitGiven = true
				cur.want = strings.TrimRight(exitLine.ReplaceAllString(cur.want, ""), "\n")
			}
			out = append(out, *cur)
			cur = nil
		}
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "```console"):
			inBlock = true
			continue
		case inBlock && strings.HasPrefix(l, "```"):
			flush()
			inBlock = false
			continue
		case !inBlock:
			continue
		}
		if strings.HasPrefix(l, "$ ") {
			flush()
			cmd, start := strings.TrimPrefix(l, "$ "), i+1
			for strings.HasSuffix(cmd, "\\") && i+1 < len(lines) {
				i++
				cmd = strings.TrimSuffix(cmd, "\\") + " " + strings.TrimSpace(lines[i])
			}
			cmd = strings.TrimSuffix(cmd, `; echo "exit $?"`)
			fields := strings.Fields(cmd)
			if len(fields) < 2 || fields[0] != "bin/palisade" || strings.ContainsAny(cmd, "|<>'\"") ||
				fields[1] == "lab" || fields[1] == "agent" || fields[1] == "demo" {
				continue // not an offline palisade command
			}
			cur = &consoleExample{file: file, line: start, cmd: cmd, args: fields[1:]}
			continue
		}
		if cur != nil {
			cur.want += l + "\n"
		}
	}
	flush()
	return out
}

// TestDocExamples runs the documents' console examples of the offline
// tools and compares what they print with what the documents show.
func TestDocExamples(t *testing.T) {
	root := kubetest.ModuleRoot(t)
	t.Chdir(root)
	n := 0
	for _, f := range docFiles {
		for _, ex := range consoleExamples(t, root, f) {
			n++
			code, stdout, stderr := run(t, "", ex.args...)
			got := strings.TrimRight(stdout+stderr, "\n")
			if got != ex.want {
				t.Errorf("%s:%d: $ %s\nprints:\n%s\n\nthe document shows:\n%s", ex.file, ex.line, ex.cmd, got, ex.want)
			}
			if ex.exitGiven && code != ex.wantExit || !ex.exitGiven && code > 1 {
				t.Errorf("%s:%d: $ %s: exit %d, the document shows %d", ex.file, ex.line, ex.cmd, code, ex.wantExit)
			}
		}
	}
	if n < 5 {
		t.Errorf("found %d console examples in %v; the extraction is broken", n, docFiles)
	}
	t.Logf("%d console examples run", n)
}
