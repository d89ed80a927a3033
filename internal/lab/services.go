package lab

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

// ServicesTable is the nftables table (family inet) in every node's
// namespace that does the lab's kube-proxy work. It is the lab's own; the
// dataplane's table is another.
const ServicesTable = "palisade-lab-services"

// assignServices copies c's services into eff with ClusterIPs: their own,
// else the ones the lab gave them before, else the lowest free ones of
// 10.96.0.0/16 and fd00:10:96::/112 (from .10 on).
func (l *Lab) assignServices(cur, c, eff *model.Cluster) error {
	used := map[netip.Addr]model.Key{}
	var pending []*model.Service
	keys := make([]model.Key, 0, len(c.Services))
	for k := range c.Services {
		keys = append(keys, k)
	}
	model.SortKeys(keys)
	for _, k := range keys {
		s := *c.Services[k]
		eff.EnsureNamespace(k.Namespace)
		if len(s.ClusterIPs) == 0 {
			if old := cur.Services[k]; old != nil && len(old.ClusterIPs) > 0 {
				s.ClusterIPs = old.ClusterIPs
			}
		}
		for _, ip := range s.ClusterIPs {
			if other, ok := used[ip]; ok {
				return fmt.Errorf("service %s: spec.clusterIPs: %s is already service %s's", k, ip, other)
			}
			used[ip] = k
		}
		if len(s.ClusterIPs) == 0 {
			pending = append(pending, &s)
		}
		eff.Services[k] = &s
	}
	for _, s := range pending {
		for _, cidr := range []netip.Prefix{svcNet4, svcNet6} {
			ip, err := allocate(cidr, 10, used)
			if err != nil {
				return fmt.Errorf("service %s: %w", s.Key(), err)
			}
			s.ClusterIPs = append(s.ClusterIPs, ip)
			used[ip] = s.Key()
		}
	}
	return nil
}

// dnatTarget is one endpoint of a service port in one family.
type dnatTarget struct {
	ip   netip.Addr
	port uint16
}

// svcRule is the DNAT of one service port in one address family.
type svcRule struct {
	svc       model.Key
	clusterIP netip.Addr
	proto     model.Protocol
	port      uint16
	endpoints []dnatTarget
}

// serviceRules computes the DNAT rules of the lab's services, sorted. A
// service port without endpoints (of the ClusterIP's family) gets a rule
// without endpoints, which rejects, as kube-proxy does.
func serviceRules(c *model.Cluster) []svcRule {
	var out []svcRule
	svcs := make([]*model.Service, 0, len(c.Services))
	for _, s := range c.Services {
		svcs = append(svcs, s)
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Key().Less(svcs[j].Key()) })
	for _, s := range svcs {
		eps := c.Endpoints(s)
		for _, sp := range s.Ports {
			for _, cip := range s.ClusterIPs {
				r := svcRule{svc: s.Key(), clusterIP: cip, proto: sp.Protocol, port: sp.Port}
				for _, p := range eps {
					ip, ok := p.IP(cip)
					if !ok {
						continue
					}
					if tp, ok := sp.TargetPortOn(p); ok {
						r.endpoints = append(r.endpoints, dnatTarget{ip, tp})
					}
				}
				out = append(out, r)
			}
		}
	}
	return out
}

// syncServices replaces the services table in every node, one transaction
// per node.
func (l *Lab) syncServices() error {
	rules := serviceRules(l.st.Cluster.cluster())
	for _, node := range l.Nodes() {
		var veths []string
		for _, k := range l.PodsOnNode(node) {
			if v := l.st.Pods[k.String()].Veth; v != "" {
				veths = append(veths, v)
			}
		}
		h, err := l.openNode(node)
		if err != nil {
			return err
		}
		err = programServices(h.Fd(), rules, veths, nodeIPs(nodeIndex(node)))
		h.Close()
		if err != nil {
			return fmt.Errorf("lab %s: %s: table %s: %w", l.st.Name, node, ServicesTable, err)
		}
	}
	return nil
}

// programServices writes the services table into the namespace of nsFd in
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
func programServices(nsFd int, rules []svcRule, veths []string, nodeIPs []netip.Addr) error {
	c, err := nftables.New(nftables.WithNetNSFd(nsFd))
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: ServicesTable, Family: nftables.TableFamilyINet}
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
		comment := fmt.Sprintf("%s %d/%s", r.svc, r.port, r.proto)
		match := matchService(r)
		switch len(r.endpoints) {
		case 0:
			for _, ch := range noEP {
				c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: append(matchService(r), reject(r.proto)),
					UserData: userdata.AppendString(nil, userdata.TypeComment, comment+" has no endpoints")})
			}
			continue
		case 1:
			c.AddRule(&nftables.Rule{Table: t, Chain: svc, Exprs: append(match, dnat(r.endpoints[0])...),
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
		n := len(r.endpoints)
		for j, ep := range r.endpoints {
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
func matchService(r svcRule) []expr.Any {
	nfproto, off := byte(unix.NFPROTO_IPV4), uint32(16)
	if r.clusterIP.Is6() {
		nfproto, off = unix.NFPROTO_IPV6, 24
	}
	ip := r.clusterIP.AsSlice()
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(len(ip))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(r.proto)}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.port)},
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
func dnat(ep dnatTarget) []expr.Any {
	fam := uint32(unix.NFPROTO_IPV4)
	if ep.ip.Is6() {
		fam = unix.NFPROTO_IPV6
	}
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: ep.ip.AsSlice()},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(ep.port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}
