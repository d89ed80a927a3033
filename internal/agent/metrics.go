package agent

import (
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/source"
)

// metrics are the agent's Prometheus metrics, in a registry of its own
// (no global state).
type metrics struct {
	reg *prometheus.Registry

	latency      prometheus.Histogram
	txSeconds    prometheus.Histogram
	transactions prometheus.Counter
	txErrors     prometheus.Counter
	coldStart    prometheus.Gauge

	elements, sets, chains, rules prometheus.Gauge
	pods, localPods, policies     prometheus.Gauge
	clusterPolicies               prometheus.Gauge
	rejected                      *prometheus.GaugeVec
	guard                         *prometheus.GaugeVec
	duplicateIPs                  prometheus.Gauge

	denied, deniedLost, deniedDropped prometheus.Counter
	flowsDeleted, flowErrors          prometheus.Counter
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		m.reg.MustRegister(c)
		return c
	}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		m.reg.MustRegister(g)
		return g
	}
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "palisade_event_to_kernel_seconds",
		Help:    "Time from an informer event's receipt to the return of the nftables transaction that carries it (events of the initial state excluded: see palisade_cold_start_seconds).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms .. 16 s
	})
	m.txSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "palisade_transaction_seconds",
		Help:    "Duration of nftables transactions (Apply), failed ones included.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18), // 0.1 ms .. 13 s
	})
	m.reg.MustRegister(m.latency, m.txSeconds)
	m.transactions = counter("palisade_transactions_total", "nftables transactions attempted.")
	m.txErrors = counter("palisade_transaction_errors_total", "nftables transactions the kernel rejected or that failed to send (the previous rules stayed).")
	m.coldStart = gauge("palisade_cold_start_seconds", "Time from agent start to the end of the first reconcile.")
	m.elements = gauge("palisade_ruleset_set_elements", "Set and map elements in the node's ruleset.")
	m.sets = gauge("palisade_ruleset_sets", "Sets and maps in the node's ruleset.")
	m.chains = gauge("palisade_ruleset_chains", "Chains in the node's ruleset.")
	m.rules = gauge("palisade_ruleset_rules", "Rules in the node's ruleset.")
	m.pods = gauge("palisade_pods", "Pods known (every pod of the cluster: the peers).")
	m.localPods = gauge("palisade_local_pods", "Pods of this node with addresses, not on the host network (the ones enforced here).")
	m.policies = gauge("palisade_policies", "NetworkPolicies known, fail-closed placeholders included.")
	m.clusterPolicies = gauge("palisade_cluster_policies", "Cluster-wide policies known (ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy), fail-closed placeholders included.")
	m.rejected = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "palisade_rejected_objects",
		Help: "Objects currently rejected by validation, by kind (a NetworkPolicy or cluster policy is replaced by a fail-closed placeholder; other kinds keep their last good version).",
	}, []string{"kind"})
	for k := source.Kind(0); k < source.NumKinds; k++ {
		if k != source.KindClusterPolicy {
			m.rejected.WithLabelValues(k.String()) // export zeros
		}
	}
	for _, k := range clusterKinds {
		m.rejected.WithLabelValues(k)
	}
	m.reg.MustRegister(m.rejected)
	if u, ok := a.src.(source.Unserved); ok {
		m.reg.MustRegister(&unservedCollector{src: u, desc: prometheus.NewDesc("palisade_api_kind_unserved",
			"1 for a kind the agent would watch that the API server does not serve (its CRD is not installed): policies of that kind cannot exist, and are picked up once it is served.",
			[]string{"kind"}, nil)})
	}
	m.guard = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "palisade_unknown_pod_guard",
		Help: "1 when traffic from or to an address of the node's pod CIDRs that no pod of this node known to the agent has is dropped, by family (0: off, or no pod CIDR of that family).",
	}, []string{"family"})
	m.reg.MustRegister(m.guard)
	m.duplicateIPs = gauge("palisade_duplicate_local_pod_ips", "Addresses that two or more pods of this node report (an address reused while the old pod lingers): each is enforced for one of them, the pod not being deleted, else the newer, else the later name.")
	m.denied = counter("palisade_denied_logged_total", "Denied new connections written to the deny log.")
	m.deniedLost = counter("palisade_denied_log_lost_total", "Times the NFLOG socket overran (records lost before reaching the deny log).")
	m.deniedDropped = counter("palisade_denied_log_repeats_total", "NFLOG records not logged: retransmissions of a connection logged in the last seconds, or unparseable.")
	m.flowsDeleted = counter("palisade_conntrack_flows_deleted_total", "Established conntrack flows cut because policy now denies them (--terminate-denied): TCP entries blocked, others deleted.")
	m.flowErrors = counter("palisade_conntrack_errors_total", "Failed conntrack sweeps.")
	m.reg.MustRegister(&dropsCollector{a: a, desc: prometheus.NewDesc("palisade_drops_total",
		"New connections dropped by policy, per pod of this node and direction (the kernel's per-pod counters).",
		[]string{"namespace", "pod", "direction"}, nil),
		guardDesc: prometheus.NewDesc("palisade_unknown_pod_drops_total",
			"Packets of new connections dropped because an address of the node's pod CIDRs was no known pod's (the agent had not learnt of the pod yet), by family (the kernel's rule counters; they restart when the pod CIDRs change).",
			[]string{"family"}, nil)})
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// clusterKinds are the API kinds of cluster policies.
var clusterKinds = [...]string{model.KindAdminNetworkPolicy, model.KindBaselineAdminNetworkPolicy, model.KindClusterNetworkPolicy}

