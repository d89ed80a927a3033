package cli

// The lab's kubelet mode: `palisade lab up --kubeconfig FILE` and the verbs
// that behave differently for such a lab (apply, delete, daemon, down).
// The other verbs (get, describe, exec, probe, matrix, rules) read the lab's
// state, which the lab daemon keeps in step with the API server.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/palisade-net/palisade/examples"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
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
		if err := kubeApply(ctx, cs, objs, s.Out); err != nil {
			return err // the lab stays: the API server has what was applied so far
		}
		if err := waitPodsRunning(ctx, cs, lf.name, objs, 60*time.Second); err != nil {
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
		return kubeDelete(ctx, cs, objs, s.Out)
	}
	if err := kubeApply(ctx, cs, objs, s.Out); err != nil {
		return err
	}
	return waitPodsRunning(ctx, cs, lf.name, objs, 60*time.Second)
}

func labKubeDaemon(s Streams, args []string) error { return labDaemonWith(s, args, lab.ServeKube) }

func labKubeDown(s Streams, args []string) error {
	return labDownWith(s, args, lab.KubeDown, lab.KubeDownAll)
}

// kubeResource says where a kind lives in the API.
func kubeResource(cs kubernetes.Interface, kind string) (rest.Interface, string, bool) {
	switch kind {
	case "Namespace":
		return cs.CoreV1().RESTClient(), "namespaces", false
	case "Node":
		return cs.CoreV1().RESTClient(), "nodes", false
	case "Pod":
		return cs.CoreV1().RESTClient(), "pods", true
	case "Service":
		return cs.CoreV1().RESTClient(), "services", true
	case "NetworkPolicy":
		return cs.NetworkingV1().RESTClient(), "networkpolicies", true
	}
	return nil, "", false
}

func kubeRequest(rc rest.Interface, verb, resource string, namespaced bool, o manifest.Object) *rest.Request {
	var r *rest.Request
	switch verb {
	case "get":
		r = rc.Get()
	case "delete":
		r = rc.Delete()
	default:
		r = rc.Patch(types.ApplyPatchType)
	}
	if namespaced {
		r = r.Namespace(o.Key.Namespace)
	}
	return r.Resource(resource).Name(o.Key.Name)
}

// resourceVersion of the object named like o, "" if there is none.
func resourceVersion(ctx context.Context, rc rest.Interface, resource string, namespaced bool, o manifest.Object) (string, error) {
	var meta struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	raw, err := kubeRequest(rc, "get", resource, namespaced, o).Do(ctx).Raw()
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		return "", err
	}
	return meta.Metadata.ResourceVersion, nil
}

// kubeApply applies objects to the API server (server-side apply, field
// manager palisade-lab), printing kubectl's created/configured/unchanged.
// A Pod's status is not sent: the lab, as its kubelet, sets it.
func kubeApply(ctx context.Context, cs kubernetes.Interface, objs []manifest.Object, out io.Writer) error {
	force := true
	for _, o := range objs {
		rc, resource, namespaced := kubeResource(cs, o.Kind)
		if rc == nil {
			continue
		}
		before, err := resourceVersion(ctx, rc, resource, namespaced, o)
		if err != nil {
			return fmt.Errorf("%s: %w", resourceName(o), err)
		}
		obj := o.API.DeepCopyObject()
		if p, ok := obj.(*corev1.Pod); ok {
			p.Status = corev1.PodStatus{}
		}
		body, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		raw, err := kubeRequest(rc, "apply", resource, namespaced, o).
			VersionedParams(&metav1.PatchOptions{FieldManager: "palisade-lab", Force: &force}, metav1.ParameterCodec).
			Body(body).Do(ctx).Raw()
		if err != nil {
			return fmt.Errorf("%s (%s): %w", resourceName(o), o.Source, err)
		}
		var after struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		_ = json.Unmarshal(raw, &after)
		switch {
		case before == "":
			fmt.Fprintf(out, "%s created\n", resourceName(o))
		case before == after.Metadata.ResourceVersion:
			fmt.Fprintf(out, "%s unchanged\n", resourceName(o))
		default:
			fmt.Fprintf(out, "%s configured\n", resourceName(o))
		}
	}
	return nil
}

