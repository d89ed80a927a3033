package lab

import (
	"context"
	"errors"

	"github.com/palisade-net/palisade/internal/agent"
	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
)

// PolicyEnforcer enforces a lab's NetworkPolicies in the kernel: one
// agent.Node per lab node, programming the nftables of that node's
// namespace from the lab's cluster, as the agent does in a real cluster.
type PolicyEnforcer struct {
	opts  dataplane.Options
	nodes map[string]*agent.Node
	// Last holds the stats of each node's last Sync.
	Last map[string]dataplane.Stats
}

// NewPolicyEnforcer returns an enforcer for a lab; set it with SetEnforcer.
func NewPolicyEnforcer(opts dataplane.Options) *PolicyEnforcer {
	return &PolicyEnforcer{opts: opts, nodes: map[string]*agent.Node{}, Last: map[string]dataplane.Stats{}}
}

// Sync compiles the lab's policies and applies them on every node, each
// node in one transaction.
func (p *PolicyEnforcer) Sync(ctx context.Context, l *Lab) error {
	e := engine.FromCluster(l.Cluster())
	var errs []error
	for _, name := range l.Nodes() {
		n := p.nodes[name]
		if n == nil {
			var err error
			if n, err = agent.NewNode(name, l.NodeNetNS(name), p.opts); err != nil {
				errs = append(errs, err)
				continue
			}
			p.nodes[name] = n
		}
		st, err := n.Sync(ctx, e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.Last[name] = st
	}
	return errors.Join(errs...)
}

// Node returns the enforcer of a node after its first Sync, or nil.
func (p *PolicyEnforcer) Node(name string) *agent.Node { return p.nodes[name] }

// Close releases the nodes' handles; the rules stay in force.
func (p *PolicyEnforcer) Close() error {
	var errs []error
	for _, n := range p.nodes {
		errs = append(errs, n.Close())
	}
	return errors.Join(errs...)
}
