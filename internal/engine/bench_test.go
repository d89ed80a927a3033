package engine_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/palisade-net/palisade/internal/engine"
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
		for b.Loop() {
			allowed = matrix(e, pods, model.TCP, 8080, nil)
		}
		b.ReportMetric(float64(allowed), "allowed-pairs")
	})
	b.Run("build+eval", func(b *testing.B) {
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		var peak uint64
		b.ReportAllocs()
		for b.Loop() {
			e := engine.FromCluster(c)
			samplePeak(&peak)
			matrix(e, pods, model.TCP, 8080, &peak)
			samplePeak(&peak)
		}
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
	var fullNs float64
	b.Run("FromCluster", func(b *testing.B) {
		b.ReportAllocs()
		var peak uint64
		for b.Loop() {
			e := engine.FromCluster(c)
			samplePeak(&peak)
			runtime.KeepAlive(e)
		}
		fullNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	})
	if fullNs == 0 { // FromCluster filtered out by -bench: time one build
		start := time.Now()
		engine.FromCluster(c)
		fullNs = float64(time.Since(start).Nanoseconds())
	}
	e := engine.FromCluster(c)
	ratio := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/fullNs, "incr/full")
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
		for b.Loop() {
			e.UpsertPod(alt[i%len(alt)][(i/len(alt))%2])
			policies += len(e.TakeChanges().Policies)
			i++
		}
		ratio(b)
		b.ReportMetric(float64(policies)/float64(b.N), "policies-changed/op")
	})

	b.Run("UpsertPolicy", func(b *testing.B) {
		// Each op replaces one policy with a variant (another port, same
		// shape) and back on the next visit.
		pols := c.SortedPolicies()[:1000]
		alt := make([][2]*model.Policy, len(pols))
		for i, p := range pols {
			q := *p
			q.IngressRules = append([]model.Rule{{Ports: []model.Port{{Protocol: model.TCP, Port: uint16(1000 + i)}}}}, p.IngressRules...)
			alt[i] = [2]*model.Policy{&q, p}
		}
		b.ReportAllocs()
		i := 0
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
