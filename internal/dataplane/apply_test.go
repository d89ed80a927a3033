package dataplane

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// kernelEquals checks that the kernel's table is rs.
func kernelEquals(t *testing.T, ns string, rs *Ruleset) {
	t.Helper()
	if diff := cmp.Diff(normalize(rs.String()), normalize(nftList(t, ns))); diff != "" {
		t.Fatalf("kernel table differs from the ruleset (-want +got):\n%s", diff)
	}
}

// newEnforcer returns an enforcer for a throwaway namespace (its name),
// closed at cleanup.
func newEnforcer(t testing.TB) (ns string, en *Enforcer) {
	t.Helper()
	ns, path := newNetns(t)
	en, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { en.Close() })
	return ns, en
}

func TestApplyIncremental(t *testing.T) {
	ns, en := newEnforcer(t)
	ctx := context.Background()
	c := seedCluster()
	e := engine.FromCluster(c)
	apply := func(step string) Stats {
		t.Helper()
		rs := Compile(e, "node-1", Options{})
		st, err := en.Apply(ctx, rs)
		if err != nil {
			t.Fatalf("%s: Apply: %v", step, err)
		}
		kernelEquals(t, ns, rs)
		t.Logf("%s: %s", step, st)
		return st
	}
	if st := apply("initial"); !st.Full {
		t.Errorf("first Apply: Full = false, want a full replace")
	}
	if st := apply("nothing changed"); !st.Empty() {
		t.Errorf("Apply of the same state sent %s, want nothing", st)
	}

	elementsOnly := func(step string, st Stats, add, del int) {
		t.Helper()
		want := Stats{ElementsAdded: add, ElementsDeleted: del}
		got := st
		got.Messages, got.Duration = 0, 0
		if got != want {
			t.Errorf("%s: stats %s, want only elements +%d -%d", step, st, add, del)
		}
	}

	// A new backend pod: one more peer address.
	b2 := &model.Pod{Namespace: "default", Name: "backend-2", Node: "node-2",
		Labels: map[string]string{"app": "backend"}, IPs: []netip.Addr{netip.MustParseAddr("10.20.1.12")}}
	e.UpsertPod(b2)
	elementsOnly("new peer pod", apply("new peer pod"), 1, 0)

	// client-pod relabelled app=backend: its address joins the peers; the
	// range 10.20.0.12 becomes 10.20.0.12-10.20.0.13.
	cp := *c.Pods[model.Key{Namespace: "default", Name: "client-pod"}]
	cp.Labels = map[string]string{"app": "backend"}
	e.UpsertPod(&cp)
	elementsOnly("relabel", apply("relabel"), 1, 1)

	// A second frontend on this node: a map entry, its drop counter and
	// its self pair; the chain is shared.
	f2 := &model.Pod{Namespace: "default", Name: "frontend-2", Node: "node-1",
		Labels: map[string]string{"app": "frontend"}, IPs: []netip.Addr{netip.MustParseAddr("10.20.0.21")}}
	e.UpsertPod(f2)
	elementsOnly("new local pod", apply("new local pod"), 3, 0)

	// default-deny-all: new chains for the new policy sets; pods move.
	e.UpsertPolicy(defaultDenyAll("default"))
	st := apply("default-deny-all")
	// Ingress: frontends {default-deny-all, frontend-access}, the others
	// {default-deny-all}; egress: everyone {default-deny-all}. The chain of
	// {frontend-access} alone goes.
	if st.Full || st.ChainsAdded != 3 || st.ChainsDeleted != 1 || st.ChainsFlushed != 0 {
		t.Errorf("default-deny-all: %s, want 3 chains added, 1 deleted", st)
	}

	// The pod leaves: elements only.
	e.DeletePod(f2.Key())
	// Its address was in two maps, two drop sets and the self set.
	elementsOnly("pod deleted", apply("pod deleted"), 0, 5)

	// frontend-access changes its port: its chain is refilled.
	fa := frontendAccess()
	fa.IngressRules[0].Ports[0].Port = 8080
	e.UpsertPolicy(fa)
	st = apply("port change")
	if st.ChainsFlushed != 1 || st.ChainsAdded != 0 || st.ElementsAdded != 0 {
		t.Errorf("port change: %s, want one chain refilled and nothing else", st)
	}

	// Every policy gone: back to the base chains.
	e.DeletePolicy(fa.Key())
	e.DeletePolicy(model.Key{Namespace: "default", Name: "default-deny-all"})
	st = apply("policies deleted")
	if st.ChainsDeleted != 3 || st.SetsDeleted != 1 || st.RulesAdded != 0 {
		t.Errorf("policies deleted: %s, want 3 chains and 1 set deleted", st)
	}

	// The node's first IPv6 pod: chains gain their IPv6 rules (until then
	// no IPv6 packet could reach them), once.
	e.UpsertPolicy(frontendAccess())
	apply("policy back")
	e.UpsertPod(&model.Pod{Namespace: "default", Name: "frontend-6", Node: "node-1",
		Labels: map[string]string{"app": "frontend"}, IPs: []netip.Addr{netip.MustParseAddr("10.20.0.22"), netip.MustParseAddr("fd00:20::22")}})
	if st := apply("first IPv6 pod"); st.ChainsAdded != 1 || st.ChainsFlushed != 0 || st.SetsAdded != 1 {
		t.Errorf("first IPv6 pod: %s, want an IPv6 chain and peer set, the IPv4 chain untouched", st)
	}
	e.UpsertPod(&model.Pod{Namespace: "default", Name: "frontend-7", Node: "node-1",
		Labels: map[string]string{"app": "frontend"}, IPs: []netip.Addr{netip.MustParseAddr("10.20.0.23"), netip.MustParseAddr("fd00:20::23")}})
	elementsOnly("second IPv6 pod", apply("second IPv6 pod"), 6, 0)
}

