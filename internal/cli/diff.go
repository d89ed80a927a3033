package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/palisade-net/palisade/internal/reachdiff"
)

// diffHelp is diff's long help.
const diffHelp = `Compares two states of a cluster by the connections they allow between the
pods of both, on every port the pods declare (containerPorts) and every
port a policy names (80/TCP when there is none), over IPv4 (IPv6 with
-6). Each connection gained or lost is explained: which rule allowed it
before or allows it now, which policies isolate it, and which of them were
added, deleted or changed (or, when none was, which labels of the two pods
or their namespaces changed). Pods of one side only are listed, not
compared.

A SOURCE, for --old and --new (each repeatable), is a manifest file, a
directory (read recursively, as -f DIR -R), - for stdin (one side only), or
kubeconfig:PATH for the live cluster of that kubeconfig's current context.

Changes are grouped by workload pair: a workload read from manifests
(ns/name[Kind]) is one entry already, and pods named as controllers name
them (NAME-HASH-XXXXX, NAME-XXXXX) group as ns/NAME-*; --pods lists pod
pairs instead.

Exit code: 0 the same connections between the same pods (policy edits
without effect included), 1 connections gained or lost or pods only on one
side, 2 bad input, 3 a live cluster that cannot be listed. See docs/diff.md.`

// diffDoc is diff's JSON document.
type diffDoc struct {
	Old      string       `json:"old"`
	New      string       `json:"new"`
	Ports    []string     `json:"ports"`
	Policies diffPolicies `json:"policies"`
	OnlyOld  []string     `json:"podsOnlyInOld"`
	OnlyNew  []string     `json:"podsOnlyInNew"`
	// Lost and Gained count connections: pod pairs times ports.
	Lost    int          `json:"lost"`
	Gained  int          `json:"gained"`
	Changes []diffChange `json:"changes"`
}

type diffPolicies struct {
	Added   []string `json:"added"`
	Deleted []string `json:"deleted"`
	Changed []string `json:"changed"`
}

type diffChange struct {
	Change   string       `json:"change"` // "gained" or "lost"
	From     string       `json:"from"`
	To       string       `json:"to"`
	Ports    []string     `json:"ports"`
	PodPairs []string     `json:"podPairs,omitempty"`
	Reasons  []diffReason `json:"reasons"`
}

type diffReason struct {
	Direction string   `json:"direction"`
	Pod       string   `json:"pod"`
	Before    string   `json:"before"`
	Now       string   `json:"now"`
	Policies  []string `json:"policies"`
	Other     []string `json:"other,omitempty"`
	Text      string   `json:"text"` // the whole reason in a sentence
}

func diffFlags(s Streams) (*flag.FlagSet, func(pos []string) error) {
	fs := newFlags("diff", s)
	var oldSrc, newSrc stringList
	fs.Var(&oldSrc, "old", "the state before: file, directory, - or kubeconfig:PATH (repeatable)")
	fs.Var(&newSrc, "new", "the state after: file, directory, - or kubeconfig:PATH (repeatable)")
	out := fs.String("o", "text", "output: text, json, yaml or md")
	byPod := fs.Bool("pods", false, "list pod pairs, not workload pairs")
	quiet := fs.Bool("q", false, "no warning line for skipped objects")
	ipv6 := fs.Bool("6", false, "compare the pods' IPv6 addresses (a pod with addresses but none of IPv6 neither sends nor receives)")
	return fs, func(pos []string) error {
		if err := noArgs("diff", pos); err != nil {
			return err
		}
		if *out != "text" && !isDoc(*out) && *out != "md" {
			return badInputf("-o %q: want text, json, yaml or md", *out)
		}
		if slices.Contains(oldSrc, "-") && slices.Contains(newSrc, "-") {
			return badInputf("--old - and --new -: stdin can be read for one side only")
		}
		oldIn, err := diffInput("--old", oldSrc, *quiet)
		if err != nil {
			return err
		}
		newIn, err := diffInput("--new", newSrc, *quiet)
		if err != nil {
			return err
		}
		oldC, err := oldIn.load(s)
		if err != nil {
			return sideError("--old", err)
		}
		newC, err := newIn.load(s)
		if err != nil {
			return sideError("--new", err)
		}
		r := reachdiff.Compare(oldC, newC, flagFamily(*ipv6))
		doc := diffDocument(r, oldIn.describe(), newIn.describe(), *byPod)
		switch *out {
		case "json", "yaml":
			err = writeDoc(s.Out, *out, doc)
		case "md":
			writeDiffMarkdown(s.Out, doc)
		default:
			writeDiffText(s.Out, doc)
		}
		if err != nil {
			return err
		}
		if !r.Empty() {
			return silentExit(1)
		}
		return nil
	}
}

// diffInput turns one side's sources into the input the other verbs load:
// manifests read recursively, or one live cluster with every namespace.
func diffInput(flag string, srcs []string, quiet bool) (*input, error) {
	if len(srcs) == 0 {
		return nil, badInputf("%s: give a file, a directory, - or kubeconfig:PATH", flag)
	}
	in := &input{recursive: true, quiet: quiet, all: true}
	for _, src := range srcs {
		if path, ok := strings.CutPrefix(src, "kubeconfig:"); ok {
			if path == "" || in.kubeconfig != "" {
				return nil, badInputf("%s %s: want one kubeconfig:PATH per side, with a path", flag, src)
			}
			in.kubeconfig = path
			continue
		}
		in.files = append(in.files, src)
	}
	if in.kubeconfig != "" && len(in.files) > 0 {
		return nil, badInputf("%s: a live cluster (kubeconfig:) or manifests, not both", flag)
	}
	return in, nil
}

