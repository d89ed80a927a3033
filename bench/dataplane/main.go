// Command dataplane measures Palisade's nftables dataplane in the kernel,
// against baselines taken in the same run (see BENCHMARKS.md, "Kernel
// dataplane"): new TCP connections per second and throughput between two
// lab pods on different nodes, with the node tables loaded from a
// synthetic 100k-pod, 10k-policy cluster; and the latency of a policy
// change to rules in the kernel, full load time and kernel memory.
//
// It needs root. Everything it creates is in network namespaces named
// palisade-bench-* and palisade-benchk-*, removed at the end, on error and
// on SIGINT/SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/palisade-net/palisade/bench/benchrun"
	"github.com/palisade-net/palisade/internal/lab"
)

const (
	labName    = "bench"  // the 2-node lab of the traffic benchmarks
	kernelName = "benchk" // namespaces of the change and memory benchmarks
)

var (
	flagBench      = flag.String("bench", "traffic,change,mem", "comma-separated: traffic (conn/s and throughput), change, mem")
	flagRounds     = flag.Int("rounds", 40, "traffic: rounds; each runs configurations a, b, c once, in rotating order")
	flagConnDur    = flag.Duration("conn-dur", 500*time.Millisecond, "traffic: duration of one connection-rate run")
	flagTput       = flag.Bool("tput", true, "traffic: also measure throughput (after the connection rounds)")
	flagTputDur    = flag.Duration("tput-dur", 500*time.Millisecond, "traffic: duration of one throughput run")
	flagPods       = flag.Int("pods", 100000, "traffic: synthetic pods")
	flagNS         = flag.Int("namespaces", 1000, "traffic: namespaces")
	flagPolicies   = flag.Int("policies", 10000, "traffic: synthetic policies")
	flagLocal      = flag.Int("local", 10000, "traffic: synthetic pods on each lab node")
	flagSwitch     = flag.String("switch", "dormant", "traffic: how to switch configurations: dormant (toggle loaded tables) or reload")
	flagWide       = flag.Bool("wide", false, "use the engine benchmark's cluster-wide peer selectors (huge per-rule sets)")
	flagAllowBy    = flag.String("allow-by", "named", "traffic: how the bench policies allow the probe's port 8080: named (port name http: a named-port set lookup, after the other policies' named-port rules) or number (tcp dport 8080)")
	flagConnMode   = flag.String("conn", "reset", "traffic: what one connection of the rate runs does: reset (connect, then close with a reset: nothing but the handshake) or crr (netperf's TCP_CRR: connect, one-byte request, one-byte response, close)")
	flagChanges    = flag.Int("changes", 200, "change: policy changes per scale")
	flagChangeT    = flag.Duration("change-time", 3*time.Minute, "change: time limit per scale")
	flagScales     = flag.String("scales", "1k,10k,10k-local", "change: scales (1k, 10k, 10k-local, 100k-local)")
	flagCompiler   = flag.String("compiler", "full", "change: comma-separated compilers to measure, in turn: full (dataplane.Compile), incremental (dataplane.Compiler, as the agent)")
	flagMemReps    = flag.Int("mem-reps", 5, "mem: loads per scale")
	flagMemTraffic = flag.Bool("mem-traffic", false, "mem: also load the traffic benchmark's node table (minutes per load)")
	flagCPUProf    = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
)

func main() {
	flag.Parse()
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	if os.Geteuid() != 0 {
		log.Fatal("needs root (network namespaces, nftables)")
	}
	if *flagCPUProf != "" {
		f, err := os.Create(*flagCPUProf)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	// A previous run killed hard may have left namespaces behind.
	code := benchrun.Run(cleanup, cleanup, run)
	pprof.StopCPUProfile()
	os.Exit(code)
}

// cleanup removes everything this program creates; it is idempotent.
func cleanup() {
	for _, n := range []string{labName, kernelName} {
		if err := lab.Down(n); err != nil {
			log.Printf("cleanup %s: %v", n, err)
		}
	}
}

func run(ctx context.Context) error {
	fmt.Println(machine())
	for _, b := range strings.Split(*flagBench, ",") {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		switch strings.TrimSpace(b) {
		case "traffic":
			err = benchTraffic(ctx)
		case "change":
			err = benchChange(ctx)
		case "mem":
			err = benchMem(ctx)
		case "":
		default:
			err = fmt.Errorf("unknown benchmark %q", b)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
	}
	return nil
}

func machine() string {
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(l[strings.Index(l, ":")+1:])
				break
			}
		}
	}
	var u syscall.Utsname
	syscall.Uname(&u)
	rel := make([]byte, 0, len(u.Release))
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	load, _ := os.ReadFile("/proc/loadavg")
	return fmt.Sprintf("machine: %s, kernel %s, load %s", cpu, rel, strings.TrimSpace(string(load)))
}
