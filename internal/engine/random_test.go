package engine_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
)

var (
	seedFlag  = flag.Uint64("seed", 0, "TestRandomDifferential: seed of the first case (0: from the clock)")
	casesFlag = flag.Int("cases", 0, "TestRandomDifferential: number of cases (0: 3000, or 300 with -short)")
)

// TestRandomDifferential builds random small clusters and policy sets,
// applies random edits to one long-lived engine per cluster, and after
// each step compares, for every pair of ends (pods, nodes, outside
// addresses) on several ports and protocols:
//   - the engine's Allowed with the naive oracle (naive_test.go),
//   - with a fresh engine built from the same state (incremental = rebuild),
//   - with Explain's verdict,
//
// and checks that TakeChanges names every policy whose selection, peers or
// their addresses and ports changed, and every pod that changed.
func TestRandomDifferential(t *testing.T) {
	cases, steps := 3000, 6
	if testing.Short() {
		cases = 300
	}
	if *casesFlag > 0 {
		cases = *casesFlag
	}
	base := *seedFlag
	if base == 0 {
		base = uint64(time.Now().UnixNano())
	}
	start := time.Now()
	conns := 0
	for i := range cases {
		seed := base + uint64(i)
		n, err := randomCase(seed, steps, fixture.Gen{})
		conns += n
		if err != nil {
			t.Fatalf("seed %d: %v\nrerun: go test ./internal/engine -run TestRandomDifferential -seed %d -cases 1", seed, err, seed)
		}
	}
	t.Logf("%d cases of %d steps, %d connections compared, seeds %d..%d, in %v", cases, steps, conns, base, base+uint64(cases)-1, time.Since(start).Round(time.Millisecond))
}

// TestRandomNamedPortsOnIPBlocks is the differential test with rules
// biased to named ports and ipBlock peers, where a named egress port
// resolves on the pod whose address is inside the block: the case the
// engine once got wrong (DESIGN.md).
func TestRandomNamedPortsOnIPBlocks(t *testing.T) {
	cases := 1500
	if testing.Short() {
		cases = 150
	}
	base := *seedFlag
	if base == 0 {
		base = uint64(time.Now().UnixNano())
	}
	conns := 0
	for i := range cases {
		seed := base + uint64(i)
		n, err := randomCase(seed, 4, fixture.Gen{NamedBlocks: true})
		conns += n
		if err != nil {
			t.Fatalf("seed %d: %v\nrerun: go test ./internal/engine -run TestRandomNamedPortsOnIPBlocks -seed %d", seed, err, seed)
		}
	}
	t.Logf("%d cases, %d connections compared, seeds %d..%d", cases, conns, base, base+uint64(cases)-1)
}

// TestRandomClusterPolicies is the differential test with cluster-wide
// policies of every kind, tier and action among the NetworkPolicies (the
// oracle's naiveTiers), edits adding, replacing and deleting them and
// relabelling nodes.
func TestRandomClusterPolicies(t *testing.T) {
	cases := 600
	if testing.Short() {
		cases = 60
	}
	stageCount = [4]int{}
	base := *seedFlag
	if base == 0 {
		base = uint64(time.Now().UnixNano())
	}
	conns := 0
	for i := range cases {
		seed := base + uint64(i)
		n, err := randomCase(seed, 6, fixture.Gen{ClusterPolicies: true})
		conns += n
		if err != nil {
			t.Fatalf("seed %d: %v\nrerun: go test ./internal/engine -run TestRandomClusterPolicies -seed %d", seed, err, seed)
		}
	}
	t.Logf("%d cases, %d connections compared, seeds %d..%d; directions decided by stage: %v", cases, conns, base, base+uint64(cases)-1, stageCount)
	for st, n := range stageCount {
		if n == 0 {
			t.Errorf("no direction was decided by %v: the generator does not exercise it", engine.Stage(st))
		}
	}
}

// stageCount counts, by engine.Stage, the directions compareAll saw decided.
var stageCount [4]int

// randomCase runs one cluster through steps edits; it returns the number
// of connections compared and the first disagreement.
func randomCase(seed uint64, steps int, opts fixture.Gen) (int, error) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g := &opts
	g.Src = r
	c := g.Cluster()
	e := engine.FromCluster(c)
	history := []string{"initial cluster"}
	fail := func(err error) error {
		return fmt.Errorf("%w\nsteps: %s\nstate after the last step:\n%s", err, strings.Join(history, "; "), dumpCluster(c))
	}
	total := 0
	n, err := compareAll(g, c, e)
	total += n
	if err != nil {
		return total, fail(err)
	}
	for range steps {
		polsBefore, podsBefore := policySignatures(c), podSignatures(c)
		history = append(history, edit(g, c, e))
		ch := e.TakeChanges()
		if err := checkChanges(ch, polsBefore, policySignatures(c), podsBefore, podSignatures(c)); err != nil {
			return total, fail(err)
		}
		n, err := compareAll(g, c, e)
		total += n
		if err != nil {
			return total, fail(err)
		}
	}
	return total, nil
}

