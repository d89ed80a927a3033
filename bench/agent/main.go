// Command agent benchmarks `palisade agent` against a real kube-apiserver
// (see BENCHMARKS.md, "Agent on a real API server"; bench/agent.sh starts
// a fresh API server per scale and runs this). For one scale it writes a
// synthetic cluster (namespaces, nodes, pods bound to node-0..node-99 with
// IPs in status, NetworkPolicies) into the API server with client-go, then
// runs bin/palisade agent as node-0, enforcing in a throwaway network
// namespace, and measures:
//
//   - cold start to ready: process start to /readyz 200, for a fresh node
//     (no table) and a restart (table present), with the agent's RSS;
//   - event-to-kernel latency: a NetworkPolicy selecting local pods is
//     created, updated and deleted through the API server, and the
//     kernel's table is read back (dataplane.Read) until the change shows;
//     beside it, the agent's own palisade_event_to_kernel_seconds
//     histogram and its per-sync log lines.
//
// It needs root. The network namespace is
// /run/netns/palisade-agentbench-<pid>, removed at the end, on error and
// on SIGINT/SIGTERM (and by the next run if this one was killed hard).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/palisade-net/palisade/bench/benchrun"
	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/kube"
	"github.com/palisade-net/palisade/internal/netns"
)

const netnsPrefix = "palisade-agentbench-"

var (
	flagKubeconfig  = flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server (admin)")
	flagPalisade    = flag.String("palisade", "bin/palisade", "the palisade binary")
	flagScale       = flag.String("scale", "1k", "1k (1,000 pods x 1,000 policies, 50 namespaces) or 10k (10,000 x 10,000, 200 namespaces)")
	flagSeed        = flag.Uint64("seed", 1, "cluster generator seed")
	flagWorkers     = flag.Int("workers", 8, "concurrent writers while populating the API server")
	flagQPS         = flag.Float64("qps", 2000, "client-go QPS while populating (burst is twice this)")
	flagColdReps    = flag.Int("cold-reps", 5, "cold starts of each kind (fresh node, restart with table present)")
	flagReadyPoll   = flag.Duration("ready-poll", 5*time.Millisecond, "/readyz polling interval")
	flagSamples     = flag.Int("samples", 200, "latency samples per operation (create, update, delete)")
	flagSpacing     = flag.Duration("spacing", 50*time.Millisecond, "pause between latency operations")
	flagPoll        = flag.Duration("poll", 2*time.Millisecond, "pause between dataplane.Read polls")
	flagOpTimeout   = flag.Duration("op-timeout", 10*time.Second, "give up on one operation after this long")
	flagLatTime     = flag.Duration("latency-time", 4*time.Minute, "stop taking latency samples after this long")
	flagProbe       = flag.String("probe", "chain", "how to watch the kernel: chain (the pod's ingress4 map element, then its chain's rules, on a kept socket) or read (dataplane.Read of the whole table, rule comments)")
	flagWide        = flag.Bool("wide", false, "keep scaleCluster's cluster-wide peers (a team's namespaces; every non-dev namespace) instead of a group of 10 namespaces")
	flagHeapProfile = flag.String("heap-profile", "", "run the agent with --profiling and save its heap profiles, when ready and at the end, to PREFIX-ready.prof and PREFIX-end.prof")
	flagCPUProfile  = flag.String("cpu-profile", "", "run the agent with --profiling and save CPU profiles: of the first fresh and the first restart cold start, from the agent's listener on for -cpu-profile-start (PREFIX-cold-fresh.prof, PREFIX-cold-restart.prof), and of the latency runs' first 60 s (PREFIX-latency.prof)")
	flagCPUStart    = flag.Duration("cpu-profile-start", 3*time.Second, "length of the cold-start CPU profiles (whole seconds; past ready it shows the idle agent)")
	flagKeep        = flag.String("logdir", "", "keep the agent's logs in this directory (default: a temp dir, removed)")
	flagPopulate    = flag.String("populate", "yes", "yes: write the cluster into the API server, then measure; only: write it and stop; no: measure an API server a run with the same -scale and -seed has populated (to compare two binaries on one population)")
)

// running are the agent processes alive, for cleanup.
var running sync.Map // pid -> *agentProc

func logf(format string, args ...any) { log.Printf(format, args...) }

