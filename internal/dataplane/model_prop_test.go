package dataplane

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/model"
	"golang.org/x/sys/unix"
)

// world is a cluster and an engine kept equal by random edits, made of
// fixture.Gen's pods, policies and namespaces, on nodes n0 (this one,
// whose pod CIDRs come and go, for the unknown-pod guard) and n1.
type world struct {
	g *fixture.Gen
	c *model.Cluster
	e *engine.Engine
}

func newWorld(seed uint64, edits int) *world {
	w := &world{g: &fixture.Gen{Src: rand.New(rand.NewPCG(seed, 7))}, c: model.NewCluster(), e: engine.New()}
	for i := range 2 {
		n := w.g.Node(i)
		put(w.c.Nodes, n.Name, n, w.e.UpsertNode)
	}
	for range edits {
		w.edit()
	}
	return w
}

func (w *world) edit() {
	g, c, e := w.g, w.c, w.e
	pods, pols := sortedKeys(c.Pods), sortedKeys(c.Policies)
	switch k := g.N(20); {
	case k < 6 || k < 9 && len(pods) == 0:
		p := g.Pod(c)
		put(c.Pods, p.Key(), p, e.UpsertPod)
	case k < 9: // an existing pod moved, relabelled, readdressed
		p, k := g.Pod(c), pods[g.N(len(pods))]
		p.Namespace, p.Name = k.Namespace, k.Name
		put(c.Pods, k, p, e.UpsertPod)
	case k < 11 && len(pods) > 0:
		drop(c.Pods, pods[g.N(len(pods))], e.DeletePod)
	case k < 16:
		key := g.PolicyKey()
		if len(pols) > 0 && g.Chance(40) {
			key = pols[g.N(len(pols))]
		}
		put(c.Policies, key, g.Policy(key), e.UpsertPolicy)
	case k < 18 && len(pols) > 0:
		drop(c.Policies, pols[g.N(len(pols))], e.DeletePolicy)
	case k < 19:
		ns := g.Namespace(fixture.PickOne(g, fixture.GenNamespaces[:3]))
		put(c.Namespaces, ns.Name, ns, e.UpsertNamespace)
	default:
		n := *c.Nodes["n0"]
		n.PodCIDRs = nil
		if g.Chance(60) {
			n.PodCIDRs = append(n.PodCIDRs, netip.MustParsePrefix("10.0.0.0/16"))
		}
		if g.Chance(60) {
			n.PodCIDRs = append(n.PodCIDRs, netip.MustParsePrefix("fd00::/64"))
		}
		put(c.Nodes, n.Name, &n, e.UpsertNode)
	}
}

// put and drop make one edit to the cluster and the engine alike.
func put[K comparable, V any](m map[K]V, k K, v V, upsert func(V)) {
	m[k] = v
	upsert(v)
}

func drop[K comparable, V any](m map[K]V, k K, del func(K)) {
	delete(m, k)
	del(k)
}

// sortedKeys returns m's keys in order: map order would make the seeds lie.
func sortedKeys[V any](m map[model.Key]V) []model.Key {
	ks := slices.Collect(maps.Keys(m))
	slices.SortFunc(ks, func(a, b model.Key) int { return strings.Compare(a.String(), b.String()) })
	return ks
}

// modelHolds checks that m holds exactly rs.
func modelHolds(t *testing.T, m *Model, rs *Ruleset, what string) {
	t.Helper()
	if diff := cmp.Diff(rs.String(), m.Dump()); diff != "" {
		t.Fatalf("%s: the model differs from the ruleset (-want +model):\n%s", what, diff)
	}
}

// apply applies rs through en and checks that its model then holds it.
func apply(t *testing.T, en *Enforcer, rs *Ruleset, what string) Stats {
	t.Helper()
	st, err := en.Apply(context.Background(), rs)
	if err != nil {
		t.Fatalf("%s: Apply: %v", what, err)
	}
	modelHolds(t, en.b.(*Model), rs, what)
	return st
}

// TestModelApplyChurn: random edits, compiled incrementally (sets kept
// from the cache are skipped by the diff) and applied one diff at a time
// to a model, which must accept every transaction and then hold exactly
// the compiled ruleset. A new Enforcer on the same model (an agent
// restarting) reads it back and finds nothing to send.
func TestModelApplyChurn(t *testing.T) {
	seeds, steps := 12, 60
	if testing.Short() {
		seeds = 4
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			opts := Options{}
			switch seed % 4 {
			case 1:
				opts.LogDrops, opts.LogGroup = true, 2
			case 2:
				opts.AllowUnknown = true
			case 3:
				opts.PodCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}
			}
			w := newWorld(seed, 0)
			e := w.e
			cc := NewCompiler("n0", opts)
			m := NewModel()
			en := NewModelEnforcer(m)
			full, msgs := 0, 0
			for step := range steps {
				for n := 1 + w.g.N(3); n > 0; n-- {
					w.edit()
				}
				st := apply(t, en, cc.Compile(e, e.TakeChanges()), fmt.Sprint("step ", step))
				if st.Full {
					full++
				}
				msgs += st.Messages
			}
			t.Logf("%d steps, %d operations", steps, msgs)
			if full != 1 {
				t.Errorf("%d full replaces, want only the first", full)
			}
			if st := apply(t, NewModelEnforcer(m), Compile(e, "n0", opts), "restart"); !st.Empty() {
				t.Errorf("restart: sent %s, want nothing", st)
			}
		})
	}
}