// sideError says which side an input error is of, keeping its exit code.
func sideError(flag string, err error) error {
	var ee *exitError
	if errors.As(err, &ee) && ee.err != nil {
		return &exitError{code: ee.code, err: fmt.Errorf("%s: %w", flag, ee.err)}
	}
	return err
}

func diffDocument(r *reachdiff.Result, old, new string, byPod bool) diffDoc {
	d := diffDoc{Old: old, New: new, Ports: []string{}, OnlyOld: nonNil(r.OnlyOld), OnlyNew: nonNil(r.OnlyNew),
		Policies: diffPolicies{nonNil(r.Added), nonNil(r.Deleted), nonNil(r.Changed)}, Changes: []diffChange{}}
	for _, p := range r.Ports {
		d.Ports = append(d.Ports, p.String())
	}
	for _, c := range r.Changes {
		if c.Gained {
			d.Gained++
		} else {
			d.Lost++
		}
	}
	for _, l := range reachdiff.Lines(r, byPod) {
		c := diffChange{Change: "lost", From: l.From, To: l.To, PodPairs: l.Pairs}
		if l.Gained {
			c.Change = "gained"
		}
		for _, p := range l.Ports {
			c.Ports = append(c.Ports, p.String())
		}
		for _, rs := range l.Reasons {
			c.Reasons = append(c.Reasons, diffReason{Direction: strings.ToLower(rs.Direction.String()), Pod: rs.Pod,
				Before: rs.Before, Now: rs.Now, Policies: nonNil(rs.Policies), Other: rs.Other, Text: rs.String()})
		}
		d.Changes = append(d.Changes, c)
	}
	return d
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// policySummary is "added a; deleted b; changed c", or "" when none.
func policySummary(p diffPolicies, quote func(string) string) string {
	var parts []string
	for _, g := range []struct {
		word string
		keys []string
	}{{"added", p.Added}, {"deleted", p.Deleted}, {"changed", p.Changed}} {
		if len(g.keys) > 0 {
			q := make([]string, len(g.keys))
			for i, k := range g.keys {
				q[i] = quote(k)
			}
			parts = append(parts, g.word+" "+strings.Join(q, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// tally is "N connections lost, M gained" (pod pairs times ports).
func tally(d diffDoc) string {
	noun := "connections"
	if d.Lost == 1 {
		noun = "connection"
	}
	return fmt.Sprintf("%d %s lost, %d gained", d.Lost, noun, d.Gained)
}

// writeDiffText prints d for a terminal; every name goes through esc.
func writeDiffText(w io.Writer, d diffDoc) {
	id := func(s string) string { return esc(s) }
	if p := policySummary(d.Policies, id); p != "" {
		fmt.Fprintf(w, "policies: %s\n", p)
	}
	if len(d.OnlyOld) > 0 {
		fmt.Fprintf(w, "pods only in --old (not compared): %s\n", esc(strings.Join(d.OnlyOld, ", ")))
	}
	if len(d.OnlyNew) > 0 {
		fmt.Fprintf(w, "pods only in --new (not compared): %s\n", esc(strings.Join(d.OnlyNew, ", ")))
	}
	fmt.Fprintf(w, "ports compared: %s\n", strings.Join(d.Ports, ", "))
	for _, c := range d.Changes {
		fmt.Fprintf(w, "\n%-6s %s -> %s  %s\n", c.Change, esc(c.From), esc(c.To), strings.Join(c.Ports, ", "))
		if len(c.PodPairs) > 0 {
			fmt.Fprintf(w, "       pods: %s\n", esc(abbreviate(c.PodPairs, 8)))
		}
		for _, r := range c.Reasons {
			fmt.Fprintf(w, "       %s\n", esc(r.Text))
		}
	}
	if len(d.Changes) == 0 {
		fmt.Fprintln(w, "no connection gained or lost")
		return
	}
	fmt.Fprintf(w, "\n%s\n", tally(d))
}

// writeDiffMarkdown prints d as a Markdown table, for a pull request
// comment; table cells have their pipes escaped.
func writeDiffMarkdown(w io.Writer, d diffDoc) {
	cell := func(s string) string { return strings.ReplaceAll(esc(s), "|", `\|`) }
	code := func(s string) string { return "`" + cell(s) + "`" }
	fmt.Fprintln(w, "### palisade diff")
	fmt.Fprintln(w)
	if p := policySummary(d.Policies, code); p != "" {
		fmt.Fprintf(w, "Policies: %s\n\n", p)
	}
	for _, side := range []struct {
		name string
		pods []string
	}{{"--old", d.OnlyOld}, {"--new", d.OnlyNew}} {
		if len(side.pods) > 0 {
			q := make([]string, len(side.pods))
			for i, p := range side.pods {
				q[i] = code(p)
			}
			fmt.Fprintf(w, "Pods only in %s (not compared): %s\n\n", side.name, strings.Join(q, ", "))
		}
	}
	if len(d.Changes) == 0 {
		fmt.Fprintf(w, "No connection gained or lost (ports compared: %s).\n", strings.Join(d.Ports, ", "))
		return
	}
	fmt.Fprintln(w, "| change | from | to | ports | why |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, c := range d.Changes {
		var why []string
		if len(c.PodPairs) > 0 {
			why = append(why, "pods: "+cell(abbreviate(c.PodPairs, 8)))
		}
		for _, r := range c.Reasons {
			why = append(why, cell(r.Text))
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", c.Change, code(c.From), code(c.To), strings.Join(c.Ports, ", "), strings.Join(why, "<br>"))
	}
	fmt.Fprintf(w, "\n**%s** (ports compared: %s)\n", tally(d), strings.Join(d.Ports, ", "))
}
