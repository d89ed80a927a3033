package cli

import "testing"

// -n and -A choose which namespaces matrix and explain report on; the
// engine still holds every namespace.
func TestMatrixScope(t *testing.T) {
	runCases(t, "matrix", []cliCase{
		{name: "manifests: every namespace", args: []string{"-f", expose, "--port", "5000"},
			exactOut: "5000/TCP\n-\tdefault/client\tdefault/web\tdefault/web-2\tother/client\n" +
				"default/client\t.\t.\tX\t.\n" +
				"default/web\t.\t.\tX\t.\n" +
				"default/web-2\t.\tX\t.\t.\n" +
				"other/client\t.\tX\tX\t.\n"},
		{name: "-A: the same", args: []string{"-f", expose, "-A", "--port", "5000"},
			out: []string{"\tdefault/client\tdefault/web\tdefault/web-2\tother/client\n"}},
		{name: "-n: one namespace's rows and columns", args: []string{"-f", expose, "-n", "other", "--port", "5000"},
			exactOut: "5000/TCP\n-\tother/client\nother/client\t.\n"},
		{name: "-n of a namespace without pods", args: []string{"-f", expose, "-n", "none"},
			exactOut: "80/TCP\n-\n"},
		{name: "-A and -n", args: []string{"-f", expose, "-A", "-n", "other"}, code: 2,
			errs: []string{"-A and -n other: give one of them"}},
		{name: "extra arguments are named", args: []string{"-f", expose, "default/web"}, code: 2,
			errs: []string{`matrix takes no arguments, got "default/web"`}},
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
