package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/lab/store"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/render"
	"github.com/palisade-net/palisade/internal/truth"
)

const labUsage = `Usage: palisade lab VERB [flags]   (as root)

A cluster's network on this host: nodes and pods are network namespaces,
pods serve their container ports, Services get a ClusterIP, and Palisade
enforces NetworkPolicy in each node's nftables.

Verbs:
  up [--nodes N] [-f FILE]…        build the lab (and apply manifests)
  apply -f FILE…                   create or replace objects
  delete -f FILE…                  delete objects
  get pods|services|networkpolicies|namespaces [NAME] [-A] [--show-labels] [-o wide|yaml|json]
  describe networkpolicy NAME      the policy as kubectl describes it
  exec POD -- CMD…                 run a host command (curl…) inside a pod
  probe --from POD --to POD|SERVICE --port 80/TCP
                                   one real connection, with the engine's prediction
  matrix [--port 80/TCP]…          probe every pod pair for real
  rules [--node NODE]              the nftables ruleset in each node
  down [--all]                     remove the lab, also after a crash

Every verb takes --name (default "default") to pick the lab, and -n NS
(default "default") for the namespace of POD and NAME arguments.`

func runLab(s Streams, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(s.Out, labUsage+labKubeUsage)
		if len(args) == 0 {
			return silentExit(2)
		}
		return nil
	}
	verbs := map[string]func(Streams, []string) error{
		"up": labUp, "apply": labApply, "delete": labDelete, "get": labGet,
		"describe": labDescribe, "exec": labExec, "probe": labProbe, "matrix": labMatrix,
		"rules": labRules, "down": labDown, "daemon": labDaemon,
	}
	verb := verbs[args[0]]
	if verb == nil {
		return badInputf("lab: unknown verb %q\n%s", args[0], labUsage)
	}
	if os.Geteuid() != 0 {
		return badInputf("lab %s: the lab makes network namespaces and nftables tables: run as root", args[0])
	}
	if kv := kubeLabVerb(args[0], args[1:]); kv != nil { // kubelet mode: labkube.go
		return kv(s, args[1:])
	}
	return verb(s, args[1:])
}

// labFlags are the flags every lab verb shares.
type labFlags struct {
	name, namespace string
}

func addLabFlags(fs interface {
	StringVar(*string, string, string, string)
}, lf *labFlags) {
	fs.StringVar(&lf.name, "name", "default", "lab name")
	fs.StringVar(&lf.namespace, "n", "default", "namespace of POD and NAME arguments")
}

func readObjects(s Streams, files []string) ([]manifest.Object, error) {
	if len(files) == 0 {
		return nil, badInputf("no manifests: give -f FILE|DIR|-")
	}
	objs, err := manifest.Read(files, s.In, s.Err)
	if err != nil {
		return nil, badInput(err)
	}
	if _, err := manifest.Cluster(objs); err != nil {
		return nil, badInput(err)
	}
	return withoutWorkloads(s, objs), nil
}

// withoutWorkloads drops workloads with one warning line: the lab runs
// no controllers, so a Deployment makes no pods there (the tools read it
// as the pods its template makes).
func withoutWorkloads(s Streams, objs []manifest.Object) []manifest.Object {
	var keep []manifest.Object
	var skipped []string
	for _, o := range objs {
		if p, ok := o.Model.(*model.Pod); ok && p.Workload != "" {
			skipped = append(skipped, o.Kind+" "+o.Key.String())
			continue
		}
		keep = append(keep, o)
	}
	if len(skipped) > 0 {
		fmt.Fprintf(s.Err, "warning: the lab runs no controllers: skipped %d workloads (%s); give their pods as Pod manifests\n",
			len(skipped), esc(strings.Join(skipped, ", ")))
	}
	return keep
}

