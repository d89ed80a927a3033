// Package ipam is the lab's address plan: node i's fabric addresses and pod
// CIDRs, the Service ranges, the pods' gateway, the ranges a pod may not
// claim, and the allocation of the lowest free address. It is apart from
// the network code so that what the lab decides (addresses) reads apart
// from how it builds them (netlink), and so the kubelet emulation can use
// the same plan without the network.
package ipam

import (
	"fmt"
	"net/netip"

	"github.com/palisade-net/palisade/internal/model"
)

// Addresses of the lab's fabric.
var (
	NodeNet4    = netip.MustParsePrefix("10.10.0.0/24")
	NodeNet6    = netip.MustParsePrefix("fd00:10:10::/64")
	ServiceNet4 = netip.MustParsePrefix("10.96.0.0/16")
	ServiceNet6 = netip.MustParsePrefix("fd00:10:96::/112")
	// Gateway4 and Gateway6 are every pod's default gateway: the node side
	// of its veth, reached through a static neighbour entry (Calico's
	// scheme).
	Gateway4 = netip.MustParseAddr("169.254.1.1")
	Gateway6 = netip.MustParseAddr("fe80::1")
)

// NodeIPs returns node i's fabric addresses: 10.10.0.i and fd00:10:10::i.
func NodeIPs(i int) []netip.Addr {
	return []netip.Addr{
		netip.AddrFrom4([4]byte{10, 10, 0, byte(i)}),
		netip.MustParseAddr(fmt.Sprintf("fd00:10:10::%x", i)),
	}
}

// PodCIDRs returns node i's pod CIDRs, for pods without IPs.
func PodCIDRs(i int) (netip.Prefix, netip.Prefix) {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i), 0}), 24),
		netip.MustParsePrefix(fmt.Sprintf("fd00:10:244:%x::/64", i))
}

// Reserved reports whether a pod may not have ip: it is invalid, loopback,
// link-local, multicast, unspecified, or in the node or Service ranges.
func Reserved(ip netip.Addr) bool {
	return !ip.IsValid() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() ||
		NodeNet4.Contains(ip) || NodeNet6.Contains(ip) || ServiceNet4.Contains(ip) || ServiceNet6.Contains(ip)
}

// Allocate returns the lowest address of cidr from offset on that is not
// in used (the loop is bounded by the size of a /24 or 256 tries).
func Allocate(cidr netip.Prefix, offset int, used map[netip.Addr]model.Key) (netip.Addr, error) {
	ip := cidr.Addr()
	for range offset {
		ip = ip.Next()
	}
	for range 253 {
		if !cidr.Contains(ip) {
			break
		}
		if _, taken := used[ip]; !taken {
			return ip, nil
		}
		ip = ip.Next()
	}
	return netip.Addr{}, fmt.Errorf("no free address in %s", cidr)
}

// AssignClusterIPs copies c's services into eff with ClusterIPs: their
// own, else the ones cur gave them before, else the lowest free ones of
// 10.96.0.0/16 and fd00:10:96::/112 (from .10 on).
func AssignClusterIPs(cur, c, eff *model.Cluster) error {
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
		for _, cidr := range []netip.Prefix{ServiceNet4, ServiceNet6} {
			ip, err := Allocate(cidr, 10, used)
			if err != nil {
				return fmt.Errorf("service %s: %w", s.Key(), err)
			}
			s.ClusterIPs = append(s.ClusterIPs, ip)
			used[ip] = s.Key()
		}
	}
	return nil
}
