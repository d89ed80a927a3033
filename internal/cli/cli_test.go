package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// run runs the command line and returns its exit code and streams.
func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, Streams{In: strings.NewReader(stdin), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

const (
	seedApp    = "../../examples/seed/sample-app.yaml"
	seedPolicy = "../../examples/seed/frontend-policy.yaml"
	seedDeny   = "../../examples/seed/default-deny-all.yaml"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"backend reaches the frontend service",
			[]string{"-f", seedApp, "-f", seedPolicy, "--from", "default/backend", "--to", "default/frontend-service", "--port", "80/TCP"},
			0, []string{"ALLOW default/backend -> service default/frontend-service 80/TCP", "allowed by default/frontend-access ingress[0]"}},
		{"client-pod does not",
			[]string{"-f", seedApp, "-f", seedPolicy, "--from", "default/client-pod", "--to", "default/frontend-service", "--port", "80/TCP"},
			1, []string{"DENY default/client-pod", "isolated by default/frontend-access", "source default/client-pod is not a peer"}},
		{"wrong port names the rule's ports",
			[]string{"-f", seedApp, "-f", seedPolicy, "--from", "default/backend", "--to", "default/frontend", "--port", "81"},
			1, []string{"port 81/TCP is not in the rule's ports (80/TCP)"}},
		{"no policy, all open",
			[]string{"-f", seedApp, "--from", "default/client-pod", "--to", "default/frontend", "--port", "80"},
			0, []string{"ALLOW", "not isolated"}},
		{"default deny blocks egress too",
			[]string{"-f", seedApp, "-f", seedPolicy, "-f", seedDeny, "--from", "default/backend", "--to", "default/frontend", "--port", "80"},
			1, []string{"egress of default/backend: isolated by default/default-deny-all", "policy has no Egress rules"}},
		{"by IP, IPv6",
			[]string{"-f", seedApp, "-f", seedPolicy, "--from", "fd00:10:20::12", "--to", "fd00:10:20::11", "--port", "80"},
			0, []string{"ALLOW default/backend -> fd00:10:20::11"}},
		{"loopback",
			[]string{"-f", seedApp, "-f", seedDeny, "--from", "default/frontend", "--to", "default/frontend", "--port", "80"},
			0, []string{"loopback: never subject to policy"}},
		{"unknown pod is bad input",
			[]string{"-f", seedApp, "--from", "default/nope", "--to", "default/frontend", "--port", "80"},
			2, nil},
		{"bad port is bad input",
			[]string{"-f", seedApp, "--from", "default/backend", "--to", "default/frontend", "--port", "80/ICMP"},
			2, nil},
		{"invalid manifest is bad input",
			[]string{"-f", "testdata/bad-endport.yaml", "--from", "1.1.1.1", "--to", "2.2.2.2", "--port", "80"},
			2, nil},
		{"service port the service lacks",
			[]string{"-f", seedApp, "--from", "default/backend", "--to", "default/frontend-service", "--port", "8080"},
			2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, "", append([]string{"check"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, c := range tt.contains {
				if !strings.Contains(out, c) {
					t.Errorf("output lacks %q:\n%s", c, out)
				}
			}
		})
	}
}

func TestBadManifestNamesFileObjectAndField(t *testing.T) {
	code, _, errOut := run(t, "", "matrix", "-f", "testdata/bad-endport.yaml")
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, want := range []string{"testdata/bad-endport.yaml", "NetworkPolicy default/frontend-access", "spec.ingress[0].ports[1].endPort"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error %q lacks %q", errOut, want)
		}
	}
}

func TestCheckJSON(t *testing.T) {
	code, out, _ := run(t, "", "check", "-o", "json", "-f", seedApp, "-f", seedPolicy,
		"--from", "default/client-pod", "--to", "default/frontend", "--port", "80")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var res checkResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	in := res.Results[0].Ingress
	if res.Verdict != "DENY" || !in.Isolated || in.Isolating[0] != "default/frontend-access" || len(in.Misses) != 1 || in.Misses[0].Index != 0 {
		t.Errorf("unexpected JSON: %s", out)
	}
}

func TestMatrix(t *testing.T) {
	code, out, _ := run(t, "", "matrix", "-f", seedApp, "-f", seedPolicy)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	// Columns aligned; the seed's pods declare no ports, so 80/TCP.
	want := "80/TCP\n" +
		"-                   default/backend  default/client-pod  default/frontend\n" +
		"default/backend     .                .                   .\n" +
		"default/client-pod  .                .                   X\n" +
		"default/frontend    .                .                   .\n" +
		"\nrows are sources, columns destinations: . allowed, X denied\n" +
		"ports probed: 80/TCP (no pod declares a container port: the default)\n"
	if out != want {
		t.Errorf("matrix =\n%s\nwant\n%s", out, want)
	}
	// JSON, from stdin, in the conformance shape.
	app, err := os.ReadFile(seedApp)
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ = run(t, string(app), "matrix", "-o", "json", "-f", "-", "-f", seedDeny, "--port", "80/TCP", "--port", "53/UDP")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var doc struct {
		Steps []struct {
			Probes []struct {
				Port     int                 `json:"port"`
				Protocol string              `json:"protocol"`
				Allowed  map[string][]string `json:"allowed"`
			} `json:"probes"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	probes := doc.Steps[0].Probes
	if len(probes) != 2 || probes[1].Protocol != "UDP" || probes[1].Port != 53 {
		t.Fatalf("probes = %+v", probes)
	}
	if got := probes[0].Allowed["default/backend"]; len(got) != 1 || got[0] != "default/backend" {
		t.Errorf("under default deny, backend reaches %v, want only itself", got)
	}
}

func TestExplain(t *testing.T) {
	code, out, _ := run(t, "", "explain", "-f", seedApp, "-f", seedPolicy, "default/frontend")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"default/frontend (10.20.0.11, fd00:10:20::11) labels app=frontend",
		"ingress: isolated by default/frontend-access",
		"from pods app=backend in namespace default: default/backend on 80/TCP  [default/frontend-access ingress[0]]",
		"egress: not isolated",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}
}

func TestConformance(t *testing.T) {
	dirs := []string{"../../conformance/scenarios"}
	// The shared suite, when this checkout sits beside it.
	if _, err := os.Stat("../../../shared/conformance/scenarios"); err == nil {
		dirs = append(dirs, "../../../shared/conformance/scenarios")
	}
	for _, dir := range dirs {
		code, out, errOut := run(t, "", "conformance", "run", dir)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		last := lines[len(lines)-1]
		if code != 0 || !strings.HasSuffix(last, " passed, 0 failed") {
			t.Errorf("conformance run %s: exit %d, last line %q\n%s%s", dir, code, last, out, errOut)
		}
	}
}

func TestConformanceReportsFailures(t *testing.T) {
	// A scenario whose expectation is wrong must fail, naming the pair.
	code, out, _ := run(t, "", "conformance", "run", "../conformance/testdata/wrong.yaml")
	if code != 1 || !strings.Contains(out, "FAIL wrong") || !strings.Contains(out, "x/a -> x/b: want deny, got allow") ||
		!strings.HasSuffix(strings.TrimSpace(out), "0 passed, 1 failed") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}
