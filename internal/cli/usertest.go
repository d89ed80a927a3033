package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/palisade-net/palisade/internal/conformance"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// testFileJSON is one expectations file in test's -o json output.
type testFileJSON struct {
	File   string          `json:"file"`
	Name   string          `json:"name"`
	Pass   bool            `json:"pass"`
	Checks []testCheckJSON `json:"checks"`
	// Failures are the file's other failures: probes, actions.
	Failures []string `json:"failures,omitempty"`
}

type testCheckJSON struct {
	Index    int           `json:"index"`
	From     string        `json:"from"`
	To       string        `json:"to"`
	Port     uint16        `json:"port"`
	Protocol string        `json:"protocol"`
	Family   string        `json:"family"`
	Expect   string        `json:"expect"`
	Got      string        `json:"got,omitempty"`
	Pass     bool          `json:"pass"`
	Error    string        `json:"error,omitempty"`
	Shortcut string        `json:"shortcut,omitempty"`
	Egress   *jsonDecision `json:"egress,omitempty"`
	Ingress  *jsonDecision `json:"ingress,omitempty"`
}

// runTest runs users' expectation files (conformance scenarios, usually
// with manifests and checks: conformance/FORMAT.md) on the engine.
func testFlags(s Streams) (*flag.FlagSet, func(pos []string) error) {
	flags := newFlags("test", s)
	var files, dirs stringList
	flags.Var(&files, "f", "expectations file, or a directory of them (its *.yaml; repeatable)")
	flags.Var(&dirs, "R", "directory whose *.yaml files, subdirectories' too, are expectations files (repeatable)")
	out := flags.String("o", "text", "output: text, json or yaml")
	return flags, func(pos []string) error {
		if err := noArgs("test", pos); err != nil {
			return err
		}
		if err := checkOutput(*out); err != nil {
			return err
		}
		paths := append([]string(nil), files...)
		for _, d := range dirs {
			found, err := yamlFilesUnder(d)
			if err != nil {
				return badInputf("-R %s: %v", d, err)
			}
			if len(found) == 0 {
				return badInputf("-R %s: no *.yaml files", d)
			}
			paths = append(paths, found...)
		}
		if len(paths) == 0 {
			return badInputf("test: give expectations files with -f FILE or -R DIR")
		}
		scs, err := conformance.LoadPaths(paths)
		if err != nil {
			return badInput(err)
		}
		if len(scs) == 0 {
			return badInputf("test: no *.yaml files in %s", strings.Join(paths, ", "))
		}
		passed, failed := 0, 0
		var docs []testFileJSON
		for _, sc := range scs {
			for _, w := range sc.Warnings {
				fmt.Fprintf(s.Err, "%s: %s\n", esc(sc.File), esc(w))
			}
			r := conformance.Run(context.Background(), sc, nil)
			doc := testFileJSON{File: sc.File, Name: sc.Name, Pass: r.Pass, Checks: []testCheckJSON{}}
			checkLines := map[string]bool{}
			why := checkExplainer(sc)
			for _, c := range r.Checks {
				if c.Pass {
					passed++
				} else {
					failed++
					checkLines[c.Line] = true
				}
				j := checkJSON(c)
				why(c, &j)
				doc.Checks = append(doc.Checks, j)
				if *out == "text" {
					writeTestCheck(s.Out, sc.Name, c, j)
				}
			}
			for _, f := range r.Failures {
				if checkLines[f] {
					continue
				}
				failed++
				doc.Failures = append(doc.Failures, f)
				if *out == "text" {
					fmt.Fprintf(s.Out, "FAIL %s: %s\n", esc(sc.Name), esc(f))
				}
			}
			docs = append(docs, doc)
		}
		summary := fmt.Sprintf("%d passed, %d failed, in %d file%s", passed, failed, len(scs), map[bool]string{true: "s"}[len(scs) != 1])
		return finishRun(s, *out, docs, summary, failed)
	}
}