func labUp(s Streams, args []string) error {
	fs := newFlags("lab up", s)
	var lf labFlags
	addLabFlags(fs, &lf)
	var files stringList
	fs.Var(&files, "f", "manifest file, directory or - (repeatable)")
	nodes := fs.Int("nodes", 1, "number of nodes")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var objs []manifest.Object
	if len(files) > 0 {
		var err error
		if objs, err = readObjects(s, files); err != nil {
			return err
		}
	}
	ctx := context.Background()
	ls, err := store.New(ctx, lf.name, *nodes, objs, s.Out)
	if ls != nil {
		defer ls.Close()
	}
	if err != nil {
		if ls != nil {
			_ = lab.Down(lf.name)
		}
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	pid, err := lab.StartDaemon(lf.name, []string{self, "lab", "daemon", "--name", lf.name})
	if err != nil {
		_ = lab.Down(lf.name)
		return fmt.Errorf("start the lab's pod servers: %w", err)
	}
	fmt.Fprintf(s.Out, "lab %s is up: %d node(s), %d pod(s); pod servers run as pid %d\n", lf.name, len(ls.Lab.Nodes()), len(ls.Lab.Pods()), pid)
	fmt.Fprintf(s.Out, "try: palisade lab get pods -o wide; palisade lab exec POD -- curl -s SERVICE; palisade lab down\n")
	return nil
}

func labApply(s Streams, args []string) error { return labChange(s, "apply", args) }

func labDelete(s Streams, args []string) error { return labChange(s, "delete", args) }

// parseLabChange reads the flags and manifests of lab apply or delete, for
// either kind of lab.
func parseLabChange(s Streams, verb string, args []string) (labFlags, []manifest.Object, error) {
	fs := newFlags("lab "+verb, s)
	var lf labFlags
	addLabFlags(fs, &lf)
	var files stringList
	fs.Var(&files, "f", "manifest file, directory or - (repeatable)")
	if _, err := parse(fs, args); err != nil {
		return lf, nil, err
	}
	objs, err := readObjects(s, files)
	return lf, objs, err
}

func labChange(s Streams, verb string, args []string) error {
	lf, objs, err := parseLabChange(s, verb, args)
	if err != nil {
		return err
	}
	ls, err := store.Open(lf.name)
	if err != nil {
		return err
	}
	defer ls.Close()
	if verb == "delete" {
		return ls.Remove(context.Background(), objs, s.Out)
	}
	return ls.Apply(context.Background(), objs, s.Out)
}

func labExec(s Streams, args []string) error {
	fs := newFlags("lab exec", s)
	var lf labFlags
	addLabFlags(fs, &lf)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return badInputf("usage: palisade lab exec POD -- COMMAND [ARG…]")
	}
	k, err := model.ParseKey(pos[0], lf.namespace)
	if err != nil {
		return badInput(err)
	}
	l, err := lab.Load(lf.name)
	if err != nil {
		return err
	}
	code, err := l.Exec(context.Background(), k, pos[1:], s.In, s.Out, s.Err)
	if err != nil {
		return err
	}
	if code != 0 {
		return silentExit(code)
	}
	return nil
}

// resolveLabTarget turns POD or SERVICE (in ns) into an address: a pod's
// IP, or a Service's ClusterIP, reached through the node's DNAT as a
// client would.
func resolveLabTarget(c *model.Cluster, arg, ns string) (netip.Addr, string, error) {
	if ip, err := netip.ParseAddr(arg); err == nil {
		return ip, ip.String(), nil
	}
	k, err := model.ParseKey(arg, ns)
	if err != nil {
		return netip.Addr{}, "", err
	}
	if p := c.Pods[k]; p != nil {
		if ip, ok := p.IP(netip.IPv4Unspecified()); ok {
			return ip, "pod " + k.String(), nil
		}
	}
	if svc := c.Services[k]; svc != nil && len(svc.ClusterIPs) > 0 {
		return svc.ClusterIPs[0], "service " + k.String(), nil
	}
	return netip.Addr{}, "", fmt.Errorf("no pod or service %s in the lab", k)
}

func labProbe(s Streams, args []string) error {
	fs := newFlags("lab probe", s)
	var lf labFlags
	addLabFlags(fs, &lf)
	from := fs.String("from", "", "source pod")
	to := fs.String("to", "", "destination pod, service or IP")
	portArg := fs.String("port", "80/TCP", "destination port")
	timeout := fs.Duration("timeout", time.Second, "how long a connection may take")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	port, proto, err := parsePort(*portArg)
	if err != nil {
		return badInput(err)
	}
	src, err := model.ParseKey(*from, lf.namespace)
	if err != nil || *from == "" {
		return badInputf("--from: want POD or NAMESPACE/POD")
	}
	l, err := lab.Load(lf.name)
	if err != nil {
		return err
	}
	c := l.Cluster()
	if c.Pods[src] == nil {
		return badInputf("--from: no pod %s in the lab", src)
	}
	addr, what, err := resolveLabTarget(c, *to, lf.namespace)
	if err != nil {
		return badInput(fmt.Errorf("--to: %w", err))
	}
	ok, err := l.Probe(context.Background(), src, addr, port, proto, *timeout)
	if err != nil {
		return err
	}
	result := "connected"
	if !ok {
		result = fmt.Sprintf("no connection (refused or timed out after %s)", *timeout)
	}
	fmt.Fprintf(s.Out, "%s -> %s (%s) %d/%s: %s\n", src, *to, what, port, proto, result)
	if !ok {
		return silentExit(1)
	}
	return nil
}

