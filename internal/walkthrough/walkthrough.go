// Package walkthrough is the seed article's walkthrough ("Understanding
// Kubernetes Network Policies", examples/seed) written once, as data, and
// the one runner that plays it. The front ends differ only in where it
// runs: `palisade demo` on the lab, `palisade demo --kubeconfig` on a real
// API server with the real kubectl, and hack/cluster/demo.sh on a real
// cluster, which reads the steps from `palisade demo --steps` (Lines).
// Either way every curl is judged against what the article says, or
// Kubernetes where the article is wrong.
package walkthrough

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// A Step is one thing the walkthrough does; exactly one of Say, Apply,
// Kubectl, Curl and Rules is set.
type Step struct {
	// Say is commentary, printed as it is.
	Say string
	// Apply is a seed file to apply (its name in examples/seed).
	Apply string
	// Kubectl is a command that only reads (get, describe): its output
	// is shown.
	Kubectl []string
	// Curl is a connection to make and judge.
	Curl *Curl
	// Rules shows what the kernel enforces.
	Rules bool
	// DNS marks a step about cluster DNS: on a real cluster the pods look
	// Service names up through kube-dns, whose egress a default deny
	// blocks too; the lab resolves the names itself. Run (the lab's front
	// ends) skips these steps; hack/cluster/demo.sh plays them.
	DNS bool
}

// Curl is the article's `kubectl exec From -- curl Service`.
type Curl struct {
	From, Service string
	// Want is the pod that answers when the connection succeeds (the
	// lab's servers and the cluster's stand-in answer with its name).
	Want string
	// OK is what the article (or Kubernetes) says: success or failure.
	OK bool
	// Why says who says so, in their words.
	Why string
	// ByIP: curl the Service's ClusterIP, not its name (no DNS lookup).
	// Only DNS steps use it.
	ByIP bool
}

// Seed is the walkthrough of the seed article, after its sample
// application's namespace and nodes exist.
var Seed = []Step{
	{Apply: "sample-app.yaml"},
	{Kubectl: []string{"get", "pods", "-o", "wide"}},
	{Kubectl: []string{"get", "services"}},
	{Say: "\n# No policy yet: every pod can reach every pod."},
	{Curl: &Curl{From: "backend", Service: "frontend-service", Want: "frontend", OK: true, Why: "article: by default, pods can communicate freely"}},
	{Curl: &Curl{From: "client-pod", Service: "frontend-service", Want: "frontend", OK: true, Why: "article: by default, pods can communicate freely"}},

	{Apply: "frontend-policy.yaml"},
	{Kubectl: []string{"get", "networkpolicies"}},
	{Kubectl: []string{"describe", "networkpolicy", "frontend-access"}},
	{Curl: &Curl{From: "backend", Service: "frontend-service", Want: "frontend", OK: true, Why: "article: should succeed"}},
	{Curl: &Curl{From: "client-pod", Service: "frontend-service", Want: "frontend", OK: false, Why: "article: should fail"}},
	{Say: "\n# The article's \"Egress Behavior\" paragraph says frontend's outgoing traffic is now blocked.\n" +
		"# Kubernetes says otherwise: the policy has no egress section, so its policyTypes is [Ingress]."},
	{Curl: &Curl{From: "frontend", Service: "backend-service", Want: "backend", OK: true, Why: "Kubernetes: frontend-access does not isolate frontend for egress"}},
	{Kubectl: []string{"get", "pods", "--show-labels"}},

	{Say: "\n# Start with Default Deny: \"blocks all traffic to and from every pod in the namespace\"."},
	{Apply: "default-deny-all.yaml"},
	{Kubectl: []string{"get", "networkpolicies", "-A"}},
	{Curl: &Curl{From: "backend", Service: "frontend-service", Want: "frontend", OK: false, Why: "article: blocks all traffic to and from every pod"}},
	{Curl: &Curl{From: "client-pod", Service: "frontend-service", Want: "frontend", OK: false, Why: "article: blocks all traffic to and from every pod"}},
	{DNS: true, Say: "\n# Beyond the article: the lookups above die at the egress to kube-dns; by the Service's\n" +
		"# ClusterIP (no DNS) the connection itself is blocked too."},
	{DNS: true, Curl: &Curl{From: "backend", Service: "frontend-service", ByIP: true, Want: "frontend", OK: false, Why: "default-deny-all: backend's egress is denied"}},
	{Rules: true},
}

