// Package lab emulates a Kubernetes cluster's network on one Linux host:
// nodes and pods are network namespaces joined by veth pairs and routes (the
// routed model of Calico), pods serve their container ports, Services get a
// ClusterIP with DNAT in every node, and pods resolve Service and pod names.
// It does not enforce NetworkPolicy: a node's namespace is exposed
// (NodeNetNS, PodsOnNode) for the dataplane, and an Enforcer can be hooked in
// to run after every change.
//
// Everything the lab creates is named with the prefix "palisade-<lab>-"
// (namespaces, /etc/netns directories) or lives under /run/palisade/<lab>;
// nothing is added to the host's own network namespace, and the host's
// nftables are never touched. Down removes a lab from what exists, so it
// works after a crash. The package needs root.
package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"sort"

	"github.com/palisade-net/palisade/internal/lab/ipam"
	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/lab/topology"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/netns"
)

// Options configure a new lab.
type Options struct {
	// Nodes is the number of nodes, 1 (the default) to 32.
	Nodes int
	// Logger receives progress and warnings; nil discards them.
	Logger *slog.Logger
}

// Enforcer programs policy for a lab; the lab calls its Sync after Up and
// after every Update, with the lab's state already in place. It is the hook
// for the dataplane: see NodeNetNS, PodsOnNode and Cluster.
type Enforcer interface {
	Sync(ctx context.Context, l *Lab) error
}

// Lab is one emulated cluster. A Lab is not safe for concurrent mutation;
// its read-only methods and Probe may be called concurrently.
type Lab struct {
	st       *state
	log      *slog.Logger
	enforcer Enforcer
}

func newLab(st *state) *Lab {
	return &Lab{st: st, log: slog.New(slog.DiscardHandler)}
}

// net returns the lab's network, which package topology builds.
func (l *Lab) net() topology.Network { return topology.Network{Lab: l.st.Name, Nodes: l.st.Nodes} }

// SetLogger sets where progress and warnings go (nil discards them).
func (l *Lab) SetLogger(log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l.log = log
}

// SetEnforcer sets the hook run after every change (nil for none).
func (l *Lab) SetEnforcer(e Enforcer) { l.enforcer = e }

// Name returns the lab's name.
func (l *Lab) Name() string { return l.st.Name }

// Up builds a lab called name with the nodes of opts and the pods and
// services of c, and saves its state. It fails if anything of a lab of that
// name exists; on failure it removes what it built.
func Up(ctx context.Context, name string, c *model.Cluster, opts Options) (*Lab, error) {
	if err := names.ValidName(name); err != nil {
		return nil, err
	}
	if opts.Nodes == 0 {
		opts.Nodes = 1
	}
	if opts.Nodes < 1 || opts.Nodes > maxNodes {
		return nil, fmt.Errorf("lab %s: %d nodes: want 1 to %d", name, opts.Nodes, maxNodes)
	}
	if left, err := leftovers(name); err != nil {
		return nil, err
	} else if len(left) > 0 {
		return nil, fmt.Errorf("lab %s exists (%s); remove it with palisade lab down %s", name, left[0], name)
	}
	st := &state{Name: name, Nodes: opts.Nodes, Pods: map[string]*podPlace{}}
	for i := 1; i <= opts.Nodes; i++ {
		// The pod CIDRs the lab allocates from, and registers in kubelet
		// mode (registerNodes): the agent's unknown-pod guard covers them.
		v4, v6 := ipam.PodCIDRs(i)
		// The labels a kubelet gives its node (and kubelet.RegisterNodes
		// does in kubelet mode), for cluster policies' nodes peers.
		st.Cluster.Nodes = append(st.Cluster.Nodes, &model.Node{Name: names.NodeName(i), IPs: ipam.NodeIPs(i), PodCIDRs: []netip.Prefix{v4, v6},
			Labels: map[string]string{"kubernetes.io/hostname": names.NodeName(i), "kubernetes.io/os": "linux"}})
	}
	l := newLab(st)
	l.SetLogger(opts.Logger)
	// Save first: from here on, the state dir exists and Down finds the lab.
	err := l.Save()
	if err == nil {
		err = l.net().Build()
	}
	if err == nil {
		err = l.Update(ctx, c)
	}
	if err != nil {
		if derr := Down(name); derr != nil {
			l.log.Warn("cleaning up after a failed lab up", "lab", name, "err", derr)
		}
		return nil, fmt.Errorf("lab %s: %w", name, err)
	}
	l.log.Info("lab up", "lab", name, "nodes", opts.Nodes, "pods", len(st.Pods))
	return l, nil
}

