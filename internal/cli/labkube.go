package cli

// The lab's kubelet mode: `palisade lab up --kubeconfig FILE` and the verbs
// that behave differently for such a lab (apply, delete, daemon, down).
// The other verbs (get, describe, exec, probe, matrix, rules) read the lab's
// state, which the lab daemon keeps in step with the API server.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/palisade-net/palisade/internal/kube"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/manifest"
)

const labKubeUsage = `
Kubelet mode (a real API server; pods, services and policies come from it):
  up --kubeconfig FILE [--nodes N] [-f FILE]… [--no-agents]
                                   register N nodes in the API server and play
                                   their kubelet; run one palisade agent per node
                                   as deploy/'s ServiceAccount
  apply|delete -f FILE…            create or delete the objects in the API server
                                   (kubectl works as well), and wait for the pods`

// kubeLabVerb returns the kubelet-mode implementation of a lab verb, or nil
// when the verb's usual one applies. The mode is the lab's (kube.json in its
// state directory), except for up, where --kubeconfig asks for it.
func kubeLabVerb(verb string, args []string) func(Streams, []string) error {
	name, all := peekLab(verb, args)
	switch verb {
	case "up":
		if _, ok := flagGiven(args, "kubeconfig"); ok {
			return labKubeUp
		}
	case "down":
		if all || lab.IsKube(name) {
			return labKubeDown
		}
	case "apply", "delete":
		if lab.IsKube(name) {
			return func(s Streams, args []string) error { return labKubeChange(s, verb, args) }
		}
	case "daemon":
		if lab.IsKube(name) {
			return labKubeDaemon
		}
	}
	return nil
}

// flagGiven finds --flag VALUE, --flag=VALUE (or with one dash) in args,
// before any "--".
func flagGiven(args []string, flag string) (string, bool) {
	for i, a := range args {
		if a == "--" {
			break
		}
		for _, p := range []string{"-" + flag, "--" + flag} {
			if a == p && i+1 < len(args) {
				return args[i+1], true
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

// peekLab finds which lab a verb's arguments name (--name, or the
// positional NAME of down) and whether down has --all.
func peekLab(verb string, args []string) (name string, all bool) {
	name = "default"
	if v, ok := flagGiven(args, "name"); ok {
		name = v
	}
	if verb != "down" {
		return name, false
	}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--all" || a == "-all" || a == "--all=true" || a == "-all=true":
			all = true
		case a == "--name" || a == "-name" || a == "-n" || a == "--n":
			i++
		case !strings.HasPrefix(a, "-"):
			name = a
		}
	}
	return name, all
}

func labKubeUp(s Streams, args []string) error {
	fs := newFlags("lab up", s)
	var lf labFlags
	addLabFlags(fs, &lf)
	var files stringList
	fs.Var(&files, "f", "manifest file, directory or - (repeatable): created in the API server")
	nodes := fs.Int("nodes", 1, "number of nodes")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server (admin): the lab plays the kubelet of its nodes")
	noAgents := fs.Bool("no-agents", false, "do not run palisade agent for the nodes (run your own)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *kubeconfig == "" {
		return badInputf("lab up: --kubeconfig: want a file")
	}
	var objs []manifest.Object
	if len(files) > 0 {
		var err error
		if objs, err = readObjects(s, files); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ctx := context.Background()
	l, err := lab.KubeUp(ctx, lf.name, lab.Options{Nodes: *nodes}, lab.KubeOptions{Kubeconfig: *kubeconfig, NoAgents: *noAgents})
	if err != nil {
		return err
	}
	fail := func(err error) error {
		if derr := lab.KubeDown(lf.name); derr != nil {
			err = errors.Join(err, derr)
		}
		return err
	}
	pid, err := lab.StartDaemon(lf.name, []string{self, "lab", "daemon", "--name", lf.name})
	if err != nil {
		return fail(fmt.Errorf("start the lab daemon: %w", err))
	}
	if err := lab.WaitAgents(ctx, lf.name, 60*time.Second); err != nil {
		return fail(err)
	}
	ki, err := lab.LoadKube(lf.name)
	if err != nil {
		return fail(err)
	}
	if len(objs) > 0 {
		cs, _, err := lab.KubeClient(lf.name)
		if err != nil {
			return fail(err)
		}
		if err := kube.Apply(ctx, cs, objs, s.Out); err != nil {
			return err // the lab stays: the API server has what was applied so far
		}
		if err := waitPodsRunning(ctx, cs, lf.name, objs); err != nil {
			return err
		}
	}
	fmt.Fprintf(s.Out, "lab %s is up in kubelet mode for %s: %s registered; lab daemon pid %d\n",
		lf.name, ki.Server, strings.Join(l.Nodes(), ", "), pid)
	if ki.Agents {
		for _, a := range lab.Agents(lf.name) {
			fmt.Fprintf(s.Out, "  agent %s: pid %d, metrics http://%s/metrics, log %s\n", a.Node, a.PID, a.MetricsAddr, a.Log)
		}
		fmt.Fprintf(s.Out, "  agents authenticate as system:serviceaccount:%s:%s (%s)\n", lab.AgentNamespace, lab.AgentServiceAccount, ki.AgentKubeconfig)
	}
	named := ""
	if lf.name != "default" {
		named = " --name " + lf.name
	}
	fmt.Fprintf(s.Out, "try: kubectl --kubeconfig %s apply -f examples/seed/sample-app.yaml; palisade lab exec%s backend -- curl -s frontend-service; palisade lab down%s\n", ki.Kubeconfig, named, named)
	return nil
}

func labKubeChange(s Streams, verb string, args []string) error {
	lf, objs, err := parseLabChange(s, verb, args)
	if err != nil {
		return err
	}
	cs, _, err := lab.KubeClient(lf.name)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if verb == "delete" {
		return kube.Delete(ctx, cs, objs, metav1.DeleteOptions{}, 60*time.Second, s.Out)
	}
	if err := kube.Apply(ctx, cs, objs, s.Out); err != nil {
		return err
	}
	return waitPodsRunning(ctx, cs, lf.name, objs)
}

func labKubeDaemon(s Streams, args []string) error { return labDaemonWith(s, args, lab.ServeKube) }

func labKubeDown(s Streams, args []string) error {
	return labDownWith(s, args, lab.KubeDown, lab.KubeDownAll)
}

// waitPodsRunning waits until the lab has built the pods among objs.
func waitPodsRunning(ctx context.Context, cs kubernetes.Interface, name string, objs []manifest.Object) error {
	if err := kube.WaitPodsRunning(ctx, cs, objs, 60*time.Second); err != nil {
		return fmt.Errorf("%w; see %s", err, lab.DaemonLog(name))
	}
	return nil
}
