package conformance

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestLiftRulesSameAsYAML: reading rules blocks without the YAML parser
// changes nothing: every shared scenario, the benchmark's, and edge cases
// of the line form parse to the same scenario, or fail with the same
// error, whether liftRules reads their rules or yaml.v3 does.
func TestLiftRulesSameAsYAML(t *testing.T) {
	inputs := map[string]string{}
	files, err := filepath.Glob("../../conformance/scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs[filepath.Base(f)] = string(b)
	}
	sc, _ := genPairsScenario(t, benchSeed)
	inputs["bench"] = string(sc)
	head := "name: edge\ncluster: standard\nsteps:\n- probes:\n  - port: 80\n    protocol: TCP\n    expect:\n      default: allow\n"
	for name, rules := range map[string]string{
		"indentless":          "      rules:\n      - {from: x/a, to: y/*, verdict: deny}\n      - {to: x/b, verdict: deny}\n",
		"indented":            "      rules:\n        - {from: x/a, verdict: deny}\n        - {verdict: allow, from: x/*}\n",
		"key after the block": "      rules:\n      - {from: x/a, verdict: deny}\n  - port: 81\n    protocol: TCP\n    expect: {default: deny}\n",
		"blank lines":         "      rules:\n      - {from: x/a, verdict: deny}\n\n      - {from: x/b, verdict: deny}\n\n  - port: 81\n    protocol: TCP\n    expect: {default: deny}\n",
		"comment inside":      "      rules:\n      - {from: x/a, verdict: deny}\n      # then b\n      - {from: x/b, verdict: deny}\n",
		"deeper comment":      "      rules:\n      - {from: x/a, verdict: deny}\n        # then b\n      - {from: x/b, verdict: deny}\n",
		"alias":               "      rules:\n      - {from: *, verdict: deny}\n",
		"null":                "      rules:\n      - {from: null, verdict: deny}\n",
		"quoted":              "      rules:\n      - {from: \"x/a\", verdict: deny}\n",
		"no verdict":          "      rules:\n      - {from: x/a}\n",
		"bad verdict":         "      rules:\n      - {from: x/a, verdict: maybe}\n",
		"repeated key":        "      rules:\n      - {from: x/a, from: x/b, verdict: deny}\n",
		"unknown key":         "      rules:\n      - {from: x/a, verdict: deny, form: x}\n",
		"no pod":              "      rules:\n      - {from: w/a, verdict: deny}\n",
		"multi-line item":     "      rules:\n      - {from: x/a,\n         verdict: deny}\n",
		"block mapping item":  "      rules:\n      - from: x/a\n        verdict: deny\n",
		"flow list":           "      rules: [{from: x/a, verdict: deny}]\n",
		"empty":               "      rules:\n",
		"trailing comment":    "      rules:\n      - {from: x/a, verdict: deny} # a\n",
		"comment, no space":   "      rules:\n      - {from: x/a, verdict: deny}# a\n",
		"text after":          "      rules:\n      - {from: x/a, verdict: deny} x\n",
		"crlf":                "      rules:\r\n      - {from: x/a, verdict: deny}\r\n",
		"tab":                 "      rules:\n\t- {from: x/a, verdict: deny}\n",
		"number":              "      rules:\n      - {from: 1e3, verdict: deny}\n",
	} {
		inputs[name] = head + rules
	}
	for name, in := range inputs {
		want, wantErr := parse([]byte(in), "f.yaml", false)
		got, gotErr := parse([]byte(in), "f.yaml", true)
		switch {
		case (wantErr == nil) != (gotErr == nil) || wantErr != nil && wantErr.Error() != gotErr.Error():
			t.Errorf("%s: lifted: %v\nYAML: %v", name, gotErr, wantErr)
		case !reflect.DeepEqual(want, got):
			t.Errorf("%s: lifted and YAML readings differ", name)
		}
	}
	// The fast path must be the one taken for the usual form: every
	// shared scenario with rules writes them one per line.
	for _, f := range files {
		name := filepath.Base(f)
		sc, err := parse([]byte(inputs[name]), name, false)
		if err != nil {
			t.Fatal(err)
		}
		rules := 0
		for _, st := range sc.Steps {
			for _, pr := range st.Probes {
				rules += len(pr.Rules)
			}
		}
		_, blocks := liftRules([]byte(inputs[name]))
		lifted := 0
		for _, b := range blocks {
			lifted += len(b)
		}
		if lifted != rules {
			t.Errorf("%s: liftRules read %d of its %d rules", name, lifted, rules)
		}
	}
	if _, blocks := liftRules([]byte(inputs["bench"])); len(blocks) != 1 || len(blocks[0]) < 40000 {
		t.Errorf("the benchmark's rules were not lifted")
	}
	if strings.Contains(inputs["indentless"], liftedTag) {
		t.Error("inputs were modified in place")
	}
}
