// Package topology builds a lab's network out of network namespaces: the
// bridge that joins the nodes, each node's namespace and fabric address,
// each pod's namespace with its veth, addresses, gateway neighbour and
// routes, and the routes on the other nodes. It is the netlink side of the
// lab, apart from the decisions (names, ipam) and the bookkeeping (package
// lab), so that what is plumbed where reads in one place.
package topology

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/palisade-net/palisade/internal/lab/ipam"
	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/netns"
)

// Network is the network of a lab called Lab with Nodes nodes.
//
// The fabric: one namespace, palisade-<lab>-net, holds a bridge "br0";
// node i's namespace has "eth0" (10.10.0.i/24, fd00:10:10::i/64), whose peer
// "node<i>" is a port of the bridge. Each pod's namespace has "eth0" with
// its /32 and /128, whose peer "pal<hash>" is in its node's namespace. A
// node routes each local pod's addresses to its veth and each remote pod's
// addresses via that pod's node. Nothing is created in the host's namespace:
// veths are created inside a lab namespace with their peer placed directly
// in another one.
type Network struct {
	Lab   string
	Nodes int
}

// Place is where a pod's network lives.
type Place struct {
	Node  string
	NetNS string
	// Veth is the node side of the pod's veth pair; empty for host-network pods.
	Veth string
}

const bridgeName = "br0"

// Sysctls of every namespace the lab creates: no IPv6 duplicate address
// detection (addresses are usable at once; every address is unique by
// construction).
var baseSysctls = map[string]string{
	"net.ipv6.conf.all.accept_dad":     "0",
	"net.ipv6.conf.default.accept_dad": "0",
}

// nodeSysctls make a node a router without reverse-path filtering (the IPv4
// defaults of a new namespace are copied from the host's, which may filter).
var nodeSysctls = map[string]string{
	"net.ipv6.conf.all.accept_dad":     "0",
	"net.ipv6.conf.default.accept_dad": "0",
	"net.ipv4.ip_forward":              "1",
	"net.ipv6.conf.all.forwarding":     "1",
	"net.ipv4.conf.all.rp_filter":      "0",
	"net.ipv4.conf.default.rp_filter":  "0",
}

// createNS creates a named namespace with sysctls and lo up, and returns a
// netlink handle in it.
func createNS(name string, sysctls map[string]string) (*netns.Handle, error) {
	path, err := netns.Create(name)
	if err != nil {
		return nil, err
	}
	if err := netns.Sysctl(path, sysctls); err != nil {
		return nil, fmt.Errorf("netns %s: %w", name, err)
	}
	h, err := netns.NewHandle(path)
	if err != nil {
		return nil, err
	}
	if err := linkUp(h, "lo"); err != nil {
		h.Close()
		return nil, fmt.Errorf("netns %s: %w", name, err)
	}
	return h, nil
}

func linkUp(h *netns.Handle, name string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("link %s up: %w", name, err)
	}
	return nil
}

// addVeth creates a veth pair in h's namespace named local, with its peer
// "eth0" placed in the namespace of peer, and brings both ends up. It
// returns both ends' MAC addresses.
func addVeth(h *netns.Handle, local string, peer *netns.Handle) (localMAC, peerMAC net.HardwareAddr, err error) {
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: local},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(peer.Fd()),
	}
	if err := h.LinkAdd(veth); err != nil {
		return nil, nil, fmt.Errorf("add veth %s: %w", local, err)
	}
	l, err := h.LinkByName(local)
	if err != nil {
		return nil, nil, fmt.Errorf("veth %s: %w", local, err)
	}
	p, err := peer.LinkByName("eth0")
	if err != nil {
		return nil, nil, fmt.Errorf("veth %s peer: %w", local, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return nil, nil, fmt.Errorf("veth %s up: %w", local, err)
	}
	if err := peer.LinkSetUp(p); err != nil {
		return nil, nil, fmt.Errorf("veth %s peer up: %w", local, err)
	}
	return l.Attrs().HardwareAddr, p.Attrs().HardwareAddr, nil
}