// Update makes the lab's pods, services and policies those of c: pods that
// are gone or moved (other node or IPs) are removed, new ones created,
// changed labels and ports are taken over in place; services get their
// ClusterIPs and DNAT; hosts files are rewritten; the state is saved and the
// Enforcer, if any, runs. c is not modified.
func (l *Lab) Update(ctx context.Context, c *model.Cluster) error {
	if c == nil {
		c = model.NewCluster()
	}
	cur := l.st.Cluster.cluster()
	eff := model.NewCluster()
	for _, n := range l.st.Cluster.Nodes {
		eff.Nodes[n.Name] = n
	}
	for name, ns := range c.Namespaces {
		eff.Namespaces[name] = ns
	}
	for k, p := range c.Policies {
		eff.Policies[k] = p
	}
	for k, p := range c.ClusterPolicies {
		eff.ClusterPolicies[k] = p
	}

	// Remove pods that are gone or must be rebuilt.
	var errs []error
	for ks, place := range l.st.Pods {
		old := cur.Pods[mustKey(ks)]
		if want := c.Pods[mustKey(ks)]; want == nil || l.mustRebuild(old, place, want) {
			if err := l.net().DeletePod(mustKey(ks), old, place.net()); err != nil {
				errs = append(errs, err)
			}
			delete(l.st.Pods, ks)
			delete(cur.Pods, mustKey(ks))
		}
	}
	if err := errors.Join(errs...); err != nil {
		l.saveQuietly()
		return err
	}

	used := map[netip.Addr]model.Key{}
	for _, p := range cur.Pods {
		for _, ip := range p.IPs {
			used[ip] = p.Key()
		}
	}
	for _, want := range c.SortedPods() {
		k := want.Key()
		eff.EnsureNamespace(k.Namespace)
		p := *want
		if place := l.st.Pods[k.String()]; place != nil {
			old := cur.Pods[k]
			p.Node, p.IPs = old.Node, old.IPs
			eff.Pods[k] = &p
			continue
		}
		place, err := l.placePod(&p, used)
		if err != nil {
			l.saveQuietly()
			return err
		}
		l.st.Pods[k.String()] = place
		eff.Pods[k] = &p
		// Record before building, so a failure leaves it for Down and Update.
		l.st.Cluster = toSnapshot(mergePods(cur, eff))
		if err := l.net().AddPod(&p, place.net()); err != nil {
			l.saveQuietly()
			return fmt.Errorf("pod %s: %w", k, err)
		}
		place.Ready = true
		l.log.Debug("pod created", "pod", k, "node", place.Node, "netns", place.NetNS, "ips", p.IPs)
	}

	if err := ipam.AssignClusterIPs(cur, c, eff); err != nil {
		l.saveQuietly()
		return err
	}
	l.st.Cluster = toSnapshot(eff)
	if err := l.Save(); err != nil {
		return err
	}
	if err := l.writeEtc(); err != nil {
		return err
	}
	if err := l.syncServices(); err != nil {
		return err
	}
	if l.enforcer != nil {
		if err := l.enforcer.Sync(ctx, l); err != nil {
			return fmt.Errorf("lab %s: enforcer: %w", l.st.Name, err)
		}
	}
	return nil
}

// mergePods returns cur's pods overlaid with eff's, for a state snapshot
// taken in the middle of Update.
func mergePods(cur, eff *model.Cluster) *model.Cluster {
	m := model.NewCluster()
	maps.Copy(m.Namespaces, eff.Namespaces)
	maps.Copy(m.Pods, cur.Pods)
	maps.Copy(m.Pods, eff.Pods)
	maps.Copy(m.Services, cur.Services)
	maps.Copy(m.Nodes, eff.Nodes)
	return m
}