// unservedCollector exports, on scrape, which kinds the source finds
// unserved.
type unservedCollector struct {
	src  source.Unserved
	desc *prometheus.Desc
}

func (c *unservedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *unservedCollector) Collect(ch chan<- prometheus.Metric) {
	un := c.src.Unserved()
	for _, k := range clusterKinds {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(b2i(slices.Contains(un, k))), k)
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// setRuleset records the size of the ruleset in the kernel.
func (m *metrics) setRuleset(rs *dataplane.Ruleset) {
	rules := 0
	for _, c := range rs.Chains {
		rules += len(c.Rules)
	}
	m.elements.Set(float64(countElems(rs)))
	m.sets.Set(float64(len(rs.Sets)))
	m.chains.Set(float64(len(rs.Chains)))
	m.rules.Set(float64(rules))
}

// dropSets are the dataplane's per-pod drop counter sets (see
// internal/dataplane README: "Per-pod drop counters").
var dropSets = [...]struct {
	name string
	dir  model.Direction
}{
	{"ingress_drops4", model.Ingress},
	{"ingress_drops6", model.Ingress},
	{"egress_drops4", model.Egress},
	{"egress_drops6", model.Egress},
}

// dropsMinInterval bounds how often a scrape reads the counters back.
const dropsMinInterval = 5 * time.Second

// dropsCollector reads the per-pod drop counters from the kernel on
// scrape (at most every dropsMinInterval) and names the pods.
type dropsCollector struct {
	a         *Agent
	desc      *prometheus.Desc
	guardDesc *prometheus.Desc

	mu   sync.Mutex
	at   time.Time
	last []prometheus.Metric
}

func (c *dropsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.guardDesc }

func (c *dropsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.a.now(); c.last == nil || now.Sub(c.at) >= dropsMinInterval {
		c.last, c.at = c.read(), now
	}
	for _, m := range c.last {
		ch <- m
	}
}

func (c *dropsCollector) read() []prometheus.Metric {
	if !c.a.reconciled.Load() {
		return []prometheus.Metric{}
	}
	rs, err := c.a.dp.ReadDrops()
	if err != nil {
		c.a.log.Warn("reading drop counters", "error", err.Error())
		return []prometheus.Metric{}
	}
	type key struct {
		pod model.Key
		dir model.Direction
	}
	sums := map[key]uint64{}
	var order []key
	var ips []netip.Addr
	var dirs []model.Direction
	var pkts []uint64
	for _, ds := range dropSets {
		s := rs.Set(ds.name)
		if s == nil {
			continue
		}
		for i, el := range s.Elems {
			if i < len(s.Counters) {
				ips, dirs, pkts = append(ips, el.Addr), append(dirs, ds.dir), append(pkts, s.Counters[i].Packets)
			}
		}
	}
	c.a.withEngine(func(e *engine.Engine) {
		for i, ip := range ips {
			p := e.PodByIP(ip)
			if p == nil {
				continue
			}
			k := key{p.Key(), dirs[i]}
			if _, ok := sums[k]; !ok {
				order = append(order, k)
			}
			sums[k] += pkts[i]
		}
	})
	out := make([]prometheus.Metric, 0, len(order)+2)
	if g := rs.Guarded(); g[0] || g[1] {
		drops := rs.GuardDrops()
		for fi, fam := range [...]string{"ipv4", "ipv6"} {
			if g[fi] {
				out = append(out, prometheus.MustNewConstMetric(c.guardDesc, prometheus.CounterValue, float64(drops[fi]), fam))
			}
		}
	}
	for _, k := range order {
		out = append(out, prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(sums[k]),
			k.pod.Namespace, k.pod.Name, dirWord(k.dir)))
	}
	return out
}

// dirWord is a direction as logs and labels write it.
func dirWord(d model.Direction) string {
	if d == model.Egress {
		return "egress"
	}
	return "ingress"
}