// yamlFilesUnder lists dir's *.yaml files, its subdirectories' too, in
// lexical order.
func yamlFilesUnder(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

func checkJSON(c conformance.CheckResult) testCheckJSON {
	j := testCheckJSON{Index: c.Index, From: c.From, To: c.To, Port: c.Check.Port, Protocol: c.Check.Protocol.String(),
		Family: family(c.Check.Family), Expect: verdictName(c.Check.Allow), Pass: c.Pass, Error: c.Err}
	if c.Err != "" {
		return j
	}
	v := c.Verdict
	j.Got, j.Shortcut = verdictName(v.Allowed), v.Shortcut
	eg, in := toJSONDecision(v.Egress), toJSONDecision(v.Ingress)
	j.Egress, j.Ingress = &eg, &in
	return j
}

// checkExplainer returns a function that adds to a failing check's
// decisions what check prints for a pair: each missed rule's per-peer
// reasons where a direction denies, and, where a rule allows what was
// meant to be denied, a line per peer of that rule, which shows the peer
// that let the pair through. The engine is built once per file, and only
// when a check fails.
func checkExplainer(sc *conformance.Scenario) func(conformance.CheckResult, *testCheckJSON) {
	var e *engine.Engine
	return func(c conformance.CheckResult, j *testCheckJSON) {
		if c.Pass || c.Err != "" {
			return
		}
		if e == nil {
			e = engine.FromCluster(sc.Cluster.Clone())
		}
		pods := map[string]*model.Pod{}
		for _, p := range e.Pods() {
			pods[p.Key().String()] = p
		}
		src, _ := engine.PodEndpoint(pods[c.From], c.Check.Family)
		dst, _ := engine.PodEndpoint(pods[c.To], c.Check.Family)
		conn := engine.Conn{From: src, To: dst, Protocol: c.Check.Protocol, Port: c.Check.Port}
		for _, d := range []struct {
			dec engine.Decision
			out *jsonDecision
		}{{c.Verdict.Egress, j.Egress}, {c.Verdict.Ingress, j.Ingress}} {
			*d.out = explainDecision(e, conn, d.dec)
			if d.dec.By != nil {
				d.out.AllowedByPeers = peerAllows(e, *d.dec.By, conn)
			}
		}
	}
}

func verdictName(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

// writeTestCheck prints one pair: PASS, or FAIL with a one-line reason
// and then the engine's explanation, as palisade check prints it.
func writeTestCheck(w io.Writer, name string, c conformance.CheckResult, j testCheckJSON) {
	pair := fmt.Sprintf("%s checks[%d]: %s -> %s %d/%s", esc(name), c.Index, esc(c.From), esc(c.To), j.Port, j.Protocol)
	if c.Check.Family.Is6() {
		pair += " IPv6"
	}
	switch {
	case c.Pass:
		fmt.Fprintf(w, "PASS %s: %s\n", pair, j.Expect)
		return
	case c.Err != "":
		fmt.Fprintf(w, "FAIL %s: %s\n", pair, esc(c.Err))
		return
	}
	fmt.Fprintf(w, "FAIL %s: want %s, got %s: %s\n", pair, j.Expect, j.Got, esc(reason(c.Verdict)))
	if j.Shortcut != "" {
		fmt.Fprintf(w, "    %s: never subject to policy\n", j.Shortcut)
		if j.Shortcut == "loopback" {
			return
		}
	}
	writeDecision(w, "    ", "egress", c.From, *j.Egress)
	if j.Shortcut == "" {
		writeDecision(w, "    ", "ingress", c.To, *j.Ingress)
	}
}

// reason sums up a verdict in one line: the rule that allowed each
// direction, or the policies that isolate the direction that denied it.
func reason(v engine.Verdict) string {
	if v.Shortcut != "" {
		return v.Shortcut + ", never subject to policy"
	}
	var parts []string
	for _, d := range []struct {
		name string
		d    engine.Decision
	}{{"egress", v.Egress}, {"ingress", v.Ingress}} {
		j := toJSONDecision(d.d)
		switch {
		case j.Pod == "":
			parts = append(parts, d.name+": no policy applies")
		case j.ClusterRule != nil:
			parts = append(parts, fmt.Sprintf("%s %s by %s", d.name, map[bool]string{true: "allowed", false: "denied"}[j.Allowed], j.ClusterRule))
		case !j.Isolated:
			parts = append(parts, d.name+": not isolated")
		case j.AllowedBy != nil:
			parts = append(parts, fmt.Sprintf("%s allowed by %s %s[%d]", d.name, j.AllowedBy.Policy, strings.ToLower(j.AllowedBy.Direction), j.AllowedBy.Index))
		default:
			parts = append(parts, fmt.Sprintf("%s denied: isolated by %s, no rule allows it", d.name, strings.Join(j.Isolating, ", ")))
		}
	}
	return strings.Join(parts, "; ")
}