// addAddr adds ip/bits to link without duplicate address detection.
func addAddr(h *netns.Handle, link netlink.Link, p netip.Prefix) error {
	a := &netlink.Addr{IPNet: ipnet(p)}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrAdd(link, a); err != nil {
		return fmt.Errorf("add address %s to %s: %w", p, link.Attrs().Name, err)
	}
	return nil
}

func ipnet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func hostPrefix(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

func family(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// Build creates the bridge namespace and the node namespaces.
func (n Network) Build() error {
	name := n.Lab
	fab, err := createNS(names.FabricNetNS(name), baseSysctls)
	if err != nil {
		return err
	}
	defer fab.Close()
	off := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName}, MulticastSnooping: &off}
	if err := fab.LinkAdd(br); err != nil {
		return fmt.Errorf("netns %s: add bridge: %w", names.FabricNetNS(name), err)
	}
	if err := linkUp(fab, bridgeName); err != nil {
		return err
	}
	brLink, err := fab.LinkByName(bridgeName)
	if err != nil {
		return err
	}
	for i := 1; i <= n.Nodes; i++ {
		if err := n.buildNode(fab, brLink, i); err != nil {
			return fmt.Errorf("node%d: %w", i, err)
		}
	}
	return nil
}

func (n Network) buildNode(fab *netns.Handle, br netlink.Link, i int) error {
	h, err := createNS(names.NodeNetNS(n.Lab, names.NodeName(i)), nodeSysctls)
	if err != nil {
		return err
	}
	defer h.Close()
	port := names.NodeName(i)
	if _, _, err := addVeth(fab, port, h); err != nil {
		return err
	}
	pl, err := fab.LinkByName(port)
	if err != nil {
		return err
	}
	if err := fab.LinkSetMaster(pl, br); err != nil {
		return fmt.Errorf("attach %s to %s: %w", port, bridgeName, err)
	}
	eth, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	ips := ipam.NodeIPs(i)
	if err := addAddr(h, eth, netip.PrefixFrom(ips[0], ipam.NodeNet4.Bits())); err != nil {
		return err
	}
	return addAddr(h, eth, netip.PrefixFrom(ips[1], ipam.NodeNet6.Bits()))
}

// OpenNode returns a netlink handle in a node's namespace.
func (n Network) OpenNode(node string) (*netns.Handle, error) {
	return netns.NewHandle(netns.Path(names.NodeNetNS(n.Lab, node)))
}

