// Package agent runs enforcement for nodes: it turns the engine's IR into
// each node's nftables ruleset and applies it through the dataplane. The
// lab drives it from its manifest store; the Kubernetes agent will drive it
// from informers. Either way, the same code programs the kernel.
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
	name string
	opts dataplane.Options
	enf  *dataplane.Enforcer
}

// NewNode returns the enforcer of node, programming the nftables of the
// network namespace at netnsPath ("" for the current one).
func NewNode(name, netnsPath string, opts dataplane.Options) (*Node, error) {
	enf, err := dataplane.New(netnsPath)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	return &Node{name: name, opts: opts, enf: enf}, nil
}

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Sync compiles the node's ruleset from e and applies it in one
// transaction: the first Sync replaces whatever the table held, later
// ones send only what changed.
func (n *Node) Sync(ctx context.Context, e *engine.Engine) (dataplane.Stats, error) {
	st, err := n.enf.Apply(ctx, dataplane.Compile(e, n.name, n.opts))
	if err != nil {
		return st, fmt.Errorf("node %s: %w", n.name, err)
	}
	return st, nil
}

// Ruleset returns what the last successful Sync put in the kernel.
func (n *Node) Ruleset() *dataplane.Ruleset { return n.enf.Last() }

// Close releases the node's namespace handle; the rules stay in force.
func (n *Node) Close() error { return n.enf.Close() }

// Remove deletes Palisade's table from the node.
func (n *Node) Remove(ctx context.Context) error { return n.enf.Delete(ctx) }
