package cli

import "testing"

// -n and -A choose which namespaces matrix and explain report on; the
// engine still holds every namespace.
func TestMatrixScope(t *testing.T) {
	runCases(t, "matrix", []cliCase{
		{name: "manifests: every namespace", args: []string{"-f", expose, "--port", "5000"},
			exactOut: "5000/TCP\n" +
				"-               default/client  default/web  default/web-2  other/client\n" +
				"default/client  .               .            X              .\n" +
				"default/web     .               .            X              .\n" +
				"default/web-2   .               X            .              .\n" +
				"other/client    .               X            X              .\n" +
				"\nrows are sources, columns destinations: . allowed, X denied\n" +
				"ports probed: 5000/TCP (given with --port)\n"},
		{name: "-A: the same", args: []string{"-f", expose, "-A", "--port", "5000"},
			out: []string{"\n-               default/client  default/web  default/web-2  other/client\n"}},
		{name: "-n: one namespace's rows and columns", args: []string{"-f", expose, "-n", "other", "--port", "5000"},
			exactOut: "5000/TCP\n-             other/client\nother/client  .\n" +
				"\nrows are sources, columns destinations: . allowed, X denied\n" +
				"ports probed: 5000/TCP (given with --port)\n"},
		{name: "-n of a namespace without pods", args: []string{"-f", expose, "-n", "none"},
			exactOut: "80/TCP\n-\n" +
				"\nrows are sources, columns destinations: . allowed, X denied\n" +
				"ports probed: 80/TCP (no pod declares a container port: the default)\n"},
		{name: "-A and -n", args: []string{"-f", expose, "-A", "-n", "other"}, code: 2,
			errs: []string{"-A and -n other: give one of them"}},
		{name: "declared ports by default", args: []string{"-f", expose},
			out: []string{"5000/TCP\n", "ports probed: 5000/TCP (the container ports the pods declare)\n"}, notOut: []string{"80/TCP"}},
		{name: "NS/POD, a bare name in -n's namespace and a pattern", args: []string{"-f", expose, "-n", "other", "default/web", "client", "--port", "5000"},
			exactOut: "5000/TCP\n-             default/web  other/client\ndefault/web   .            .\nother/client  X            .\n" +
				"\nrows are sources, columns destinations: . allowed, X denied\n" +
				"ports probed: 5000/TCP (given with --port)\n"},
		{name: "a pattern over namespace/name", args: []string{"-f", expose, "default/web*", "--port", "5000"},
			out: []string{"\n-              default/web  default/web-2\n"}, notOut: []string{"client"}},
		{name: "a pattern without a namespace is -n's", args: []string{"-f", expose, "-n", "other", "*", "--port", "5000"},
			out: []string{"\n-             other/client\n"}, notOut: []string{"default/"}},
		{name: "an unknown pod", args: []string{"-f", expose, "default/nope"}, code: 2,
			errs: []string{"no pod default/nope"}},
		{name: "a pattern matching nothing", args: []string{"-f", expose, "x*"}, code: 2,
			errs: []string{`pattern "x*" matches no pod`}},
		{name: "a Service is not a row", args: []string{"-f", expose, "svc/web"}, code: 2,
			errs: []string{`"svc/web": matrix takes pods, not Services`}},
	})
}

func TestExplainScope(t *testing.T) {
	runCases(t, "explain", []cliCase{
		{name: "-n: only that namespace's pods", args: []string{"-f", expose, "-n", "other"},
			out: []string{"other/client (10.0.2.20) labels app=client\n"}, notOut: []string{"default/"}},
		{name: "-n: bare names are that namespace's", args: []string{"-f", expose, "-n", "other", "client"},
			out: []string{"other/client (10.0.2.20)"}, notOut: []string{"default/"}},
		{name: "a name with a namespace is that one", args: []string{"-f", expose, "-n", "other", "default/web-2"},
			out: []string{"default/web-2 (10.0.1.11)", "ingress: isolated by default/web-b"}},
		{name: "without -n bare names are default's", args: []string{"-f", expose, "pod/client"},
			out: []string{"default/client (10.0.1.20)"}},
		{name: "nothing to explain is [] in JSON", args: []string{"-f", expose, "-n", "none", "-o", "json"},
			exactOut: "[]\n"},
		{name: "nothing to explain is nothing in text", args: []string{"-f", expose, "-n", "none"}, notOut: []string{"/"}},
		{name: "a Service is not explained", args: []string{"-f", expose, "svc/web"}, code: 2,
			errs: []string{`"svc/web": explain takes pods, not Services`}},
		{name: "an unknown pod", args: []string{"-f", expose, "nope"}, code: 2,
			errs: []string{"no pod default/nope"}},
	})
}