// TestApplyFailureKeepsPrevious: a transaction the kernel rejects leaves
// the previous ruleset whole, and the next Apply starts over from a full
// replace.
func TestApplyFailureKeepsPrevious(t *testing.T) {
	ns, en := newEnforcer(t)
	ctx := context.Background()
	e := seedEngine()
	good := Compile(e, "node-1", Options{})
	if _, err := en.Apply(ctx, good); err != nil {
		t.Fatal(err)
	}
	before := nftList(t, ns)

	for _, tc := range []struct {
		name   string
		break_ func(rs *Ruleset)
	}{
		{"jump to a missing chain", func(rs *Ruleset) {
			s := rs.Set("ingress4")
			s.Elems = append(s.Elems, Elem{Addr: netip.MustParseAddr("10.20.0.99"), Jump: "ing-missing"})
		}},
		{"rule naming a missing set", func(rs *Ruleset) {
			ch := rs.Chains[len(rs.Chains)-1]
			ch.Rules = append([]Rule{{Family: IPv4, Addr: &AddrMatch{Field: Saddr, Set: "no-such-set"}, Verdict: VerdictReturn}}, ch.Rules...)
		}},
		{"overlapping intervals", func(rs *Ruleset) {
			s := rs.PeerSet(engine.RuleRef{Policy: model.Key{Namespace: "default", Name: "frontend-access"}, Direction: model.Ingress}, IPv4)
			s.Elems = append(s.Elems, Elem{Addr: netip.MustParseAddr("10.0.0.0"), End: netip.MustParseAddr("10.255.255.255")})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Start from a change that would be fine on its own, then break it.
			e.UpsertPolicy(defaultDenyAll("default"))
			bad := Compile(e, "node-1", Options{})
			e.DeletePolicy(model.Key{Namespace: "default", Name: "default-deny-all"})
			tc.break_(bad)
			_, err := en.Apply(ctx, bad)
			var txe *TxError
			if !errors.As(err, &txe) {
				t.Fatalf("Apply(broken ruleset) = %v, want a *TxError", err)
			}
			t.Logf("Apply(broken ruleset): %v", err)
			if got := nftList(t, ns); normalize(got) != normalize(before) {
				t.Fatalf("after a failed Apply the kernel changed:\n%s", cmp.Diff(normalize(before), normalize(got)))
			}
			if en.Last() != nil {
				t.Errorf("Last() after a failure is not nil: the next Apply must reconcile")
			}
			st, err := en.Apply(ctx, good)
			if err != nil {
				t.Fatalf("Apply after failure: %v", err)
			}
			// The kernel kept good: reconciling against it sends nothing.
			if !st.Empty() {
				t.Errorf("Apply after failure: %s, want nothing to send", st)
			}
			kernelEquals(t, ns, good)
		})
	}
}

// TestApplyReconcilesForeignState: the first Apply makes the table equal
// to the ruleset whatever it held (a previous agent's rules, stale chains
// and sets, a foreign base chain); a restarted enforcer whose table is
// already right sends nothing.
func TestApplyReconcilesForeignState(t *testing.T) {
	ns, en := newEnforcer(t)
	run(t, "ip", "netns", "exec", ns, "nft", "add table inet palisade; add chain inet palisade stale; add set inet palisade old { type ipv4_addr; }; add chain inet palisade forward { type filter hook forward priority 0; policy drop; }")
	rs := Compile(seedEngine(), "node-1", Options{})
	if _, err := en.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	kernelEquals(t, ns, rs)
	// A second enforcer (an agent restart) reconciles against the kernel.
	_, path := ns, "/run/netns/"+ns
	en2, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer en2.Close()
	st, err := en2.Apply(context.Background(), rs)
	if err != nil || !st.Empty() {
		t.Fatalf("restart Apply: %v, %s; want nothing to send", err, st)
	}
	kernelEquals(t, ns, rs)
	if err := en2.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := nftList(t, ns); got != "" {
		t.Errorf("after Delete the table is still there:\n%s", got)
	}
	if err := en2.Delete(context.Background()); err != nil {
		t.Errorf("Delete without a table: %v", err)
	}
}

