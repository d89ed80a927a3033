// Package cli is the palisade command line: one file per verb, flags to
// options, output formats. commands.go puts the verbs in a cobra command
// tree (help, examples, shell completion); each verb declares its flags
// on a Go flag set that cobra parses as pflag (-f, --kubeconfig). Only Main decides the exit code; every verb
// returns an error, and program output goes to Out while warnings and
// progress go to Err.
//
// Exit codes, the same for every verb:
//
//	0  success, or the connection is allowed
//	1  failure, or a connection is denied (DENY, PARTIAL, a failed scenario)
//	2  bad input: flags, arguments, manifests, names that do not resolve
//	3  internal error or panic: palisade's fault, whatever the input
//
// A script may retry on 1 and fix its input on 2; 3 is never the input's
// fault, so it must never look like 2.
package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/palisade-net/palisade/internal/truth"
	"sigs.k8s.io/yaml"
)

// Streams are the standard streams a command uses.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// exitError carries an exit code other than 0 and 1, or a verdict's 1
// without a message.
type exitError struct {
	code int
	err  error // nil: the command already said everything
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// badInput marks errors in what the user gave: exit code 2.
func badInput(err error) error { return &exitError{code: 2, err: err} }

// badInputf formats a bad-input error.
func badInputf(format string, args ...any) error { return badInput(fmt.Errorf(format, args...)) }

// silentExit ends with code and no further message.
func silentExit(code int) error { return &exitError{code: code} }

// internalError marks an error that is palisade's fault, not the input's:
// exit code 3.
func internalError(err error) error { return &exitError{code: 3, err: err} }

// noAnswer marks a question that could not be answered for a reason
// outside the input, such as a cluster that cannot be listed: exit code
// 3 too, so that a script never takes it for a verdict (1 is DENY).
func noAnswer(err error) error { return &exitError{code: 3, err: err} }

// esc is the one escaping of every text writer and of Main's error
// messages (see truth.Escape): names and values that reach a terminal
// cannot move the cursor, clear the screen or forge a line.
func esc(s string) string { return truth.Escape(s) }

// Main runs the command line and returns the process exit code (see the
// package comment). A panic is an internal error: exit 3, with its stack
// on Err for the bug report, since a crash must not pass for bad input.
func Main(args []string, s Streams) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(s.Err, "internal error: panic: %s\n%s", esc(fmt.Sprint(r)), debug.Stack())
			code = 3
		}
	}()
	return report(Run(args, s), s.Err)
}

// report prints err on w and returns its exit code. Every line goes
// through esc; an internal error is kept to one line.
func report(err error, w io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		if code, err = ee.code, ee.err; err == nil {
			return code
		}
	}
	if code == 3 {
		fmt.Fprintf(w, "internal error: %s\n", esc(err.Error()))
		return code
	}
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = esc(l)
	}
	fmt.Fprintf(w, "error: %s\n", strings.Join(lines, "\n"))
	return code
}

// Run runs the verb args name, parsed by cobra (commands.go). An error
// of cobra's own, before any verb ran (an unknown verb or flag, a missing
// argument), is bad input: exit 2.
func Run(args []string, s Streams) error {
	root, ran := newRoot(s)
	root.SetArgs(args)
	err := root.Execute()
	var ee *exitError
	if err != nil && !*ran && !errors.As(err, &ee) {
		return badInputf("%v\nRun 'palisade help' for the commands.", err)
	}
	return err
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// Type names the flag's value in help, as pflag's repeatable flags.
func (l *stringList) Type() string { return "strings" }

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, s Streams) *flag.FlagSet {
	fs := flag.NewFlagSet("palisade "+name, flag.ContinueOnError)
	fs.SetOutput(s.Err)
	return fs
}

// noArgs rejects positional arguments of a verb that takes none, naming
// them: a stray word is more often a mistake than something to ignore.
func noArgs(verb string, pos []string) error {
	if len(pos) == 0 {
		return nil
	}
	q := make([]string, len(pos))
	for i, a := range pos {
		q[i] = fmt.Sprintf("%q", a)
	}
	return badInputf("%s takes no arguments, got %s", verb, strings.Join(q, " "))
}

// parse parses the flags of a lab verb (the lab parses its own
// arguments), allowing them after positional arguments as kubectl
// does, and returns the positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, badInput(err)
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			// flag consumed "--": everything after it is positional.
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
		if len(args) > 0 && args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
	}
}

func checkOutput(o string) error {
	if o != "" && o != "text" && !isDoc(o) {
		return badInputf("-o %q: want text, json or yaml", o)
	}
	return nil
}

// isDoc tells the -o formats that write a verb's JSON document: json, and
// yaml for the same document.
func isDoc(o string) bool { return o == "json" || o == "yaml" }

// writeDoc writes v as every verb's -o json or -o yaml does: indented JSON,
// or that JSON converted to YAML, so that both carry the same fields.
func writeDoc(w io.Writer, format string, v any) error {
	if format != "yaml" {
		return writeJSON(w, v)
	}
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		return err
	}
	_, err = w.Write(y)
	return err
}
