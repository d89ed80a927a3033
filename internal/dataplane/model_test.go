package dataplane

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// Objects of the small table the rejection cases start from (base).
var (
	mPeers  = &Set{Name: "peers4", Kind: KindPeers, Family: IPv4}
	mPeers6 = &Set{Name: "peers6", Kind: KindPeers, Family: IPv6}
	mPods   = &Set{Name: knownPods + "4", Kind: KindPods, Family: IPv4}
	mEgress = &Set{Name: "egress4", Kind: KindDispatch, Family: IPv4}
	mNamed  = &Set{Name: "named4", Kind: KindNamed, Family: IPv4}
	mFwd    = &Chain{Name: "forward", Hook: HookForward}
	mA      = &Chain{Name: "a"}
	mB      = &Chain{Name: "b"}
	mNope   = &Chain{Name: "nope"}

	dispatchRule = Rule{Family: IPv4, Dispatch: &AddrMatch{Field: Saddr, Set: "egress4"}}
	peersRule    = Rule{Family: IPv4, Addr: &AddrMatch{Field: Saddr, Set: "peers4"}, Verdict: VerdictReturn}
	namedRule    = Rule{Family: IPv4, Named: "named4", Verdict: VerdictReturn}
)

func opAdd(s *Set, es ...Elem) op { return op{kind: opAddElems, set: s, elems: es} }
func opDel(s *Set, es ...Elem) op { return op{kind: opDelElems, set: s, elems: es} }
func opRule(c *Chain, r Rule) op  { return op{kind: opAddRule, chain: c, rule: &r} }
func opSet(k opKind, s *Set) op   { return op{kind: k, set: s} }
func opChain(k opKind, c *Chain) op {
	return op{kind: k, chain: c}
}

func addr(s string) Elem { return Elem{Addr: netip.MustParseAddr(s)} }

// rng is the range [from, to] of an interval set.
func rng(from, to string) Elem {
	return Elem{Addr: netip.MustParseAddr(from), End: netip.MustParseAddr(to)}
}

func jump(a, chain string) Elem { return Elem{Addr: netip.MustParseAddr(a), Jump: chain} }

// base builds the table every case but "no table" starts from: a base
// chain dispatching through egress4 to chain a, which looks up peers4;
// chain b looks up named4.
func base() []op {
	return []op{
		{kind: opAddTable},
		opSet(opAddSet, mPeers), opSet(opAddSet, mPeers6), opSet(opAddSet, mPods), opSet(opAddSet, mEgress), opSet(opAddSet, mNamed),
		opChain(opAddChain, mFwd), opChain(opAddChain, mA), opChain(opAddChain, mB),
		opRule(mFwd, dispatchRule), opRule(mA, peersRule), opRule(mB, namedRule),
		opAdd(mPeers, rng("10.0.0.0", "10.0.0.255")),
		opAdd(mPeers6, rng("fd00::1000", "fd00::1fff")),
		opAdd(mPods, addr("10.0.0.1")),
		opAdd(mEgress, jump("10.0.0.1", "a")),
		opAdd(mNamed, Elem{Addr: netip.MustParseAddr("10.0.0.1"), Proto: 6, Port: 80}),
	}
}