func labMatrix(s Streams, args []string) error {
	fs := newFlags("lab matrix", s)
	var lf labFlags
	addLabFlags(fs, &lf)
	var ports stringList
	fs.Var(&ports, "port", "port to probe, 80/TCP (repeatable; default 80/TCP)")
	timeout := fs.Duration("timeout", 500*time.Millisecond, "how long a connection may take")
	ipv6 := fs.Bool("6", false, "probe the pods' IPv6 addresses")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if len(ports) == 0 {
		ports = stringList{"80/TCP"}
	}
	fam := flagFamily(*ipv6)
	l, err := lab.Load(lf.name)
	if err != nil {
		return err
	}
	c := l.Cluster()
	e := engine.FromCluster(c)
	obs := &lab.Observer{Timeout: *timeout}
	var res []probeResult
	for _, p := range ports {
		port, proto, err := parsePort(p)
		if err != nil {
			return badInput(err)
		}
		g, skipped, err := obs.ProbeLab(context.Background(), l, c.SortedPods(), fam, port, proto)
		if err != nil {
			return err
		}
		r := probeResult{Probe: render.Probe{Port: port, Protocol: proto}}
		if !skipped {
			r.Observed = g
			r.Diffs = truth.Diff(truth.Predict(e, c.SortedPods(), fam, port, proto), g)
		}
		res = append(res, r)
	}
	differ, err := writeLabMatrix(s.Out, fam, res)
	if err != nil {
		return err
	}
	if differ {
		return silentExit(1)
	}
	return nil
}

// probeResult is one port lab matrix probed: the grid observed, nil when
// the kernel cannot probe the protocol, and where it differs from the
// engine's prediction.
type probeResult struct {
	Probe    render.Probe
	Observed *truth.Grid
	Diffs    []truth.Pair
}

// writeLabMatrix prints the observed grids as matrix prints its own
// (render.WriteText: aligned, with the legend), then, per port, whether
// the lab agreed with the prediction. It reports whether any port
// differed.
func writeLabMatrix(w io.Writer, fam netip.Addr, res []probeResult) (bool, error) {
	m := &render.Matrix{Ports: "observed in the lab"}
	if fam.Is6() {
		m.Family = "IPv6"
	}
	for _, r := range res {
		if r.Observed == nil {
			continue
		}
		if m.Pods == nil {
			for _, k := range r.Observed.Pods {
				ns, _, _ := strings.Cut(k, "/")
				m.Pods = append(m.Pods, render.Pod{Key: k, Namespace: ns})
			}
		}
		g := render.Grid{Probe: r.Probe, Cells: make([][]render.Cell, len(r.Observed.Pods))}
		for i, row := range r.Observed.Allow {
			g.Cells[i] = make([]render.Cell, len(row))
			for j, ok := range row {
				if ok {
					g.Cells[i][j] = render.Cell{Verdict: render.Allow, Port: r.Probe.Port}
				}
			}
		}
		m.Grids = append(m.Grids, g)
	}
	if len(m.Grids) > 0 {
		if err := render.WriteText(w, m); err != nil {
			return false, err
		}
	}
	var b strings.Builder
	if len(m.Grids) > 0 {
		b.WriteString("\n")
	}
	differ := false
	for _, r := range res {
		switch {
		case r.Observed == nil:
			fmt.Fprintf(&b, "%s: skipped (the lab cannot probe %s on this kernel)\n", r.Probe, r.Probe.Protocol)
		case len(r.Diffs) == 0:
			fmt.Fprintf(&b, "%s: observed = predicted\n", r.Probe)
		}
		for _, d := range r.Diffs {
			differ = true
			fmt.Fprintf(&b, "%s: differs from the prediction: %s\n", r.Probe, esc(d.String()))
		}
	}
	_, err := io.WriteString(w, b.String())
	return differ, err
}

func labRules(s Streams, args []string) error {
	fs := newFlags("lab rules", s)
	var lf labFlags
	addLabFlags(fs, &lf)
	node := fs.String("node", "", "only this node")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	l, err := lab.Load(lf.name)
	if err != nil {
		return err
	}
	for _, n := range l.Nodes() {
		if *node != "" && n != *node {
			continue
		}
		text, err := dumpRules(l.NodeNetNS(n))
		if err != nil {
			return fmt.Errorf("node %s: %w", n, err)
		}
		fmt.Fprintf(s.Out, "# node %s (%s)\n%s\n", n, l.NodeNetNS(n), text)
	}
	return nil
}

func labDown(s Streams, args []string) error { return labDownWith(s, args, lab.Down, lab.DownAll) }

// labDownWith is lab down for either kind of lab: down removes one lab,
// downAll every lab of that kind.
func labDownWith(s Streams, args []string, down func(string) error, downAll func() error) error {
	fs := newFlags("lab down", s)
	var lf labFlags
	addLabFlags(fs, &lf)
	all := fs.Bool("all", false, "remove every lab")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		lf.name = pos[0]
	}
	if *all {
		err = downAll()
	} else {
		err = down(lf.name)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(s.Out, "lab removed")
	return nil
}

// labDaemon is the detached process that serves the pods' ports.
func labDaemon(s Streams, args []string) error { return labDaemonWith(s, args, lab.Serve) }

// labDaemonWith runs a lab daemon (serve) until SIGTERM or SIGINT.
func labDaemonWith(s Streams, args []string, serve func(context.Context, string, *slog.Logger) error) error {
	fs := newFlags("lab daemon", s)
	var lf labFlags
	addLabFlags(fs, &lf)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := serve(ctx, lf.name, slog.New(slog.NewTextHandler(s.Err, nil)))
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
