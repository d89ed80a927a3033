package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

type opKind int

const (
	opCreate opKind = iota
	opUpdate
	opDelete
	numOps
)

func (o opKind) String() string { return [...]string{"create", "update", "delete"}[o] }

// sample is one operation's latency.
type sample struct {
	e2e    time.Duration // t0 (before the API call) to the end of the Read that saw the change
	call   time.Duration // the API call's own round trip
	agent  time.Duration // the agent's log: receipt to Apply return (max of the syncs that carried it)
	tx     time.Duration // the agent's log: Apply (nftables transaction)
	syncs  int           // "synced" log lines seen for it
	reads  int           // Reads until the change showed
	readOK time.Duration // duration of the Read that saw it
}

// latPolicy is the policy of latency sample i: it selects the app of a
// pod of node-0 in its namespace and allows ingress from a tier on 8080
// and on the named port http.
func latPolicy(lp *corev1.Pod, i int) *networkingv1.NetworkPolicy {
	p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: lp.Namespace, Name: fmt.Sprintf("lat-%04d", i)}}
	p.Spec.PodSelector = *sel("app", lp.Labels["app"])
	p.Spec.PolicyTypes = ingressOnly
	p.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{
		From:  []networkingv1.NetworkPolicyPeer{{PodSelector: sel("tier", "web")}},
		Ports: []networkingv1.NetworkPolicyPort{portNum(corev1.ProtocolTCP, 8080), portName("http")},
	}}
	return p
}

// podIP is a pod's IPv4 address.
func podIP(p *corev1.Pod) netip.Addr {
	for _, ip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil && a.Is4() {
			return a
		}
	}
	return netip.Addr{}
}

// hasComment reports whether a rule of rs has a comment with prefix.
func hasComment(rs *dataplane.Ruleset, prefix string) bool {
	for _, c := range rs.Chains {
		for i := range c.Rules {
			if strings.HasPrefix(c.Rules[i].Comment, prefix) {
				return true
			}
		}
	}
	return false
}

// check is what shows an operation in the kernel: a rule comment prefix
// in the ingress chain of pod (for the chain probe), anywhere in the table
// (for dataplane.Read); want says whether it should be there (false:
// deleted).
type check struct {
	pod     netip.Addr
	comment string
	want    bool
}

// readRetry reads the table, retrying a few times: a Read racing with a
// transaction can find a set gone between listing and dumping it.
func readRetry(path string) (*dataplane.Ruleset, int, error) {
	var err error
	for n := 0; n < 20; n++ {
		var rs *dataplane.Ruleset
		if rs, err = dataplane.Read(path); err == nil {
			return rs, n, nil
		}
	}
	return nil, 20, err
}

// waitKernel polls the kernel every -poll until ck holds; it returns the
// end of the poll that saw it, how many polls it took and the duration
// of that poll.
func waitKernel(ctx context.Context, res *result, probe *chainProbe, path string, ck check) (time.Time, int, time.Duration, error) {
	deadline := time.Now().Add(*flagOpTimeout)
	for n := 1; ; n++ {
		s := time.Now()
		var ok bool
		var err error
		if *flagProbe == "read" {
			var rs *dataplane.Ruleset
			rs, err = dataplane.Read(path)
			if err != nil {
				res.readErrors++ // raced with a transaction: poll again
				err = nil
			} else {
				ok = hasComment(rs, ck.comment) == ck.want
			}
		} else {
			var found bool
			found, err = probe.hasComment(ck.pod, ck.comment)
			if errors.Is(err, errRaced) {
				err, found = nil, !ck.want // a transaction in between: poll again
			}
			ok = found == ck.want
		}
		end := time.Now()
		if err != nil {
			return end, n, 0, err
		}
		if ok {
			return end, n, end.Sub(s), nil
		}
		if end.After(deadline) {
			return end, n, 0, fmt.Errorf("not in the kernel after %s", *flagOpTimeout)
		}
		if ctx.Err() != nil {
			return end, n, 0, ctx.Err()
		}
		time.Sleep(*flagPoll)
	}
}

// verify reads the table with dataplane.Read and checks the rule
// comments agree with what the chain probe saw.
func verify(res *result, path string, ck check) error {
	rs, _, err := readRetry(path)
	if err != nil {
		return err
	}
	res.verified++
	if hasComment(rs, ck.comment) != ck.want {
		res.verifyFailed++
		logf("verify: rule comment %q present=%v, want %v", ck.comment, !ck.want, ck.want)
	}
	return nil
}