// modelCases are transactions on base (or on nothing) and the errno the
// kernel answers, nil when it accepts them. Each rejection of Model cites
// one of them by name. TestModelRejectsAsKernel runs them on the kernel
// (as root) as well as on the model, and checks the errno, the operation
// it names, and the table afterwards are the same.
var modelCases = []struct {
	name    string
	noTable bool
	tx      []op
	want    error
}{
	{name: "no table", noTable: true, tx: []op{opChain(opAddChain, mA)}, want: unix.ENOENT},
	{name: "add table twice", tx: []op{{kind: opAddTable}, {kind: opAddTable}}},
	{name: "delete table with content", tx: []op{{kind: opDelTable}}},
	{name: "delete missing table", tx: []op{{kind: opDelTable}, {kind: opDelTable}}, want: unix.ENOENT},

	{name: "add set again", tx: []op{opSet(opAddSet, mPeers)}},
	{name: "add set again, another comment", tx: []op{opSet(opAddSet, &Set{Name: "peers4", Kind: KindPeers, Family: IPv4, Comment: "x"})}},
	{name: "add set again, another type", tx: []op{opSet(opAddSet, &Set{Name: "peers4", Kind: KindPods, Family: IPv4})}, want: unix.EEXIST},
	{name: "delete missing set", tx: []op{opSet(opDelSet, &Set{Name: "nope"})}, want: unix.ENOENT},
	{name: "delete set used by a rule", tx: []op{opSet(opDelSet, mPeers)}, want: unix.EBUSY},
	{name: "delete set after flushing its rule", tx: []op{opChain(opFlushChain, mA), opSet(opDelSet, mPeers)}},
	{name: "delete and add a set again", tx: []op{opChain(opFlushChain, mA), opSet(opDelSet, mPeers), opSet(opAddSet, mPeers), opRule(mA, peersRule)}},

	{name: "add chain again", tx: []op{opChain(opAddChain, mA)}},
	{name: "add chain again, as a base chain", tx: []op{opChain(opAddChain, &Chain{Name: "a", Hook: HookInput})}, want: unix.EOPNOTSUPP},
	{name: "add base chain again, as a regular chain", tx: []op{opChain(opAddChain, &Chain{Name: "forward"})}},
	{name: "flush missing chain", tx: []op{opChain(opFlushChain, mNope)}, want: unix.ENOENT},
	{name: "delete missing chain", tx: []op{opChain(opDelChain, mNope)}, want: unix.ENOENT},
	{name: "delete chain a map element jumps to", tx: []op{opChain(opFlushChain, mA), opChain(opDelChain, mA)}, want: unix.EBUSY},
	{name: "delete chain after its map element", tx: []op{opDel(mEgress, jump("10.0.0.1", "a")), opChain(opFlushChain, mA), opChain(opDelChain, mA)}},
	{name: "delete chain with rules", tx: []op{opChain(opDelChain, mB)}},
	{name: "delete base chain", tx: []op{opChain(opDelChain, mFwd)}},
	{name: "full rebuild order", tx: []op{{kind: opFlushTable},
		opSet(opDelSet, mEgress), opSet(opDelSet, mNamed), opSet(opDelSet, mPeers), opSet(opDelSet, mPeers6), opSet(opDelSet, mPods),
		opChain(opDelChain, mA), opChain(opDelChain, mB)}},

	{name: "rule in missing chain", tx: []op{opRule(mNope, peersRule)}, want: unix.ENOENT},
	{name: "rule looks up missing set", tx: []op{opRule(mA, Rule{Family: IPv4, Addr: &AddrMatch{Set: "nope"}})}, want: unix.ENOENT},
	{name: "vmap on a set", tx: []op{opRule(mA, Rule{Family: IPv4, Dispatch: &AddrMatch{Set: mPods.Name}})}, want: unix.EINVAL},
	{name: "lookup longer than the key loaded", tx: []op{opRule(mA, Rule{Family: IPv4, Addr: &AddrMatch{Set: mNamed.Name}})}, want: unix.ENODATA},
	{name: "lookup of a concatenation after its parts", tx: []op{opRule(mA, Rule{Family: IPv4, Named: mNamed.Name, Addr: &AddrMatch{Set: mNamed.Name}})}},
	{name: "jump loop through a map", tx: []op{opRule(mA, dispatchRule)}, want: unix.EMLINK},
	{name: "lookup of a map in a chain it jumps to", tx: []op{opRule(mA, Rule{Family: IPv4, Addr: &AddrMatch{Set: mEgress.Name}})}, want: unix.EMLINK},
	{name: "jump loop made and unmade", tx: []op{opRule(mA, dispatchRule), opChain(opFlushChain, mA)}},
	{name: "jump loop after another error", tx: []op{opRule(mA, dispatchRule), opChain(opFlushChain, mNope)}, want: unix.ENOENT},
	{name: "rule goes to a chain", tx: []op{opRule(mA, Rule{Family: IPv4, Addr: &AddrMatch{Set: mPeers.Name}, Verdict: VerdictGoto, Chain: "b"})}},
	{name: "rule goes to missing chain", tx: []op{opRule(mA, Rule{Verdict: VerdictGoto, Chain: "nope"})}, want: unix.ENOENT},
	{name: "rule goes to a base chain", tx: []op{opRule(mA, Rule{Verdict: VerdictGoto, Chain: "forward"})}, want: unix.EOPNOTSUPP},
	{name: "rule goes to a chain added in the batch", tx: []op{opChain(opAddChain, &Chain{Name: "c"}), opRule(mA, Rule{Verdict: VerdictGoto, Chain: "c"})}},
	{name: "delete chain a rule goes to", tx: []op{opRule(mA, Rule{Verdict: VerdictGoto, Chain: "b"}), opChain(opFlushChain, mB), opChain(opDelChain, mB)}, want: unix.EBUSY},
	{name: "delete chain after flushing the rule that goes to it", tx: []op{opRule(mA, Rule{Verdict: VerdictGoto, Chain: "b"}), opChain(opFlushChain, mA), opChain(opFlushChain, mB), opChain(opDelChain, mB)}},
	{name: "goto loop", tx: []op{opRule(mA, Rule{Verdict: VerdictGoto, Chain: "b"}), opRule(mB, Rule{Verdict: VerdictGoto, Chain: "a"})}, want: unix.EMLINK},
	{name: "IPv6 address looked up in an IPv4 set", tx: []op{opRule(mA, Rule{Family: IPv6, Addr: &AddrMatch{Set: mPods.Name}})}},

	{name: "element for a missing set, after a set added again", tx: []op{opSet(opAddSet, mPods), opAdd(&Set{Name: "nope", Kind: KindPods, Family: IPv4}, addr("10.0.0.2"))}},
	{name: "rule looks up a missing set, after a set added again", tx: []op{opSet(opAddSet, mPeers), opRule(mB, Rule{Family: IPv4, Addr: &AddrMatch{Set: "nope"}})}},
	{name: "element without a verdict for a map, after it was added again", tx: []op{opSet(opAddSet, mEgress), opAdd(&Set{Name: "nope", Kind: KindPods, Family: IPv4}, addr("10.0.0.2"))}, want: unix.EINVAL},
	{name: "add elements to missing set", tx: []op{opAdd(&Set{Name: "nope", Kind: KindPods, Family: IPv4}, addr("10.0.0.2"))}, want: unix.ENOENT},
	{name: "delete elements from missing set", tx: []op{opDel(&Set{Name: "nope", Kind: KindPods, Family: IPv4}, addr("10.0.0.2"))}, want: unix.ENOENT},
	{name: "element of another family", tx: []op{opAdd(mPods, addr("fd00::1"))}, want: unix.EINVAL},
	{name: "element of another family in a concatenation", tx: []op{opAdd(mNamed, Elem{Addr: netip.MustParseAddr("fd00::1"), Proto: 6, Port: 80})}, want: unix.EINVAL},
	{name: "IPv4 element in an IPv6 set", tx: []op{opAdd(mPeers6, rng("10.0.9.0", "10.0.9.255"))}, want: unix.EINVAL},
	{name: "add element again", tx: []op{opAdd(mPods, addr("10.0.0.1"))}},
	{name: "add element twice in one batch", tx: []op{opAdd(mPods, addr("10.0.0.2")), opAdd(mPods, addr("10.0.0.2"))}},
	{name: "map element again", tx: []op{opAdd(mEgress, jump("10.0.0.1", "a"))}},
	{name: "map element again, another verdict", tx: []op{opAdd(mEgress, jump("10.0.0.1", "b"))}, want: unix.EEXIST},
	{name: "map element jumps to missing chain", tx: []op{opAdd(mEgress, jump("10.0.0.2", "nope"))}, want: unix.ENOENT},
	{name: "map element jumps to a base chain", tx: []op{opAdd(mEgress, jump("10.0.0.2", "forward"))}, want: unix.EOPNOTSUPP},
	{name: "delete missing element", tx: []op{opDel(mPods, addr("10.0.0.9"))}, want: unix.ENOENT},
	{name: "delete element twice in one batch", tx: []op{opDel(mPods, addr("10.0.0.1")), opDel(mPods, addr("10.0.0.1"))}, want: unix.ENOENT},
	{name: "delete a map element and add it back", tx: []op{opDel(mEgress, jump("10.0.0.1", "a")), opAdd(mEgress, jump("10.0.0.1", "b"))}},

	{name: "add range again", tx: []op{opAdd(mPeers, rng("10.0.0.0", "10.0.0.255"))}},
	{name: "delete part of a range", tx: []op{opDel(mPeers, rng("10.0.0.0", "10.0.0.127"))}, want: unix.ENOENT},
	{name: "overlapping range", tx: []op{opAdd(mPeers, rng("10.0.0.128", "10.0.1.255"))}, want: unix.EEXIST},
	{name: "range ending inside a range", tx: []op{opAdd(mPeers, rng("9.0.0.0", "10.0.0.127"))}, want: unix.EEXIST},
	{name: "range over a range", tx: []op{opAdd(mPeers, rng("9.0.0.0", "11.0.0.0"))}, want: unix.EEXIST},
	{name: "range inside a range", tx: []op{opAdd(mPeers, rng("10.0.0.16", "10.0.0.31"))}, want: unix.EEXIST},
	{name: "range with the same start, longer", tx: []op{opAdd(mPeers, rng("10.0.0.0", "10.0.1.255"))}, want: unix.EEXIST},
	{name: "range with the same end, earlier start", tx: []op{opAdd(mPeers, rng("9.255.255.0", "10.0.0.255"))}},
	{name: "range with the same start, shorter", tx: []op{opAdd(mPeers, rng("10.0.0.0", "10.0.0.127"))}, want: unix.EEXIST},
	{name: "range between two ranges, touching both", tx: []op{opAdd(mPeers, rng("10.0.2.0", "10.0.2.255")), opAdd(mPeers, rng("10.0.1.0", "10.0.1.255"))}},
	{name: "range from the start of a range held", tx: []op{opAdd(mPeers, rng("10.0.0.0", "10.0.0.0"))}, want: unix.EEXIST},
	{name: "IPv6 range over a range", tx: []op{opAdd(mPeers6, rng("fd00::", "fd00::ffff"))}, want: unix.EEXIST},
	{name: "touching ranges", tx: []op{opAdd(mPeers, rng("10.0.1.0", "10.0.1.255"), rng("9.255.255.0", "9.255.255.255"))}},
	{name: "range to the last address", tx: []op{opAdd(mPeers, rng("255.0.0.0", "255.255.255.255"))}},
	{name: "open range from the start of a range held", tx: []op{opAdd(mPeers, rng("10.0.0.0", "255.255.255.255"))}},
	{name: "range replaced by a longer one", tx: []op{opDel(mPeers, rng("10.0.0.0", "10.0.0.255")), opAdd(mPeers, rng("10.0.0.0", "10.0.1.255"))}},

	{name: "failed midway leaves the table", tx: []op{opChain(opAddChain, &Chain{Name: "z"}), opAdd(mPods, addr("10.0.0.7")), opDel(mPods, addr("10.0.0.9"))}, want: unix.ENOENT},
}

