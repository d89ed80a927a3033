// Package kubeproxy does the lab's kube-proxy work in a node's namespace:
// the nftables table palisade-lab-services DNATs each Service port's
// ClusterIPs to its endpoints (one chosen uniformly when there are
// several), rejects ports without endpoints, and SNATs hairpin traffic. It
// is apart from the dataplane's own table, and from the rest of the lab, so
// that the one piece of nftables the lab writes for itself reads alone.
package kubeproxy

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/palisade-net/palisade/internal/model"
)

// Table is the nftables table (family inet) in every node's namespace
// that does the lab's kube-proxy work. It is the lab's own; the
// dataplane's table is another.
const Table = "palisade-lab-services"

// Endpoint is one endpoint of a service port in one family.
type Endpoint struct {
	IP   netip.Addr
	Port uint16
}

// Rule is the DNAT of one service port in one address family.
type Rule struct {
	Service   model.Key
	ClusterIP netip.Addr
	Proto     model.Protocol
	Port      uint16
	Endpoints []Endpoint
}

// Rules computes the DNAT rules of the lab's services, sorted. A
// service port without endpoints (of the ClusterIP's family) gets a rule
// without endpoints, which rejects, as kube-proxy does.
func Rules(c *model.Cluster) []Rule {
	var out []Rule
	svcs := make([]*model.Service, 0, len(c.Services))
	for _, s := range c.Services {
		svcs = append(svcs, s)
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Key().Less(svcs[j].Key()) })
	for _, s := range svcs {
		eps := c.Endpoints(s)
		for _, sp := range s.Ports {
			for _, cip := range s.ClusterIPs {
				r := Rule{Service: s.Key(), ClusterIP: cip, Proto: sp.Protocol, Port: sp.Port}
				for _, p := range eps {
					ip, ok := p.IP(cip)
					if !ok {
						continue
					}
					if tp, ok := sp.TargetPortOn(p); ok {
						r.Endpoints = append(r.Endpoints, Endpoint{ip, tp})
					}
				}
				out = append(out, r)
			}
		}
	}
	return out
}

