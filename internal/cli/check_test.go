package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

const expose = "testdata/expose.yaml"

// cliCase is one run of the command line: the exit code it must give and
// what stdout and stderr must hold (and must not).
type cliCase struct {
	name      string
	args      []string
	code      int
	out, errs []string // substrings of stdout, of stderr
	notOut    []string // substrings stdout must lack
	exactOut  string   // when set, stdout in full
}

func runCases(t *testing.T, verb string, tests []cliCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, "", append([]string{verb}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			if tt.exactOut != "" && out != tt.exactOut {
				t.Errorf("stdout =\n%s\nwant\n%s", out, tt.exactOut)
			}
			for _, want := range tt.out {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			for _, bad := range tt.notOut {
				if strings.Contains(out, bad) {
					t.Errorf("stdout has %q:\n%s", bad, out)
				}
			}
			for _, want := range tt.errs {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
		})
	}
}

func TestCheckService(t *testing.T) {
	f := []string{"-f", expose, "--from", "client"}
	runCases(t, "check", []cliCase{
		{name: "svc/NAME: one of two endpoints allowed is PARTIAL, exit 1",
			args: append(f, "--to", "svc/web", "--port", "5001"), code: 1,
			out: []string{"PARTIAL default/client -> service default/web 5001/TCP: 1 of 2 endpoints allowed\n",
				"endpoint default/web port 5000: ALLOW", "endpoint default/web-2 port 5000: DENY"}},
		{name: "service/NS/NAME is the same Service",
			args: append(f, "--to", "service/default/web", "--port", "5001/TCP"), code: 1,
			out: []string{"PARTIAL default/client -> service default/web 5001/TCP: 1 of 2 endpoints allowed"}},
		{name: "svc/NS/NAME",
			args: append(f, "--to", "svc/default/web", "--port", "5001"), code: 1,
			out: []string{"PARTIAL"}},
		{name: "the ClusterIP is the Service",
			args: append(f, "--to", "10.96.0.10", "--port", "5001"), code: 1,
			out: []string{"PARTIAL default/client -> service default/web 5001/TCP: 1 of 2 endpoints allowed"}},
		{name: "no endpoint allowed is DENY with the count",
			args: []string{"-f", expose, "--from", "other/client", "--to", "svc/web", "--port", "5001"}, code: 1,
			out: []string{"DENY other/client -> service default/web 5001/TCP: 0 of 2 endpoints allowed"}},
		{name: "every endpoint allowed is ALLOW",
			args: []string{"-f", seedApp, "-f", seedPolicy, "--from", "backend", "--to", "svc/frontend-service", "--port", "80"}, code: 0,
			out: []string{"ALLOW default/backend -> service default/frontend-service 80/TCP: 1 of 1 endpoint allowed"}},
		{name: "a Service without endpoints says so",
			args: append(f, "--to", "svc/empty", "--port", "80"), code: 1,
			out: []string{"DENY default/client -> service default/empty 80/TCP: no endpoints\n", "nothing can answer"}},
		{name: "a bare name that is a pod and a Service is an error that says how to pick",
			args: append(f, "--to", "default/web", "--port", "5001"), code: 2,
			errs: []string{"pod default/web and service default/web both exist", "pod/default/web", "svc/default/web"}},
		{name: "so is a bare name without namespace",
			args: append(f, "--to", "web", "--port", "5001"), code: 2,
			errs: []string{"both exist"}},
		{name: "pod/NAME picks the pod: port 5001 is not its port",
			args: append(f, "--to", "pod/web", "--port", "5001"), code: 1,
			out: []string{"DENY default/client -> default/web 5001/TCP"}},
		{name: "pod/NS/NAME picks the pod on its own port",
			args: append(f, "--to", "pod/default/web", "--port", "5000"), code: 0,
			out: []string{"ALLOW default/client -> default/web 5000/TCP\n"}},
		{name: "a Service port the Service lacks",
			args: append(f, "--to", "svc/web", "--port", "5000"), code: 2,
			errs: []string{"service default/web has no port 5000/TCP"}},
		{name: "svc/ of a pod that is no Service",
			args: append(f, "--to", "svc/web-2", "--port", "5000"), code: 2,
			errs: []string{`--to "svc/web-2": no service default/web-2`}},
		{name: "a Service is no source",
			args: []string{"-f", expose, "--from", "svc/web", "--to", "client", "--port", "80"}, code: 2,
			errs: []string{"a Service is not a source"}},
		{name: "TYPE/NS/NAME/MORE",
			args: append(f, "--to", "svc/default/web/x", "--port", "5001"), code: 2,
			errs: []string{"want NAMESPACE/NAME"}},
	})
}

func TestCheckServiceJSON(t *testing.T) {
	code, out, _ := run(t, "", "check", "-o", "json", "-f", expose, "--from", "client", "--to", "svc/web", "--port", "5001")
	var res checkResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if code != 1 || res.Verdict != "PARTIAL" || res.AllowedEndpoints != 1 || res.Endpoints != 2 ||
		res.Service != "default/web" || len(res.Results) != 2 || res.Results[0].Port != 5000 {
		t.Errorf("exit %d, JSON %s", code, out)
	}
	for _, want := range []string{`"allowedEndpoints": 1`, `"endpoints": 2`} {
		if !strings.Contains(out, want) {
			t.Errorf("JSON lacks %s", want)
		}
	}
}

