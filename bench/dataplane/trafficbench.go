package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/model"
)

const (
	deniedPort = 8081 // listened on, allowed by no policy
	streamPort = 5201
)

var configs = []string{"a:none", "b:baseline", "c:palisade"}

const baselineTable = "palisadebase"

// trafficCluster is the synthetic cluster of the traffic benchmark, with
// -local pods on each of the lab's two nodes.
func trafficCluster() *model.Cluster {
	return fixture.Scale(fixture.Spec{Seed: 1, Pods: *flagPods, Namespaces: *flagNS, Policies: *flagPolicies,
		LocalNodes: []string{"node1", "node2"}, Local: *flagLocal, Wide: *flagWide})
}

func benchTraffic(ctx context.Context) error {
	if *flagAllowBy != "named" && *flagAllowBy != "number" {
		return fmt.Errorf("-allow-by %q: want named or number", *flagAllowBy)
	}
	if *flagConnMode != "reset" && *flagConnMode != "crr" {
		return fmt.Errorf("-conn %q: want reset or crr", *flagConnMode)
	}
	client, server := realPods()

	// The lab holds only the two real pods.
	labC := model.NewCluster()
	for _, p := range []*model.Pod{client, server} {
		labC.EnsureNamespace(p.Namespace)
		labC.Pods[p.Key()] = p
	}
	t0 := time.Now()
	l, err := lab.Up(ctx, labName, labC, lab.Options{Nodes: 2})
	if err != nil {
		return err
	}
	fmt.Printf("lab up in %s\n", time.Since(t0).Round(time.Millisecond))
	live := l.Cluster()
	client, server = live.Pods[client.Key()], live.Pods[server.Key()]
	cIP, _ := client.IP(netip.Addr{})
	sIP, _ := server.IP(netip.Addr{})
	cNS, err := l.PodNetNS(client.Key())
	if err != nil {
		return err
	}
	sNS, err := l.PodNetNS(server.Key())
	if err != nil {
		return err
	}
	fmt.Printf("client %s %s on %s, server %s %s on %s\n", client.Key(), cIP, client.Node, server.Key(), sIP, server.Node)

	// The engine: the synthetic cluster, the lab's nodes and real pods, and
	// the policies that isolate the real pods.
	t0 = time.Now()
	c := trafficCluster()
	for n, node := range live.Nodes {
		c.Nodes[n] = node
	}
	c.Pods[client.Key()], c.Pods[server.Key()] = client, server
	for _, p := range benchPolicies() {
		c.Policies[p.Key()] = p
	}
	genT := time.Since(t0)
	t0 = time.Now()
	e := engine.FromCluster(c)
	fmt.Printf("cluster: %d pods, %d namespaces, %d policies (generated in %s, FromCluster %s)\n",
		len(c.Pods), len(c.Namespaces), len(c.Policies), genT.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))

	// The probe connection must be allowed, by the bench policies' rules.
	conn := engine.Conn{From: engine.Endpoint{Pod: client, IP: cIP}, To: engine.Endpoint{Pod: server, IP: sIP}, Protocol: model.TCP, Port: benchPort}
	v := e.Explain(conn)
	if !v.Allowed || v.Egress.By == nil || v.Ingress.By == nil ||
		!strings.HasPrefix(v.Egress.By.Policy.Name, "zz-") || !strings.HasPrefix(v.Ingress.By.Policy.Name, "zz-") {
		return fmt.Errorf("probe connection: engine verdict %+v, want allowed by the zz-bench policies", v)
	}
	conn.Port = deniedPort
	if e.Allowed(conn) {
		return fmt.Errorf("port %d: engine allows it, want denied", deniedPort)
	}
	fmt.Printf("engine: %s -> %s:%d allowed by egress %s[%d] (%d isolating policies) and ingress %s[%d] (%d isolating policies); :%d denied\n",
		client.Key(), server.Key(), benchPort, v.Egress.By.Policy, v.Egress.By.Index, len(v.Egress.Isolating),
		v.Ingress.By.Policy, v.Ingress.By.Index, len(v.Ingress.Isolating), deniedPort)

	nodes := []string{client.Node, server.Node}
	rs := map[string]*dataplane.Ruleset{}
	for _, n := range nodes {
		t0 = time.Now()
		rs[n] = dataplane.Compile(e, n, dataplane.Options{})
		fmt.Printf("%s table: %s; Compile %s\n", n, describe(rs[n]), time.Since(t0).Round(time.Millisecond))
	}
	fmt.Println(chainWalk(rs[client.Node], cIP, dataplane.IPv4, "egress", "zz-bench-egress-api"))
	fmt.Println(chainWalk(rs[server.Node], sIP, dataplane.IPv4, "ingress", "zz-bench-ingress-web"))

	enf := map[string]*dataplane.Enforcer{}
	defer func() { // through the variable, which the dormant switch clears
		for _, en := range enf {
			en.Close()
		}
	}()
	for _, n := range nodes {
		en, err := dataplane.New(l.NodeNetNS(n))
		if err != nil {
			return err
		}
		enf[n] = en
	}
	// Two ways to switch configurations. "dormant" (default): Palisade's
	// table and the baseline (table inet palisadebase, same content as the
	// targets' baseline, another name so both can stay loaded) are loaded
	// once in each node; a switch toggles the tables' dormant flag, which
	// unhooks a table's base chains and keeps its content, so switches
	// take milliseconds and runs can interleave finely. "reload": the
	// baseline is table inet palisade itself; each switch deletes the
	// table and loads the configuration's (a full Apply for c).
	reload := *flagSwitch == "reload"
	// Without a deadline, Apply gives a transaction 2 minutes, and a full
	// load of this table takes about that long here.
	actx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	setConfig := func(cfg string) (time.Duration, error) {
		t0 := time.Now()
		for _, n := range nodes {
			path := l.NodeNetNS(n)
			if !reload {
				if err := setDormant(path, baselineTable, cfg != "b:baseline"); err != nil {
					return 0, err
				}
				if err := setDormant(path, dataplane.TableName, cfg != "c:palisade"); err != nil {
					return 0, err
				}
				continue
			}
			if err := enf[n].Delete(ctx); err != nil {
				return 0, err
			}
			switch cfg {
			case "b:baseline":
				if err := installBaseline(path, dataplane.TableName); err != nil {
					return 0, err
				}
			case "c:palisade":
				if _, err := enf[n].Apply(actx, rs[n]); err != nil {
					return 0, err
				}
			}
		}
		return time.Since(t0), nil
	}
	if !reload {
		for _, n := range nodes {
			before, _ := meminfo()
			st, err := enf[n].Apply(actx, rs[n])
			if err != nil {
				return err
			}
			time.Sleep(time.Second)
			after, _ := meminfo()
			fmt.Printf("%s: first Apply (full load) %s; meminfo: Slab %+.1f MiB, VmallocUsed %+.1f MiB, MemAvailable %+.1f MiB\n", n, st,
				float64(after["Slab"]-before["Slab"])/1024, float64(after["VmallocUsed"]-before["VmallocUsed"])/1024,
				float64(after["MemAvailable"]-before["MemAvailable"])/1024)
			if err := installBaseline(l.NodeNetNS(n), baselineTable); err != nil {
				return err
			}
		}
	}

	if !reload {
		// The rounds need neither the engine nor the rulesets nor the
		// enforcers' copies of the tables (gigabytes of heap). Dropped, the
		// heap is a few MiB, so the Go GC's cycles during the rounds cost
		// microseconds. Kept, a cycle marked them for seconds, on up to a
		// quarter of the CPUs, in whichever configuration it fell: noise
		// as large as the effect measured (seen in perf as runtime.scanObject).
		// Each enforcer holds the ruleset it applied.
		for _, n := range nodes {
			enf[n].Close()
		}
		e, c, rs, enf = nil, nil, nil, nil
		runtime.GC()
		debug.FreeOSMemory()
		// A heap this small would be collected every few MiB of the
		// loops' garbage (the server's accepted conns): dozens of cycles
		// a round. A memory limit instead of GOGC collects every 0.5 GiB.
		debug.SetGCPercent(-1)
		debug.SetMemoryLimit(512 << 20)
	}
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	fmt.Printf("Go heap before the rounds: %.1f MiB\n", float64(ms0.HeapAlloc)/(1<<20))

	crr := *flagConnMode == "crr"
	connPorts := []int{deniedPort}
	if crr {
		crrSrv, err := startCRRServer(sNS, benchPort)
		if err != nil {
			return err
		}
		defer crrSrv.close()
	} else {
		connPorts = append(connPorts, benchPort)
	}
	srv, err := startServers(sNS, connPorts, streamPort)
	if err != nil {
		return err
	}
	defer srv.close()

	// Sanity: in a and b both ports connect; in c only benchPort does.
	for _, cfg := range []string{"c:palisade", "a:none", "b:baseline", "c:palisade"} {
		d, err := setConfig(cfg)
		if err != nil {
			return err
		}
		ok1, err1 := connectOnce(cNS, sIP, benchPort, time.Second)
		ok2, err2 := connectOnce(cNS, sIP, deniedPort, 500*time.Millisecond)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("probe: %v %v", err1, err2)
		}
		want2 := cfg != "c:palisade"
		fmt.Printf("sanity %s (set in %s): :%d connects=%v, :%d connects=%v\n", cfg, d.Round(time.Millisecond), benchPort, ok1, deniedPort, ok2)
		if !ok1 || ok2 != want2 {
			return fmt.Errorf("sanity %s: :%d %v, :%d %v (want %v)", cfg, benchPort, ok1, deniedPort, ok2, want2)
		}
	}

	drops0, err := dropCount(l, nodes)
	if err != nil {
		return err
	}

	// Interleaved rounds, connections then throughput; the order rotates
	// so no configuration always follows the same one. Short runs keep
	// the three of a round within a second or two of each other, so the
	// per-round ratios see the same load from the machine's other jobs.
	// Besides wall time, each run records this process's CPU time (user +
	// system: the client, the server and the softirq work done in their
	// context, which for veth forwarding is nearly all of the path), a
	// measure the other jobs disturb much less.
	cps := map[string][]float64{}
	cpuConn := map[string][]float64{}
	tput := map[string][]float64{}
	cpuByte := map[string][]float64{}
	var loadC []float64
	fails := map[string]int{}
	phases := 2
	if !*flagTput {
		phases = 1
	}
	for phase := 0; phase < phases; phase++ {
		for r := 0; r < *flagRounds; r++ {
			for k := range configs {
				cfg := configs[(r+k)%len(configs)]
				d, err := setConfig(cfg)
				if err != nil {
					return err
				}
				loadC = append(loadC, ms(d))
				time.Sleep(50 * time.Millisecond)
				cpu0, mono0 := cpuTime(), monotonic()
				if phase == 0 {
					rate, failed, err := connRate(ctx, cNS, sIP, benchPort, crr, *flagConnDur, 2_000_000)
					if err != nil {
						return fmt.Errorf("round %d %s: %w", r, cfg, err)
					}
					cpu := cpuTime() - cpu0
					conns := rate * flagConnDur.Seconds()
					cps[cfg] = append(cps[cfg], rate)
					cpuConn[cfg] = append(cpuConn[cfg], float64(cpu.Microseconds())/conns)
					fails[cfg] += failed
					fmt.Printf("round %d %-11s %8.0f conn/s  %6.2f CPU-µs/conn  (%d failed)  [CLOCK_MONOTONIC %.3f-%.3f]\n", r, cfg, rate, float64(cpu.Microseconds())/conns, failed, mono0, monotonic())
				} else {
					g, err := throughput(ctx, cNS, sIP, streamPort, *flagTputDur, 64<<30)
					if err != nil {
						return fmt.Errorf("round %d %s throughput: %w", r, cfg, err)
					}
					cpu := cpuTime() - cpu0
					gib := g * flagTputDur.Seconds() / 8 * 1e9 / (1 << 30)
					tput[cfg] = append(tput[cfg], g)
					cpuByte[cfg] = append(cpuByte[cfg], cpu.Seconds()*1000/gib)
					fmt.Printf("round %d %-11s %6.2f Gbit/s  %6.1f CPU-ms/GiB  [CLOCK_MONOTONIC %.3f-%.3f]\n", r, cfg, g, cpu.Seconds()*1000/gib, mono0, monotonic())
				}
			}
		}
	}
	if _, err := setConfig("a:none"); err != nil {
		return err
	}
	drops1, err := dropCount(l, nodes)
	if err != nil {
		return err
	}
	// The rounds' connections are all allowed: a packet dropped during
	// them (one that conntrack found invalid, say, and the chains denied)
	// would be work that b does not do.
	fmt.Printf("packets dropped by Palisade's chains during the rounds: %d\n", drops1-drops0)
	var ms1 runtime.MemStats
	runtime.ReadMemStats(&ms1)
	fmt.Printf("Go GC during the rounds: %d cycles, %.1f ms of pauses\n", ms1.NumGC-ms0.NumGC, float64(ms1.PauseTotalNs-ms0.PauseTotalNs)/1e6)
	shape := "connect + reset-close"
	if crr {
		shape = "TCP_CRR: connect, 1-byte request, 1-byte response, reset-close"
	}
	report(fmt.Sprintf("new TCP connections per second (%s, one thread), wall", shape), "conn/s", cps)
	fmt.Printf("  failed connections (timed out after 3 s): a %d, b %d, c %d\n", fails["a:none"], fails["b:baseline"], fails["c:palisade"])
	report("CPU time per new connection (client + server + softirq in their context)", "CPU-µs/conn", cpuConn)
	if *flagTput {
		report("TCP throughput, one stream, wall", "Gbit/s", tput)
		report("CPU time per GiB sent", "CPU-ms/GiB", cpuByte)
	}
	if reload {
		fmt.Printf("switching to c (both nodes: delete + full Apply): %s ms\n", fmtSummary(summarize(loadC)))
	} else {
		fmt.Printf("switching (dormant flags of both tables, both nodes): %s ms\n", fmtSummary(summarize(loadC)))
	}
	return nil
}

