package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// Every verb's help, by "help VERB" and by "VERB --help", has its usage
// line and examples on stdout, and exits 0.
func TestHelp(t *testing.T) {
	verbs := [][]string{{"check"}, {"explain"}, {"matrix"}, {"lint"}, {"diff"}, {"conformance"},
		{"conformance", "run"}, {"test"}, {"version"}, {"lab"}, {"demo"}, {"agent"}}
	for _, v := range verbs {
		for _, args := range [][]string{append([]string{"help"}, v...), append(append([]string{}, v...), "--help")} {
			if v[0] == "lab" && args[0] != "help" {
				continue // lab parses its own flags: lab --help is its verb list
			}
			code, out, errOut := run(t, "", args...)
			if code != 0 {
				t.Errorf("%q: exit %d, stderr:\n%s", args, code, errOut)
			}
			use := "palisade " + strings.Join(v, " ")
			for _, want := range []string{"Usage:\n  " + use, "Examples:\n  " + use} {
				if !strings.Contains(out, want) {
					t.Errorf("%q: stdout lacks %q:\n%s", args, want, out)
				}
			}
		}
	}
}

// Command line errors are bad input: exit 2, a message, no usage dump.
func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		args []string
		err  string
	}{
		{[]string{"nope"}, `error: unknown command "nope" for "palisade"`},
		{[]string{"help", "nope"}, `error: help: unknown command "nope"`},
		{[]string{"check", "--nope"}, "error: unknown flag: --nope"},
		{[]string{"check", "-kubeconfig", "x"}, "(a long flag takes two dashes: --kubeconfig)"},
		{[]string{"conformance"}, "usage: palisade conformance run"},
		{[]string{"conformance", "walk"}, `unknown command "walk" for "palisade conformance"`},
		{[]string{"version", "-o"}, "flag needs an argument: 'o' in -o"},
		{[]string{}, ""},
	}
	for _, tt := range tests {
		code, out, errOut := run(t, "", tt.args...)
		if code != 2 || !strings.Contains(errOut, tt.err) || strings.Contains(errOut, "Flags:") {
			t.Errorf("%q: exit %d, want 2 and %q; stderr:\n%s", tt.args, code, tt.err, errOut)
		}
		if len(tt.args) == 0 && !strings.Contains(out, "Available Commands:") {
			t.Errorf("no verb: stdout lacks the verbs:\n%s", out)
		}
	}
}

func TestCompletion(t *testing.T) {
	for shell, head := range map[string]string{
		"bash": "# bash completion V2 for palisade",
		"zsh":  "#compdef palisade",
		"fish": "# fish completion for palisade",
	} {
		code, out, errOut := run(t, "", "completion", shell)
		if code != 0 || !strings.HasPrefix(out, head) {
			t.Errorf("completion %s: exit %d, stdout starts %.60q, want %q; stderr:\n%s", shell, code, out, head, errOut)
		}
	}
	// Cobra's hidden completion verb, which the scripts call.
	code, out, _ := run(t, "", "__complete", "matrix", "--ou")
	if code != 0 || !strings.Contains(out, "--output") {
		t.Errorf("__complete matrix --ou: exit %d:\n%s", code, out)
	}
}

// -o yaml is -o json's document, converted.
func TestOutputYAML(t *testing.T) {
	f := []string{"-f", seedApp, "-f", seedPolicy}
	tests := []struct {
		name string
		args []string
	}{
		{"check", append([]string{"check", "--from", "default/backend", "--to", "svc/frontend-service", "--port", "80/TCP"}, f...)},
		{"explain", append([]string{"explain"}, f...)},
		{"matrix", append([]string{"matrix", "--port", "80"}, f...)},
		{"lint", append([]string{"lint", "--fail-on", "error"}, f...)},
		{"diff", []string{"diff", "--old", seedApp, "--new", seedApp, "--new", seedDeny}},
		{"test", []string{"test", "-f", policyTests + "tests"}},
		{"version", []string{"version"}},
		{"conformance run", []string{"conformance", "run", "../../conformance/scenarios"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jcode, j, _ := run(t, "", append(tt.args, "-o", "json")...)
			ycode, y, errOut := run(t, "", append(tt.args, "--output", "yaml")...)
			if jcode != ycode || !json.Valid([]byte(j)) {
				t.Fatalf("exit %d with json, %d with yaml; json valid: %v; stderr:\n%s", jcode, ycode, json.Valid([]byte(j)), errOut)
			}
			want, err := yaml.JSONToYAML([]byte(j))
			if err != nil {
				t.Fatal(err)
			}
			if y != string(want) {
				t.Errorf("-o yaml:\n%s\nwant the JSON converted:\n%s", y, want)
			}
		})
	}
}

// conformance run --json still works, as -o json, with its deprecation
// warning on stderr only: stdout stays one JSON document.
func TestConformanceJSONDeprecated(t *testing.T) {
	dir := "../../conformance/scenarios"
	code, old, errOut := run(t, "", "conformance", "run", "--json", dir)
	_, cur, _ := run(t, "", "conformance", "run", "-o", "json", dir)
	if code != 0 || old != cur || !json.Valid([]byte(old)) {
		t.Errorf("--json: exit %d, stdout differs from -o json's: %v", code, old != cur)
	}
	if !strings.Contains(errOut, "Flag --json has been deprecated, use -o json") {
		t.Errorf("no deprecation warning on stderr:\n%s", errOut)
	}
}
