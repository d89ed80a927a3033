package dataplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Stats counts what one Apply sent to the kernel. Elements count the
// ruleset's elements (a peer range is one, though the kernel stores it
// as two).
type Stats struct {
	// Full is set when the whole table was replaced (first Apply, or the
	// first after an error).
	Full            bool
	SetsAdded       int
	SetsDeleted     int
	ChainsAdded     int
	ChainsDeleted   int
	ChainsFlushed   int // existing chains whose rules were replaced
	RulesAdded      int
	ElementsAdded   int
	ElementsDeleted int
	// Messages is the number of netlink messages in the transaction.
	Messages int
	Duration time.Duration
}

// Empty reports whether the Apply changed nothing.
func (s Stats) Empty() bool { return s.Messages == 0 }

func (s Stats) String() string {
	kind := "incremental"
	if s.Full {
		kind = "full"
	}
	return fmt.Sprintf("%s: sets +%d -%d, chains +%d -%d ~%d, rules +%d, elements +%d -%d, %d messages in %s",
		kind, s.SetsAdded, s.SetsDeleted, s.ChainsAdded, s.ChainsDeleted, s.ChainsFlushed,
		s.RulesAdded, s.ElementsAdded, s.ElementsDeleted, s.Messages, s.Duration.Round(time.Microsecond))
}

// Enforcer programs rulesets into the kernel of one network namespace,
// each Apply in one atomic nftables transaction. It is not safe for
// concurrent use.
type Enforcer struct {
	nsPath string
	nsFile *os.File // nil: the current network namespace
	table  *nftables.Table
	// b executes the transactions: the kernel of the namespace, or a
	// Model in tests.
	b backend
	// last is the ruleset the kernel holds, as far as we know; nil makes
	// the next Apply read the kernel's table first.
	last *Ruleset
	// pre, when set, delivers the table read by Prefetch.
	pre chan prefetched
}

// prefetched is a table read ahead of the first Apply, and the ruleset
// generation it was read at.
type prefetched struct {
	rs  *Ruleset
	gen uint32
	err error
}

// Prefetch reads the kernel's table in the background, for the next Apply
// to diff against if it comes before anything else has been applied: an
// agent starting calls it, so that the read overlaps with listing the
// cluster. That Apply is sent on the condition that no nftables
// transaction committed in the namespace since the read (the kernel checks
// the generation); if one did, Apply reads the table again and retries.
func (e *Enforcer) Prefetch() {
	if _, ok := e.b.(*kernel); !ok {
		return // a Model: nothing to overlap
	}
	ch := make(chan prefetched, 1)
	e.pre = ch
	path := e.nsPath
	go func() {
		rs, gen, err := readAtGeneration(path)
		ch <- prefetched{rs, gen, err}
	}()
}

// New returns an enforcer for the network namespace at netnsPath (such
// as /run/netns/NAME or /proc/PID/ns/net), or the current one when
// netnsPath is "". Nothing is sent to the kernel until Apply.
func New(netnsPath string) (*Enforcer, error) {
	f, err := openNetNS(netnsPath)
	if err != nil {
		return nil, err
	}
	table := &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	return &Enforcer{nsPath: netnsPath, nsFile: f, table: table, b: &kernel{nsPath: netnsPath, nsFile: f, table: table}}, nil
}

// NewModelEnforcer returns an enforcer whose transactions go to m, an
// in-memory table that accepts and rejects them as the kernel does: for
// tests without root. Prefetch does nothing on it.
func NewModelEnforcer(m *Model) *Enforcer {
	return &Enforcer{table: &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}, b: m}
}

// Close releases the namespace handle. The rules stay in force.
func (e *Enforcer) Close() error {
	if e.nsFile != nil {
		err := e.nsFile.Close()
		e.nsFile = nil
		return err
	}
	return nil
}

