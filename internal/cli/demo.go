package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/palisade-net/palisade/examples"
	"github.com/palisade-net/palisade/internal/kube"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/lab/store"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/walkthrough"
)

// demoLab is the lab the demo builds; it never touches the user's labs.
const demoLab = "demo"

func demoFlags(s Streams) (*flag.FlagSet, func(pos []string) error) {
	fs := newFlags("demo", s)
	keep := fs.Bool("keep", false, "leave the lab up afterwards (palisade lab --name demo …)")
	kubeconfig := fs.String("kubeconfig", "", "run the walkthrough on this API server with the real kubectl (the lab plays the kubelet)")
	steps := fs.Bool("steps", false, "print the walkthrough's steps, one a line, tab-separated, and run nothing (hack/cluster/demo.sh plays them on a real cluster)")
	return fs, func([]string) error {
		if *steps {
			if *keep || *kubeconfig != "" {
				return badInputf("demo --steps runs nothing: it takes neither --keep nor --kubeconfig")
			}
			return walkthrough.Lines(s.Out, walkthrough.Seed)
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
		d := &labDemo{s: s}
		failed, err := d.run(ctx)
		if d.ls != nil {
			d.ls.Close()
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
		if !walkthrough.Report(s.Out, failed, "") {
			return silentExit(1)
		}
		return nil
	}
}

func (s Streams) say(format string, args ...any) { fmt.Fprintf(s.Out, format+"\n", args...) }

func seedObjects(file string) ([]manifest.Object, error) {
	data, err := examples.Seed.ReadFile("seed/" + file)
	if err != nil {
		return nil, err
	}
	return manifest.Read([]string{"-"}, bytes.NewReader(data), io.Discard)
}

// labDemo is the walkthrough's Cluster in the lab: kubectl is `palisade
// lab`, the demo process serves the pods and its enforcer is the node's.
type labDemo struct {
	s       Streams
	ls      *store.Session
	servers *lab.Servers
}

func (d *labDemo) run(ctx context.Context) ([]string, error) {
	d.s.say("# The walkthrough of \"Understanding Kubernetes Network Policies\", for real:")
	d.s.say("# a lab node and its pods are network namespaces on this host, curl is the real curl,")
	d.s.say("# and the policies are enforced by Palisade's nftables rules in the node.")
	d.s.say("# (kubectl below is `palisade lab`; curl runs with --max-time 3 so that a block shows as a timeout.)")
	ls, err := store.New(ctx, demoLab, 1, nil, d.s.Out)
	d.ls = ls
	if err != nil {
		return nil, err
	}
	if d.servers, err = ls.Lab.StartServers(); err != nil {
		return nil, err
	}
	defer d.servers.Close()
	return walkthrough.Run(ctx, d.s.Out, d, "default", walkthrough.Seed)
}

func (d *labDemo) Apply(ctx context.Context, file string) error {
	walkthrough.Prompt(d.s.Out, "kubectl apply -f "+file)
	objs, err := seedObjects(file)
	if err != nil {
		return err
	}
	if err := d.ls.Apply(ctx, objs, d.s.Out); err != nil {
		return err
	}
	return d.servers.Sync(d.ls.Lab)
}

func (d *labDemo) Kubectl(_ context.Context, args ...string) error {
	walkthrough.Prompt(d.s.Out, "kubectl "+strings.Join(args, " "))
	verb := map[string]func(Streams, []string) error{"get": labGet, "describe": labDescribe}[args[0]]
	if verb == nil {
		return fmt.Errorf("demo: no kubectl %s in the lab", args[0])
	}
	return verb(d.s, append(args[1:len(args):len(args)], "--name", demoLab))
}

func (d *labDemo) Curl(ctx context.Context, c walkthrough.Curl) (string, int, error) {
	walkthrough.Prompt(d.s.Out, fmt.Sprintf("kubectl exec %s -- curl %s", c.From, c.Service))
	return curlIn(ctx, d.ls.Lab, model.Key{Namespace: "default", Name: c.From}, c.Service)
}

func (d *labDemo) Rules(context.Context) error {
	walkthrough.Prompt(d.s.Out, "palisade lab rules   # what the kernel enforces, as nft lists it")
	return printRules(d.s, d.ls.Lab, d.ls.Lab.Nodes()[0])
}

// curlIn runs the real curl in a lab pod, bounded so that a block shows
// as a timeout.
func curlIn(ctx context.Context, l *lab.Lab, pod model.Key, service string) (string, int, error) {
	var out bytes.Buffer
	code, err := l.Exec(ctx, pod, []string{"curl", "-sS", "--max-time", "3", service}, nil, &out, &out)
	return out.String(), code, err
}

// printRules prints the ruleset in a lab node's kernel.
func printRules(s Streams, l *lab.Lab, node string) error {
	text, err := dumpRules(l.NodeNetNS(node))
	if err != nil {
		return err
	}
	s.say("%s", strings.TrimRight(text, "\n"))
	return nil
}

// kubeDemo is `palisade demo --kubeconfig FILE`: the walkthrough's Cluster
// on a real API server with the real kubectl, the lab as the kubelet of
// two nodes, and one `palisade agent` per node enforcing.
type kubeDemo struct {
	s          Streams
	kubeconfig string // the user's
	kubectl    string
	dir        string // kubectl's working directory: examples/seed/*.yaml and its kubeconfig
	cs         kubernetes.Interface
}

// kubeDemoNS is where the demo's objects go, so that it never touches the
// user's default namespace and can run again after --keep.
const kubeDemoNS = "palisade-demo"

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
	if err := os.CopyFS(filepath.Join(dir, "examples"), examples.Seed); err != nil { // examples/seed/*.yaml
		return err
	}
	cfg, err := lab.KubeRESTConfig(kubeconfig)
	if err != nil {
		return badInput(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	d := &kubeDemo{s: s, kubeconfig: kubeconfig, kubectl: kubectl, dir: dir, cs: cs}
	ctx := context.Background()
	var failed []string
	err = d.prepare(ctx)
	if err == nil {
		failed, err = d.run(ctx)
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
	if !walkthrough.Report(s.Out, failed, ", on a real API server") {
		return silentExit(1)
	}
	return nil
}

// kubectlRun runs the real kubectl against the demo's API server and
// prints the command and its output (without kubectl's client/server
// version skew warning).
func (d *kubeDemo) kubectlRun(args ...string) error {
	walkthrough.Prompt(d.s.Out, "kubectl "+strings.Join(args, " "))
	out, err := d.kubectlQuiet(args...)
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if line != "" && !strings.HasPrefix(line, "Warning: version difference between client") {
			d.s.say("%s", line)
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
		nsObj := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: kubeDemoNS}}
		err = kube.Apply(ctx, d.cs, []manifest.Object{{Kind: "Namespace", Key: model.Key{Name: kubeDemoNS}, API: nsObj}}, io.Discard)
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
	var objs []manifest.Object
	for _, s := range walkthrough.Seed {
		if s.Apply == "" {
			continue
		}
		fileObjs, err := seedObjects(s.Apply)
		if err != nil {
			return err
		}
		for _, o := range fileObjs {
			o.Key.Namespace = kubeDemoNS
			objs = append(objs, o)
		}
	}
	slices.Reverse(objs) // policies, then pods and services
	// A grace period of 0: a pod of a previous demo (--keep) may be
	// bound to a node whose kubelet, the lab, is gone.
	zero := int64(0)
	err := kube.Delete(ctx, d.cs, objs, metav1.DeleteOptions{GracePeriodSeconds: &zero}, 30*time.Second, io.Discard)
	if errors.Is(err, kube.ErrNotFound) {
		return nil
	}
	return err
}

func (d *kubeDemo) run(ctx context.Context) ([]string, error) {
	d.s.say("# The walkthrough of \"Understanding Kubernetes Network Policies\", on a real API server:")
	d.s.say("# kubectl is the real kubectl; the lab plays the kubelet of two nodes (network namespaces on")
	d.s.say("# this host) and runs one `palisade agent` per node, authenticated as deploy/'s ServiceAccount,")
	d.s.say("# which enforces the policies it watches in its node's nftables. curl runs with --max-time 3.")
	walkthrough.Prompt(d.s.Out, fmt.Sprintf("palisade lab up --kubeconfig %s --nodes 2", d.kubeconfig))
	if err := labKubeUp(d.s, []string{"--name", demoLab, "--kubeconfig", d.kubeconfig, "--nodes", "2"}); err != nil {
		return nil, err
	}
	if err := d.kubectlRun("get", "nodes", "-o", "wide"); err != nil {
		return nil, err
	}
	d.s.say("\n# The walkthrough runs in namespace %s (the context namespace of a copy of your kubeconfig),", kubeDemoNS)
	d.s.say("# so that it never touches your default namespace.")
	return walkthrough.Run(ctx, d.s.Out, d, kubeDemoNS, walkthrough.Seed)
}

// Apply runs kubectl apply, then waits until the pods the file makes are
// Ready: the lab, as their kubelet, has built them.
func (d *kubeDemo) Apply(_ context.Context, file string) error {
	if err := d.kubectlRun("apply", "-f", "examples/seed/"+file); err != nil {
		return err
	}
	objs, err := seedObjects(file)
	if err != nil {
		return err
	}
	said := false
	for _, o := range objs {
		if o.Kind != "Pod" {
			continue
		}
		if !said {
			d.s.say("# The pods' status in the file is ignored on create: the lab, as their kubelet, sets it.")
			said = true
		}
		if err := d.kubectlRun("wait", "--for=condition=Ready", "pod/"+o.Key.Name, "--timeout=60s"); err != nil {
			return err
		}
	}
	return nil
}

func (d *kubeDemo) Kubectl(_ context.Context, args ...string) error { return d.kubectlRun(args...) }

// Curl runs `palisade lab exec POD -- curl SERVICE` (kubectl exec needs a
// real kubelet) once the agents have programmed the last change.
func (d *kubeDemo) Curl(ctx context.Context, c walkthrough.Curl) (string, int, error) {
	d.settle(ctx, c.From, c.Service, c.OK)
	walkthrough.Prompt(d.s.Out, fmt.Sprintf("palisade lab exec -n %s %s -- curl %s", kubeDemoNS, c.From, c.Service))
	l, err := lab.Load(demoLab)
	if err != nil {
		return "", -1, err
	}
	return curlIn(ctx, l, model.Key{Namespace: kubeDemoNS, Name: c.From}, c.Service)
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

// Rules prints the ruleset of frontend's node.
func (d *kubeDemo) Rules(context.Context) error {
	l, err := lab.Load(demoLab)
	if err != nil {
		return err
	}
	node := l.PodNode(model.Key{Namespace: kubeDemoNS, Name: "frontend"})
	walkthrough.Prompt(d.s.Out, fmt.Sprintf("palisade lab rules --node %s   # what frontend's agent put in its node's kernel", node))
	return printRules(d.s, l, node)
}

// cleanup removes what the demo made: its objects in the API server (its
// namespace stays: without a namespace controller it would never go), then
// the lab, which deletes its Node objects.
func (d *kubeDemo) cleanup(ctx context.Context) error {
	return errors.Join(d.removeObjects(ctx), lab.KubeDown(demoLab))
}
