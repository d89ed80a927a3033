package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/palisade-net/palisade/examples"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
)

// demoLab is the lab the demo builds; it never touches the user's labs.
const demoLab = "demo"

// demo runs the seed article's walkthrough and checks each result against
// what the article says.
type demo struct {
	s      Streams
	ls     *labSession
	failed []string
}

func runDemo(s Streams, args []string) error {
	fs := newFlags("demo", s)
	keep := fs.Bool("keep", false, "leave the lab up afterwards (palisade lab --name demo …)")
	kubeconfig := fs.String("kubeconfig", "", "run the walkthrough on this API server with the real kubectl (the lab plays the kubelet)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return badInputf("demo: the lab makes network namespaces and nftables tables: run as root")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		return badInputf("demo: the walkthrough runs the real curl in the pods: install curl (apt-get install curl)")
	}
	if *kubeconfig != "" {
		return runKubeDemo(s, *kubeconfig, *keep)
	}
	ctx := context.Background()
	if err := lab.Down(demoLab); err != nil {
		return err
	}
	d := &demo{s: s}
	err := d.run(ctx)
	if d.ls != nil {
		d.ls.close()
	}
	if !*keep || err != nil {
		if derr := lab.Down(demoLab); derr != nil {
			err = errors.Join(err, derr)
		}
	} else {
		fmt.Fprintf(s.Out, "\nThe lab is still up: palisade lab --name %s get pods -o wide; palisade lab down --name %s\n", demoLab, demoLab)
	}
	if err != nil {
		return err
	}
	if len(d.failed) > 0 {
		fmt.Fprintf(s.Out, "\nDEMO FAILED: %d result(s) differ from the article:\n  %s\n", len(d.failed), strings.Join(d.failed, "\n  "))
		return silentExit(1)
	}
	fmt.Fprintln(s.Out, "\nDemo passed: every result is what the article says.")
	return nil
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.s.Out, format+"\n", args...) }

func (d *demo) cmd(line string) { fmt.Fprintf(d.s.Out, "\n$ %s\n", line) }

func seedObjects(file string) ([]manifest.Object, error) {
	data, err := examples.Seed.ReadFile("seed/" + file)
	if err != nil {
		return nil, err
	}
	return manifest.Read([]string{"-"}, bytes.NewReader(data), io.Discard)
}

func (d *demo) apply(ctx context.Context, file string) error {
	d.cmd("kubectl apply -f " + file)
	objs, err := seedObjects(file)
	if err != nil {
		return err
	}
	return d.ls.apply(ctx, objs, d.s.Out)
}

// curl runs the article's `kubectl exec POD -- curl frontend-service` with
// the real curl in the pod, and checks the outcome against the article.
func (d *demo) curl(ctx context.Context, pod string, wantOK bool, article string) {
	d.curlTo(ctx, pod, "frontend-service", "default/frontend", wantOK, "article: "+article)
}

// curlTo runs curl from pod to a service and checks that it reaches the
// pod named want, or not; why says where the expectation comes from.
func (d *demo) curlTo(ctx context.Context, pod, service, want string, wantOK bool, why string) {
	d.cmd(fmt.Sprintf("kubectl exec %s -- curl %s", pod, service))
	var out bytes.Buffer
	code, err := d.ls.lab.Exec(ctx, model.Key{Namespace: "default", Name: pod},
		[]string{"curl", "-sS", "--max-time", "3", service}, nil, &out, &out)
	d.judge(pod, service, want, out.String(), code, err, wantOK, why)
}

// judge prints what curl printed and whether it reached the pod named
// want, and records a failure when that is not what wantOK says; why
// says where the expectation comes from.
func (d *demo) judge(pod, service, want, output string, code int, err error, wantOK bool, why string) {
	text := strings.TrimRight(output, "\n")
	if text != "" {
		d.say("%s", text)
	}
	ok := err == nil && code == 0 && strings.Contains(text, want)
	got := "succeeded"
	if !ok {
		got = "failed"
		if code == 28 {
			got = "blocked (connection timed out)"
		}
	}
	verdict := "as expected"
	if ok != wantOK {
		verdict = "NOT as expected"
		d.failed = append(d.failed, fmt.Sprintf("%s -> %s %s (%s)", pod, service, got, why))
	}
	d.say("# %s: %s (%s)", got, verdict, why)
}

func (d *demo) get(args ...string) error {
	d.cmd("kubectl get " + strings.Join(args, " "))
	return labGet(d.s, append(args, "--name", demoLab))
}

func (d *demo) run(ctx context.Context) error {
	d.say("# The walkthrough of \"Understanding Kubernetes Network Policies\", for real:")
	d.say("# a lab node and its pods are network namespaces on this host, curl is the real curl,")
	d.say("# and the policies are enforced by Palisade's nftables rules in the node.")
	d.say("# (kubectl below is `palisade lab`; curl runs with --max-time 3 so that a block shows as a timeout.)")
	ls, err := newLabSession(ctx, demoLab, 1, nil, d.s.Out)
	d.ls = ls
	if err != nil {
		return err
	}
	servers, err := ls.lab.StartServers()
	if err != nil {
		return err
	}
	defer servers.Close()
	if err := d.apply(ctx, "sample-app.yaml"); err != nil {
		return err
	}
	if err := servers.Sync(ls.lab); err != nil {
		return err
	}
	if err := d.get("pods", "-o", "wide"); err != nil {
		return err
	}
	if err := d.get("services"); err != nil {
		return err
	}
	d.say("\n# No policy yet: every pod can reach every pod.")
	d.curl(ctx, "backend", true, "by default, pods can communicate freely")
	d.curl(ctx, "client-pod", true, "by default, pods can communicate freely")

	if err := d.apply(ctx, "frontend-policy.yaml"); err != nil {
		return err
	}
	if err := d.get("networkpolicies"); err != nil {
		return err
	}
	d.cmd("kubectl describe networkpolicy frontend-access")
	if err := labDescribe(d.s, []string{"networkpolicy", "frontend-access", "--name", demoLab}); err != nil {
		return err
	}
	d.curl(ctx, "backend", true, "should succeed")
	d.curl(ctx, "client-pod", false, "should fail")
	d.say("\n# The article's \"Egress Behavior\" paragraph says frontend's outgoing traffic is now blocked.")
	d.say("# Kubernetes says otherwise: the policy has no egress section, so its policyTypes is [Ingress].")
	d.curlTo(ctx, "frontend", "backend-service", "default/backend", true,
		"Kubernetes: frontend-access does not isolate frontend for egress")
	if err := d.get("pods", "--show-labels"); err != nil {
		return err
	}

	d.say("\n# Start with Default Deny: \"blocks all traffic to and from every pod in the namespace\".")
	if err := d.apply(ctx, "default-deny-all.yaml"); err != nil {
		return err
	}
	if err := d.get("networkpolicies", "-A"); err != nil {
		return err
	}
	d.curl(ctx, "backend", false, "blocks all traffic to and from every pod")
	d.curl(ctx, "client-pod", false, "blocks all traffic to and from every pod")

	d.cmd("palisade lab rules   # what the kernel enforces, as nft lists it")
	text, err := dumpRules(ls.lab.NodeNetNS(ls.lab.Nodes()[0]))
	if err != nil {
		return err
	}
	d.say("%s", strings.TrimRight(text, "\n"))
	return nil
}
