package dataplane

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Model is an in-memory `inet palisade` table, a backend that executes
// transactions as the kernel does (in the manner of knftables' Fake): it
// is a model, not a recorder, and rejects what the kernel rejects, with
// the kernel's errno in a *TxError naming the operation, and leaves the
// table unchanged when it does. Every rejection it makes is checked
// against the kernel by TestModelRejectsAsKernel, which runs the same
// transactions on both (the kernel when run as root); each rule below
// cites the case. It keeps set elements as the kernel does (an interval
// is a start and an end element) and reads back through the same
// decoding as Read. TestModelMatchesKernelRandom (root) runs random,
// mostly wrong, transactions on both and finds them agree (18,000 of
// them, kernel 6.18: errno, failing operation and table afterwards).
//
// The model follows the running kernel (6.18), not every kernel: interval
// sets check overlaps as that kernel's rbtree does (model_rbtree.go).
// It does not check what Palisade never sends: expression types beyond
// exprs' own, hooks and priorities beyond Chain.Hook, timeouts, set
// sizes, NLM_F_EXCL. It follows one quirk too (modelTable.set): a
// missing set named by a rule or an element list binds to a set added
// again earlier in the batch, since google/nftables sends set ID 0 and
// the kernel's update of an existing set has ID 0. Palisade never adds
// an existing set again, so its batches never meet it.
type Model struct {
	tab *modelTable // nil: no table
	gen uint32      // ruleset generation: +1 per commit, as NFT_MSG_GETGEN
}

type modelTable struct {
	sets   map[string]*modelSet
	chains map[string]*modelChain
	// readded is the first set of this transaction that was added again
	// while it existed; see set.
	readded string
}

// set returns the set a rule or an element list names, as the kernel
// finds it: by name, or else by the set ID google/nftables sends, always
// 0, which matches a set added again while it existed earlier in the
// batch (the kernel's update of a set keeps no ID): "element for a
// missing set, after a set added again".
func (t *modelTable) set(name string) *modelSet {
	if s := t.sets[name]; s != nil {
		return s
	}
	return t.sets[t.readded]
}

type modelSet struct {
	def *Set // name, kind, family, comment; not the elements
	// elems are the kernel's elements: for a map, the chain each jumps to.
	elems map[modelKey]string
	// tree holds an interval set's elements in the kernel's order
	// (model_rbtree.go); tx is what it remembers within a transaction.
	tree []rbPoint
	tx   rbtreeTx
}

// modelKey is one kernel element: its key bytes, and whether it ends an
// interval.
type modelKey struct {
	key string
	end bool
}

type modelChain struct {
	hook  Hook
	rules []Rule
}

// NewModel returns a model namespace without Palisade's table; see
// NewModelEnforcer.
func NewModel() *Model { return &Model{} }

func (t *modelTable) clone() *modelTable {
	c := &modelTable{sets: make(map[string]*modelSet, len(t.sets)), chains: make(map[string]*modelChain, len(t.chains))}
	for n, s := range t.sets {
		c.sets[n] = &modelSet{def: s.def, elems: maps.Clone(s.elems)}
		for _, q := range s.tree {
			if !q.dead {
				c.sets[n].tree = append(c.sets[n].tree, q)
			}
		}
	}
	for n, ch := range t.chains {
		c.chains[n] = &modelChain{hook: ch.hook, rules: slices.Clone(ch.rules)}
	}
	return c
}

// commit applies the transaction to a copy of the table and keeps the
// copy only if every operation succeeded.
func (m *Model) commit(ctx context.Context, t *txn) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if t.genid != 0 && t.genid != m.gen {
		// The kernel refuses the whole batch (TestPrefetch).
		return &TxError{Ops: []OpError{{Op: "batch", Err: unix.ERESTART}}}
	}
	var tab *modelTable
	if m.tab != nil {
		tab = m.tab.clone()
	}
	// The kernel validates jumps at the commit; if that fails it runs
	// the batch again validating after each rule and element added, and
	// names the first that made the table invalid.
	firstTooDeep := -1
	for i := range t.batch {
		var err error
		o := &t.batch[i]
		if tab, err = tab.apply(o); err != nil {
			return &TxError{Ops: []OpError{{Op: t.ops[i], Err: err}}}
		}
		if firstTooDeep < 0 && (o.kind == opAddRule || o.kind == opAddElems) && tab.tooDeep() {
			firstTooDeep = i
		}
	}
	if firstTooDeep >= 0 && tab.tooDeep() {
		return &TxError{Ops: []OpError{{Op: t.ops[firstTooDeep], Err: unix.EMLINK}}}
	}
	m.tab = tab
	m.gen++
	return nil
}