// Program writes the services table into the namespace of nsFd in
// one transaction (add, delete and re-add the table: atomic replacement,
// whether or not it existed):
//
//	table inet palisade-lab-services {
//	  chain prerouting { type nat hook prerouting priority dstnat; jump services }
//	  chain output     { type nat hook output priority dstnat; jump services }
//	  chain services {
//	    meta nfproto ipv4 ip daddr 10.96.0.10 meta l4proto tcp th dport 80 dnat ip to 10.244.2.2:80
//	    ... tcp dport 80 goto svc3   (several endpoints)
//	  }
//	  chain svc3 {
//	    numgen random mod 2 0 dnat ip to 10.244.1.2:80
//	    dnat ip to 10.244.2.2:80
//	  }
//	  chain no-endpoints {
//	    type filter hook prerouting priority dstnat - 10   (and a twin on output)
//	    meta nfproto ipv4 ip daddr 10.96.0.11 meta l4proto tcp th dport 80 reject with tcp reset
//	  }
//	  chain postrouting {
//	    type nat hook postrouting priority srcnat
//	    iifname "palXXX" oifname "palXXX" meta nfproto ipv4 snat ip to 10.10.0.1   (per local pod and family)
//	  }
//	}
//
// The postrouting rules make hairpin work: a pod reaching itself through a
// Service leaves and re-enters by the same veth; without SNAT (to the node's
// address, as kube-proxy's masquerade does) it would drop its own address as
// a martian source. Nothing else enters and leaves by the same veth.
func Program(nsFd int, rules []Rule, veths []string, nodeIPs []netip.Addr) error {
	c, err := nftables.New(nftables.WithNetNSFd(nsFd))
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: Table, Family: nftables.TableFamilyINet}
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	svc := c.AddChain(&nftables.Chain{Name: "services", Table: t})
	for _, hook := range []struct {
		name string
		hook *nftables.ChainHook
	}{{"prerouting", nftables.ChainHookPrerouting}, {"output", nftables.ChainHookOutput}} {
		ch := c.AddChain(&nftables.Chain{
			Name: hook.name, Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: hook.hook, Priority: nftables.ChainPriorityNATDest,
		})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Verdict{Kind: expr.VerdictJump, Chain: svc.Name},
		}})
	}
	var noEP []*nftables.Chain
	for _, hook := range []struct {
		name string
		hook *nftables.ChainHook
	}{{"no-endpoints", nftables.ChainHookPrerouting}, {"no-endpoints-output", nftables.ChainHookOutput}} {
		noEP = append(noEP, c.AddChain(&nftables.Chain{
			Name: hook.name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hook.hook, Priority: nftables.ChainPriorityRef(*nftables.ChainPriorityNATDest - 10),
		}))
	}
	for i, r := range rules {
		comment := fmt.Sprintf("%s %d/%s", r.Service, r.Port, r.Proto)
		match := matchService(r)
		switch len(r.Endpoints) {
		case 0:
			for _, ch := range noEP {
				c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(matchService(r), reject(r.Proto)),
					UserData: userdata.AppendString(nil, userdata.TypeComment, comment+" has no endpoints")})
			}
			continue
		case 1:
			c.AddRule(&nftables.Rule{Table: t, Chain: svc, Exprs: append(match, dnat(r.Endpoints[0])...),
				UserData: userdata.AppendString(nil, userdata.TypeComment, comment)})
			continue
		}
		// Several endpoints: a chain per service port that picks one
		// uniformly, as iptables kube-proxy's statistic cascade does: the
		// j-th rule takes 1/(n-j) of what reaches it; the last takes the
		// rest. (A numgen vmap would be one rule, but the library marks an
		// anonymous map's keys big-endian, so numgen's host-endian keys
		// would list as 16777216 and so on.)
		name := fmt.Sprintf("svc%d", i)
		ch := c.AddChain(&nftables.Chain{Name: name, Table: t})
		c.AddRule(&nftables.Rule{Table: t, Chain: svc, Exprs: append(match, &expr.Verdict{Kind: expr.VerdictGoto, Chain: name}),
			UserData: userdata.AppendString(nil, userdata.TypeComment, comment)})
		n := len(r.Endpoints)
		for j, ep := range r.Endpoints {
			var pick []expr.Any
			if j < n-1 {
				pick = []expr.Any{
					&expr.Numgen{Register: 1, Modulus: uint32(n - j), Type: unix.NFT_NG_RANDOM},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 0, 0, 0}},
				}
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(pick, dnat(ep)...),
				UserData: userdata.AppendString(nil, userdata.TypeComment, fmt.Sprintf("%s endpoint %d of %d", comment, j+1, n))})
		}
	}
	post := c.AddChain(&nftables.Chain{
		Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	})
	for _, v := range veths {
		for _, ip := range nodeIPs {
			nfproto, fam := byte(unix.NFPROTO_IPV4), uint32(unix.NFPROTO_IPV4)
			if ip.Is6() {
				nfproto, fam = unix.NFPROTO_IPV6, unix.NFPROTO_IPV6
			}
			c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(v)},
				&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(v)},
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
				&expr.Immediate{Register: 1, Data: ip.AsSlice()},
				&expr.NAT{Type: expr.NATTypeSourceNAT, Family: fam, RegAddrMin: 1},
			}, UserData: userdata.AppendString(nil, userdata.TypeComment, "hairpin via a Service")})
		}
	}
	return c.Flush()
}

// ifname pads an interface name as the kernel stores it (IFNAMSIZ bytes).
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

// matchService matches packets to a service port: meta nfproto, then the
// address (nfproto first, or an inet table matches IPv6 packets at IPv4
// offsets), l4proto, destination port.
func matchService(r Rule) []expr.Any {
	nfproto, off := byte(unix.NFPROTO_IPV4), uint32(16)
	if r.ClusterIP.Is6() {
		nfproto, off = unix.NFPROTO_IPV6, 24
	}
	ip := r.ClusterIP.AsSlice()
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(len(ip))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(r.Proto)}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.Port)},
	}
}

// reject refuses a connection: TCP reset for TCP, ICMP port unreachable
// otherwise.
func reject(proto model.Protocol) expr.Any {
	if proto == model.TCP {
		return &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}
	}
	return &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_PORT_UNREACH}
}

// dnat rewrites the destination to an endpoint.
func dnat(ep Endpoint) []expr.Any {
	fam := uint32(unix.NFPROTO_IPV4)
	if ep.IP.Is6() {
		fam = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: ep.IP.AsSlice()},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(ep.Port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}
