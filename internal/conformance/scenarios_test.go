package conformance

import (
	"context"
	"os"
	"strings"
	"testing"
)

// TestScenarios runs every scenario of conformance/scenarios, and of the
// shared suite when this checkout sits beside it, on the engine: the
// package proves itself on the scenario files, without the CLI.
func TestScenarios(t *testing.T) {
	dirs := []string{"../../conformance/scenarios"}
	if _, err := os.Stat("../../../shared/conformance/scenarios"); err == nil {
		dirs = append(dirs, "../../../shared/conformance/scenarios")
	}
	scs, err := LoadPaths(dirs)
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) < 10 {
		t.Fatalf("found %d scenarios in %v, want the whole suite", len(scs), dirs)
	}
	for _, sc := range scs {
		t.Run(sc.Name, func(t *testing.T) {
			r := Run(context.Background(), sc, nil)
			if !r.Pass {
				t.Errorf("scenario %s failed:", sc.Name)
				for _, f := range r.Failures {
					t.Errorf("  %s", f)
				}
			}
			if len(r.Predicted.Steps) == 0 || len(r.Predicted.Steps) != len(r.Expected.Steps) {
				t.Errorf("scenario %s: %d predicted steps for %d expected", sc.Name, len(r.Predicted.Steps), len(r.Expected.Steps))
			}
		})
	}
}

// TestScenarioWrongExpectationFails: a scenario whose expectation is
// wrong fails, naming the pair, so TestScenarios can fail.
func TestScenarioWrongExpectationFails(t *testing.T) {
	scs, err := LoadPaths([]string{"testdata/wrong.yaml"})
	if err != nil || len(scs) != 1 {
		t.Fatalf("%d scenarios, %v", len(scs), err)
	}
	r := Run(context.Background(), scs[0], nil)
	if r.Pass || len(r.Failures) == 0 || !strings.Contains(strings.Join(r.Failures, "\n"), "x/a -> x/b: want deny, got allow") {
		t.Errorf("pass %v, failures %q", r.Pass, r.Failures)
	}
}