// apply executes one operation on t (nil: no table) and returns the table
// after it, or the kernel's errno. The reasons cite the cases of
// TestModelRejectsAsKernel that show the kernel does the same.
func (t *modelTable) apply(o *op) (*modelTable, error) {
	if o.kind == opAddTable {
		if t == nil {
			t = &modelTable{sets: map[string]*modelSet{}, chains: map[string]*modelChain{}}
		}
		return t, nil // adding an existing table changes nothing ("add table twice")
	}
	if t == nil {
		return nil, unix.ENOENT // "no table"
	}
	switch o.kind {
	case opDelTable:
		return nil, nil // with everything in it ("delete table with content")
	case opFlushTable:
		for _, c := range t.chains {
			c.rules = nil
		}
	case opAddSet:
		if s := t.sets[o.set.Name]; s != nil {
			if kernelSetDef(s.def) != kernelSetDef(o.set) {
				return t, unix.EEXIST // "add set again, another type"
			}
			if t.readded == "" {
				t.readded = o.set.Name
			}
			return t, nil // "add set again"
		}
		t.sets[o.set.Name] = &modelSet{def: o.set, elems: map[modelKey]string{}}
	case opDelSet:
		if t.sets[o.set.Name] == nil {
			return t, unix.ENOENT // "delete missing set"
		}
		if t.setUsed(o.set.Name) {
			return t, unix.EBUSY // "delete set used by a rule"
		}
		delete(t.sets, o.set.Name)
	case opAddChain:
		if c := t.chains[o.chain.Name]; c != nil {
			if c.hook != o.chain.Hook && o.chain.Hook != HookNone {
				return t, unix.EOPNOTSUPP // "add chain again, as a base chain"
			}
			return t, nil // "add chain again"
		}
		t.chains[o.chain.Name] = &modelChain{hook: o.chain.Hook}
	case opFlushChain:
		c := t.chains[o.chain.Name]
		if c == nil {
			return t, unix.ENOENT // "flush missing chain"
		}
		c.rules = nil
	case opDelChain:
		if t.chains[o.chain.Name] == nil {
			return t, unix.ENOENT // "delete missing chain"
		}
		if t.chainJumpedTo(o.chain.Name) {
			return t, unix.EBUSY // "delete chain a map element jumps to"
		}
		delete(t.chains, o.chain.Name) // its rules with it ("delete chain with rules")
	case opAddRule:
		c := t.chains[o.chain.Name]
		if c == nil {
			return t, unix.ENOENT // "rule in missing chain"
		}
		r, err := t.checkRule(o.rule)
		if err != nil {
			return t, err
		}
		c.rules = append(c.rules, r)
	case opAddElems:
		s := t.set(o.set.Name)
		if s == nil {
			return t, unix.ENOENT // "add elements to missing set"
		}
		return t, t.addElems(s, o.set, o.elems)
	case opDelElems:
		s := t.set(o.set.Name)
		if s == nil {
			return t, unix.ENOENT // "delete elements from missing set"
		}
		kes := o.set.nftElems(o.elems, true)
		if s.def.interval() {
			return t, s.delRanges(kes)
		}
		for _, ke := range kes {
			k := modelKey{key: string(ke.Key)}
			if _, ok := s.elems[k]; !ok {
				return t, unix.ENOENT // "delete missing element"
			}
			delete(s.elems, k)
		}
	default:
		return t, unix.EINVAL
	}
	return t, nil
}