// compareAll compares the engine with the oracle and a rebuild on every
// pair of ends with at least one pod, on TCP 80 and three random
// protocol/port combinations.
func compareAll(g *fixture.Gen, c *model.Cluster, e *engine.Engine) (int, error) {
	fresh := engine.FromCluster(c)
	eps := endpoints(c, e)
	ports := []struct {
		proto model.Protocol
		port  uint16
	}{{model.TCP, 80}}
	for range 3 {
		ports = append(ports, fixture.PickOne(g, probePorts))
	}
	if err := compareIsolation(c, e); err != nil {
		return 0, err
	}
	if err := comparePodsOnNode(c, e); err != nil {
		return 0, err
	}
	n := 0
	for _, from := range eps {
		for _, to := range eps {
			if from.Pod == nil && to.Pod == nil || from.IP.Is4() != to.IP.Is4() {
				continue
			}
			for _, pp := range ports {
				conn := engine.Conn{From: from, To: to, Protocol: pp.proto, Port: pp.port}
				n++
				got := e.Allowed(conn)
				if want := naiveAllowed(c, conn); got != want {
					return n, fmt.Errorf("Allowed(%s) = %v, naive oracle says %v\n%s", connString(conn), got, want, describeVerdict(e.Explain(conn)))
				}
				if rebuilt := fresh.Allowed(conn); got != rebuilt {
					return n, fmt.Errorf("Allowed(%s) = %v incrementally, %v after a rebuild", connString(conn), got, rebuilt)
				}
				v := e.Explain(conn)
				if v.Allowed != got {
					return n, fmt.Errorf("Explain(%s).Allowed = %v, Allowed = %v", connString(conn), v.Allowed, got)
				}
				stageCount[v.Egress.Stage]++
				stageCount[v.Ingress.Stage]++
				if err := checkVerdict(v); err != nil {
					return n, fmt.Errorf("Explain(%s): %v\n%s", connString(conn), err, describeVerdict(v))
				}
			}
		}
	}
	return n, nil
}

// comparePodsOnNode compares PodsOnNode, which the dataplane reads, with
// a scan of every pod, for every node a pod names.
func comparePodsOnNode(c *model.Cluster, e *engine.Engine) error {
	nodes := map[string]bool{"": true}
	for _, p := range c.Pods {
		nodes[p.Node] = true
	}
	for node := range nodes {
		var want, got []model.Key
		for _, p := range c.SortedPods() {
			if p.Node == node && !p.HostNetwork && len(p.IPs) > 0 {
				want = append(want, p.Key())
			}
		}
		for _, p := range e.PodsOnNode(node) {
			got = append(got, p.Key())
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("PodsOnNode(%q) = %v, want %v", node, got, want)
		}
	}
	return nil
}

// compareIsolation compares Isolating, which the dataplane reads, with the
// policies that naively select each pod for each direction.
func compareIsolation(c *model.Cluster, e *engine.Engine) error {
	for _, p := range c.SortedPods() {
		for _, dir := range []model.Direction{model.Ingress, model.Egress} {
			var want, got []model.Key
			for _, pol := range c.SortedPolicies() {
				if !p.HostNetwork && pol.Namespace == p.Namespace && pol.Affects(dir) && naiveSelects(pol.PodSelector, p.Labels) {
					want = append(want, pol.Key())
				}
			}
			for _, pol := range e.Isolating(p.Key(), dir) {
				got = append(got, pol.Key)
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("Isolating(%v, %v) = %v, want %v", p.Key(), dir, got, want)
			}
		}
	}
	return nil
}