func (l *Lab) saveQuietly() {
	if err := l.Save(); err != nil {
		l.log.Warn("saving lab state", "lab", l.st.Name, "err", err)
	}
}

// mustRebuild reports whether a pod's network must be rebuilt to become
// want: it is half-built, or changes host networking, explicit node or IPs.
func (l *Lab) mustRebuild(old *model.Pod, place *podPlace, want *model.Pod) bool {
	if old == nil || !place.Ready || old.HostNetwork != want.HostNetwork {
		return true
	}
	if i := names.NodeIndex(want.Node); i >= 1 && i <= l.st.Nodes && want.Node != place.Node {
		return true
	}
	if len(want.IPs) == 0 {
		return !place.AllocatedIPs
	}
	return !sameAddrs(want.IPs, old.IPs)
}

func sameAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// placePod chooses a new pod's node (its spec.nodeName when that is a lab
// node, else round-robin) and its IPs (its own, or the lowest free in its
// node's pod CIDRs), and names its namespace and veth. used collects every
// pod address.
func (l *Lab) placePod(p *model.Pod, used map[netip.Addr]model.Key) (*podPlace, error) {
	k := p.Key()
	node := p.Node
	if i := names.NodeIndex(node); i < 1 || i > l.st.Nodes {
		node = names.NodeName(l.st.NextNode%l.st.Nodes + 1)
		l.st.NextNode++
	}
	p.Node = node
	place := &podPlace{Node: node, NetNS: names.PodNetNS(l.st.Name, k), Veth: names.PodVeth(k)}
	if p.HostNetwork {
		place.NetNS, place.Veth = names.NodeNetNS(l.st.Name, node), ""
		p.IPs = ipam.NodeIPs(names.NodeIndex(node))
		return place, nil
	}
	if len(p.IPs) == 0 {
		v4, v6 := ipam.PodCIDRs(names.NodeIndex(node))
		for _, cidr := range []netip.Prefix{v4, v6} {
			ip, err := ipam.Allocate(cidr, 2, used)
			if err != nil {
				return nil, fmt.Errorf("pod %s: %w", k, err)
			}
			p.IPs = append(p.IPs, ip)
			used[ip] = k
		}
		place.AllocatedIPs = true
		return place, nil
	}
	p.IPs = append([]netip.Addr(nil), p.IPs...)
	for _, ip := range p.IPs {
		if other, ok := used[ip]; ok {
			return nil, fmt.Errorf("pod %s: status.podIPs: %s is already pod %s's", k, ip, other)
		}
		if ipam.Reserved(ip) {
			return nil, fmt.Errorf("pod %s: status.podIPs: %s is in a range the lab reserves (%s, %s, %s, %s, link-local, loopback)", k, ip, ipam.NodeNet4, ipam.NodeNet6, ipam.ServiceNet4, ipam.ServiceNet6)
		}
		used[ip] = k
	}
	return place, nil
}

// AddPod creates a pod, or replaces the pod of the same key: labels and
// ports change in place; a new node or new IPs rebuild its network.
func (l *Lab) AddPod(ctx context.Context, p *model.Pod) error {
	c := l.Cluster() // effective values, which Update keeps
	c.Pods[p.Key()] = p
	return l.Update(ctx, c)
}

// RemovePod removes a pod and its network. A pod that is not in the lab is
// not an error.
func (l *Lab) RemovePod(ctx context.Context, k model.Key) error {
	c := l.Cluster() // effective values, which Update keeps
	delete(c.Pods, k)
	return l.Update(ctx, c)
}

// ApplyService creates or replaces a Service.
func (l *Lab) ApplyService(ctx context.Context, s *model.Service) error {
	c := l.Cluster() // effective values, which Update keeps
	c.Services[s.Key()] = s
	return l.Update(ctx, c)
}

// RemoveService removes a Service and its DNAT.
func (l *Lab) RemoveService(ctx context.Context, k model.Key) error {
	c := l.Cluster() // effective values, which Update keeps
	delete(c.Services, k)
	return l.Update(ctx, c)
}