// TestApplyIntervalEdges changes ipBlocks whose ranges start at the first
// address or run to the last (which has no interval-end element), one
// incremental Apply at a time.
func TestApplyIntervalEdges(t *testing.T) {
	ns, en := newEnforcer(t)
	ctx := context.Background()
	e := seedEngine()
	block := func(cidr string, except ...string) {
		t.Helper()
		b := &model.IPBlock{CIDR: prefix(cidr)}
		for _, x := range except {
			b.Except = append(b.Except, prefix(x))
		}
		e.UpsertPolicy(&model.Policy{Namespace: "default", Name: "blocks", Ingress: true,
			IngressRules: []model.Rule{{Peers: []model.Peer{{IPBlock: b}}}}})
		rs := Compile(e, "node-1", Options{})
		st, err := en.Apply(ctx, rs)
		if err != nil {
			t.Fatalf("block %s except %v: %v", cidr, except, err)
		}
		kernelEquals(t, ns, rs)
		back, err := Read("/run/netns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		back.Live = false
		if diff := cmp.Diff(rs.String(), back.String()); diff != "" {
			t.Fatalf("block %s except %v (%s): read back differs:\n%s", cidr, except, st, diff)
		}
	}
	block("0.0.0.0/0")
	block("0.0.0.0/0", "10.0.0.0/8")
	block("0.0.0.0/0", "0.0.0.0/8", "240.0.0.0/4")
	block("0.0.0.0/0", "255.255.255.255/32")
	block("255.255.255.255/32")
	block("0.0.0.0/32")
	block("0.0.0.0/1")
	block("128.0.0.0/1")
	block("0.0.0.0/0", "10.20.0.12/32")
}

// TestPrefetch: the first Apply diffs against a table read ahead; when a
// transaction committed after that read (here a chain added by hand), the
// kernel refuses the conditional batch and Apply reads again, so the
// stale read never leaves the by-hand chain in place.
func TestPrefetch(t *testing.T) {
	ctx := context.Background()
	e := seedEngine()
	a := Compile(e, "node-1", Options{})
	e.UpsertPolicy(defaultDenyAll("default"))
	b := Compile(e, "node-1", Options{})
	for _, tc := range []struct {
		name         string
		byHand       bool
		apply        *Ruleset
		wantMessages bool
	}{
		{"unchanged table, same ruleset", false, a, false},
		{"unchanged table, new ruleset", false, b, true},
		{"changed since the read, same ruleset", true, a, true},
		{"changed since the read, new ruleset", true, b, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, en := newEnforcer(t)
			if _, err := en.Apply(ctx, a); err != nil {
				t.Fatal(err)
			}
			restarted, err := New(en.nsPath)
			if err != nil {
				t.Fatal(err)
			}
			defer restarted.Close()
			restarted.Prefetch()
			<-time.After(50 * time.Millisecond) // let the read finish first
			if tc.byHand {
				run(t, "ip", "netns", "exec", ns, "nft", "add chain inet palisade by-hand")
			}
			st, err := restarted.Apply(ctx, tc.apply)
			if err != nil {
				t.Fatal(err)
			}
			if st.Full || (st.Messages > 0) != tc.wantMessages {
				t.Errorf("Apply: %s", st)
			}
			kernelEquals(t, ns, tc.apply)
		})
	}
}

// TestReadDrops: only the four drop counter sets and the two base chains
// come back, as Read gives them.
func TestReadDrops(t *testing.T) {
	_, en := newEnforcer(t)
	e := seedEngine()
	e.UpsertPolicy(defaultDenyAll("default"))
	if _, err := en.Apply(context.Background(), Compile(e, "node-1", Options{})); err != nil {
		t.Fatal(err)
	}
	all, err := Read(en.nsPath)
	if err != nil {
		t.Fatal(err)
	}
	drops, err := ReadDrops(en.nsPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(drops.Chains) != 2 || len(drops.Sets) != 4 || !drops.Live {
		t.Fatalf("ReadDrops: %d chains, %d sets, live %v", len(drops.Chains), len(drops.Sets), drops.Live)
	}
	for _, s := range drops.Sets {
		if s.Kind != KindDrops || !reflect.DeepEqual(s, all.Set(s.Name)) {
			t.Errorf("set %s: %+v, Read has %+v", s.Name, s, all.Set(s.Name))
		}
	}
	for _, c := range drops.Chains {
		if c.Hook == HookNone || !reflect.DeepEqual(c, all.Chain(c.Name)) {
			t.Errorf("chain %s: %+v, Read has %+v", c.Name, c, all.Chain(c.Name))
		}
	}
	if len(drops.Set("ingress_drops4").Elems) == 0 {
		t.Error("ingress_drops4 is empty under default-deny-all")
	}
}