func main() {
	flag.Parse()
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	if os.Geteuid() != 0 {
		log.Fatal("needs root (network namespaces, nftables)")
	}
	os.Exit(benchrun.Run(cleanupStale, cleanup, run))
}

func netnsName() string { return netnsPrefix + strconv.Itoa(os.Getpid()) }

// cleanup stops the agents this run started and removes its namespace.
func cleanup() {
	running.Range(func(_, v any) bool {
		if err := v.(*agentProc).stop(); err != nil {
			log.Printf("cleanup: %v", err)
		}
		return true
	})
	if err := netns.Delete(netnsName()); err != nil {
		log.Printf("cleanup: %v", err)
	}
}

// cleanupStale removes the namespaces of runs whose process is gone.
func cleanupStale() {
	names, _ := netns.List(netnsPrefix)
	for _, n := range names {
		pid, err := strconv.Atoi(strings.TrimPrefix(n, netnsPrefix))
		if err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH {
			log.Printf("removing the namespace %s of a dead run", n)
			netns.Delete(n)
		}
	}
}

func run(ctx context.Context) error {
	sc, ok := scales[*flagScale]
	if !ok {
		return fmt.Errorf("unknown -scale %q (1k or 10k)", *flagScale)
	}
	if *flagKubeconfig == "" {
		return fmt.Errorf("-kubeconfig (or $KUBECONFIG) is required")
	}
	bin, err := filepath.Abs(*flagPalisade)
	if err != nil {
		return err
	}
	logDir := *flagKeep
	if logDir == "" {
		d, err := os.MkdirTemp("", "palisade-agentbench-logs.")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		logDir = d
	} else if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}

	cfg, err := kube.Config(*flagKubeconfig, "palisade-agentbench")
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = float32(*flagQPS), int(2**flagQPS)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}

	c := genCluster(*flagSeed, sc, 100, *flagWide)
	logf("scale %s (wide peers: %v): %d pods (%d on %s), %d namespaces, %d policies, %d nodes; populating the API server (%d workers, QPS %.0f)",
		sc.name, *flagWide, len(c.pods), len(c.local), localNode, len(c.namespaces), len(c.policies), len(c.nodes), *flagWorkers, *flagQPS)
	switch *flagPopulate {
	case "yes", "only":
		t := time.Now()
		if err := populate(ctx, cs, c, *flagWorkers, logf); err != nil {
			return err
		}
		logf("populated in %s", time.Since(t).Round(time.Millisecond))
		if *flagPopulate == "only" {
			return nil
		}
	case "no":
		logf("not populating: the API server holds the cluster already (-populate no)")
	default:
		return fmt.Errorf("-populate %q: yes, only or no", *flagPopulate)
	}

	path, err := netns.Create(netnsName())
	if err != nil {
		return err
	}
	logf("enforcing in %s", path)

	res := &result{scale: sc, cluster: c}
	res.machine = machine()
	diag, err := compileDiag(c)
	if err != nil {
		return err
	}
	res.diag = diag
	logf("in-process: engine build %s, Compile(node-0) median %s (%d chains, %d sets, %d elements)",
		diag.build.Round(time.Microsecond), diag.compile.Round(time.Microsecond), diag.chains, diag.sets, diag.elements)

	a, err := coldStarts(ctx, res, bin, path, logDir)
	if err == nil && *flagHeapProfile != "" {
		saveHeap(a, *flagHeapProfile+"-ready.prof")
	}
	if err != nil {
		return err
	}
	defer a.stop()
	if *flagSamples > 0 {
		var profiled chan error
		if *flagCPUProfile != "" {
			profiled = make(chan error, 1)
			go func() { profiled <- a.cpuProfile(min(*flagLatTime, time.Minute), *flagCPUProfile+"-latency.prof") }()
		}
		err := latency(ctx, res, cs, a, path)
		if profiled != nil {
			if perr := <-profiled; perr != nil {
				logf("latency: %v", perr)
			} else {
				logf("latency: CPU profile in %s-latency.prof", *flagCPUProfile)
			}
		}
		if err != nil {
			return err
		}
	}
	if rss, hwm, err := memory(a.pid()); err == nil {
		res.rssAfterLat, res.hwmAfterLat = rss, hwm
	}
	res.memAfterLat = a.memoryDetail()
	if *flagHeapProfile != "" {
		saveHeap(a, *flagHeapProfile+"-end.prof")
	}
	if err := a.stop(); err != nil {
		logf("agent stop: %v", err)
	}
	res.print(os.Stdout)
	return nil
}