// checkVerdict checks a verdict is consistent with itself: an allowed,
// isolated direction names a rule of an isolating policy; a denied one
// explains every rule of every isolating policy.
func checkVerdict(v engine.Verdict) error {
	for _, d := range []engine.Decision{v.Egress, v.Ingress} {
		if v.Shortcut != "" && (d.Direction == model.Ingress || v.Shortcut == "loopback") {
			continue
		}
		if d.Stage == engine.StageAdmin || d.Stage == engine.StageBaseline {
			if d.Cluster == nil || d.Cluster.Direction != d.Direction || d.Cluster.Action == model.Pass ||
				d.Allowed != (d.Cluster.Action == model.Accept) || len(d.Isolating) != 0 || d.By != nil ||
				(d.Stage == engine.StageAdmin) != (d.Cluster.Tier == model.AdminTier) {
				return fmt.Errorf("%s decided by %v: cluster rule %v, allowed=%v, isolating=%v by=%v", d.Direction, d.Stage, d.Cluster, d.Allowed, d.Isolating, d.By)
			}
			continue
		}
		if d.Cluster != nil {
			return fmt.Errorf("%s decided by %v but names cluster rule %v", d.Direction, d.Stage, d.Cluster)
		}
		for _, p := range d.Passed {
			if p.Action != model.Pass {
				return fmt.Errorf("%s passed by a %v rule %v", d.Direction, p.Action, p)
			}
		}
		if (d.Stage == engine.StageNetworkPolicy) != (len(d.Isolating) > 0) {
			return fmt.Errorf("%s decided by %v with isolating %v", d.Direction, d.Stage, d.Isolating)
		}
		if len(d.Isolating) == 0 {
			if !d.Allowed || d.By != nil {
				return fmt.Errorf("%s not isolated but allowed=%v by=%v", d.Direction, d.Allowed, d.By)
			}
			continue
		}
		if d.Allowed {
			if d.By == nil || d.By.Direction != d.Direction || !containsKey(d.Isolating, d.By.Policy) {
				return fmt.Errorf("%s allowed by %v, not a rule of an isolating policy %v", d.Direction, d.By, d.Isolating)
			}
			continue
		}
		if len(d.Misses) == 0 {
			return fmt.Errorf("%s denied with no misses", d.Direction)
		}
		for _, m := range d.Misses {
			if m.Reason == "" || !containsKey(d.Isolating, m.Rule.Policy) {
				return fmt.Errorf("%s miss %v %q", d.Direction, m.Rule, m.Reason)
			}
		}
	}
	if v.Allowed != (v.Egress.Allowed && v.Ingress.Allowed) {
		return fmt.Errorf("allowed %v but egress %v, ingress %v", v.Allowed, v.Egress.Allowed, v.Ingress.Allowed)
	}
	return nil
}

func containsKey(ks []model.Key, k model.Key) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// checkChanges checks that every policy and pod whose signature moved is
// named by TakeChanges.
func checkChanges(ch engine.Changes, polsBefore, polsAfter, podsBefore, podsAfter map[model.Key]string) error {
	for k, before := range polsBefore {
		if _, ok := ch.Policies[k]; !ok && polsAfter[k] != before {
			return fmt.Errorf("TakeChanges().Policies = %v misses %v, which changed from\n  %s\nto\n  %s", ch.Policies, k, before, polsAfter[k])
		}
	}
	for k := range polsAfter {
		if _, ok := ch.Policies[k]; !ok && polsBefore[k] == "" {
			return fmt.Errorf("TakeChanges().Policies = %v misses new policy %v", ch.Policies, k)
		}
	}
	for k, before := range podsBefore {
		if _, ok := ch.Pods[k]; !ok && podsAfter[k] != before {
			return fmt.Errorf("TakeChanges().Pods = %v misses %v", ch.Pods, k)
		}
	}
	for k := range podsAfter {
		if _, ok := ch.Pods[k]; !ok && podsBefore[k] == "" {
			return fmt.Errorf("TakeChanges().Pods = %v misses new pod %v", ch.Pods, k)
		}
	}
	return nil
}

func podSignature(p *model.Pod) string {
	return fmt.Sprintf("%v%v hostNetwork=%v node=%s ips=%v ports=%v", p.Key(), p.Labels, p.HostNetwork, p.Node, p.IPs, p.Ports)
}

// memberSignature is what a policy resolves from a member pod: labels
// only decide membership.
func memberSignature(p *model.Pod) string {
	return fmt.Sprintf("%v hostNetwork=%v node=%s ips=%v ports=%v", p.Key(), p.HostNetwork, p.Node, p.IPs, p.Ports)
}

func podSignatures(c *model.Cluster) map[model.Key]string {
	m := map[model.Key]string{}
	for k, p := range c.Pods {
		m[k] = podSignature(p)
	}
	return m
}