// Apply makes the kernel's table equal to rs in one transaction. The
// first Apply (and the first after a failure) reads the table back and
// sends the differences from what it held; only an absent or foreign table
// (a set of another type, a base chain that is not Palisade's) is rebuilt
// whole. Later ones send only the differences from the last applied
// ruleset. On error the kernel keeps the previous ruleset whole
// (a *TxError names what it rejected). rs must not be modified
// afterwards: the enforcer keeps it.
func (e *Enforcer) Apply(ctx context.Context, rs *Ruleset) (Stats, error) {
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	prev := e.last
	var genid uint32 // the generation prev was read at, when prefetched
	if prev == nil && e.pre != nil {
		p := <-e.pre
		e.pre = nil
		if p.err == nil {
			prev, genid = p.rs, p.gen
		}
	}
	if prev == nil {
		// After a start or a failure, diff against what the kernel holds:
		// a restart then changes only what moved. Replacing a table in
		// one transaction (even keeping its base chains) let a denied
		// connection through, once in hundreds of replacements, in
		// internal/lab TestFullReplaceNeverOpens; the diff never did.
		held, err := e.b.read()
		switch {
		case err == nil:
			prev = held
		case !errors.Is(err, ErrNoTable):
			return Stats{}, fmt.Errorf("read table inet %s: %w", TableName, err)
		}
	}
	var tx *txn
	if prev != nil && prev.Table == rs.Table {
		tx = e.newTxn()
		if !tx.diff(prev, rs) {
			tx = nil
		}
	}
	if tx == nil {
		held, err := e.b.held()
		if err != nil {
			return Stats{}, fmt.Errorf("read table inet %s: %w", TableName, err)
		}
		tx = e.newTxn()
		tx.full(rs, held)
	}
	st := tx.stats
	st.Messages = len(tx.batch)
	if len(tx.batch) == 0 {
		if genid != 0 {
			// Nothing to send, but only if nothing changed since the read.
			if g, err := generation(e.nsFile); err != nil || g != genid {
				return e.Apply(ctx, rs) // e.last and e.pre are nil: reads again
			}
		}
		e.last = rs
		st.Duration = time.Since(start)
		return st, nil
	}
	if !st.Full {
		tx.genid = genid // a full rebuild reads the kernel itself
	}
	err := e.b.commit(ctx, tx)
	st.Duration = time.Since(start)
	if err != nil {
		e.last = nil
		if genid != 0 && errors.Is(err, unix.ERESTART) {
			// The table may have changed since the prefetch: read it
			// again and diff from that.
			return e.Apply(ctx, rs)
		}
		return st, err
	}
	e.last = rs
	return st, nil
}

// Delete removes the table, if present, and forgets the applied state.
func (e *Enforcer) Delete(ctx context.Context) error {
	tx := e.newTxn()
	// Adding first makes the delete succeed when there is no table.
	tx.add(op{kind: opAddTable})
	tx.add(op{kind: opDelTable})
	e.last = nil
	if err := e.b.commit(ctx, tx); err != nil {
		return fmt.Errorf("delete table inet %s: %w", TableName, err)
	}
	return nil
}

func (e *Enforcer) newTxn() *txn { return &txn{} }

// Last returns the ruleset last applied successfully, or nil.
func (e *Enforcer) Last() *Ruleset { return e.last }

// txn is one transaction as the Enforcer decides it, for a backend to
// execute all or none.
type txn struct {
	batch []op
	// ops names the operations (op.String), one per operation of batch.
	ops   []string
	stats Stats
	// genid, when not 0, makes the commit conditional on the namespace's
	// ruleset generation (see sendBatch).
	genid uint32
}

func (t *txn) add(o op) {
	t.batch = append(t.batch, o)
	t.ops = append(t.ops, o.String())
}

func (t *txn) addSet(s *Set) {
	t.add(op{kind: opAddSet, set: s})
	t.stats.SetsAdded++
}

func (t *txn) addChain(c *Chain) {
	t.add(op{kind: opAddChain, chain: c})
	t.stats.ChainsAdded++
}

func (t *txn) addElems(s *Set, es []Elem) {
	for _, chunk := range chunkElems(s, es) {
		t.add(op{kind: opAddElems, set: s, elems: chunk})
	}
	t.stats.ElementsAdded += len(es)
}

func (t *txn) delElems(s *Set, es []Elem) {
	for _, chunk := range chunkElems(s, es) {
		t.add(op{kind: opDelElems, set: s, elems: chunk})
	}
	t.stats.ElementsDeleted += len(es)
}