// backendResult runs one case on a backend and returns the table
// afterwards ("" when there is none) and the error.
func backendResult(t *testing.T, b backend, noTable bool, tx []op) (string, error) {
	t.Helper()
	ctx := context.Background()
	reset := &txn{}
	reset.add(op{kind: opAddTable})
	reset.add(op{kind: opDelTable})
	if !noTable {
		for _, o := range base() {
			reset.add(o)
		}
	}
	if err := b.commit(ctx, reset); err != nil {
		t.Fatalf("base: %v", err)
	}
	before := tableText(t, b)
	tt := &txn{}
	for _, o := range tx {
		tt.add(o)
	}
	err := b.commit(ctx, tt)
	after := tableText(t, b)
	if err != nil && after != before {
		t.Errorf("rejected, yet the table changed:\n%s", cmp.Diff(before, after))
	}
	return after, err
}

func tableText(t *testing.T, b backend) string {
	t.Helper()
	rs, err := b.read()
	if errors.Is(err, ErrNoTable) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	rs.Live = false
	return rs.String()
}

// firstRejection returns the first operation a *TxError names, and its
// errno.
func firstRejection(err error) (string, error) {
	var te *TxError
	if !errors.As(err, &te) || len(te.Ops) == 0 {
		return "", err
	}
	return te.Ops[0].Op, te.Ops[0].Err
}

