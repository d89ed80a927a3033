package cli

import (
	"flag"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// verbFlags declares a verb's flags on a Go flag set and returns the
// function that runs the verb on its positional arguments once cobra has
// parsed them: each verb keeps its flags in its own file.
type verbFlags func(s Streams) (*flag.FlagSet, func(pos []string) error)

// newRoot builds the command tree on s. ran is set once a verb's own code
// runs: Run takes any error before that for cobra's, hence bad input.
func newRoot(s Streams) (root *cobra.Command, ran *bool) {
	ran = new(bool)
	root = &cobra.Command{
		Use:   "palisade",
		Short: "Kubernetes NetworkPolicy, enforced in the kernel and explained",
		Long: `palisade: Kubernetes NetworkPolicy, enforced in the kernel and explained.

Exit codes, the same for every verb: 0 success or the connection is
allowed; 1 failure or a connection denied; 2 bad input (flags, arguments,
manifests, names that do not resolve); 3 palisade's own fault.`,
		// No verb: the help, and exit 2 as for any incomplete command line.
		RunE: func(c *cobra.Command, _ []string) error {
			c.SetOut(s.Out)
			if err := c.Help(); err != nil {
				return err
			}
			return silentExit(2)
		},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	// Flag errors are bad input, and Run says so; no usage dump after them.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		// pflag reads -kubeconfig as -k -u …: say what Go's flag package took.
		if _, arg, ok := strings.Cut(err.Error(), "unknown shorthand flag: "); ok {
			if _, word, ok := strings.Cut(arg, " in -"); ok && len(word) > 1 {
				return badInputf("%v (a long flag takes two dashes: --%s)", err, word)
			}
		}
		return badInput(err)
	})

	verb := func(use, short, long, example string, flags verbFlags) *cobra.Command {
		fs, run := flags(s)
		c := &cobra.Command{
			Use: use, Short: short, Long: long, Example: example,
			RunE: func(_ *cobra.Command, pos []string) error {
				*ran = true
				return run(pos)
			},
		}
		addFlags(c, fs)
		// pflag's warnings (a deprecated flag) go to Err: cobra would print
		// them on Out, before a JSON document.
		c.Flags().SetOutput(s.Err)
		return c
	}
	// own wraps a verb that parses its own arguments (lab: its verbs pick
	// their flags, kubelet mode or not, from the arguments themselves, and
	// the lab re-executes the binary with "lab daemon").
	own := func(use, short, long, example string, run func(Streams, []string) error) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Long: long, Example: example,
			DisableFlagParsing: true,
			RunE: func(_ *cobra.Command, args []string) error {
				*ran = true
				return run(s, args)
			},
		}
	}

	conf := &cobra.Command{
		Use:   "conformance",
		Short: "run conformance scenarios (conformance run …)",
		Long:  "Runs the scenarios of conformance/scenarios (the format is in conformance/FORMAT.md): the engine's predictions, and with --observed the lab's probes, against each scenario's expected truth tables.",
		Example: `  palisade conformance run conformance/scenarios
  palisade conformance run -o json conformance/scenarios > tables.json
  palisade conformance run --observed --kubeconfig $KUBECONFIG conformance/scenarios`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return badInputf("usage: palisade conformance run [--observed] [-o text|json|yaml] FILE|DIR…")
		},
	}
	run := verb("run [flags] FILE|DIR…", "run the scenarios of these files and directories",
		"Runs each scenario: PASS or FAIL with the failed probes, then a summary; with -o json or yaml the truth tables on stdout and the summary on stderr. Exit 1 when a scenario fails.",
		conf.Example, conformanceRunFlags)
	if err := run.Flags().MarkDeprecated("json", "use -o json"); err != nil {
		panic(err) // the flag is declared just above
	}
	conf.AddCommand(run)

	// help VERB, as cobra's, but an unknown VERB is bad input (exit 2).
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		ValidArgsFunction: func(_ *cobra.Command, args []string, prefix string) ([]cobra.Completion, cobra.ShellCompDirective) {
			c, _, err := root.Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, sub := range c.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), prefix) {
					names = append(names, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(_ *cobra.Command, args []string) error {
			c, _, err := root.Find(args)
			if err != nil {
				return badInputf("help: unknown command %q", strings.Join(args, " "))
			}
			c.InitDefaultHelpFlag()
			return c.Help()
		},
	})

	root.AddCommand(
		verb("check --from SRC --to DST --port PORT [flags]",
			"predict whether one connection is allowed, and why",
			`Predicts whether one connection is allowed by the NetworkPolicies of the
manifests (-f) or of a live cluster (--kubeconfig), and says why: for a
Service, each endpoint; for each side, the policies isolating it and the
rule that allows the connection, or why none does.

Exit code: 0 ALLOW, 1 DENY or PARTIAL (some endpoints only), 2 bad input.`,
			`  palisade check -f examples/seed/sample-app.yaml -f examples/seed/frontend-policy.yaml \
    --from default/backend --to svc/frontend-service --port 80/TCP
  palisade check -f examples/seed/sample-app.yaml -f examples/seed/frontend-policy.yaml \
    --from client-pod --to default/frontend-service --port 80/TCP -o json
  palisade check --kubeconfig ~/.kube/config --from default/client-pod --to 10.20.0.11 --port 80`,
			checkFlags),
		verb("explain [flags] [POD…]",
			"say, for each pod, who may reach it and where it may connect",
			"For each pod (those named, else all of the namespaces -n/-A show): whether it is isolated for ingress and egress, by which policies, and the peers and ports their rules allow.",
			`  palisade explain -f examples/seed/sample-app.yaml -f examples/seed/frontend-policy.yaml
  palisade explain -f examples/seed/ default/frontend -o yaml
  palisade explain --kubeconfig ~/.kube/config -n shop`,
			explainFlags),
		verb("matrix [flags] [NAMESPACE/POD|POD|PATTERN]…",
			"print the truth table of every pod pair",
			"The connectivity grid of the pods: of those named (a PATTERN as default/* or */web-* matches namespace/name), else of the namespaces -n/-A show, on the ports given with --port, else the container ports the pods declare.",
			`  palisade matrix -f examples/policy-tests/k8s/ --port 5432 -n shop
  palisade matrix -f deploy/ -R -o html > matrix.html
  palisade matrix --kubeconfig ~/.kube/config -n shop -o csv > shop.csv`,
			matrixFlags),
		verb("lint [flags]",
			"find policies that are valid but likely wrong (selectors matching nothing, DNS blocked, …)",
			"Finds policies the API server accepts but that are very likely not what was meant (docs/lint.md lists the checks). Exit 1 when a finding reaches --fail-on.",
			`  palisade lint -f examples/seed/
  palisade lint -f k8s/ --fail-on warning
  palisade lint --kubeconfig ~/.kube/config -A -o sarif > lint.sarif`,
			lintFlags),
		verb("diff --old SOURCE… --new SOURCE… [flags]",
			"connections gained and lost between two states of a cluster, and the policy changes behind them",
			diffHelp,
			`  palisade diff --old before/ --new after/
  palisade diff --old kubeconfig:$KUBECONFIG --new k8s/ -o md
  palisade diff --old before/ --new after/ --pods -o json`,
			diffFlags),
		conf,
		verb("test [-f FILE|DIR]… [-R DIR]… [flags]",
			"check your policies against expectation files, for CI (test -f FILE|-R DIR)",
			"Checks your own expectations (docs/testing.md): files naming your manifests and listing checks, each PASS or FAIL with the policy and rule behind the engine's answer. Exit 1 on a failure.",
			`  palisade test -f examples/policy-tests/tests/shop.yaml
  palisade test -R examples/policy-tests/tests -o json
  palisade test -f examples/policy-tests/tests-broken/shop-broken.yaml`,
			testFlags),
		verb("version [flags]",
			"print palisade's module version, commit and Go version",
			"Module version (from a checkout (devel), or a pseudo-version when Go stamps VCS information), VCS revision, time and modified flag when the build recorded them, Go version, GOOS/GOARCH.",
			`  palisade version
  palisade version -o json`,
			versionFlags),
		own("lab VERB [flags]",
			"a cluster's network on this host, enforced for real (lab up|apply|exec|…)",
			strings.TrimPrefix(labUsage+labKubeUsage, "Usage: palisade lab VERB [flags]   (as root)\n\n"),
			`  palisade lab up --nodes 2 -f examples/seed/sample-app.yaml
  palisade lab probe --from client-pod --to frontend-service --port 80/TCP
  palisade lab exec backend -- curl -s frontend-service`,
			runLab),
		verb("demo [flags]",
			"the seed article's walkthrough in the lab, checked step by step",
			"Plays the seed article's walkthrough in a lab named demo (as root): each step's commands, and each expected connection checked by a real probe and by the engine. Exit 1 when a step fails.",
			`  palisade demo
  palisade demo --keep
  palisade demo --kubeconfig $KUBECONFIG`,
			demoFlags),
		verb("agent [flags]",
			"the node daemon: enforce the cluster's NetworkPolicies for one node",
			"The node daemon, run by deploy/'s DaemonSet: watches the cluster's pods, namespaces and NetworkPolicies and keeps this node's nftables table enforcing them.",
			`  palisade agent --node-name=$(NODE_NAME) --metrics-addr=127.0.0.1:9484
  palisade agent --kubeconfig ~/.kube/config --node-name node-1 --log-denied
  palisade agent --cleanup`,
			agentFlags),
	)
	return root, ran
}

// addFlags declares fs's flags on c, as pflag (cobra's parser) reads
// them: a one-letter flag is a shorthand (-f, -n), under the long name of
// the flag whose usage reads "same as -X" (-n, --namespace), or --output
// -o's --output as kubectl's, -f's --filename, -q's --quiet, -6's --ipv6.
func addFlags(c *cobra.Command, fs *flag.FlagSet) {
	long := map[string]string{"o": "output", "f": "filename", "q": "quiet", "6": "ipv6"}
	alias := func(f *flag.Flag) string {
		x, ok := strings.CutPrefix(f.Usage, "same as -")
		if ok && len(x) == 1 && fs.Lookup(x) != nil {
			return x
		}
		return ""
	}
	fs.VisitAll(func(f *flag.Flag) {
		if x := alias(f); x != "" {
			long[x] = f.Name
		}
	})
	fs.VisitAll(func(f *flag.Flag) {
		if alias(f) != "" {
			return // the long name of its letter
		}
		pf := pflag.PFlagFromGoFlag(f)
		if n := long[f.Name]; n != "" {
			pf.Name = n
		}
		c.Flags().AddFlag(pf)
	})
}