func (t *txn) addRules(c *Chain) {
	for i := range c.Rules {
		t.add(op{kind: opAddRule, chain: c, rule: &c.Rules[i]})
		t.stats.RulesAdded++
	}
}

// full makes the table equal to rs whatever it held, in one transaction,
// without ever deleting a base chain that is already right: deleting and
// re-adding a base chain re-registers its netfilter hook, and a test
// (internal/lab TestFullReplaceNeverOpens) saw a denied connection get
// through in that moment. So: add the table (a no-op when it exists),
// flush every rule, delete every set and every other chain, and build the
// rest again; the base chains' new rules take effect at the same commit.
func (t *txn) full(rs *Ruleset, held *heldObjects) {
	t.stats.Full = true
	t.add(op{kind: opAddTable})
	keep := map[string]bool{}
	if held != nil {
		// Rules go first (sets and chains in use cannot be deleted), then
		// every set and map (map entries hold the chains they jump to),
		// then the chains.
		t.add(op{kind: opFlushTable})
		for _, name := range held.sets {
			t.add(op{kind: opDelSet, set: &Set{Name: name}})
			t.stats.SetsDeleted++
		}
		want := map[string]*nftables.Chain{}
		for _, c := range rs.Chains {
			if c.Hook != HookNone {
				want[c.Name] = nftChain(nil, c)
			}
		}
		for _, c := range held.chains {
			if w := want[c.Name]; w != nil && sameBaseChain(w, c) {
				keep[c.Name] = true
				continue
			}
			t.add(op{kind: opDelChain, chain: &Chain{Name: c.Name}})
			t.stats.ChainsDeleted++
		}
	}
	for _, s := range rs.Sets {
		t.addSet(s)
	}
	for _, c := range rs.Chains {
		if keep[c.Name] {
			continue
		}
		t.addChain(c)
	}
	for _, c := range rs.Chains {
		t.addRules(c)
	}
	for _, s := range rs.Sets {
		t.addElems(s, s.Elems)
	}
}

// sameBaseChain reports whether a chain in the kernel is the base chain
// want: same type, hook, priority and policy.
func sameBaseChain(want, got *nftables.Chain) bool {
	return got.Hooknum != nil && got.Priority != nil && got.Policy != nil &&
		got.Type == want.Type && *got.Hooknum == *want.Hooknum &&
		*got.Priority == *want.Priority && *got.Policy == *want.Policy
}

// heldObjects names what Palisade's table holds in the kernel.
type heldObjects struct {
	chains []*nftables.Chain
	sets   []string
}

// held lists the chains and sets of Palisade's table in the kernel; nil
// when there is no table.
func (k *kernel) held() (*heldObjects, error) {
	var opts []nftables.ConnOption
	if k.nsFile != nil {
		opts = append(opts, nftables.WithNetNSFd(int(k.nsFile.Fd())))
	}
	conn, err := nftables.New(opts...)
	if err != nil {
		return nil, err
	}
	if found, err := hasTable(conn); err != nil || !found {
		return nil, err
	}
	h := &heldObjects{}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, c := range chains {
		if c.Table != nil && c.Table.Name == TableName {
			h.chains = append(h.chains, c)
		}
	}
	sets, err := readSets(k.nsFile)
	if err != nil {
		return nil, err
	}
	for _, st := range sets {
		h.sets = append(h.sets, st.Name)
	}
	return h, nil
}