func fmtSummary(s summary) string {
	return fmt.Sprintf("median %.4g (min %.4g, max %.4g, IQR %.1f%% of median, n=%d)", s.Median, s.Min, s.Max, s.iqrPct(), s.N)
}

// report prints each configuration and the ratios c/b, c/a and b/a, both
// as ratios of medians and as the median (and range) of the per-round
// ratios (each round ran the three back to back).
func report(title, unit string, xs map[string][]float64) {
	fmt.Printf("\n%s, %s:\n", title, unit)
	for _, cfg := range configs {
		fmt.Printf("  %-11s %s\n", cfg, fmtSummary(summarize(xs[cfg])))
	}
	for _, p := range [][2]string{{"c:palisade", "b:baseline"}, {"c:palisade", "a:none"}, {"b:baseline", "a:none"}} {
		num, den := xs[p[0]], xs[p[1]]
		var rs []float64
		for i := range min(len(num), len(den)) {
			rs = append(rs, num[i]/den[i])
		}
		if len(rs) == 0 {
			continue
		}
		s := summarize(rs)
		lo, hi := bootstrapMedianCI(rs)
		fmt.Printf("  %s / %s: ratio of medians %.3f; per-round ratios median %.3f (95%% CI %.3f–%.3f; IQR %.3f–%.3f, min %.3f, max %.3f)\n",
			p[0][:1], p[1][:1], summarize(num).Median/summarize(den).Median, s.Median, lo, hi, s.P25, s.P75, s.Min, s.Max)
	}
}

