package cli

import (
	"context"
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

func runConformance(s Streams, args []string) error {
	if len(args) == 0 || args[0] != "run" {
		return badInputf("usage: palisade conformance run [--observed] [--json] FILE|DIR…")
	}
	fs := newFlags("conformance run", s)
	observed := fs.Bool("observed", false, "also build each scenario in the lab and probe it for real")
	asJSON := fs.Bool("json", false, "write the truth tables as JSON")
	kubeconfig := fs.String("kubeconfig", "", "with --observed: go through this API server, enforced by palisade agent")
	paths, err := parse(fs, args[1:])
	if err != nil {
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
		if *asJSON {
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
	if *asJSON {
		if err := writeJSON(s.Out, docs); err != nil {
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
