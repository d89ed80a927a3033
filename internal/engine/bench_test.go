package engine_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
)

// Benchmarks at DESIGN's scale points. Run them on one core, as the target
// says:
//
//	GOMAXPROCS=1 go test -run '^$' -bench . -benchmem ./internal/engine

// matrix evaluates every ordered pair of pods on one port over IPv4, as
// `palisade matrix` does, sampling the heap every 100 rows into peak. It
// returns the number of allowed pairs.
func matrix(e *engine.Engine, pods []*model.Pod, proto model.Protocol, port uint16, peak *uint64) int {
	eps := make([]engine.Endpoint, len(pods))
	for i, p := range pods {
		eps[i], _ = engine.PodEndpoint(p, netip.Addr{})
	}
	allowed := 0
	for i := range eps {
		if peak != nil && i%100 == 0 {
			samplePeak(peak)
		}
		for j := range eps {
			if e.Allowed(engine.Conn{From: eps[i], To: eps[j], Protocol: proto, Port: port}) {
				allowed++
			}
		}
	}
	return allowed
}

// samplePeak raises *peak to the heap in use now.
func samplePeak(peak *uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	*peak = max(*peak, ms.HeapInuse)
}

// cpuTime is the CPU time (user and system) the process has used. On a
// shared machine it measures the work of a benchmark where wall time
// measures the neighbours too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per op since start.
func reportCPU(b *testing.B, start time.Duration) float64 {
	ns := float64(cpuTime()-start) / float64(b.N)
	b.ReportMetric(ns, "cpu-ns/op")
	return ns
}

// peakRSS is the process's peak resident set (VmHWM), in bytes, or 0.
func peakRSS() uint64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(status) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			f := bytes.Fields(rest)
			if kb, err := strconv.ParseUint(string(f[0]), 10, 64); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// scaleCluster is fixture.Scale with the cluster-wide peers the engine's
// figures have always been measured with (BENCHMARKS.md).
func scaleCluster(seed uint64, pods, namespaces, policies int) *model.Cluster {
	return fixture.Scale(fixture.Spec{Seed: seed, Pods: pods, Namespaces: namespaces, Policies: policies, Wide: true})
}

// BenchmarkMatrix1k is the offline matrix target: 1,000 pods in 50
// namespaces, 1,000 policies, all 1M ordered pairs on TCP 8080. "eval"
// evaluates on a built engine (its isolation cache warm after the first
// op); "build+eval" includes FromCluster, the whole cost of a matrix run
// after parsing.
func BenchmarkMatrix1k(b *testing.B) {
	c := scaleCluster(1, 1000, 50, 1000)
	pods := c.SortedPods()
	b.Run("eval", func(b *testing.B) {
		e := engine.FromCluster(c)
		b.ReportAllocs()
		allowed := 0
		cpu := cpuTime()
		for b.Loop() {
			allowed = matrix(e, pods, model.TCP, 8080, nil)
		}
		reportCPU(b, cpu)
		b.ReportMetric(float64(allowed), "allowed-pairs")
	})
	b.Run("build+eval", func(b *testing.B) {
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		var peak uint64
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			e := engine.FromCluster(c)
			samplePeak(&peak)
			matrix(e, pods, model.TCP, 8080, &peak)
			samplePeak(&peak)
		}
		reportCPU(b, cpu)
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		b.ReportMetric(float64(peak-min(peak, base.HeapInuse))/(1<<20), "peak-heap-over-input-MB")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-rss-MB")
	})
}

// BenchmarkScale10k compares building the IR for 10,000 pods and 10,000
// policies (in 200 namespaces) with the incremental updates the agent
// makes on that engine: one pod's labels changing, one policy replaced,
// each with TakeChanges. The incremental sub-benchmarks report their cost
// as a fraction of the full build measured first in the same run
// ("incr/full").
func BenchmarkScale10k(b *testing.B) {
	c := scaleCluster(2, 10000, 200, 10000)
	var fullNs, fullCPU float64
	b.Run("FromCluster", func(b *testing.B) {
		b.ReportAllocs()
		var peak uint64
		cpu := cpuTime()
		for b.Loop() {
			e := engine.FromCluster(c)
			samplePeak(&peak)
			runtime.KeepAlive(e)
		}
		fullCPU = reportCPU(b, cpu)
		fullNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	})
	if fullNs == 0 { // FromCluster filtered out by -bench: time one build
		start, cpu := time.Now(), cpuTime()
		engine.FromCluster(c)
		fullNs, fullCPU = float64(time.Since(start).Nanoseconds()), float64(cpuTime()-cpu)
	}
	e := engine.FromCluster(c)
	cpu := time.Duration(0)
	ratio := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/fullNs, "incr/full")
		b.ReportMetric(reportCPU(b, cpu)/fullCPU, "cpu-incr/full")
	}

	b.Run("UpsertPod", func(b *testing.B) {
		// Each op moves one pod to another app and back on the next
		// visit, so selections really change.
		pods := c.SortedPods()[:1000]
		alt := make([][2]*model.Pod, len(pods))
		for i, p := range pods {
			q := *p
			q.Labels = map[string]string{}
			for k, v := range p.Labels {
				q.Labels[k] = v
			}
			q.Labels["app"] = fmt.Sprintf("app-%d", (i+3)%8)
			alt[i] = [2]*model.Pod{&q, p}
		}
		b.ReportAllocs()
		policies := 0
		i := 0
		cpu = cpuTime()
		for b.Loop() {
			e.UpsertPod(alt[i%len(alt)][(i/len(alt))%2])
			policies += len(e.TakeChanges().Policies)
			i++
		}
		ratio(b)
		b.ReportMetric(float64(policies)/float64(b.N), "policies-changed/op")
	})

	b.Run("UpsertPolicy", func(b *testing.B) {
		// Each op replaces one policy with a variant (its pod selector
		// narrowed to version=v1, a selector no policy uses yet, and one
		// more ingress rule) and back on the next visit.
		pols := c.SortedPolicies()[:1000]
		alt := make([][2]*model.Policy, len(pols))
		for i, p := range pols {
			q := *p
			q.PodSelector.MatchLabels = map[string]string{"version": "v1"}
			for k, v := range p.PodSelector.MatchLabels {
				q.PodSelector.MatchLabels[k] = v
			}
			q.IngressRules = append([]model.Rule{{Ports: []model.Port{{Protocol: model.TCP, Port: uint16(1000 + i)}}}}, p.IngressRules...)
			alt[i] = [2]*model.Policy{&q, p}
		}
		b.ReportAllocs()
		i := 0
		cpu = cpuTime()
		for b.Loop() {
			e.UpsertPolicy(alt[i%len(alt)][(i/len(alt))%2])
			e.TakeChanges()
			i++
		}
		ratio(b)
	})
}

// TestAllowedNoAllocs pins that the per-connection path allocates nothing
// once the isolation cache is warm: it runs a million times per matrix.
func TestAllowedNoAllocs(t *testing.T) {
	c := scaleCluster(3, 200, 10, 200)
	e := engine.FromCluster(c)
	pods := c.SortedPods()
	matrix(e, pods, model.TCP, 8080, nil) // warm the cache
	eps := make([]engine.Endpoint, len(pods))
	for i, p := range pods {
		eps[i], _ = engine.PodEndpoint(p, netip.Addr{})
	}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		e.Allowed(engine.Conn{From: eps[i%len(eps)], To: eps[(i*7)%len(eps)], Protocol: model.TCP, Port: 8080})
		i++
	})
	if allocs != 0 {
		t.Errorf("Allowed allocates %v times per call, want 0", allocs)
	}
}
