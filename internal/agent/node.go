// Package agent runs enforcement for nodes: it turns the engine's IR into
// each node's nftables ruleset and applies it through the dataplane. The
// lab drives a Node from its manifest store; the Kubernetes node daemon
// (palisade agent) runs an Agent: the reconcile loop that takes events
// from a Source (informers, in internal/kube), applies them to the engine,
// syncs the kernel in coalesced transactions, and serves metrics, deny
// logs and conntrack cleanup. Either way, the same code programs the
// kernel.
//
// agent imports model, engine and dataplane, and netlink for NFLOG and
// conntrack; never client-go (internal/kube adapts the API to a Source).
package agent

import (
	"context"
	"fmt"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
)

// Node enforces policy for the pods of one node, in the network namespace
// where that node forwards their traffic. It is not safe for concurrent use.
type Node struct {
	name  string
	netns string
	opts  dataplane.Options
	enf   *dataplane.Enforcer
	comp  *dataplane.Compiler // CompileChanges: the agent's incremental path
}

var _ IncrementalDataplane = (*Node)(nil)

// NewNode returns the enforcer of node, programming the nftables of the
// network namespace at netnsPath ("" for the current one).
func NewNode(name, netnsPath string, opts dataplane.Options) (*Node, error) {
	enf, err := dataplane.New(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	return &Node{name: name, netns: netnsPath, opts: opts, enf: enf, comp: dataplane.NewCompiler(name, opts)}, nil
}

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Sync compiles the node's ruleset from e and applies it in one
// transaction: the first Sync makes the table equal to the ruleset
// whatever it held (by difference from the kernel's table), later ones
// send only what changed.
func (n *Node) Sync(ctx context.Context, e *engine.Engine) (dataplane.Stats, error) {
	st, err := n.enf.Apply(ctx, dataplane.Compile(e, n.name, n.opts))
	if err != nil {
		return st, fmt.Errorf("node %s: %w", n.name, err)
	}
	return st, nil
}

// Compile returns the node's ruleset for the state of e. It only reads e.
func (n *Node) Compile(e *engine.Engine) *dataplane.Ruleset {
	return dataplane.Compile(e, n.name, n.opts)
}

// CompileChanges returns the same ruleset as Compile, recompiling only
// what ch (e.TakeChanges() since the last call) names; the first call
// compiles everything. Every Changes of e must reach it, in order.
func (n *Node) CompileChanges(e *engine.Engine, ch engine.Changes) *dataplane.Ruleset {
	return n.comp.Compile(e, ch)
}

// Apply makes the kernel's table equal to rs in one transaction (see
// dataplane.Enforcer.Apply).
func (n *Node) Apply(ctx context.Context, rs *dataplane.Ruleset) (dataplane.Stats, error) {
	st, err := n.enf.Apply(ctx, rs)
	if err != nil {
		return st, fmt.Errorf("node %s: %w", n.name, err)
	}
	return st, nil
}

// Prefetch reads the node's table in the background, for the first Apply
// to diff against (see dataplane.Enforcer.Prefetch): call it before
// waiting for the cluster's state.
func (n *Node) Prefetch() { n.enf.Prefetch() }

// ReadDrops reads the node's per-pod drop counters back from the kernel.
func (n *Node) ReadDrops() (*dataplane.Ruleset, error) { return dataplane.ReadDrops(n.netns) }

// NetNS returns the path of the node's network namespace ("" for the
// current one).
func (n *Node) NetNS() string { return n.netns }

// Ruleset returns what the last successful Sync put in the kernel.
func (n *Node) Ruleset() *dataplane.Ruleset { return n.enf.Last() }

// Close releases the node's namespace handle; the rules stay in force.
func (n *Node) Close() error { return n.enf.Close() }

// Remove deletes Palisade's table from the node.
func (n *Node) Remove(ctx context.Context) error { return n.enf.Delete(ctx) }
