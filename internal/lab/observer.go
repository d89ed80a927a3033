package lab

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/truth"
)

// Observer builds a conformance scenario's cluster as a lab, enforces its
// policies in the kernel and probes every pair with real connections. It
// implements conformance.Observer.
type Observer struct {
	Name    string        // lab name
	Nodes   int           // pods are spread over this many nodes
	Timeout time.Duration // per probe; a denied probe waits this long

	lab     *Lab
	servers *Servers
	enf     *PolicyEnforcer
}

// NewObserver returns an observer that builds lab name with nodes nodes.
func NewObserver(name string, nodes int) *Observer {
	return &Observer{Name: name, Nodes: nodes, Timeout: 500 * time.Millisecond}
}

// placeFreely drops the scenario's node names so that the lab spreads pods
// over all its nodes and cross-node paths are exercised. Host-network pods
// keep theirs: they answer on their node's addresses, which the scenario
// names (node1 is 10.10.0.1 in the scenario and in the lab).
func placeFreely(c *model.Cluster) *model.Cluster {
	out := c.Clone()
	for k, p := range c.Pods {
		if p.HostNetwork {
			continue
		}
		cp := *p
		cp.Node = ""
		out.Pods[k] = &cp
	}
	return out
}

// Setup builds the lab, starts its servers and enforces c's policies.
func (o *Observer) Setup(ctx context.Context, c *model.Cluster) error {
	if err := Down(o.Name); err != nil {
		return err
	}
	l, err := Up(ctx, o.Name, placeFreely(c), Options{Nodes: o.Nodes})
	if err != nil {
		return err
	}
	o.lab = l
	o.enf = NewPolicyEnforcer(dataplane.Options{})
	l.SetEnforcer(o.enf)
	if err := o.enf.Sync(ctx, l); err != nil {
		return err
	}
	o.servers, err = l.StartServers()
	return err
}

// Sync applies c: pods, labels and policies; the enforcer runs after.
func (o *Observer) Sync(ctx context.Context, c *model.Cluster) error {
	if err := o.lab.Update(ctx, placeFreely(c)); err != nil {
		return err
	}
	return o.servers.Sync(o.lab)
}

// Probe connects every ordered pair of pods to the destination's address
// of family fam. SCTP is reported as skipped: the lab cannot probe it.
func (o *Observer) Probe(ctx context.Context, pods []*model.Pod, fam netip.Addr, port uint16, proto model.Protocol) (*truth.Grid, bool, error) {
	return o.ProbeLab(ctx, o.lab, pods, fam, port, proto)
}

// ProbeLab probes every ordered pair of pods of l, as Probe does.
func (o *Observer) ProbeLab(ctx context.Context, l *Lab, pods []*model.Pod, fam netip.Addr, port uint16, proto model.Protocol) (*truth.Grid, bool, error) {
	if proto == model.SCTP {
		return nil, true, nil
	}
	keys := make([]string, len(pods))
	for i, p := range pods {
		keys[i] = p.Key().String()
	}
	g := truth.NewGrid(keys, port, proto)
	index := map[string]int{}
	for i, k := range g.Pods {
		index[k] = i
	}
	var reqs []ProbeReq
	for _, from := range pods {
		for _, to := range pods {
			ip, ok := to.IP(fam)
			if !ok {
				continue
			}
			reqs = append(reqs, ProbeReq{From: from.Key(), To: ip, Port: port, Proto: proto})
		}
	}
	var errs []error
	for _, r := range l.ProbeAll(ctx, reqs, o.Timeout, min(len(reqs), 128)) {
		if r.Err != nil {
			errs = append(errs, r.Err)
			continue
		}
		g.Allow[index[r.From.String()]][index[podKeyOf(pods, r.To).String()]] = r.OK
	}
	return g, false, errors.Join(errs...)
}

func podKeyOf(pods []*model.Pod, ip netip.Addr) model.Key {
	for _, p := range pods {
		for _, a := range p.IPs {
			if a == ip {
				return p.Key()
			}
		}
	}
	return model.Key{}
}

// Teardown removes the lab.
func (o *Observer) Teardown() error {
	var errs []error
	if o.servers != nil {
		errs = append(errs, o.servers.Close())
	}
	if o.enf != nil {
		errs = append(errs, o.enf.Close())
	}
	errs = append(errs, Down(o.Name))
	o.lab, o.servers, o.enf = nil, nil, nil
	return errors.Join(errs...)
}

// EnforcesClusterPolicyKind reports that the lab enforces every kind of
// cluster-wide policy (conformance.ClusterPolicyEnforcer): Update hands
// them to the nodes' enforcers with the NetworkPolicies.
func (o *Observer) EnforcesClusterPolicyKind(kind string) bool {
	switch kind {
	case model.KindAdminNetworkPolicy, model.KindBaselineAdminNetworkPolicy, model.KindClusterNetworkPolicy:
		return true
	}
	return false
}