// TestModelRejectsAsKernel: the model accepts and rejects each case as
// the kernel does (the errno, and the operation it names), and holds the
// same table afterwards. Without root only the model runs, against the
// errnos the kernel gave.
func TestModelRejectsAsKernel(t *testing.T) {
	var kern backend
	if os.Geteuid() == 0 {
		_, en := newEnforcer(t)
		kern = en.b
	}
	for _, tc := range modelCases {
		t.Run(tc.name, func(t *testing.T) {
			table, err := backendResult(t, NewModel(), tc.noTable, tc.tx)
			op, errno := firstRejection(err)
			if errno != tc.want {
				t.Errorf("model: %v, want %v", err, tc.want)
			}
			if kern == nil {
				return
			}
			ktable, kerr := backendResult(t, kern, tc.noTable, tc.tx)
			kop, kerrno := firstRejection(kerr)
			if kerrno != tc.want {
				t.Errorf("kernel: %v, want %v", kerr, tc.want)
			}
			if kop != op {
				t.Errorf("the model rejects %q, the kernel %q", op, kop)
			}
			if diff := cmp.Diff(ktable, table); diff != "" {
				t.Errorf("table after the transaction (-kernel +model):\n%s", diff)
			}
		})
	}
}

var (
	modelRandom = flag.Int("model.random", 300, "random transactions of TestModelMatchesKernelRandom")
	modelSeed   = flag.Uint64("model.seed", 1, "seed of TestModelMatchesKernelRandom")
)

