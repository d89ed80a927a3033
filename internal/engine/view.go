package engine

import (
	"net/netip"
	"sort"

	"github.com/palisade-net/palisade/internal/model"
	"go4.org/netipx"
)

// AddrPort is a resolved named port: traffic to Addr on Protocol/Port.
type AddrPort struct {
	Addr     netip.Addr
	Protocol model.Protocol
	Port     uint16
}

// NamedTargets resolves r's named ports to addresses and ports. For an
// ingress rule they resolve on the selected pods given (the receivers);
// for an egress rule on the destination pods the rule's peers cover:
// every address of a pod its selectors pick (every pod when it has no
// peers), and the addresses inside its ipBlocks of any other pod. The
// result is sorted and free of duplicates.
func (e *Engine) NamedTargets(r *Rule, selected []*model.Pod) []AddrPort {
	if len(r.Named) == 0 {
		return nil
	}
	on, blocks := selected, (*netipx.IPSet)(nil)
	if r.Ref.Direction == model.Egress {
		if r.AllPeers {
			on = e.Pods()
		} else {
			on, blocks = e.PeerPods(r), r.Blocks
		}
	}
	seen := map[AddrPort]struct{}{}
	var out []AddrPort
	add := func(p *model.Pod, ips []netip.Addr) {
		for _, np := range r.Named {
			port, ok := p.NamedPort(np.Name, np.Protocol)
			if !ok {
				continue
			}
			for _, ip := range ips {
				ap := AddrPort{ip, np.Protocol, port}
				if _, dup := seen[ap]; !dup {
					seen[ap] = struct{}{}
					out = append(out, ap)
				}
			}
		}
	}
	for _, p := range on {
		if !p.HostNetwork {
			add(p, p.IPs)
		}
	}
	if blocks != nil {
		for _, p := range e.pods {
			if p.HostNetwork || len(p.Ports) == 0 {
				continue
			}
			var in []netip.Addr
			for _, ip := range p.IPs {
				if blocks.Contains(ip) {
					in = append(in, ip)
				}
			}
			add(p, in)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Addr != b.Addr {
			return a.Addr.Less(b.Addr)
		}
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		return a.Port < b.Port
	})
	return out
}

// PodsOnNode returns the pods the dataplane of node enforces for: those
// scheduled there, with addresses, not on the host network. Sorted.
func (e *Engine) PodsOnNode(node string) []*model.Pod {
	var out []*model.Pod
	for _, p := range e.podsByNode[node] {
		if !p.HostNetwork && len(p.IPs) > 0 {
			out = append(out, p)
		}
	}
	sortPods(out)
	return out
}

// PodIPsIn returns the addresses inside prefixes that pods not on the
// host network have, on any node: unsorted, repeated when pods share one.
func (e *Engine) PodIPsIn(prefixes []netip.Prefix) []netip.Addr {
	if len(prefixes) == 0 {
		return nil
	}
	var out []netip.Addr
	for _, p := range e.pods {
		if p.HostNetwork {
			continue
		}
		for _, ip := range p.IPs {
			ip = ip.Unmap()
			for _, pf := range prefixes {
				if pf.Contains(ip) {
					out = append(out, ip)
					break
				}
			}
		}
	}
	return out
}

// PodEndpoint returns the endpoint for pod p in the address family of want
// (IPv4 when want is unset), and false when p has no address there.
func PodEndpoint(p *model.Pod, want netip.Addr) (Endpoint, bool) {
	ip, ok := p.IP(want)
	return Endpoint{Pod: p, IP: ip}, ok
}

// EndpointFor resolves an address to an endpoint: the pod that owns it,
// or the bare address.
func (e *Engine) EndpointFor(ip netip.Addr) Endpoint {
	return Endpoint{Pod: e.PodByIP(ip), IP: ip}
}

// PeerMembers returns, for each peer of r as written, the pods it selects,
// sorted; nil for an ipBlock peer.
func (e *Engine) PeerMembers(r *Rule) [][]*model.Pod {
	out := make([][]*model.Pod, len(r.spec.Peers))
	i := 0
	for j, peer := range r.spec.Peers {
		if peer.IPBlock != nil {
			continue
		}
		out[j] = e.members(r.peerSels[i])
		i++
	}
	return out
}

// NamespaceLabels returns the labels namespace selectors see for name:
// a namespace the input never declared still has its name label.
func (e *Engine) NamespaceLabels(name string) map[string]string { return e.nsLabels(name) }