// kubeDelete deletes objects from the API server and waits until they are
// gone (a pod on a lab node is gone once the lab has torn it down).
func kubeDelete(ctx context.Context, cs kubernetes.Interface, objs []manifest.Object, out io.Writer) error {
	var missing []string
	var deleted []manifest.Object
	for _, o := range objs {
		rc, resource, namespaced := kubeResource(cs, o.Kind)
		if rc == nil {
			continue
		}
		err := kubeRequest(rc, "delete", resource, namespaced, o).Do(ctx).Error()
		if apierrors.IsNotFound(err) {
			missing = append(missing, objectKey(o))
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", resourceName(o), err)
		}
		fmt.Fprintf(out, "%s %q deleted\n", strings.ToLower(o.Kind), o.Key.Name)
		deleted = append(deleted, o)
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, o := range deleted {
		if o.Kind == "Namespace" {
			continue // stays Terminating without a namespace controller
		}
		rc, resource, namespaced := kubeResource(cs, o.Kind)
		for {
			rv, err := resourceVersion(ctx, rc, resource, namespaced, o)
			if err != nil {
				return err
			}
			if rv == "" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: still there after 60s", resourceName(o))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("not found: %s", strings.Join(missing, ", "))
	}
	return nil
}

// waitPodsRunning waits until every Pod among objs is Running with an IP:
// the lab has built it.
func waitPodsRunning(ctx context.Context, cs kubernetes.Interface, name string, objs []manifest.Object, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, o := range objs {
		if o.Kind != "Pod" {
			continue
		}
		for {
			p, err := cs.CoreV1().Pods(o.Key.Namespace).Get(ctx, o.Key.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("pod %s: %w", o.Key, err)
			}
			if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("pod %s: not running after %s (phase %q; see %s)", o.Key, timeout, p.Status.Phase, lab.DaemonLog(name))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// kubeDemo is `palisade demo --kubeconfig FILE`: the seed walkthrough on a
// real API server with the real kubectl, the lab as the kubelet of two
// nodes, and one `palisade agent` per node enforcing.
type kubeDemo struct {
	*demo
	kubeconfig string // the user's
	kubectl    string
	dir        string // kubectl's working directory: examples/seed/*.yaml and its kubeconfig
	cs         kubernetes.Interface
}

// kubeDemoNS is where the demo's objects go, so that it never touches the
// user's default namespace and can run again after --keep.
const kubeDemoNS = "palisade-demo"

// kubeDemoObjects are the seed's objects, which the demo removes from its
// namespace before and after.
var kubeDemoObjects = map[string][]string{
	"NetworkPolicy": {"frontend-access", "default-deny-all"},
	"Service":       {"frontend-service", "backend-service"},
	"Pod":           {"frontend", "backend", "client-pod"},
}

func runKubeDemo(s Streams, kubeconfig string, keep bool) error {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		return badInputf("demo --kubeconfig: the walkthrough runs the real kubectl: install it")
	}
	if _, err := os.Stat(kubeconfig); err != nil {
		return badInputf("demo --kubeconfig: %v", err)
	}
	if err := lab.KubeDown(demoLab); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "palisade-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "examples", "seed"), 0o755); err != nil {
		return err
	}
	for _, f := range []string{"sample-app.yaml", "frontend-policy.yaml", "default-deny-all.yaml"} {
		data, err := examples.Seed.ReadFile("seed/" + f)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "examples", "seed", f), data, 0o644)
		}
		if err != nil {
			return err
		}
	}
	cfg, err := lab.KubeRESTConfig(kubeconfig)
	if err != nil {
		return badInput(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	d := &kubeDemo{demo: &demo{s: s}, kubeconfig: kubeconfig, kubectl: kubectl, dir: dir, cs: cs}
	ctx := context.Background()
	err = d.prepare(ctx)
	if err == nil {
		err = d.run(ctx)
	}
	if !keep || err != nil {
		if cerr := d.cleanup(ctx); cerr != nil {
			err = errors.Join(err, cerr)
		}
	} else {
		fmt.Fprintf(s.Out, "\nThe lab is still up: kubectl get pods -o wide; palisade lab --name %s exec backend -- curl -s frontend-service; palisade lab down --name %s\n", demoLab, demoLab)
	}
	if err != nil {
		return err
	}
	if len(d.failed) > 0 {
		fmt.Fprintf(s.Out, "\nDEMO FAILED: %d result(s) differ from the article:\n  %s\n", len(d.failed), strings.Join(d.failed, "\n  "))
		return silentExit(1)
	}
	fmt.Fprintln(s.Out, "\nDemo passed: every result is what the article says, on a real API server.")
	return nil
}

// kubectlRun runs the real kubectl against the demo's API server and
// prints the command and its output (without kubectl's client/server
// version skew warning).
func (d *kubeDemo) kubectlRun(args ...string) error {
	d.cmd("kubectl " + strings.Join(args, " "))
	out, err := d.kubectlQuiet(args...)
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line != "" && !strings.HasPrefix(line, "Warning: version difference between client") {
			d.say("%s", line)
		}
	}
	if err != nil {
		return fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// kubectlQuiet runs kubectl in the demo's directory, with the demo's
// kubeconfig (the user's, flattened, with the demo's namespace).
func (d *kubeDemo) kubectlQuiet(args ...string) ([]byte, error) {
	cmd := exec.Command(d.kubectl, args...)
	cmd.Dir = d.dir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(d.dir, "kubeconfig"))
	return cmd.CombinedOutput()
}

// prepare makes the demo's kubeconfig (the user's, flattened, its context
// namespace set to palisade-demo), the namespace, and removes what a
// previous demo may have left in it.
func (d *kubeDemo) prepare(ctx context.Context) error {
	cmd := exec.Command(d.kubectl, "config", "view", "--raw", "--flatten", "--minify")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+d.kubeconfig)
	flat, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("kubectl config view --flatten: %w", err)
	}
	if err := os.WriteFile(filepath.Join(d.dir, "kubeconfig"), flat, 0o600); err != nil {
		return err
	}
	if out, err := d.kubectlQuiet("config", "set-context", "--current", "--namespace", kubeDemoNS); err != nil {
		return fmt.Errorf("kubectl config set-context: %w: %s", err, out)
	}
	ns, err := d.cs.CoreV1().Namespaces().Get(ctx, kubeDemoNS, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = d.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kubeDemoNS}}, metav1.CreateOptions{})
	case err == nil && ns.Status.Phase == corev1.NamespaceTerminating:
		err = fmt.Errorf("namespace %s is terminating: the demo needs it (an API server without a namespace controller never finishes deleting it)", kubeDemoNS)
	}
	if err != nil {
		return err
	}
	return d.removeObjects(ctx)
}

