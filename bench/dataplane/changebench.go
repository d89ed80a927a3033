package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/lab"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/netns"
)

type scale struct {
	name                     string
	pods, namespaces, policy int
	local                    int // pods on the measured node
}

var allScales = map[string]scale{
	"1k":         {"1k", 1000, 50, 1000, 100},
	"10k":        {"10k", 10000, 200, 10000, 100},
	"10k-local":  {"10k-local", 10000, 200, 10000, 10000},
	"100k-local": {"100k-local", 100000, 1000, 10000, 10000},
}

const benchNode = "node-0"

func scaleCluster(sc scale) *model.Cluster {
	return fixture.Scale(fixture.Spec{Seed: 2, Pods: sc.pods, Namespaces: sc.namespaces, Policies: sc.policy,
		LocalNodes: []string{benchNode}, Local: sc.local, Wide: *flagWide})
}

var nsSeq int

// freshNetns creates an empty namespace palisade-benchk-N (removed by
// cleanup, or by the returned function).
func freshNetns() (string, func(), error) {
	nsSeq++
	name := fmt.Sprintf("%s%d", lab.NetNSPrefix(kernelName), nsSeq)
	path, err := netns.Create(name)
	if err != nil {
		return "", nil, err
	}
	return path, func() { netns.Delete(name) }, nil
}

// variant returns policy p changed in one of three ways, by kind:
// 0: one more ingress rule (a port of another app of the namespace);
// chain refilled. 1: the pod selector narrowed by version=v1, with that
// rule; pods regroup (chains and map elements move). 2: back to the
// original.
func variant(orig *model.Policy, kind, i int) *model.Policy {
	if kind == 2 {
		return orig
	}
	p := *orig
	p.IngressRules = append(append([]model.Rule(nil), orig.IngressRules...), model.Rule{
		Peers: []model.Peer{{PodSelector: fixture.Sel(fmt.Sprintf("app=app-%d", i%8))}},
		Ports: []model.Port{tcp(uint16(7000 + i%1000))},
	})
	p.Ingress = true
	if kind == 1 {
		sel := model.Selector{MatchLabels: map[string]string{"version": "v1"}}
		for k, v := range orig.PodSelector.MatchLabels {
			sel.MatchLabels[k] = v
		}
		sel.Exprs = orig.PodSelector.Exprs
		p.PodSelector = sel
	}
	return &p
}

func benchChange(ctx context.Context) error {
	for _, name := range splitList(*flagScales) {
		sc, ok := allScales[name]
		if !ok {
			return fmt.Errorf("unknown scale %q", name)
		}
		if err := changeScale(ctx, sc); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func changeScale(ctx context.Context, sc scale) error {
	c := scaleCluster(sc)
	for _, mode := range splitList(*flagCompiler) {
		if mode != "full" && mode != "incremental" {
			return fmt.Errorf("-compiler %q: want full or incremental", mode)
		}
		if err := changeRun(ctx, sc, c, mode); err != nil {
			return fmt.Errorf("%s compile: %w", mode, err)
		}
	}
	return nil
}

// changeRun measures the changes with one compiler: full (Compile of the
// whole node ruleset, as agent.Node.Sync and the lab) or incremental (a
// dataplane.Compiler fed TakeChanges, as the agent).
func changeRun(ctx context.Context, sc scale, c *model.Cluster, mode string) error {
	t0 := time.Now()
	e := engine.FromCluster(c)
	fromT := time.Since(t0)
	path, del, err := freshNetns()
	if err != nil {
		return err
	}
	defer del()
	en, err := dataplane.New(path)
	if err != nil {
		return err
	}
	defer en.Close()
	compile := func(ch engine.Changes) *dataplane.Ruleset {
		return dataplane.Compile(e, benchNode, dataplane.Options{})
	}
	if mode == "incremental" {
		cc := dataplane.NewCompiler(benchNode, dataplane.Options{})
		compile = func(ch engine.Changes) *dataplane.Ruleset { return cc.Compile(e, ch) }
	}
	t0 = time.Now()
	rs := compile(engine.Changes{})
	compT := time.Since(t0)
	actx, cancel := context.WithTimeout(ctx, 20*time.Minute) // see benchTraffic
	st, err := en.Apply(actx, rs)
	cancel()
	if err != nil {
		return err
	}
	fmt.Printf("\n== change latency, %s, %s compile: %d pods (%d on %s), %d namespaces, %d policies\n", sc.name, mode, sc.pods, sc.local, benchNode, sc.namespaces, sc.policy)
	fmt.Printf("table: %s\n", describe(rs))
	fmt.Printf("FromCluster %.1f ms; first Compile %.1f ms; first Apply (full load) %.1f ms: %s\n", ms(fromT), ms(compT), ms(st.Duration), st)

	// The policies that isolate pods of this node: their changes reach it.
	var cand []*model.Policy
	for _, p := range c.SortedPolicies() {
		pol := e.Policy(p.Key())
		for _, q := range e.Selected(pol) {
			if q.Node == benchNode {
				cand = append(cand, p)
				break
			}
		}
	}
	if len(cand) == 0 {
		return errors.New("no policy selects a pod of the node")
	}
	var upd, comp, appl, total []float64
	perKind := map[int][]float64{}
	var empty int
	deadline := time.Now().Add(*flagChangeT)
	n := 0
	for ; n < *flagChanges && time.Now().Before(deadline); n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Three changes in a row to one policy: kinds 0, 1, 2 (back to
		// the original); the policies are spread over the candidates.
		pi, kind := (n/3*7919)%len(cand), n%3
		spec := variant(cand[pi], kind, n)
		t0 := time.Now()
		e.UpsertPolicy(spec)
		ch := e.TakeChanges()
		t1 := time.Now()
		rs := compile(ch)
		t2 := time.Now()
		st, err := en.Apply(ctx, rs)
		if err != nil {
			return fmt.Errorf("change %d (%s kind %d): %w", n, spec.Key(), kind, err)
		}
		t3 := time.Now()
		if st.Full {
			return fmt.Errorf("change %d: full replace, want incremental", n)
		}
		if st.Empty() {
			empty++
		}
		if len(ch.Policies) == 0 {
			return fmt.Errorf("change %d: engine reports no changed policy", n)
		}
		upd = append(upd, ms(t1.Sub(t0)))
		comp = append(comp, ms(t2.Sub(t1)))
		appl = append(appl, ms(t3.Sub(t2)))
		total = append(total, ms(t3.Sub(t0)))
		perKind[kind] = append(perKind[kind], ms(t3.Sub(t0)))
	}
	fmt.Printf("%d changes (%d policies isolating local pods; %d changes sent nothing to the kernel), ms:\n", n, len(cand), empty)
	for _, x := range []struct {
		name string
		xs   []float64
	}{{"UpsertPolicy+TakeChanges", upd}, {"Compile", comp}, {"Apply", appl}, {"total", total},
		{"total, kind 0 (rule added)", perKind[0]}, {"total, kind 1 (pods regroup)", perKind[1]}, {"total, kind 2 (reverted)", perKind[2]}} {
		s := summarize(x.xs)
		fmt.Printf("  %-30s p50 %8.2f  p99 %8.2f  max %8.2f  (n=%d)\n", x.name, s.P50, s.P99, s.Max, s.N)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