// TestModelMatchesKernelRandom (root): random transactions on base, most
// of them wrong somewhere (missing, duplicate and overlapping elements,
// chains still jumped to, sets still looked up, maps jumping anywhere),
// run on the kernel and on the model: both accept or reject them alike,
// naming the same operation with the same errno, and hold the same table
// afterwards.
func TestModelMatchesKernelRandom(t *testing.T) {
	_, en := newEnforcer(t)
	r := rand.New(rand.NewPCG(*modelSeed, 2))
	pick := func(n int) int { return r.IntN(n) }
	starts := []string{"10.0.0.0", "10.0.0.128", "10.0.1.0", "10.0.2.0", "9.255.255.0", "10.0.1.128"}
	ends := []string{"10.0.0.127", "10.0.0.255", "10.0.1.255", "10.0.2.255", "10.0.3.0", "255.255.255.255"}
	chains := []*Chain{mFwd, mA, mB, mNope, {Name: "c"}}
	// (nope reads back as a drops set: Read tells the kinds of
	// counterless sets apart by name.)
	sets := []*Set{mPeers, mPods, mEgress, mNamed, {Name: "nope", Kind: KindDrops, Family: IPv4}}
	randRange := func() Elem {
		for {
			e := rng(starts[pick(len(starts))], ends[pick(len(ends))])
			if !e.End.Less(e.Addr) {
				return e
			}
		}
	}
	randRanges := func() []Elem {
		es := []Elem{randRange()}
		if pick(3) == 0 {
			es = append(es, randRange())
		}
		return es
	}
	randOp := func() op {
		switch pick(12) {
		case 0, 1:
			return opAdd(mPeers, randRanges()...)
		case 2:
			return opDel(mPeers, randRanges()...)
		case 3:
			return opAdd(mPods, addr(fmt.Sprint("10.0.0.", pick(4))))
		case 4:
			return opDel(mPods, addr(fmt.Sprint("10.0.0.", pick(4))))
		case 5:
			return opAdd(mEgress, jump(fmt.Sprint("10.0.0.", pick(3)), chains[pick(len(chains))].Name))
		case 6:
			return opDel(mEgress, jump(fmt.Sprint("10.0.0.", pick(3)), ""))
		case 7:
			return opChain([]opKind{opAddChain, opFlushChain, opDelChain}[pick(3)], chains[pick(len(chains))])
		case 8:
			return opSet([]opKind{opAddSet, opDelSet}[pick(2)], sets[pick(len(sets))])
		case 9:
			rule := []Rule{peersRule, namedRule, dispatchRule, {Family: IPv4, Addr: &AddrMatch{Set: sets[pick(len(sets))].Name}}}[pick(4)]
			return opRule(chains[pick(len(chains))], rule)
		case 10:
			return op{kind: []opKind{opFlushTable, opDelTable, opAddTable}[pick(3)]}
		default:
			return opAdd(mNamed, Elem{Addr: netip.MustParseAddr("10.0.0.1"), Proto: 6, Port: uint16(80 + pick(2))})
		}
	}
	rejected := 0
	for i := range *modelRandom {
		var tx []op
		for n := 1 + pick(4); n > 0; n-- {
			tx = append(tx, randOp())
		}
		table, err := backendResult(t, NewModel(), false, tx)
		ktable, kerr := backendResult(t, en.b, false, tx)
		op, errno := firstRejection(err)
		kop, kerrno := firstRejection(kerr)
		if errno != kerrno || op != kop {
			t.Errorf("transaction %d %q: the model says %v, the kernel %v", i, (&txnOf{tx}).String(), err, kerr)
		}
		if diff := cmp.Diff(ktable, table); diff != "" {
			t.Errorf("transaction %d %q: table afterwards (-kernel +model):\n%s", i, (&txnOf{tx}).String(), diff)
		}
		if kerr != nil {
			rejected++
		}
	}
	t.Logf("%d random transactions, %d rejected", *modelRandom, rejected)
}

// txnOf names a list of operations.
type txnOf struct{ ops []op }

func (x *txnOf) String() string {
	var s []string
	for i := range x.ops {
		o := &x.ops[i]
		s = append(s, o.String())
		for _, e := range o.elems {
			s = append(s, o.set.elemString(e))
		}
	}
	return strings.Join(s, "; ")
}
