package agent

import (
	"net/netip"
	"slices"

	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/source"
)

// Two pods of this node can report one address for a while: a pod's
// address is reused while the old pod lingers (terminating, or its status
// not yet updated). The node's maps (ingress4, egress4, ...) are keyed by
// address and go to one chain per address: given both pods, the kernel
// rejects the transaction ("file exists") and every later one, and the
// node's policy stops following the cluster. So each address of a local
// pod is owned by one pod, chosen as kube.ReadCluster chooses for the
// offline tools: the pod not being deleted, else the newer one (by
// creation), else the one later in name order. The other pod goes to the
// engine without that address (as a pod without addresses it is in no
// map); when the owner goes, or gives the address up, the other gets it
// back. A warning is logged and palisade_duplicate_local_pod_ips counts
// the addresses in dispute.
//
// Only local pods are tracked: a remote pod's addresses are only members
// of peer sets, where a duplicate is harmless.

// localPod is a local pod as the source gave it, with what decides which
// of two pods owns an address.
type localPod struct {
	pod   *model.Pod
	claim source.Claim
}

// ownership is the agent's record of local pods' addresses.
type ownership struct {
	pods   map[model.Key]*localPod
	claims map[netip.Addr][]model.Key // every local pod reporting the address
}

func newOwnership() ownership {
	return ownership{pods: map[model.Key]*localPod{}, claims: map[netip.Addr][]model.Key{}}
}

// owner returns the pod owning ip among its claimants.
func (o *ownership) owner(ip netip.Addr) model.Key {
	ks := o.claims[ip]
	best := ks[0]
	for _, k := range ks[1:] {
		if ok, _ := o.pods[k].claim.Beats(o.pods[best].claim); ok {
			best = k
		}
	}
	return best
}

// effective returns pod k as the engine gets it: without the addresses it
// does not own (p itself when it owns them all).
func (o *ownership) effective(k model.Key) *model.Pod {
	lp := o.pods[k]
	var ips []netip.Addr
	for _, ip := range lp.pod.IPs {
		if o.owner(ip) == k {
			ips = append(ips, ip)
		}
	}
	if len(ips) == len(lp.pod.IPs) {
		return lp.pod
	}
	p := *lp.pod
	p.IPs = ips
	return &p
}

// because says, for the log, why winner owns an address rather than loser.
func because(winner, loser source.Claim) string {
	_, why := winner.Beats(loser)
	return why
}

// upsertPod applies an upsert of p from ev to the engine, through the
// address ownership; a.mu is held.
func (a *Agent) upsertPod(ev *source.Event) {
	p := ev.Pod
	k := p.Key()
	// The owners of the addresses in dispute before: a warning is logged
	// for a new dispute, or when its owner changes.
	before := map[netip.Addr]model.Key{}
	if lp := a.own.pods[k]; lp != nil {
		for _, ip := range lp.pod.IPs {
			if len(a.own.claims[ip]) > 1 {
				before[ip] = a.own.owner(ip)
			}
		}
	}
	affected := a.releaseAddrs(k)
	if a.isLocal(p) {
		lp := &localPod{pod: p, claim: ev.Claim()}
		a.own.pods[k] = lp
		for _, ip := range p.IPs {
			others := a.own.claims[ip]
			a.own.claims[ip] = append(others, k)
			if len(others) == 0 {
				continue
			}
			affected = append(affected, others...)
			if len(others) == 1 {
				a.m.duplicateIPs.Inc()
			}
			wk := a.own.owner(ip)
			if b, ok := before[ip]; ok && b == wk {
				continue
			}
			w := a.own.pods[wk]
			var l *localPod
			for _, o := range a.own.claims[ip] {
				if o != w.pod.Key() {
					l = a.own.pods[o]
					break
				}
			}
			a.log.Warn("two pods of this node report one address; enforcing it for one of them",
				"address", ip.String(), "owner", w.pod.Key().String(), "other", l.pod.Key().String(), "because", because(w.claim, l.claim),
				"claimants", len(a.own.claims[ip]))
		}
		p = a.own.effective(k)
	}
	old := a.e.Pod(k)
	a.e.UpsertPod(p)
	a.countPod(old, p)
	a.reown(affected, k)
}

// deletePod applies a delete of pod k; a.mu is held.
func (a *Agent) deletePod(k model.Key) {
	affected := a.releaseAddrs(k)
	old := a.e.Pod(k)
	a.e.DeletePod(k)
	a.countPod(old, nil)
	a.reown(affected, k)
}

// releaseAddrs forgets the claims of local pod k and returns the other
// claimants of its addresses.
func (a *Agent) releaseAddrs(k model.Key) []model.Key {
	lp := a.own.pods[k]
	if lp == nil {
		return nil
	}
	delete(a.own.pods, k)
	var affected []model.Key
	for _, ip := range lp.pod.IPs {
		ks := slices.DeleteFunc(a.own.claims[ip], func(x model.Key) bool { return x == k })
		switch len(ks) {
		case 0:
			delete(a.own.claims, ip)
		case 1:
			a.m.duplicateIPs.Dec()
			fallthrough
		default:
			a.own.claims[ip] = ks
			affected = append(affected, ks...)
		}
	}
	return affected
}

// reown gives the engine the effective version of each affected pod
// (but skip, upserted already) whose addresses it changes.
func (a *Agent) reown(affected []model.Key, skip model.Key) {
	slices.SortFunc(affected, func(x, y model.Key) int {
		if x.Less(y) {
			return -1
		}
		if y.Less(x) {
			return 1
		}
		return 0
	})
	for _, k := range slices.Compact(affected) {
		if k == skip || a.own.pods[k] == nil {
			continue
		}
		p, old := a.own.effective(k), a.e.Pod(k)
		if old != nil && slices.Equal(p.IPs, old.IPs) {
			continue
		}
		a.e.UpsertPod(p)
		a.countPod(old, p)
	}
}