// diff queues the changes from old to new and reports whether it could;
// false asks for a full replace (a set changed its type, or a base chain
// changed).
func (t *txn) diff(old, new *Ruleset) bool {
	oldSets := make(map[string]*Set, len(old.Sets))
	for _, s := range old.Sets {
		oldSets[s.Name] = s
	}
	newSets := make(map[string]*Set, len(new.Sets))
	for _, s := range new.Sets {
		newSets[s.Name] = s
		if o := oldSets[s.Name]; o != nil && !o.sameDef(s) {
			return false
		}
	}
	oldChains := make(map[string]*Chain, len(old.Chains))
	for _, c := range old.Chains {
		oldChains[c.Name] = c
	}
	newChains := make(map[string]*Chain, len(new.Chains))
	for _, c := range new.Chains {
		newChains[c.Name] = c
		if o := oldChains[c.Name]; o != nil && o.Hook != c.Hook {
			return false
		}
	}
	for _, c := range old.Chains {
		if c.Foreign || (c.Hook != HookNone && newChains[c.Name] == nil) {
			return false
		}
	}

	// 1. New sets and chains, so that rules and map elements can name them.
	for _, s := range new.Sets {
		if oldSets[s.Name] == nil {
			t.addSet(s)
		}
	}
	for _, c := range new.Chains {
		if oldChains[c.Name] == nil {
			t.addChain(c)
		}
	}
	// 2. Element deletes first: map entries leave chains about to go, and
	// old ranges make room for new ones that overlap them.
	type change struct {
		set      *Set
		add, del []Elem
	}
	var changes []change
	for _, s := range new.Sets {
		o := oldSets[s.Name]
		if o == nil {
			changes = append(changes, change{set: s, add: s.Elems})
			continue
		}
		if o == s {
			continue // kept from the last ruleset (Compiler's cache)
		}
		add, del := diffElems(o.Elems, s.Elems)
		if len(add)+len(del) > 0 {
			changes = append(changes, change{set: s, add: add, del: del})
		}
	}
	for _, ch := range changes {
		t.delElems(ch.set, ch.del)
	}
	// 3. Rules: new chains filled, changed chains flushed and refilled.
	for _, c := range new.Chains {
		o := oldChains[c.Name]
		switch {
		case o == nil:
			t.addRules(c)
		case o == c:
			// kept from the last ruleset (Compiler's cache)
		case !sameRules(o.Rules, c.Rules):
			t.add(op{kind: opFlushChain, chain: c})
			t.stats.ChainsFlushed++
			t.addRules(c)
		}
	}
	// 4. Element adds, now that every chain a map entry jumps to exists.
	for _, ch := range changes {
		t.addElems(ch.set, ch.add)
	}
	// 5. Stale chains (no map entry jumps to them any more), then stale
	// sets (no rule names them any more).
	// All flushed before any is deleted: a stale chain may goto another.
	for _, c := range old.Chains {
		if newChains[c.Name] == nil {
			t.add(op{kind: opFlushChain, chain: c})
		}
	}
	for _, c := range old.Chains {
		if newChains[c.Name] == nil {
			t.add(op{kind: opDelChain, chain: c})
			t.stats.ChainsDeleted++
		}
	}
	for _, s := range old.Sets {
		if newSets[s.Name] == nil {
			t.add(op{kind: opDelSet, set: s})
			t.stats.SetsDeleted++
		}
	}
	return true
}

func sameRules(a, b []Rule) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].equal(&b[i]) {
			return false
		}
	}
	return true
}

// equal reports whether r and o are the same rule (counter values aside).
func (r *Rule) equal(o *Rule) bool {
	return r.Family == o.Family && r.CtEstablished == o.CtEstablished &&
		ptrEqual(r.Addr, o.Addr) && ptrEqual(r.NotAddr, o.NotAddr) && r.Self == o.Self && ptrEqual(r.Port, o.Port) && r.ICMPv6 == o.ICMPv6 &&
		r.Named == o.Named && ptrEqual(r.Dispatch, o.Dispatch) && r.Counter == o.Counter &&
		ptrEqual(r.Log, o.Log) && r.Verdict == o.Verdict && r.Chain == o.Chain && r.Comment == o.Comment && r.Raw == o.Raw
}

func ptrEqual[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// diffElems returns the elements of b not in a, and of a not in b.
func diffElems(a, b []Elem) (add, del []Elem) {
	if len(a) == len(b) {
		if len(a) == 0 || &a[0] == &b[0] {
			return nil, nil // the same elements (a set kept from the cache)
		}
		same := true
		for i := range a {
			if a[i] != b[i] {
				same = false
				break
			}
		}
		if same {
			return nil, nil
		}
	}
	// Both are sorted: merge.
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] == b[j]:
			i++
			j++
		case elemLess(a[i], b[j]):
			del = append(del, a[i])
			i++
		default:
			add = append(add, b[j])
			j++
		}
	}
	del = append(del, a[i:]...)
	add = append(add, b[j:]...)
	return add, del
}
