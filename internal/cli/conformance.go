package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/palisade-net/palisade/internal/conformance"
	"github.com/palisade-net/palisade/internal/truth"
)

// conformanceJSON is one scenario in --json output.
type conformanceJSON struct {
	Scenario  string          `json:"scenario"`
	Pass      bool            `json:"pass"`
	Failures  []string        `json:"failures,omitempty"`
	Expected  truth.Document  `json:"expected"`
	Predicted truth.Document  `json:"predicted"`
	Observed  *truth.Document `json:"observed"`
}

func conformanceRunFlags(s Streams) (*flag.FlagSet, func(paths []string) error) {
	fs := newFlags("conformance run", s)
	observed := fs.Bool("observed", false, "also build each scenario in the lab and probe it for real")
	out := fs.String("o", "text", "output: text, json or yaml (the truth tables)")
	asJSON := fs.Bool("json", false, "same as -o json")
	kubeconfig := fs.String("kubeconfig", "", "with --observed: go through this API server, enforced by palisade agent")
	return fs, func(paths []string) error {
		if *asJSON {
			*out = "json"
		}
		if err := checkOutput(*out); err != nil {
			return err
		}
		if len(paths) == 0 {
			return badInputf("conformance run: give scenario files or directories")
		}
		if *kubeconfig != "" && !*observed {
			return badInputf("--kubeconfig goes with --observed")
		}
		scs, err := conformance.LoadPaths(paths)
		if err != nil {
			return badInput(err)
		}
		var obs conformance.Observer
		if *observed {
			if obs, err = newObserver(s, *kubeconfig); err != nil {
				return err
			}
		}
		ctx := context.Background()
		passed, failed, skipped := 0, 0, 0
		var docs []conformanceJSON
		for _, sc := range scs {
			r := conformance.Run(ctx, sc, obs)
			skipped += r.Skipped
			if r.Pass {
				passed++
			} else {
				failed++
			}
			if *out != "text" {
				docs = append(docs, conformanceJSON{r.Name, r.Pass, r.Failures, r.Expected, r.Predicted, r.Observed})
				continue
			}
			word := "PASS"
			if !r.Pass {
				word = "FAIL"
			}
			note := ""
			if r.Skipped > 0 {
				note = fmt.Sprintf(" (%d probes skipped)", r.Skipped)
			}
			fmt.Fprintf(s.Out, "%s %s%s\n", word, r.Name, note)
			for _, f := range r.Failures {
				fmt.Fprintf(s.Out, "    %s\n", f)
			}
		}
		summary := fmt.Sprintf("%d passed, %d failed", passed, failed)
		if *observed {
			summary += fmt.Sprintf(", %d skipped", skipped)
		}
		return finishRun(s, *out, docs, summary, failed)
	}
}

// finishRun ends a run of scenarios (conformance run, test): the
// documents as JSON or YAML on stdout and the summary on stderr, or the
// summary on stdout after the text; exit 1 when any failed.
func finishRun(s Streams, format string, docs any, summary string, failed int) error {
	if format != "text" {
		if err := writeDoc(s.Out, format, docs); err != nil {
			return err
		}
		fmt.Fprintln(s.Err, summary)
	} else {
		fmt.Fprintln(s.Out, summary)
	}
	if failed > 0 {
		return silentExit(1)
	}
	return nil
}
