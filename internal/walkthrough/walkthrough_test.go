package walkthrough

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/examples"
)

// fake is a Cluster whose curls answer as its table says.
type fake struct {
	out     *bytes.Buffer
	answers map[string]answer // by From
	applied []string
}

type answer struct {
	text string
	code int
	err  error
}

func (f *fake) Apply(_ context.Context, file string) error {
	f.applied = append(f.applied, file)
	Prompt(f.out, "apply "+file)
	return nil
}

func (f *fake) Kubectl(_ context.Context, args ...string) error {
	Prompt(f.out, "kubectl "+strings.Join(args, " "))
	return nil
}

func (f *fake) Curl(_ context.Context, c Curl) (string, int, error) {
	a := f.answers[c.From]
	return a.text, a.code, a.err
}

func (f *fake) Rules(context.Context) error { return nil }

func TestRunJudges(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ok         bool
		answer     answer
		wantFailed bool
		wantLine   string
	}{
		{"success as expected", true, answer{"palisade lab: ns/frontend\n", 0, nil}, false, "# succeeded: as expected (why)"},
		{"wrong pod answered", true, answer{"palisade lab: ns/backend\n", 0, nil}, true, "# failed: NOT as expected (why)"},
		{"block as expected", false, answer{"curl: (28) timed out\n", 28, nil}, false, "# blocked (connection timed out): as expected (why)"},
		{"success not expected", false, answer{"palisade lab: ns/frontend", 0, nil}, true, "# succeeded: NOT as expected (why)"},
		{"exec error", true, answer{"", -1, errors.New("no pod")}, true, "# failed: NOT as expected (why)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			f := &fake{out: &out, answers: map[string]answer{"a": tc.answer}}
			steps := []Step{{Curl: &Curl{From: "a", Service: "frontend-service", Want: "frontend", OK: tc.ok, Why: "why"}}}
			failed, err := Run(context.Background(), &out, f, "ns", steps)
			if err != nil {
				t.Fatal(err)
			}
			if (len(failed) > 0) != tc.wantFailed {
				t.Errorf("failed = %q, want failure %v", failed, tc.wantFailed)
			}
			if !strings.Contains(out.String(), tc.wantLine+"\n") {
				t.Errorf("output lacks %q:\n%s", tc.wantLine, out.String())
			}
		})
	}
}

// TestSeedFiles: the walkthrough applies seed files that exist, and
// judges at least one success and one failure.
func TestSeedFiles(t *testing.T) {
	var ok, blocked int
	for _, s := range Seed {
		if s.Apply != "" {
			if _, err := fs.Stat(examples.Seed, "seed/"+s.Apply); err != nil {
				t.Errorf("step applies %s: %v", s.Apply, err)
			}
		}
		if s.Curl != nil && s.Curl.ByIP && !s.DNS {
			t.Errorf("step %+v curls by ClusterIP, which the lab's Clusters do not do: only DNS steps may", *s.Curl)
		}
		if s.Curl != nil && s.Curl.OK {
			ok++
		} else if s.Curl != nil {
			blocked++
		}
	}
	if ok == 0 || blocked == 0 {
		t.Errorf("the walkthrough judges %d successes and %d blocks", ok, blocked)
	}
}

// TestRunSkipsDNS: the lab's front ends resolve names themselves and do
// not play the steps about cluster DNS.
func TestRunSkipsDNS(t *testing.T) {
	var out bytes.Buffer
	f := &fake{out: &out}
	steps := []Step{{DNS: true, Apply: "dns.yaml"}, {Apply: "app.yaml"}, {DNS: true, Say: "about DNS"}}
	if _, err := Run(context.Background(), &out, f, "ns", steps); err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.applied, " ") != "app.yaml" || strings.Contains(out.String(), "about DNS") {
		t.Errorf("applied %q, printed:\n%s", f.applied, out.String())
	}
}

func TestLines(t *testing.T) {
	for _, tc := range []struct {
		name    string
		step    Step
		want    string
		wantErr bool
	}{
		{"say, one line a line", Step{Say: "\n# a\n# b"}, "say\t\nsay\t# a\nsay\t# b\n", false},
		{"apply", Step{Apply: "x.yaml"}, "apply\texamples/seed/x.yaml\n", false},
		{"kubectl", Step{Kubectl: []string{"get", "pods", "-o", "wide"}}, "kubectl\tget\tpods\t-o\twide\n", false},
		{"curl succeeds", Step{Curl: &Curl{From: "a", Service: "s", Want: "w", OK: true, Why: "y z"}}, "curl\ta\ts\tname\tw\tsucceeds\ty z\n", false},
		{"curl by IP fails", Step{DNS: true, Curl: &Curl{From: "a", Service: "s", ByIP: true, Want: "w", Why: "y"}}, "curl\ta\ts\tclusterip\tw\tfails\ty\n", false},
		{"rules", Step{Rules: true}, "rules\n", false},
		{"tab in a field", Step{Kubectl: []string{"get", "a\tb"}}, "", true},
		{"newline in a field", Step{Curl: &Curl{From: "a", Service: "s", Want: "w", Why: "y\nz"}}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Lines(&out, []Step{tc.step})
			if (err != nil) != tc.wantErr || out.String() != tc.want {
				t.Errorf("Lines = %q, %v; want %q, error %v", out.String(), err, tc.want, tc.wantErr)
			}
		})
	}
	if err := Lines(io.Discard, Seed); err != nil {
		t.Errorf("Seed: %v", err)
	}
}