// bootstrapMedianCI returns a 95% confidence interval of the median of
// xs: the 2.5th and 97.5th percentiles of the medians of 2,000 resamples
// (rounds drawn with replacement; a fixed seed, so reruns print the same).
func bootstrapMedianCI(xs []float64) (lo, hi float64) {
	r := rand.New(rand.NewPCG(1, 2))
	meds := make([]float64, 2000)
	buf := make([]float64, len(xs))
	for i := range meds {
		for j := range buf {
			buf[j] = xs[r.IntN(len(xs))]
		}
		meds[i] = summarize(buf).Median
	}
	sort.Float64s(meds)
	return meds[len(meds)*25/1000], meds[len(meds)*975/1000]
}

// chainWalk describes the chain a pod's address dispatches to and where in
// it the allowing policy's first rule is.
func chainWalk(rs *dataplane.Ruleset, ip netip.Addr, fam dataplane.Family, dir, policy string) string {
	var chain string
	for _, s := range rs.Sets {
		if s.Kind == dataplane.KindDispatch && s.Family == fam && strings.HasPrefix(s.Name, dir) {
			for _, el := range s.Elems {
				if el.Addr == ip {
					chain = el.Jump
				}
			}
		}
	}
	for _, c := range rs.Chains {
		if c.Name != chain {
			continue
		}
		first := -1
		for i, r := range c.Rules {
			if strings.Contains(r.Comment, policy) {
				first = i
				break
			}
		}
		var sizes []string
		if first >= 0 {
			r := c.Rules[first]
			for _, name := range []string{setOf(r.Addr), r.Named} {
				for _, s := range rs.Sets {
					if name != "" && s.Name == name {
						sizes = append(sizes, fmt.Sprintf("%s: %d elements", s.Name, len(s.Elems)))
					}
				}
			}
		}
		var walk strings.Builder
		for i := range c.Rules {
			fmt.Fprintf(&walk, "\n  %d: %s", i+1, &c.Rules[i])
		}
		return fmt.Sprintf("%s %s chain %s: %d rules; %s's first rule is rule %d (%s):%s",
			ip, dir, chain, len(c.Rules), policy, first+1, strings.Join(sizes, ", "), walk.String())
	}
	return fmt.Sprintf("%s: no %s chain", ip, dir)
}

func setOf(a *dataplane.AddrMatch) string {
	if a == nil {
		return ""
	}
	return a.Set
}

// dropCount sums the per-pod drop counters of Palisade's tables in nodes.
func dropCount(l *lab.Lab, nodes []string) (uint64, error) {
	var n uint64
	for _, node := range nodes {
		rs, err := dataplane.ReadDrops(l.NodeNetNS(node))
		if err != nil {
			return 0, fmt.Errorf("%s: read drop counters: %w", node, err)
		}
		for _, s := range rs.Sets {
			for _, c := range s.Counters {
				n += c.Packets
			}
		}
	}
	return n, nil
}