// agentView collects the agent's "synced" log lines for the last
// operation, waiting up to 1 s for the first one.
func agentView(a *agentProc, s *sample) {
	deadline := time.Now().Add(time.Second)
	for {
		lines, _ := a.tail()
		for _, l := range lines {
			if l.Msg != "synced" {
				if l.Level == "ERROR" || l.Level == "WARN" {
					logf("agent: %s %s %s", l.Level, l.Msg, l.Error)
				}
				continue
			}
			s.syncs++
			if d, err := time.ParseDuration(l.E2K); err == nil {
				s.agent = max(s.agent, d)
			}
			if d, ok := txDuration(l.Transaction); ok {
				s.tx += d
			}
		}
		if s.syncs > 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func latency(ctx context.Context, res *result, cs kubernetes.Interface, a *agentProc, path string) error {
	c := res.cluster
	if len(c.local) == 0 {
		return errors.New("no pod on node-0")
	}
	// The cost of one Read of the whole table, and of one chain probe.
	for range 30 {
		s := time.Now()
		if _, _, err := readRetry(path); err != nil {
			return err
		}
		res.readCost = append(res.readCost, time.Since(s))
	}
	for range 50 {
		s := time.Now()
		if _, err := dataplane.ReadDrops(path); err != nil {
			return err
		}
		res.dropsCost = append(res.dropsCost, time.Since(s))
	}
	probe, err := newChainProbe(path)
	if err != nil {
		return err
	}
	defer probe.Close()
	for range 200 {
		s := time.Now()
		if _, err := probe.hasComment(podIP(c.local[0]), "x"); err != nil && !errors.Is(err, errRaced) {
			return err
		}
		res.probeCost = append(res.probeCost, time.Since(s))
	}
	logf("one dataplane.Read: median %s, max %s; one chain probe: median %s, max %s",
		quantile(res.readCost, 0.5).Round(time.Microsecond), slices.Max(res.readCost).Round(time.Microsecond),
		quantile(res.probeCost, 0.5).Round(time.Microsecond), slices.Max(res.probeCost).Round(time.Microsecond))

	np := cs.NetworkingV1()
	before, err := a.scrape()
	if err != nil {
		return err
	}
	hBefore, err := parseHistogram(before, "palisade_event_to_kernel_seconds")
	if err != nil {
		return err
	}
	// A run that failed half-way leaves its policies: remove them, so
	// that a run on the same population (-populate no) can create them.
	for i := range *flagSamples {
		lp := c.local[i%len(c.local)]
		err := np.NetworkPolicies(lp.Namespace).Delete(ctx, latPolicy(lp, i).Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("removing a policy of an earlier run: %w", err)
		}
	}
	agentCPU0, _ := cpuTime(a.pid())
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	a.tail() // skip what came before
	start := time.Now()
	pause := func() { time.Sleep(*flagSpacing) }
	for i := 0; i < *flagSamples; i++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(start) > *flagLatTime {
			logf("latency: time limit %s reached after %d samples", *flagLatTime, i)
			break
		}
		lp := c.local[i%len(c.local)]
		pol := latPolicy(lp, i)
		key := model.Key{Namespace: pol.Namespace, Name: pol.Name}.String()
		ip := podIP(lp)
		cks := [numOps]check{
			{ip, key + " ingress[0]", true},
			{ip, key + " ingress[1]", true},
			{ip, key + " ", false},
		}
		verifyNow := *flagProbe != "read" && i%20 == 0

		// Create: the policy's first rule appears.
		var s sample
		t0 := time.Now()
		created, err := np.NetworkPolicies(pol.Namespace).Create(ctx, pol, metav1.CreateOptions{})
		s.call = time.Since(t0)
		if err != nil {
			return fmt.Errorf("create %s: %w", key, err)
		}
		t1, n, rd, err := waitKernel(ctx, res, probe, path, cks[opCreate])
		if err != nil {
			return fmt.Errorf("create %s: %w", key, err)
		}
		s.e2e, s.reads, s.readOK = t1.Sub(t0), n, rd
		agentView(a, &s)
		res.lat[opCreate] = append(res.lat[opCreate], s)
		if verifyNow {
			if err := verify(res, path, cks[opCreate]); err != nil {
				return err
			}
		}
		pause()

		// Update: a second ingress rule (a team's namespaces on the named
		// port metrics) appears.
		upd := created.DeepCopy()
		upd.Spec.Ingress = append(upd.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{
			From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("team", fmt.Sprintf("team-%d", i%10))}},
			Ports: []networkingv1.NetworkPolicyPort{portName("metrics")},
		})
		s = sample{}
		t0 = time.Now()
		_, err = np.NetworkPolicies(pol.Namespace).Update(ctx, upd, metav1.UpdateOptions{})
		s.call = time.Since(t0)
		if err != nil {
			return fmt.Errorf("update %s: %w", key, err)
		}
		t1, n, rd, err = waitKernel(ctx, res, probe, path, cks[opUpdate])
		if err != nil {
			return fmt.Errorf("update %s: %w", key, err)
		}
		s.e2e, s.reads, s.readOK = t1.Sub(t0), n, rd
		agentView(a, &s)
		res.lat[opUpdate] = append(res.lat[opUpdate], s)
		if verifyNow {
			if err := verify(res, path, cks[opUpdate]); err != nil {
				return err
			}
		}
		pause()

		// Delete: no rule of the policy is left (the cluster keeps its size).
		s = sample{}
		t0 = time.Now()
		err = np.NetworkPolicies(pol.Namespace).Delete(ctx, pol.Name, metav1.DeleteOptions{})
		s.call = time.Since(t0)
		if err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		t1, n, rd, err = waitKernel(ctx, res, probe, path, cks[opDelete])
		if err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		s.e2e, s.reads, s.readOK = t1.Sub(t0), n, rd
		agentView(a, &s)
		res.lat[opDelete] = append(res.lat[opDelete], s)
		if verifyNow {
			if err := verify(res, path, cks[opDelete]); err != nil {
				return err
			}
		}
		pause()

		if (i+1)%50 == 0 {
			logf("latency: %d samples; create p50 %s", i+1, quantile(e2es(res.lat[opCreate]), 0.5).Round(time.Microsecond))
		}
	}
	res.latWall = time.Since(start)
	var ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	res.benchCPU = tvDur(ru1.Utime) + tvDur(ru1.Stime) - tvDur(ru0.Utime) - tvDur(ru0.Stime)
	agentCPU1, _ := cpuTime(a.pid())
	res.agentCPU = agentCPU1 - agentCPU0
	after, err := a.scrape()
	if err != nil {
		return err
	}
	hAfter, err := parseHistogram(after, "palisade_event_to_kernel_seconds")
	if err != nil {
		return err
	}
	res.hist = hAfter.sub(hBefore)
	return nil
}

