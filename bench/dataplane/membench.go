package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// benchMem loads a node's ruleset into fresh namespaces and reads
// /proc/meminfo before and after each load (the machine is shared, so
// the loads repeat and the median is the figure).
func benchMem(ctx context.Context) error {
	var cases []memCase
	for _, name := range splitList(*flagScales) {
		sc := allScales[name]
		cases = append(cases, memCase{name, scaleCluster(sc), benchNode})
	}
	if !*flagMemTraffic {
		return memCases(ctx, cases)
	}
	// The traffic benchmark's node table (a load takes minutes).
	tc := trafficCluster()
	client, server := realPods()
	client.IPs = []netip.Addr{netip.MustParseAddr("10.244.1.2"), netip.MustParseAddr("fd00:10:244:1::2")}
	server.IPs = []netip.Addr{netip.MustParseAddr("10.244.2.2"), netip.MustParseAddr("fd00:10:244:2::2")}
	tc.Pods[client.Key()], tc.Pods[server.Key()] = client, server
	for _, p := range benchPolicies() {
		tc.Policies[p.Key()] = p
	}
	cases = append(cases, memCase{"traffic-node1", tc, "node1"})
	return memCases(ctx, cases)
}

type memCase struct {
	name string
	c    *model.Cluster
	node string
}

func memCases(ctx context.Context, cases []memCase) error {
	for _, mc := range cases {
		rs := dataplane.Compile(engine.FromCluster(mc.c), mc.node, dataplane.Options{})
		fmt.Printf("\n== kernel memory, %s: %s\n", mc.name, describe(rs))
		var slab, used, vmalloc, load []float64
		for i := 0; i < *flagMemReps; i++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			path, del, err := freshNetns()
			if err != nil {
				return err
			}
			en, err := dataplane.New(path)
			if err != nil {
				del()
				return err
			}
			time.Sleep(time.Second)
			before, _ := meminfo()
			actx, cancel := context.WithTimeout(ctx, 20*time.Minute) // see benchTraffic
			st, err := en.Apply(actx, rs)
			cancel()
			if err == nil {
				time.Sleep(time.Second)
				after, _ := meminfo()
				slab = append(slab, float64(after["Slab"]-before["Slab"])/1024)
				used = append(used, float64(before["MemAvailable"]-after["MemAvailable"])/1024)
				vmalloc = append(vmalloc, float64(after["VmallocUsed"]-before["VmallocUsed"])/1024)
				load = append(load, ms(st.Duration))
			}
			en.Close()
			del()
			if err != nil {
				return err
			}
			time.Sleep(2 * time.Second) // the kernel frees a dead namespace's tables asynchronously
		}
		for _, x := range []struct {
			name string
			xs   []float64
		}{{"full load, ms", load}, {"Δ Slab, MiB", slab}, {"Δ VmallocUsed, MiB", vmalloc}, {"−Δ MemAvailable, MiB", used}} {
			fmt.Printf("  %-22s %s\n", x.name, fmtSummary(summarize(x.xs)))
		}
	}
	return nil
}