// AddPod creates a pod's namespace, veth, addresses, neighbours and
// routes (on its node and, for its addresses, on every other node).
func (n Network) AddPod(p *model.Pod, place Place) error {
	if p.HostNetwork {
		return nil // lives in the node's namespace
	}
	ph, err := createNS(place.NetNS, baseSysctls)
	if err != nil {
		return err
	}
	defer ph.Close()
	nh, err := n.OpenNode(place.Node)
	if err != nil {
		return err
	}
	defer nh.Close()

	nodeMAC, podMAC, err := addVeth(nh, place.Veth, ph)
	if err != nil {
		return err
	}
	eth, err := ph.LinkByName("eth0")
	if err != nil {
		return err
	}
	veth, err := nh.LinkByName(place.Veth)
	if err != nil {
		return err
	}
	// Pod side: its addresses, the gateway as a permanent neighbour at the
	// node side's MAC, a link route to the IPv4 gateway, default routes.
	has4, has6 := false, false
	for _, ip := range p.IPs {
		if err := addAddr(ph, eth, hostPrefix(ip)); err != nil {
			return err
		}
		has4, has6 = has4 || ip.Is4(), has6 || ip.Is6()
	}
	for _, gw := range []netip.Addr{ipam.Gateway4, ipam.Gateway6} {
		if (gw.Is4() && !has4) || (gw.Is6() && !has6) {
			continue
		}
		if err := ph.NeighAdd(&netlink.Neigh{
			LinkIndex: eth.Attrs().Index, Family: family(gw), State: netlink.NUD_PERMANENT,
			IP: gw.AsSlice(), HardwareAddr: nodeMAC,
		}); err != nil {
			return fmt.Errorf("pod %s: gateway neighbour %s: %w", p.Key(), gw, err)
		}
		if gw.Is4() {
			if err := ph.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Dst: ipnet(hostPrefix(gw)), Scope: netlink.SCOPE_LINK}); err != nil {
				return fmt.Errorf("pod %s: route to gateway: %w", p.Key(), err)
			}
		}
		if err := ph.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw.AsSlice(), Family: family(gw)}); err != nil {
			return fmt.Errorf("pod %s: default route via %s: %w", p.Key(), gw, err)
		}
	}
	// Node side: a host route and a permanent neighbour per pod address.
	for _, ip := range p.IPs {
		if err := nh.NeighAdd(&netlink.Neigh{
			LinkIndex: veth.Attrs().Index, Family: family(ip), State: netlink.NUD_PERMANENT,
			IP: ip.AsSlice(), HardwareAddr: podMAC,
		}); err != nil {
			return fmt.Errorf("pod %s: node neighbour %s: %w", p.Key(), ip, err)
		}
		if err := nh.RouteAdd(&netlink.Route{LinkIndex: veth.Attrs().Index, Dst: ipnet(hostPrefix(ip)), Scope: netlink.SCOPE_LINK}); err != nil {
			return fmt.Errorf("pod %s: node route to %s: %w", p.Key(), ip, err)
		}
	}
	return n.remoteRoutes(p, place, true)
}

// remoteRoutes adds (or deletes) the routes to a pod's addresses on every
// node other than its own, via its node's fabric address.
func (n Network) remoteRoutes(p *model.Pod, place Place, add bool) error {
	via := ipam.NodeIPs(names.NodeIndex(place.Node))
	var errs []error
	for i := 1; i <= n.Nodes; i++ {
		if names.NodeName(i) == place.Node {
			continue
		}
		h, err := n.OpenNode(names.NodeName(i))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, ip := range p.IPs {
			gw := via[0]
			if ip.Is6() {
				gw = via[1]
			}
			r := &netlink.Route{Dst: ipnet(hostPrefix(ip)), Gw: gw.AsSlice()}
			if add {
				err = h.RouteAdd(r)
			} else if err = h.RouteDel(r); errors.Is(err, unix.ESRCH) {
				err = nil
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("pod %s: %s: route %s via %s: %w", p.Key(), names.NodeName(i), ip, gw, err))
			}
		}
		h.Close()
	}
	return errors.Join(errs...)
}

// DeletePod undoes AddPod: the veth pair (which may outlive the
// namespace's bind mount while a server socket holds the namespace), the
// remote routes (when the pod's IPs are known), the namespace and its
// /etc/netns directory. Parts already gone are skipped.
func (n Network) DeletePod(k model.Key, p *model.Pod, place Place) error {
	if place.Veth == "" {
		return nil // host network: nothing of its own
	}
	var errs []error
	if nh, err := n.OpenNode(place.Node); err == nil {
		if link, err := nh.LinkByName(place.Veth); err == nil {
			if err := nh.LinkDel(link); err != nil {
				errs = append(errs, fmt.Errorf("pod %s: delete veth %s: %w", k, place.Veth, err))
			}
		}
		nh.Close()
	} else {
		errs = append(errs, err)
	}
	if p != nil {
		errs = append(errs, n.remoteRoutes(p, place, false))
	}
	errs = append(errs, netns.Delete(place.NetNS))
	if err := os.RemoveAll(names.EtcDir(place.NetNS)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