// checkRule checks a rule's bytecode as the kernel does, expression by
// expression: a lookup's set must exist ("rule looks up missing set");
// every register a lookup or comparison reads must have been written
// before by the rule (a lookup reads the set's key length: "lookup longer
// than the key loaded"; the kernel tracks initialised registers since
// 6.x); a lookup with a verdict (vmap) needs a map ("vmap on a set").
func (t *modelTable) checkRule(r *Rule) (Rule, error) {
	var inited [20]bool // the 32-bit registers (words) 0-19
	words := func(reg uint32, n int) []bool {
		w := int(reg) * 4 // NFT_REG_1..4: 16-byte registers
		if reg >= 8 {
			w = int(reg) - 8 + 4 // NFT_REG32_00..15
		}
		end := min(w+(n+3)/4, len(inited))
		return inited[min(w, end):end]
	}
	load := func(reg uint32, n int) error {
		for _, ok := range words(reg, n) {
			if !ok {
				return unix.ENODATA
			}
		}
		return nil
	}
	store := func(reg uint32, n int) {
		for i := range words(reg, n) {
			words(reg, n)[i] = true
		}
	}
	for _, x := range r.exprs() {
		switch x := x.(type) {
		case *expr.Meta:
			store(x.Register, 4)
		case *expr.Ct:
			store(x.Register, 4)
		case *expr.Payload:
			store(x.DestRegister, int(x.Len))
		case *expr.Bitwise:
			if err := load(x.SourceRegister, int(x.Len)); err != nil {
				return Rule{}, err
			}
			store(x.DestRegister, int(x.Len))
		case *expr.Cmp:
			if err := load(x.Register, len(x.Data)); err != nil {
				return Rule{}, err
			}
		case *expr.Lookup:
			s := t.set(x.SetName)
			if s == nil {
				return Rule{}, unix.ENOENT
			}
			if err := load(x.SourceRegister, int(s.def.nftSet(nil, 0).KeyType.Bytes)); err != nil {
				return Rule{}, err
			}
			if x.IsDestRegSet && !s.def.IsMap() {
				return Rule{}, unix.EINVAL
			}
		case *expr.Verdict:
			if x.Kind != expr.VerdictGoto && x.Kind != expr.VerdictJump {
				continue
			}
			c := t.chains[x.Chain]
			if c == nil {
				return Rule{}, unix.ENOENT // "rule goes to missing chain"
			}
			if c.hook != HookNone {
				return Rule{}, unix.EOPNOTSUPP // "rule goes to a base chain"
			}
		}
	}
	// The rule as the kernel holds it: a missing set's name is the set
	// found by ID ("rule looks up a missing set, after a set added
	// again").
	out := *r
	bound := func(name string) string {
		if name == "" || t.sets[name] != nil {
			return name
		}
		return t.readded
	}
	for _, m := range []**AddrMatch{&out.Addr, &out.NotAddr, &out.Dispatch} {
		if *m != nil {
			c := **m
			c.Set = bound(c.Set)
			*m = &c
		}
	}
	out.Named, out.Self = bound(out.Named), bound(out.Self)
	return out, nil
}

// jumpStack is NFT_JUMP_STACK_SIZE: the kernel validates chains from
// each base chain through every jump, and fails with EMLINK at this
// depth, which a loop reaches ("jump loop through a map", "lookup of a
// map in a chain it jumps to").
const jumpStack = 16

// tooDeep reports whether a base chain reaches a loop of jumps, or a
// chain jumpStack jumps away. A jump is an element of a verdict map that
// a rule of the chain looks up (with or without vmap), or a rule's goto.
func (t *modelTable) tooDeep() bool {
	if t == nil {
		return false
	}
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	depth := map[string]int{} // longest jump path from a chain, once done
	var visit func(name string) bool
	visit = func(name string) bool {
		switch state[name] {
		case onPath:
			return true // a loop
		case done:
			return false
		}
		state[name] = onPath
		c := t.chains[name]
		for i := range c.rules {
			if to := c.rules[i].Chain; c.rules[i].Verdict == VerdictGoto && t.chains[to] != nil {
				if visit(to) {
					return true
				}
				depth[name] = max(depth[name], depth[to]+1)
			}
			for _, set := range ruleSets(&c.rules[i]) {
				s := t.sets[set]
				if s == nil || !s.def.IsMap() {
					continue
				}
				for _, to := range s.elems {
					if t.chains[to] == nil {
						continue
					}
					if visit(to) {
						return true
					}
					depth[name] = max(depth[name], depth[to]+1)
				}
			}
		}
		state[name] = done
		return false
	}
	for name, c := range t.chains {
		if c.hook != HookNone && (visit(name) || depth[name] >= jumpStack) {
			return true
		}
	}
	return false
}

// kernelSetDef is what the kernel compares when a set is added again:
// key type and length, flags, data type, expressions (a counter). The
// comment is user data, not compared.
func kernelSetDef(s *Set) string {
	ns := s.nftSet(nil, 0)
	return fmt.Sprintf("%s/%d/%v/%v/%v/%v", ns.KeyType.Name, ns.KeyType.Bytes, ns.Interval, ns.IsMap, ns.Counter, ns.Concatenation)
}

