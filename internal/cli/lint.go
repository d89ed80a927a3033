package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/palisade-net/palisade/internal/findings"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
)

// runLint is palisade lint: the findings of internal/findings, as text,
// JSON or SARIF. Exit 1 when a finding is at or above --fail-on.
func lintFlags(s Streams) (*flag.FlagSet, func(pos []string) error) {
	fs := newFlags("lint", s)
	in := addInput(fs)
	out := fs.String("o", "text", "output: text, json, yaml or sarif")
	failOn := fs.String("fail-on", "warning", "exit 1 on findings of this severity or higher: info, warning or error")
	return fs, func(pos []string) error {
		if err := noArgs("lint", pos); err != nil {
			return err
		}
		if *out != "text" && !isDoc(*out) && *out != "sarif" {
			return badInputf("-o %q: want text, json, yaml or sarif", *out)
		}
		threshold, err := findings.ParseSeverity(*failOn)
		if err != nil {
			return badInputf("--fail-on: %v", err)
		}
		fin, objs, err := loadLint(in, s)
		if err != nil {
			return err
		}
		// Findings are about NetworkPolicies and cluster-wide policies,
		// whose names are unique per kind.
		type object struct {
			kind string
			key  model.Key
		}
		sources := map[object]string{}
		for _, o := range objs {
			sources[object{o.Kind, o.Key}] = o.Source
		}
		var found []findings.Finding
		lines := lineFinder{}
		for _, f := range findings.Check(fin) {
			// A cluster-scoped policy applies to every namespace.
			if f.Key.Namespace != "" && !in.shows(f.Key.Namespace) {
				continue
			}
			if src, ok := sources[object{f.Kind, f.Key}]; ok {
				f.File, f.Line = lines.locate(src)
			}
			found = append(found, f)
		}
		switch *out {
		case "sarif":
			err = findings.WriteSARIF(s.Out, found)
		case "json", "yaml":
			err = writeDoc(s.Out, *out, lintJSON(found))
		default:
			writeLintText(s, found)
		}
		if err != nil {
			return err
		}
		if findings.AtLeast(found, threshold) {
			return silentExit(1)
		}
		return nil
	}
}

// loadLint is input.load for lint, which also needs the manifests'
// objects: which namespaces they declare, and where each policy came
// from. A live cluster goes through input.load unchanged.
func loadLint(in *input, s Streams) (findings.Input, []manifest.Object, error) {
	if in.kubeconfig != "" || len(in.files) == 0 || in.context != "" || in.all && in.namespace != "" {
		c, err := in.load(s) // reads the cluster, or gives load's error for these flags
		return findings.Input{Cluster: c}, nil, err
	}
	objs, err := manifest.ReadWith(in.files, s.In, s.Err, manifest.Options{Recursive: in.recursive, Quiet: in.quiet})
	var fin findings.Input
	if err == nil {
		fin, err = findings.FromObjects(objs)
	}
	if err != nil {
		if errors.Is(err, manifest.ErrInvalid) {
			return fin, nil, badInput(err)
		}
		return fin, nil, internalError(err)
	}
	in.defaultNS = "default"
	if in.namespace != "" {
		in.defaultNS = in.namespace
	}
	return fin, objs, nil
}

func writeLintText(s Streams, found []findings.Finding) {
	counts := map[findings.Severity]int{}
	for _, f := range found {
		counts[f.Severity]++
		where := ""
		if f.File != "" {
			where = f.File + ": "
			if f.Line > 0 {
				where = fmt.Sprintf("%s:%d: ", f.File, f.Line)
			}
		}
		fmt.Fprintf(s.Out, "%s%s %s %s %s: %s\n  fix: %s\n", esc(where), f.Severity, f.Code,
			esc(f.Object()), esc(f.Field), esc(f.Message), esc(f.Fix))
	}
	if len(found) == 0 {
		fmt.Fprintln(s.Out, "no findings")
		return
	}
	fmt.Fprintf(s.Out, "%d findings: %d errors, %d warnings, %d info\n", len(found),
		counts[findings.Error], counts[findings.Warning], counts[findings.Info])
}

type lintFinding struct {
	Code     string     `json:"code"`
	Name     string     `json:"name"`
	Severity string     `json:"severity"`
	Object   lintObject `json:"object"`
	Field    string     `json:"field"`
	Message  string     `json:"message"`
	Fix      string     `json:"fix"`
	File     string     `json:"file,omitempty"`
	Line     int        `json:"line,omitempty"`
}

type lintObject struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func lintJSON(found []findings.Finding) any {
	out := []lintFinding{}
	for _, f := range found {
		out = append(out, lintFinding{Code: f.Code, Name: findings.RuleFor(f.Code).Name, Severity: f.Severity.String(),
			Object: lintObject{f.Kind, f.Key.Namespace, f.Key.Name}, Field: f.Field,
			Message: f.Message, Fix: f.Fix, File: f.File, Line: f.Line})
	}
	return map[string]any{"findings": out}
}

// lineFinder turns a manifest source ("FILE#N", maybe with ".items[I]")
// into the file and the line where its N-th document starts, reading each
// file once. The line is 0 when it cannot tell (stdin, JSON streams).
type lineFinder map[string][]int

func (lf lineFinder) locate(source string) (string, int) {
	i := strings.LastIndex(source, "#")
	if i < 0 {
		return source, 0
	}
	file, doc := source[:i], source[i+1:]
	if file == "<stdin>" {
		return file, 0
	}
	num, _, _ := strings.Cut(doc, ".")
	n, err := strconv.Atoi(num)
	if err != nil {
		return file, 0
	}
	starts, seen := lf[file]
	if !seen {
		if data, err := os.ReadFile(file); err == nil {
			starts = documentStarts(data)
		}
		lf[file] = starts
	}
	if n < 1 || n > len(starts) {
		return file, 0
	}
	return file, starts[n-1]
}

// documentStarts returns the first content line of each non-empty YAML
// document of data, splitting at "---" lines as the manifest reader does
// (documents of only blanks, comments or null count as empty). A JSON
// stream gives nil: its values are not line-delimited.
func documentStarts(data []byte) []int {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return nil
	}
	var starts []int
	first, content := 0, ""
	end := func() {
		if first > 0 && content != "null" && content != "~" {
			starts = append(starts, first)
		}
		first, content = 0, ""
	}
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(line, "---") {
			end()
			continue
		}
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if first == 0 {
			first, content = i+1, t
		} else {
			content += "\n" + t
		}
	}
	end()
	return starts
}