// policySignatures renders, per policy, what its compiled form resolves
// to, computed naively: the spec itself, the pods it selects, the pods its
// selector peers resolve to, and for egress rules with named ports every
// pod when they have no peers and the pods inside their ipBlocks (they
// resolve there). Addresses and ports included.
func policySignatures(c *model.Cluster) map[model.Key]string {
	pods := c.SortedPods()
	m := map[model.Key]string{}
	for k, pol := range c.Policies {
		var b strings.Builder
		fmt.Fprintf(&b, "spec %p; selects", pol)
		for _, p := range pods {
			if !p.HostNetwork && p.Namespace == pol.Namespace && naiveSelects(pol.PodSelector, p.Labels) {
				b.WriteString(" " + memberSignature(p))
			}
		}
		for _, dir := range []model.Direction{model.Ingress, model.Egress} {
			if !pol.Affects(dir) {
				continue
			}
			for i, r := range pol.Rules(dir) {
				fmt.Fprintf(&b, "; %s[%d]", dir, i)
				named := false
				for _, pt := range r.Ports {
					named = named || pt.Name != ""
				}
				for j, peer := range r.Peers {
					if peer.IPBlock != nil {
						if dir == model.Egress && named {
							// Named ports resolve on the pods inside the block.
							fmt.Fprintf(&b, " named in block %d:", j)
							for _, p := range pods {
								if !p.HostNetwork && slices.ContainsFunc(p.IPs, func(ip netip.Addr) bool { return naiveInBlock(peer.IPBlock, ip) }) {
									b.WriteString(" " + memberSignature(p))
								}
							}
						}
						continue
					}
					fmt.Fprintf(&b, " peer %d:", j)
					for _, p := range pods {
						if p.HostNetwork {
							continue
						}
						if peer.NamespaceSelector == nil && p.Namespace != pol.Namespace ||
							peer.NamespaceSelector != nil && !naiveSelects(*peer.NamespaceSelector, naiveNSLabels(c, p.Namespace)) ||
							peer.PodSelector != nil && !naiveSelects(*peer.PodSelector, p.Labels) {
							continue
						}
						b.WriteString(" " + memberSignature(p))
					}
				}
				if dir == model.Egress && len(r.Peers) == 0 && named {
					b.WriteString(" named on every pod:")
					for _, p := range pods {
						if !p.HostNetwork {
							b.WriteString(" " + memberSignature(p))
						}
					}
				}
			}
		}
		m[k] = b.String()
	}
	return m
}

func connString(c engine.Conn) string {
	end := func(ep engine.Endpoint) string {
		if ep.Pod != nil {
			return fmt.Sprintf("%s(%s)", ep.Pod.Key(), ep.IP)
		}
		return ep.IP.String()
	}
	return fmt.Sprintf("%s -> %s %d/%s", end(c.From), end(c.To), c.Port, c.Protocol)
}

// dumpCluster renders c readably for failure messages.
func dumpCluster(c *model.Cluster) string {
	var b strings.Builder
	for _, name := range fixture.GenNamespaces {
		if ns := c.Namespaces[name]; ns != nil {
			fmt.Fprintf(&b, "  namespace %s %v\n", name, ns.Labels)
		}
	}
	for _, n := range fixture.SortedNodes(c) {
		fmt.Fprintf(&b, "  node %s %v %v\n", n.Name, n.IPs, n.Labels)
	}
	for _, p := range c.SortedPods() {
		fmt.Fprintf(&b, "  pod %s\n", podSignature(p))
	}
	for _, p := range c.SortedClusterPolicies() {
		fmt.Fprintf(&b, "  %s tier %v priority %d subject %+v\n", p.Key(), p.Tier, p.Priority, p.Subject)
		for _, dir := range []model.Direction{model.Ingress, model.Egress} {
			for i, r := range p.Rules(dir) {
				fmt.Fprintf(&b, "    %s[%d] %v:", dir, i, r.Action)
				for _, peer := range r.Peers {
					fmt.Fprintf(&b, " {ns %v pods %v nodes %v nets %v}", peer.Namespaces, peer.Pods, peer.Nodes, peer.Networks)
				}
				fmt.Fprintf(&b, " ports %s\n", engine.DescribeClusterPorts(r.Ports))
			}
		}
	}
	for _, p := range c.SortedPolicies() {
		fmt.Fprintf(&b, "  policy %s selector %v ingress=%v egress=%v\n", p.Key(), p.PodSelector, p.Ingress, p.Egress)
		for _, dir := range []model.Direction{model.Ingress, model.Egress} {
			for i, r := range p.Rules(dir) {
				fmt.Fprintf(&b, "    %s[%d]:", dir, i)
				if r.Peers == nil {
					b.WriteString(" all peers")
				}
				for _, peer := range r.Peers {
					switch {
					case peer.IPBlock != nil:
						fmt.Fprintf(&b, " {ipBlock %v except %v}", peer.IPBlock.CIDR, peer.IPBlock.Except)
					default:
						b.WriteString(" {")
						if peer.NamespaceSelector != nil {
							fmt.Fprintf(&b, "ns: %v ", *peer.NamespaceSelector)
						}
						if peer.PodSelector != nil {
							fmt.Fprintf(&b, "pod: %v", *peer.PodSelector)
						}
						b.WriteString("}")
					}
				}
				b.WriteString(" ports")
				if r.Ports == nil {
					b.WriteString(" all")
				}
				for _, pt := range r.Ports {
					fmt.Fprintf(&b, " %+v", pt)
				}
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}