// A Cluster is where the walkthrough runs. Each method prints the command
// it stands for (Prompt) and what that command prints.
type Cluster interface {
	// Apply applies a seed file (its name in examples/seed).
	Apply(ctx context.Context, file string) error
	// Kubectl runs a command that only reads.
	Kubectl(ctx context.Context, args ...string) error
	// Curl prints the command, then runs the real curl in pod c.From to
	// c.Service, returning what curl printed and its exit code.
	Curl(ctx context.Context, c Curl) (output string, code int, err error)
	// Rules prints the ruleset a node's kernel enforces.
	Rules(ctx context.Context) error
}

// Prompt prints a command as the walkthrough shows it.
func Prompt(w io.Writer, line string) { fmt.Fprintf(w, "\n$ %s\n", line) }

// Run plays steps on c, printing to out; the pods are in namespace ns.
// failed lists the results that differ from what the steps expect; err is
// a step that could not run.
func Run(ctx context.Context, out io.Writer, c Cluster, ns string, steps []Step) (failed []string, err error) {
	for _, s := range steps {
		switch {
		case s.DNS:
			continue
		case s.Say != "":
			fmt.Fprintln(out, s.Say)
		case s.Apply != "":
			err = c.Apply(ctx, s.Apply)
		case len(s.Kubectl) > 0:
			err = c.Kubectl(ctx, s.Kubectl...)
		case s.Curl != nil:
			text, code, cerr := c.Curl(ctx, *s.Curl)
			if f := judge(out, *s.Curl, ns, text, code, cerr); f != "" {
				failed = append(failed, f)
			}
		case s.Rules:
			err = c.Rules(ctx)
		}
		if err != nil {
			return failed, err
		}
	}
	return failed, nil
}

// Lines writes steps one a line, their fields separated by tabs, for a
// script that plays them on a real cluster (hack/cluster/demo.sh):
//
//	say	TEXT               one line per line of Say (TEXT may be empty)
//	apply	examples/seed/FILE
//	kubectl	ARG	ARG…
//	curl	FROM	SERVICE	name|clusterip	WANT	succeeds|fails	WHY
//	rules
//
// It writes every step, DNS ones too. A field holding a tab or a newline
// is an error: it could not be read back.
func Lines(w io.Writer, steps []Step) error {
	var b strings.Builder
	line := func(fields ...string) error {
		for _, f := range fields {
			if strings.ContainsAny(f, "\t\n") {
				return fmt.Errorf("walkthrough: step field %q holds a tab or a newline", f)
			}
		}
		b.WriteString(strings.Join(fields, "\t") + "\n")
		return nil
	}
	for _, s := range steps {
		var err error
		switch {
		case s.Say != "":
			for _, text := range strings.Split(s.Say, "\n") {
				if err = line("say", text); err != nil {
					break
				}
			}
		case s.Apply != "":
			err = line("apply", "examples/seed/"+s.Apply)
		case len(s.Kubectl) > 0:
			err = line(append([]string{"kubectl"}, s.Kubectl...)...)
		case s.Curl != nil:
			c := s.Curl
			by, expect := "name", "fails"
			if c.ByIP {
				by = "clusterip"
			}
			if c.OK {
				expect = "succeeds"
			}
			err = line("curl", c.From, c.Service, by, c.Want, expect, c.Why)
		case s.Rules:
			err = line("rules")
		}
		if err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// judge prints what curl printed and whether it reached the pod it
// wants, and returns the failure to report when that is not what the step
// expects.
func judge(out io.Writer, c Curl, ns, output string, code int, err error) (failure string) {
	text := strings.TrimRight(output, "\n")
	if text != "" {
		fmt.Fprintln(out, text)
	}
	ok := err == nil && code == 0 && strings.Contains(text, ns+"/"+c.Want)
	got := "succeeded"
	if !ok {
		got = "failed"
		if code == 28 {
			got = "blocked (connection timed out)"
		}
	}
	verdict := "as expected"
	if ok != c.OK {
		verdict = "NOT as expected"
		failure = fmt.Sprintf("%s -> %s %s (%s)", c.From, c.Service, got, c.Why)
	}
	fmt.Fprintf(out, "# %s: %s (%s)\n", got, verdict, c.Why)
	return failure
}

// Report prints the walkthrough's conclusion: passed (with how), or the
// results that differ. It reports whether it passed.
func Report(out io.Writer, failed []string, how string) bool {
	if len(failed) > 0 {
		fmt.Fprintf(out, "\nDEMO FAILED: %d result(s) differ from the article:\n  %s\n", len(failed), strings.Join(failed, "\n  "))
		return false
	}
	fmt.Fprintf(out, "\nDemo passed: every result is what the article says%s.\n", how)
	return true
}