// ruleSets names the sets and maps a rule looks up.
func ruleSets(r *Rule) []string {
	var out []string
	for _, m := range []*AddrMatch{r.Addr, r.NotAddr, r.Dispatch} {
		if m != nil {
			out = append(out, m.Set)
		}
	}
	for _, n := range []string{r.Named, r.Self} {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

func (t *modelTable) setUsed(name string) bool {
	for _, c := range t.chains {
		for i := range c.rules {
			if slices.Contains(ruleSets(&c.rules[i]), name) {
				return true
			}
		}
	}
	return false
}

func (t *modelTable) chainJumpedTo(name string) bool {
	for _, c := range t.chains {
		for i := range c.rules {
			if c.rules[i].Verdict == VerdictGoto && c.rules[i].Chain == name {
				return true // "delete chain a rule goes to"
			}
		}
	}
	for _, s := range t.sets {
		for _, jump := range s.elems {
			if jump == name {
				return true
			}
		}
	}
	return false
}

// addElems adds elements as the op's set definition encodes them to the
// held set s.
func (t *modelTable) addElems(s *modelSet, def *Set, es []Elem) error {
	klen := int(s.def.nftSet(nil, 0).KeyType.Bytes)
	kes := def.nftElems(es, false)
	for _, ke := range kes {
		if len(ke.Key) != klen {
			return unix.EINVAL // "element of another family"
		}
		if s.def.IsMap() != (ke.VerdictData != nil) {
			return unix.EINVAL // "element without a verdict for a map, after it was added again"
		}
		if v := ke.VerdictData; v != nil {
			c := t.chains[v.Chain]
			if c == nil {
				return unix.ENOENT // "map element jumps to missing chain"
			}
			if c.hook != HookNone {
				return unix.EOPNOTSUPP // "map element jumps to a base chain"
			}
		}
	}
	if s.def.interval() {
		return s.addRanges(kes)
	}
	for _, ke := range kes {
		k := modelKey{key: string(ke.Key)}
		jump := ""
		if ke.VerdictData != nil {
			jump = ke.VerdictData.Chain
		}
		if old, ok := s.elems[k]; ok && old != jump {
			return unix.EEXIST // "map element again, another verdict"
		}
		s.elems[k] = jump // the same element again changes nothing ("add element again")
	}
	return nil
}

// kernelElems returns the set's elements as the kernel lists them.
func (s *modelSet) kernelElems() []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(s.elems))
	for k, jump := range s.elems {
		e := nftables.SetElement{Key: []byte(k.key), IntervalEnd: k.end}
		if s.def.IsMap() {
			// As GetSetElements gives it (NFTA_DATA_VERDICT's
			// attributes), for VerdictChain.
			ae := netlink.NewAttributeEncoder()
			ae.String(unix.NFTA_VERDICT_CHAIN, jump)
			e.Val, _ = ae.Encode()
		}
		if s.def.Kind == KindDrops {
			e.Counter = &expr.Counter{}
		}
		out = append(out, e)
	}
	return out
}

// read returns the table as Read would (ErrNoTable when there is none).
// Counters are zero; Live is not set.
func (m *Model) read() (*Ruleset, error) {
	if m.tab == nil {
		return nil, ErrNoTable
	}
	rs := &Ruleset{Table: TableName}
	for _, s := range m.tab.sets {
		def := *s.def
		def.Elems, _ = decodeElems(&def, s.kernelElems())
		def.Counters, def.key = nil, ""
		rs.Sets = append(rs.Sets, &def)
	}
	for name, c := range m.tab.chains {
		rs.Chains = append(rs.Chains, &Chain{Name: name, Hook: c.hook, Rules: slices.Clone(c.rules)})
	}
	sortRuleset(rs)
	return rs, nil
}

// held names the chains and sets, as the kernel backend does.
func (m *Model) held() (*heldObjects, error) {
	if m.tab == nil {
		return nil, nil
	}
	h := &heldObjects{}
	for _, name := range slices.Sorted(maps.Keys(m.tab.chains)) {
		h.chains = append(h.chains, nftChain(nil, &Chain{Name: name, Hook: m.tab.chains[name].hook}))
	}
	h.sets = slices.Sorted(maps.Keys(m.tab.sets))
	return h, nil
}

// Ruleset returns the table as the kernel would list it (nil when there
// is none), in the order Compile produces: equal to the Ruleset last
// applied when the model holds exactly that.
func (m *Model) Ruleset() *Ruleset {
	rs, _ := m.read()
	return rs
}

// Dump renders the table as `nft list table inet palisade` prints it, or
// "" when there is none.
func (m *Model) Dump() string {
	if rs := m.Ruleset(); rs != nil {
		return rs.String()
	}
	return ""
}