// removeTable deletes Palisade's table from the namespace (a fresh node).
func removeTable(ctx context.Context, path string) error {
	enf, err := dataplane.New(path)
	if err != nil {
		return err
	}
	defer enf.Close()
	return enf.Delete(ctx)
}

// coldStart is one start of the agent, to ready.
type coldStart struct {
	fresh      bool
	ready      time.Duration // process start to /readyz 200
	selfReport time.Duration // palisade_cold_start_seconds (from agent.New)
	cpu        time.Duration // agent CPU time (user+sys) to ready
	rss, hwm   int64
	// from the agent's log, relative to process start
	informersStarted, informersSynced, reconciled time.Duration
	tx                                            time.Duration // the first transaction (Apply)
	txText                                        string
	chains, sets, elements, localPods             int
}

// coldStarts runs the agent cold-reps times on a fresh node and as many
// times on a node with its table, alternating; the last agent started
// keeps running and is returned.
func coldStarts(ctx context.Context, res *result, bin, path, logDir string) (*agentProc, error) {
	n := *flagColdReps
	var last *agentProc
	for i := range 2 * n {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		fresh := i%2 == 0
		if fresh {
			if err := removeTable(ctx, path); err != nil {
				return nil, fmt.Errorf("removing the table: %w", err)
			}
		}
		kind := "restart"
		if fresh {
			kind = "fresh"
		}
		a, err := startAgent(bin, *flagKubeconfig, path, filepath.Join(logDir, fmt.Sprintf("%s-cold%d-%s.log", res.scale.name, i, kind)))
		if err != nil {
			return nil, err
		}
		var profiled chan error
		if *flagCPUProfile != "" && i < 2 {
			profiled = make(chan error, 1)
			go func() { profiled <- a.cpuProfile(*flagCPUStart, fmt.Sprintf("%s-cold-%s.prof", *flagCPUProfile, kind)) }()
		}
		ready, err := a.waitReady(ctx, *flagReadyPoll, 2*time.Minute)
		if profiled != nil {
			if perr := <-profiled; perr != nil {
				logf("cold start %d: %v", i, perr)
			} else {
				logf("cold start %d: CPU profile in %s-cold-%s.prof", i, *flagCPUProfile, kind)
			}
		}
		if err != nil {
			a.stop()
			return nil, err
		}
		cs := coldStart{fresh: fresh, ready: ready}
		cs.cpu, _ = cpuTime(a.pid())
		cs.rss, cs.hwm, _ = memory(a.pid())
		if m, err := a.scrape(); err == nil {
			if v, ok := gauge(m, "palisade_cold_start_seconds"); ok {
				cs.selfReport = time.Duration(v * float64(time.Second))
			}
		}
		lines, _ := a.tail()
		for _, l := range lines {
			d := l.Time.Sub(a.start)
			switch {
			case strings.HasPrefix(l.Msg, "informers started"):
				cs.informersStarted = d
			case l.Msg == "informers synced":
				cs.informersSynced = d
			case strings.HasPrefix(l.Msg, "initial reconcile done"):
				cs.reconciled = d
				cs.tx, _ = txDuration(l.Transaction)
				cs.txText = l.Transaction
				cs.chains, cs.sets, cs.elements, cs.localPods = l.Chains, l.Sets, l.Elements, l.LocalPods
			}
		}
		res.cold = append(res.cold, cs)
		logf("cold start %d (%s): ready in %s (agent's own: %s; CPU %s), RSS %s, HWM %s; log: informers started +%s, synced +%s, reconciled +%s; first transaction %s",
			i, kind, ready.Round(time.Millisecond), cs.selfReport.Round(time.Millisecond), cs.cpu, mb(cs.rss), mb(cs.hwm),
			cs.informersStarted.Round(time.Millisecond), cs.informersSynced.Round(time.Millisecond), cs.reconciled.Round(time.Millisecond), cs.txText)
		if i == 2*n-1 {
			last = a
			break
		}
		if err := a.stop(); err != nil {
			return nil, err
		}
	}
	return last, nil
}

func saveHeap(a *agentProc, file string) {
	if err := a.heapProfile(file); err != nil {
		logf("heap profile: %v", err)
		return
	}
	logf("agent heap profile in %s", file)
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