// removeObjects deletes the seed's objects from the demo's namespace and
// waits until they are gone.
func (d *kubeDemo) removeObjects(ctx context.Context) error {
	zero := int64(0)
	del := metav1.DeleteOptions{GracePeriodSeconds: &zero}
	var errs []error
	for _, name := range kubeDemoObjects["NetworkPolicy"] {
		errs = append(errs, ignoreNotFound(d.cs.NetworkingV1().NetworkPolicies(kubeDemoNS).Delete(ctx, name, del)))
	}
	for _, name := range kubeDemoObjects["Service"] {
		errs = append(errs, ignoreNotFound(d.cs.CoreV1().Services(kubeDemoNS).Delete(ctx, name, del)))
	}
	for _, name := range kubeDemoObjects["Pod"] {
		errs = append(errs, ignoreNotFound(d.cs.CoreV1().Pods(kubeDemoNS).Delete(ctx, name, del)))
	}
	for _, name := range kubeDemoObjects["Pod"] {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			_, err := d.cs.CoreV1().Pods(kubeDemoNS).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				break
			}
			if err != nil || time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("pod %s/%s not deleted: %v", kubeDemoNS, name, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// settle waits until a probe from pod to service gives wantOK: the agents
// have programmed the last change (they do it within milliseconds; the
// wait bounds it at 15 s). It returns how long that took.
func (d *kubeDemo) settle(ctx context.Context, pod, service string, wantOK bool) time.Duration {
	start := time.Now()
	for time.Since(start) < 15*time.Second {
		l, err := lab.Load(demoLab)
		if err != nil {
			break
		}
		svc := l.Cluster().Services[model.Key{Namespace: kubeDemoNS, Name: service}]
		if svc == nil || len(svc.ClusterIPs) == 0 {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		ok, err := l.Probe(ctx, model.Key{Namespace: kubeDemoNS, Name: pod}, svc.ClusterIPs[0], 80, model.TCP, 300*time.Millisecond)
		if err == nil && ok == wantOK {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

// curl runs `palisade lab exec POD -- curl SERVICE` (kubectl exec needs a
// real kubelet) with the real curl in the pod, and checks the outcome.
func (d *kubeDemo) curl(ctx context.Context, pod, service, want string, wantOK bool, why string) {
	d.settle(ctx, pod, service, wantOK)
	d.cmd(fmt.Sprintf("palisade lab exec -n %s %s -- curl %s", kubeDemoNS, pod, service))
	l, err := lab.Load(demoLab)
	var out bytes.Buffer
	code := -1
	if err == nil {
		code, err = l.Exec(ctx, model.Key{Namespace: kubeDemoNS, Name: pod},
			[]string{"curl", "-sS", "--max-time", "3", service}, nil, &out, &out)
	}
	d.judge(pod, service, want, out.String(), code, err, wantOK, why)
}

func (d *kubeDemo) run(ctx context.Context) error {
	d.say("# The walkthrough of \"Understanding Kubernetes Network Policies\", on a real API server:")
	d.say("# kubectl is the real kubectl; the lab plays the kubelet of two nodes (network namespaces on")
	d.say("# this host) and runs one `palisade agent` per node, authenticated as deploy/'s ServiceAccount,")
	d.say("# which enforces the policies it watches in its node's nftables. curl runs with --max-time 3.")
	d.cmd(fmt.Sprintf("palisade lab up --kubeconfig %s --nodes 2", d.kubeconfig))
	if err := labKubeUp(d.s, []string{"--name", demoLab, "--kubeconfig", d.kubeconfig, "--nodes", "2"}); err != nil {
		return err
	}
	if err := d.kubectlRun("get", "nodes", "-o", "wide"); err != nil {
		return err
	}
	d.say("\n# The walkthrough runs in namespace %s (the context namespace of a copy of your kubeconfig),", kubeDemoNS)
	d.say("# so that it never touches your default namespace.")
	if err := d.kubectlRun("apply", "-f", "examples/seed/sample-app.yaml"); err != nil {
		return err
	}
	d.say("# The pods' status in the file is ignored on create: the lab, as their kubelet, sets it.")
	for _, p := range []string{"frontend", "backend", "client-pod"} {
		if err := d.kubectlRun("wait", "--for=condition=Ready", "pod/"+p, "--timeout=60s"); err != nil {
			return err
		}
	}
	if err := d.kubectlRun("get", "pods", "-o", "wide"); err != nil {
		return err
	}
	if err := d.kubectlRun("get", "services"); err != nil {
		return err
	}
	d.say("\n# No policy yet: every pod can reach every pod.")
	d.curl(ctx, "backend", "frontend-service", kubeDemoNS+"/frontend", true, "article: by default, pods can communicate freely")
	d.curl(ctx, "client-pod", "frontend-service", kubeDemoNS+"/frontend", true, "article: by default, pods can communicate freely")

	if err := d.kubectlRun("apply", "-f", "examples/seed/frontend-policy.yaml"); err != nil {
		return err
	}
	if err := d.kubectlRun("get", "networkpolicy"); err != nil {
		return err
	}
	if err := d.kubectlRun("describe", "networkpolicy", "frontend-access"); err != nil {
		return err
	}
	d.curl(ctx, "backend", "frontend-service", kubeDemoNS+"/frontend", true, "article: should succeed")
	d.curl(ctx, "client-pod", "frontend-service", kubeDemoNS+"/frontend", false, "article: should fail")
	d.say("\n# The article's \"Egress Behavior\" paragraph says frontend's outgoing traffic is now blocked.")
	d.say("# Kubernetes says otherwise: the policy has no egress section, so its policyTypes is [Ingress].")
	d.curl(ctx, "frontend", "backend-service", kubeDemoNS+"/backend", true,
		"Kubernetes: frontend-access does not isolate frontend for egress")
	if err := d.kubectlRun("get", "pods", "--show-labels"); err != nil {
		return err
	}

	d.say("\n# Start with Default Deny: \"blocks all traffic to and from every pod in the namespace\".")
	if err := d.kubectlRun("apply", "-f", "examples/seed/default-deny-all.yaml"); err != nil {
		return err
	}
	if err := d.kubectlRun("get", "networkpolicy", "-A"); err != nil {
		return err
	}
	d.curl(ctx, "backend", "frontend-service", kubeDemoNS+"/frontend", false, "article: blocks all traffic to and from every pod")
	d.curl(ctx, "client-pod", "frontend-service", kubeDemoNS+"/frontend", false, "article: blocks all traffic to and from every pod")

	l, err := lab.Load(demoLab)
	if err != nil {
		return err
	}
	node := l.PodNode(model.Key{Namespace: kubeDemoNS, Name: "frontend"})
	d.cmd(fmt.Sprintf("palisade lab rules --node %s   # what frontend's agent put in its node's kernel", node))
	text, err := dumpRules(l.NodeNetNS(node))
	if err != nil {
		return err
	}
	d.say("%s", strings.TrimRight(text, "\n"))
	return nil
}

// cleanup removes what the demo made: its objects in the API server (its
// namespace stays: without a namespace controller it would never go), then
// the lab, which deletes its Node objects.
func (d *kubeDemo) cleanup(ctx context.Context) error {
	return errors.Join(d.removeObjects(ctx), lab.KubeDown(demoLab))
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