func TestCheckAddresses(t *testing.T) {
	f := []string{"-f", expose}
	runCases(t, "check", []cliCase{
		{name: "an address: DENY",
			args: append(f, "--from", "client", "--to", "10.0.1.11", "--port", "5000"), code: 1,
			out: []string{"DENY default/client -> 10.0.1.11 5000/TCP", "ingress of default/web-2: isolated"}},
		{name: "its IPv4-mapped IPv6 form is the same address",
			args: append(f, "--from", "client", "--to", "::ffff:10.0.1.11", "--port", "5000"), code: 1,
			out: []string{"DENY default/client -> 10.0.1.11 5000/TCP", "ingress of default/web-2: isolated"}},
		{name: "a mapped source too",
			args: append(f, "--from", "::ffff:10.0.1.20", "--to", "pod/web", "--port", "5000"), code: 0,
			out: []string{"ALLOW default/client -> default/web 5000/TCP"}},
		{name: "a mapped ClusterIP is the Service",
			args: append(f, "--from", "client", "--to", "::ffff:10.96.0.10", "--port", "5001"), code: 1,
			out: []string{"PARTIAL default/client -> service default/web"}},
		{name: "IPv4 source, IPv6 destination",
			args: append(f, "--from", "10.0.1.20", "--to", "fd00::10", "--port", "5000"), code: 2,
			errs: []string{"--from 10.0.1.20 is IPv4 and --to fd00::10 is IPv6: a connection has one address family"}},
		{name: "IPv6 source, IPv4 destination",
			args: append(f, "--from", "fd00::10", "--to", "10.0.1.20", "--port", "5000"), code: 2,
			errs: []string{"a connection has one address family"}},
		{name: "IPv6 source, mapped IPv4 destination",
			args: append(f, "--from", "fd00::10", "--to", "::ffff:10.0.1.20", "--port", "5000"), code: 2,
			errs: []string{"--to 10.0.1.20 is IPv4"}},
		{name: "-6 with an IPv4 address",
			args: append(f, "-6", "--from", "pod/web", "--to", "10.0.1.20", "--port", "5000"), code: 2,
			errs: []string{"-6 with --to 10.0.1.20, an IPv4 address"}},
		{name: "a pod without an address of the destination's family",
			args: append(f, "--from", "client", "--to", "fd00::10", "--port", "5000"), code: 2,
			errs: []string{"pod default/client has no IPv6 address"}},
		{name: "-6 between pods",
			args: append(f, "-6", "--from", "web", "--to", "web-2", "--port", "5000"), code: 2,
			errs: []string{"pod default/web-2 has no IPv6 address"}},
	})
}

func TestCheckArgs(t *testing.T) {
	f := []string{"-f", expose, "--from", "client", "--to", "pod/web", "--port", "5000"}
	runCases(t, "check", []cliCase{
		{name: "extra arguments are named", args: append(f, "extra", "more"), code: 2,
			errs: []string{`check takes no arguments, got "extra" "more"`}},
		{name: "even after --", args: append(f, "--", "x"), code: 2, errs: []string{`got "x"`}},
		{name: "-n sets the namespace of bare names",
			args: []string{"-f", expose, "-n", "other", "--from", "client", "--to", "default/web-2", "--port", "5000"}, code: 1,
			out: []string{"DENY other/client -> default/web-2"}},
		{name: "without -n bare names are default's",
			args: []string{"-f", expose, "--from", "client", "--to", "default/web-2", "--port", "5000"}, code: 1,
			out: []string{"DENY default/client -> default/web-2"}},
		{name: "-n: a name that is only in another namespace",
			args: []string{"-f", expose, "-n", "other", "--from", "web", "--to", "client", "--port", "5000"}, code: 2,
			errs: []string{`--from "web": no pod other/web`}},
	})
}

// TestCheckPeerReasons: a denied connection says, under each missed rule,
// why each peer did not match, and only for the direction that denies.
func TestCheckPeerReasons(t *testing.T) {
	seed := []string{"-f", seedApp, "-f", seedPolicy}
	runCases(t, "check", []cliCase{
		{name: "seed: client-pod is not app=backend",
			args: append(seed, "--from", "default/client-pod", "--to", "default/frontend", "--port", "80"), code: 1,
			exactOut: "DENY default/client-pod -> default/frontend 80/TCP\n" +
				"  egress of default/client-pod: not isolated (no policy selects it for Egress): allowed\n" +
				"  ingress of default/frontend: isolated by default/frontend-access\n" +
				"    denied: no rule allows it\n" +
				"      default/frontend-access ingress[0]: source default/client-pod is not a peer of this rule\n" +
				"        from[0] pods app=backend in namespace default: pod labels {app=client} do not match podSelector app=backend: `app=client` not in [backend]\n"},
		{name: "seed: backend matches, the port does not",
			args: append(seed, "--from", "default/backend", "--to", "default/frontend", "--port", "81"), code: 1,
			out: []string{"        from[0] pods app=backend in namespace default: matches; port 81/TCP is not one the rule allows: 80/TCP\n"}},
		{name: "an allowed connection has no peer lines",
			args: append(seed, "--from", "default/backend", "--to", "default/frontend", "--port", "80"), code: 0,
			notOut: []string{"from[0]"}},
	})
	code, out, _ := run(t, "", append([]string{"check", "-o", "json", "--from", "default/client-pod", "--to", "default/frontend", "--port", "80"}, seed...)...)
	var res checkResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 {
		t.Fatalf("exit %d, %v: %s", code, err, out)
	}
	if m := res.Results[0].Ingress.Misses; len(m) != 1 || len(m[0].Peers) != 1 || !strings.Contains(m[0].Peers[0], "`app=client` not in [backend]") {
		t.Errorf("JSON notMatched lacks the peer reason: %s", out)
	}
}