// TestModelApplyPairs: from one random ruleset to another, unrelated one
// (chains, sets and map entries come and go together), and the edge
// cases: empty to full, identical, peer sets emptied, full to empty, and
// back from no table.
func TestModelApplyPairs(t *testing.T) {
	var sizes [3]int
	defer func() { t.Logf("60 rulesets: %d chains, %d sets, %d elements", sizes[0], sizes[1], sizes[2]) }()
	for seed := range uint64(30) {
		a := newWorld(seed, 10+int(seed)).e
		b := newWorld(seed+1000, 40-int(seed)).e
		ra, rb := Compile(a, "n0", Options{}), Compile(b, "n0", Options{})
		for _, rs := range []*Ruleset{ra, rb} {
			sizes[0] += len(rs.Chains)
			sizes[1] += len(rs.Sets)
			for _, st := range rs.Sets {
				sizes[2] += len(st.Elems)
			}
		}
		m := NewModel()
		en := NewModelEnforcer(m)
		empty := Compile(engine.New(), "n0", Options{})
		apply(t, en, empty, fmt.Sprintf("seed %d: nothing to empty", seed))
		apply(t, en, ra, fmt.Sprintf("seed %d: empty to a", seed))
		if st := apply(t, en, ra, fmt.Sprintf("seed %d: a again", seed)); !st.Empty() {
			t.Errorf("seed %d: a again sent %s", seed, st)
		}
		if st := apply(t, en, rb, fmt.Sprintf("seed %d: a to b", seed)); st.Full {
			t.Errorf("seed %d: a to b was a full replace", seed)
		}
		// A set redefined (another comment): the diff gives up, the table
		// is rebuilt around the base chains (full, with what is held).
		if len(rb.Sets) > 0 {
			re := *rb
			re.Sets = slices.Clone(rb.Sets)
			changed := *re.Sets[0]
			changed.Comment += " (changed)"
			re.Sets[0] = &changed
			if st := apply(t, en, &re, fmt.Sprintf("seed %d: b with a set redefined", seed)); !st.Full {
				t.Errorf("seed %d: a set redefined: %s, want a full replace", seed, st)
			}
		}
		// Every pod gone: the policies stay, their peer sets empty.
		for _, p := range b.Pods() {
			b.DeletePod(p.Key())
		}
		apply(t, en, Compile(b, "n0", Options{}), fmt.Sprintf("seed %d: b without pods", seed))
		apply(t, en, ra, fmt.Sprintf("seed %d: back to a", seed))
		apply(t, en, empty, fmt.Sprintf("seed %d: a to empty", seed))
		if err := en.Delete(context.Background()); err != nil {
			t.Fatal(err)
		}
		if m.Ruleset() != nil {
			t.Fatalf("seed %d: Delete left a table", seed)
		}
		apply(t, en, rb, fmt.Sprintf("seed %d: no table to b", seed))
	}
}

// TestModelCatchesMisorderedDiff: the diff deletes a map entry before the
// chain it jumps to, and a rule before the set it looks up; sent the
// other way round, the model (as the kernel) rejects the transaction and
// keeps the table.
func TestModelCatchesMisorderedDiff(t *testing.T) {
	c := seedCluster()
	old := Compile(engine.FromCluster(c), "node-1", Options{})
	delete(c.Policies, frontendAccess().Key())
	new := Compile(engine.FromCluster(c), "node-1", Options{})

	m := NewModel()
	apply(t, NewModelEnforcer(m), old, "old")
	tx := &txn{}
	if !tx.diff(old, new) {
		t.Fatal("diff asks for a full replace")
	}
	stale := func(o op) bool { return o.kind == opDelChain || o.kind == opDelSet }
	for _, tc := range []struct {
		name string
		want error
		ops  []op
	}{
		{"stale chains and sets first", unix.EBUSY, append(slices.Clone(filterOps(tx.batch, stale)), filterOps(tx.batch, func(o op) bool { return !stale(o) })...)},
		{"as the diff sends it", nil, tx.batch},
	} {
		bad := &txn{}
		for _, o := range tc.ops {
			bad.add(o)
		}
		err := m.commit(context.Background(), bad)
		if _, errno := firstRejection(err); errno != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		want := old
		if tc.want == nil {
			want = new
		}
		modelHolds(t, m, want, tc.name)
	}
}

func filterOps(ops []op, keep func(op) bool) []op {
	var out []op
	for _, o := range ops {
		if keep(o) {
			out = append(out, o)
		}
	}
	return out
}

// TestModelMatchesKernelChurn (root): the same random churn applied to
// the kernel and to a model, diff by diff: both accept every transaction
// and hold the same table (read back from the kernel with Read).
func TestModelMatchesKernelChurn(t *testing.T) {
	_, path := newNetns(t)
	ken, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ken.Close()
	m := NewModel()
	men := NewModelEnforcer(m)
	ctx := context.Background()
	w := newWorld(3, 0)
	cc := NewCompiler("n0", Options{LogDrops: true})
	msgs := 0
	defer func() { t.Logf("100 steps, %d operations", msgs) }()
	for step := range 100 {
		for n := 1 + w.g.N(3); n > 0; n-- {
			w.edit()
		}
		rs := cc.Compile(w.e, w.e.TakeChanges())
		kst, kerr := ken.Apply(ctx, rs)
		mst, merr := men.Apply(ctx, rs)
		if kerr != nil || merr != nil {
			t.Fatalf("step %d: kernel: %v, model: %v", step, kerr, merr)
		}
		msgs += kst.Messages
		if kst.Messages != mst.Messages {
			t.Errorf("step %d: %d messages to the kernel, %d to the model", step, kst.Messages, mst.Messages)
		}
		back, err := Read(path)
		if err != nil {
			t.Fatal(err)
		}
		back.Live = false
		if diff := cmp.Diff(back.String(), m.Dump()); diff != "" {
			t.Fatalf("step %d: (-kernel +model):\n%s", step, diff)
		}
	}
}
