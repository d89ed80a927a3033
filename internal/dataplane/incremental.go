package dataplane

import (
	"slices"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"go4.org/netipx"
)

// Compiler compiles one node's ruleset incrementally: it keeps, per
// policy and direction, the rules of the last compile and the sets they
// name, and recompiles only the policies that the engine's Changes name (plus,
// conservatively, those isolating a local pod that changed, and all of
// them when the address families of the local pods change). The rest of
// the ruleset (maps, pod groups and their chains, the base chains and the
// unknown-pod guard's sets) is rebuilt every time: it is cheap. The output is the same as Compile's; sets kept from the
// cache are the same *Set, with the same element slice, as in the
// previous Ruleset, which lets Enforcer.Apply skip them without
// comparing elements.
//
// Every Changes returned by the engine's TakeChanges must reach Compile,
// in order; a Compiler is bound to one engine. It is not safe for
// concurrent use.
type Compiler struct {
	node  string
	opts  Options
	cache map[polDir]*polEntry
	// shared are the shared sets of the last compile, by name: one
	// recomputed with the same elements is replaced by the old *Set.
	shared map[string]*Set
	fams   []Family
	// iso are the isolating policies of each local pod at the last
	// compile.
	iso map[model.Key]*[2][]*engine.Policy
	// Recompiled counts policy-directions compiled (not taken from the
	// cache) by the last Compile.
	Recompiled int
	// cl caches the cluster policies' rules and sets like cache; any
	// change but a NetworkPolicy's empties it (see Compile).
	cl map[clusterDir]*polEntry
	// ClusterRecompiled counts cluster policy-directions compiled by the
	// last Compile.
	ClusterRecompiled int
	// chains are the pod-group chains of the last compile, by name.
	chains map[string]*keptChain
}

// keptChain is a pod-group chain and the cache entries of the policies
// it was built from, in order.
type keptChain struct {
	chain *Chain
	from  []*polEntry
}

// polEntry is the compiled form of one policy in one direction: its
// rules and the sets they name, in the order they were made.
type polEntry struct {
	rules []Rule
	sets  []*Set
}

// NewCompiler returns an incremental compiler for node.
func NewCompiler(node string, opts Options) *Compiler {
	return &Compiler{node: node, opts: opts, cache: map[polDir]*polEntry{}}
}

// Compile returns the node's ruleset for the state of e, equal to
// Compile(e, node, opts); ch is what changed in e since the last call (the
// result of e.TakeChanges()). The first call compiles everything. The
// Ruleset returned shares its peer and named-port sets with later ones:
// none of it may be modified.
func (cc *Compiler) Compile(e *engine.Engine, ch engine.Changes) *Ruleset {
	for k := range ch.Policies {
		cc.invalidate(k)
	}
	// A local pod that changed (or was local before): the policies that
	// isolate it now and did before resolve named ports on it. The
	// engine names them too; this is the belt to its braces.
	for k := range ch.Pods {
		if iso := cc.iso[k]; iso != nil {
			for _, pols := range iso {
				for _, p := range pols {
					cc.invalidate(p.Key)
				}
			}
		}
		if p := e.Pod(k); p != nil && p.Node == cc.node {
			for _, dir := range directions {
				for _, pol := range e.Isolating(k, dir) {
					cc.invalidate(pol.Key)
				}
			}
		}
	}
	if len(ch.Nodes) > 0 && len(cc.cache) > 0 {
		// No policy's rules read nodes (the unknown-pod guard reads this
		// node's pod CIDRs, but its sets and rules are rebuilt every
		// time, with the maps); start afresh anyway, it is rare.
		clear(cc.cache)
	}
	// Cluster policies' peers are pods, namespaces and nodes matched on
	// the fly (the engine keeps no shared selectors for them), and their
	// named ports resolve on any pod: any such change recompiles all of
	// them. They are few; a NetworkPolicy's change alone keeps them.
	if ch.ClusterPolicies || len(ch.Pods) > 0 || len(ch.Namespaces) > 0 || len(ch.Nodes) > 0 {
		clear(cc.cl)
	}
	// The maps are sized as last time: growing them from empty was a fifth
	// of what one policy's change allocated at 10k policies.
	c := &compiler{
		inc:     cc,
		e:       e,
		node:    cc.node,
		opts:    cc.opts,
		sets:    make(map[string]*Set, len(cc.shared)),
		used:    make(map[polDir]*polEntry, len(cc.cache)),
		chains:  make(map[string]*keptChain, len(cc.chains)),
		ranges:  map[string]*[2][]netipx.IPRange{},
		iso:     make(map[model.Key]*[2][]*engine.Policy, len(cc.iso)),
		clRules: map[clusterDir][]Rule{},
		clUsed:  map[clusterDir]*polEntry{},
	}
	return c.compile()
}

func (cc *Compiler) invalidate(k model.Key) {
	delete(cc.cache, polDir{k, model.Ingress})
	delete(cc.cache, polDir{k, model.Egress})
}

// prepare runs once the local pods' families are known: rules and sets
// of each policy depend on them.
func (cc *Compiler) prepare(c *compiler) {
	if !slices.Equal(cc.fams, c.fams) {
		clear(cc.cache)
		clear(cc.cl)
	}
	cc.fams = slices.Clone(c.fams)
}

// finish keeps what this compile used: entries of policies no longer
// isolating a local pod are dropped.
func (cc *Compiler) finish(c *compiler) {
	n := 0
	for pk, ent := range c.used {
		if cc.cache[pk] != ent {
			n++
		}
	}
	cc.Recompiled = n
	cc.ClusterRecompiled = 0
	for k, ent := range c.clUsed {
		if cc.cl[k] != ent {
			cc.ClusterRecompiled++
		}
	}
	cc.cl = c.clUsed
	cc.cache = c.used
	cc.chains = c.chains
	cc.iso = c.iso
	cc.shared = c.sets // every policy set is a shared one
}
