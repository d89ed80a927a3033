package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/palisade-net/palisade/internal/agent"
	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/kube"
)

// runAgent is the node daemon: it enforces every NetworkPolicy of the
// cluster for the pods of one node, until SIGTERM or SIGINT (the rules
// stay in place), or removes Palisade's table with --cleanup.
func agentFlags(s Streams) (*flag.FlagSet, func(pos []string) error) {
	fs := newFlags("agent", s)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig `FILE` (default: in-cluster configuration)")
	nodeName := fs.String("node-name", os.Getenv("NODE_NAME"), "this node's `NAME` (default $NODE_NAME)")
	netnsPath := fs.String("netns", "", "enforce in the network namespace at `PATH` (default: the current one)")
	metricsAddr := fs.String("metrics-addr", agent.DefaultMetricsAddr, "serve /metrics, /healthz and /readyz on `ADDR` (\"\" to disable); loopback by default: the agent runs in the host's network namespace")
	logDenied := fs.Bool("log-denied", false, "log every denied new connection (NFLOG, rate-limited in the kernel)")
	terminate := fs.Bool("terminate-denied", false, "after a policy change, delete established conntrack flows that policy now denies")
	cleanup := fs.Bool("cleanup", false, "remove Palisade's table from the node and exit")
	startMemMiB := fs.Int64("start-memory-limit-mib", agent.DefaultStartMemoryLimit>>20, "soft memory limit of the Go runtime, in `MiB`, from the start until the first ruleset is in the kernel (0: none; ignored when GOMEMLIMIT is set): "+
		"it keeps the start's garbage from raising the peak resident memory; raise it for clusters whose state alone approaches it (the GC would run often, slowing the start)")
	profiling := fs.Bool("profiling", false, "also serve Go's profiles (/debug/pprof/) on --metrics-addr (CPU profiles and traces of at most 60 s)")
	dropUnknown := fs.Bool("drop-unknown-pod-ips", true, "drop traffic from or to an address of the node's pod CIDRs that no pod of this node known to the agent has: "+
		"a new pod gets its address from the CNI before the agent learns of it from the API, and would meanwhile pass unfiltered even under a default-deny policy "+
		"(false: let it pass, as before)")
	var podCIDRs []netip.Prefix
	fs.Func("pod-cidr", "this node's pod `CIDR[,CIDR]` for --drop-unknown-pod-ips, in place of the Node's spec.podCIDRs: for CNIs whose IPAM does not follow it (Calico's IP pools; a range wider than this node's also holds back other nodes' new pods until the agent knows them)", func(v string) error {
		podCIDRs = podCIDRs[:0]
		for _, f := range strings.Split(v, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(f))
			if err != nil {
				return err
			}
			podCIDRs = append(podCIDRs, p.Masked())
		}
		return nil
	})
	return fs, func(pos []string) error {
		if len(pos) > 0 {
			return badInputf("agent takes no arguments, got %q", pos)
		}
		log := slog.New(slog.NewJSONHandler(s.Err, nil))
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()

		if *cleanup {
			node, err := agent.NewNode(*nodeName, *netnsPath, dataplane.Options{})
			if err != nil {
				return err
			}
			defer node.Close()
			if err := node.Remove(ctx); err != nil {
				return err
			}
			log.Info("removed table inet "+dataplane.TableName, "netns", *netnsPath)
			return nil
		}
		if *nodeName == "" {
			return badInputf("agent: --node-name (or $NODE_NAME) is required")
		}

		opts := dataplane.Options{AllowUnknown: !*dropUnknown, PodCIDRs: podCIDRs}
		if *logDenied {
			opts.LogDrops, opts.LogGroup, opts.LogRate = true, agent.DenyLogGroup, agent.DenyLogRate
		}
		if !*dropUnknown {
			log.Warn("--drop-unknown-pod-ips=false: a new pod's traffic passes unfiltered until the agent learns of the pod", "node", *nodeName)
		}
		node, err := agent.NewNode(*nodeName, *netnsPath, opts)
		if err != nil {
			return err
		}
		defer node.Close()

		kube.RouteKlog(log)
		client, err := kube.NewClient(*kubeconfig, "palisade-agent/"+*nodeName)
		if err != nil {
			return err
		}
		src := kube.NewSource(client, kube.SourceOptions{NodeName: *nodeName, Logger: log})
		// Memory: listing the cluster at start allocates several times what
		// the agent keeps (decoded API objects, the first transaction's
		// messages). Until the first reconcile is in the kernel a soft memory
		// limit makes the GC collect that garbage before the heap grows far
		// past the live state (the peak resident memory is what a pod's
		// memory limit must allow); then the limit is lifted (see
		// agent.LimitStartMemory), the garbage is given back to the OS, and
		// from then on the GC keeps less headroom than Go's default (GOGC=50,
		// unless GOGC is set): the agent is a long-lived daemon whose heap is
		// the cluster's state, and mostly idle. A GOMEMLIMIT of the user's is
		// left alone. Giving the garbage back (a full GC and scavenge, 0.1 to
		// 0.5 s at 10,000 pods) runs beside the loop: readiness does not wait
		// for it.
		liftMemLimit := func() {}
		if os.Getenv("GOMEMLIMIT") == "" {
			liftMemLimit = agent.LimitStartMemory(*startMemMiB << 20)
		}
		tuneGC := os.Getenv("GOGC") == ""
		beforeReady := func() {
			liftMemLimit()
			if tuneGC {
				debug.SetGCPercent(50)
			}
			go debug.FreeOSMemory()
		}
		aopts := agent.Options{NodeName: *nodeName, Logger: log, BeforeReady: beforeReady, GuardUnknownPods: *dropUnknown}
		if *logDenied {
			nf, err := agent.OpenNFLOG(*netnsPath, agent.DenyLogGroup)
			if err != nil {
				return fmt.Errorf("--log-denied: %w", err)
			}
			aopts.DenyLog = nf // closed by Run
		}
		if *terminate {
			ct, err := agent.OpenConntrack(*netnsPath)
			if err != nil {
				return fmt.Errorf("--terminate-denied: %w", err)
			}
			defer ct.Close()
			aopts.Flows = ct
		}
		a := agent.New(src, node, aopts)

		var served chan error
		if *metricsAddr != "" {
			ln, err := net.Listen("tcp", *metricsAddr)
			if err != nil {
				return fmt.Errorf("--metrics-addr: %w", err)
			}
			if host, _, _ := net.SplitHostPort(*metricsAddr); !isLoopback(host) {
				log.Warn("--metrics-addr is not loopback: in the host's network namespace, every pod of the node can read /metrics (pod names, drop counts)", "addr", *metricsAddr)
			}
			served = make(chan error, 1)
			go func() {
				served <- a.Serve(ctx, ln, agent.HTTPOptions{Profiling: *profiling})
			}()
			log.Info("serving metrics and health", "addr", ln.Addr().String(), "profiling", *profiling)
		}
		node.Prefetch() // the kernel's table is read while the informers list the cluster
		err = a.Run(ctx)
		stop() // ends the server too, if Run returned on its own
		if served != nil {
			if serr := <-served; serr != nil {
				log.Error("metrics server", "error", serr.Error())
			}
		}
		if err != nil {
			return err
		}
		log.Info("agent stopped; the rules stay in place", "node", *nodeName)
		return nil
	}
}

// isLoopback reports whether host (of --metrics-addr) is a loopback
// address or localhost; "" (every address) is not.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