func tvDur(tv syscall.Timeval) time.Duration {
	return time.Duration(tv.Sec)*time.Second + time.Duration(tv.Usec)*time.Microsecond
}

func e2es(ss []sample) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = s.e2e
	}
	return out
}

// diag is what the agent's sync does, timed in this process on the same
// cluster: engine build from the objects, and Compile of node-0's ruleset
// (every sync compiles the node's whole ruleset, then Apply diffs it).
type diag struct {
	build, compile         time.Duration
	chains, sets, elements int
}

func compileDiag(c *cluster) (diag, error) {
	var d diag
	s := time.Now()
	e := engine.New()
	for _, ns := range c.namespaces {
		m, err := apiconv.Namespace(ns)
		if err != nil {
			return d, err
		}
		e.UpsertNamespace(m)
	}
	for _, n := range c.nodes { // the agent watches every node
		m, err := apiconv.Node(n)
		if err != nil {
			return d, err
		}
		e.UpsertNode(m)
	}
	for _, p := range c.pods {
		m, err := apiconv.Pod(p)
		if err != nil {
			return d, err
		}
		e.UpsertPod(m)
	}
	for _, p := range c.policies {
		m, err := apiconv.Policy(p)
		if err != nil {
			return d, err
		}
		e.UpsertPolicy(m)
	}
	e.TakeChanges()
	d.build = time.Since(s)
	// As in the agent, each Compile follows a change (which drops the
	// engine's isolation cache): a latency policy comes and goes.
	var ts []time.Duration
	var rs *dataplane.Ruleset
	for i := range 10 {
		lp, err := apiconv.Policy(latPolicy(c.local[(i/2)%len(c.local)], 9000+i/2))
		if err != nil {
			return d, err
		}
		if i%2 == 0 {
			e.UpsertPolicy(lp)
		} else {
			e.DeletePolicy(lp.Key())
		}
		e.TakeChanges()
		runtime.GC()
		s := time.Now()
		rs = dataplane.Compile(e, localNode, dataplane.Options{})
		ts = append(ts, time.Since(s))
	}
	d.compile = quantile(ts, 0.5)
	d.chains, d.sets = len(rs.Chains), len(rs.Sets)
	for _, s := range rs.Sets {
		d.elements += len(s.Elems)
	}
	return d, nil
}