// Cluster returns the lab's cluster with what the lab decided filled in:
// each pod's node and IPs, each Service's ClusterIPs, the nodes with their
// IPs, and the namespaces and policies last given to Update. It is a fresh
// map over the lab's objects: treat the objects as read-only.
func (l *Lab) Cluster() *model.Cluster { return l.st.Cluster.cluster() }

// SetManifests records opaque manifest documents in the lab's state (saved
// with the next Save): the objects package store keeps for the CLI's lab
// verbs, or those the kubelet mirrors from the API server. Manifests
// returns them.
func (l *Lab) SetManifests(docs [][]byte) {
	l.st.Manifests = l.st.Manifests[:0]
	for _, d := range docs {
		l.st.Manifests = append(l.st.Manifests, append([]byte(nil), d...))
	}
}

// Manifests returns the documents last given to SetManifests.
func (l *Lab) Manifests() [][]byte {
	out := make([][]byte, len(l.st.Manifests))
	for i, d := range l.st.Manifests {
		out[i] = append([]byte(nil), d...)
	}
	return out
}

// Nodes returns the node names, "node1" to "node<n>".
func (l *Lab) Nodes() []string {
	out := make([]string, l.st.Nodes)
	for i := range out {
		out[i] = names.NodeName(i + 1)
	}
	return out
}

// NodeNetNS returns the path of a node's network namespace
// (/run/netns/palisade-<lab>-<node>), where the dataplane programs its
// table; "" for an unknown node.
func (l *Lab) NodeNetNS(node string) string {
	if i := names.NodeIndex(node); i < 1 || i > l.st.Nodes {
		return ""
	}
	return netns.Path(names.NodeNetNS(l.st.Name, node))
}

// PodsOnNode returns the keys of the pods on a node, sorted.
func (l *Lab) PodsOnNode(node string) []model.Key {
	var out []model.Key
	for ks, place := range l.st.Pods {
		if place.Node == node {
			out = append(out, mustKey(ks))
		}
	}
	model.SortKeys(out)
	return out
}

// Pods returns the keys of every pod of the lab, sorted.
func (l *Lab) Pods() []model.Key {
	out := make([]model.Key, 0, len(l.st.Pods))
	for ks := range l.st.Pods {
		out = append(out, mustKey(ks))
	}
	model.SortKeys(out)
	return out
}

// PodNetNS returns the path of a pod's network namespace (its node's for a
// host-network pod), or an error naming the pod if it is not in the lab.
func (l *Lab) PodNetNS(k model.Key) (string, error) {
	place := l.st.Pods[k.String()]
	if place == nil {
		return "", fmt.Errorf("lab %s: no pod %s", l.st.Name, k)
	}
	return netns.Path(place.NetNS), nil
}

// PodNode returns the node a pod is on ("" if it is not in the lab).
func (l *Lab) PodNode(k model.Key) string {
	if place := l.st.Pods[k.String()]; place != nil {
		return place.Node
	}
	return ""
}

func (l *Lab) pod(k model.Key) (*model.Pod, *podPlace, error) {
	place := l.st.Pods[k.String()]
	if place == nil {
		return nil, nil, fmt.Errorf("lab %s: no pod %s", l.st.Name, k)
	}
	for _, p := range l.st.Cluster.Pods {
		if p.Key() == k {
			return p, place, nil
		}
	}
	return nil, nil, fmt.Errorf("lab %s: pod %s has no state", l.st.Name, k)
}

func mustKey(s string) model.Key {
	k, err := model.ParseKey(s, "")
	if err != nil {
		panic("lab: bad pod key in state: " + s)
	}
	return k
}

// leftovers lists what exists of a lab: its state, namespaces, /etc/netns
// directories.
func leftovers(name string) ([]string, error) {
	var out []string
	if _, err := os.Stat(StateDir(name)); err == nil {
		out = append(out, StateDir(name))
	}
	nss, err := netns.List(NetNSPrefix(name))
	if err != nil {
		return nil, err
	}
	for _, n := range nss {
		out = append(out, netns.Path(n))
	}
	etc, _ := filepath.Glob(filepath.Join(names.EtcNetnsDir, NetNSPrefix(name)+"*"))
	out = append(out, etc...)
	sort.Strings(out)
	return out, nil
}
