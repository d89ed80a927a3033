package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/palisade-net/palisade/internal/model"
)

// Prefix starts the name of everything the lab creates: network namespaces,
// /etc/netns directories and (as a directory) the state under /run.
const Prefix = "palisade-"

// RunDir holds one directory of state per lab.
const RunDir = "/run/palisade"

// EtcNetnsDir is where per-namespace /etc overrides live, as for `ip netns exec`.
const EtcNetnsDir = "/etc/netns"

// Lab names are lower-case letters and digits, starting with a letter: no
// '-', so that the prefix "palisade-<lab>-" of one lab is never a prefix of
// another lab's names.
var validName = regexp.MustCompile(`^[a-z][a-z0-9]{0,19}$`)

// ValidName reports whether name can name a lab: 1 to 20 lower-case letters
// or digits, starting with a letter.
func ValidName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid lab name %q: want 1-20 lower-case letters or digits, starting with a letter", name)
	}
	return nil
}

// NetNSPrefix returns the prefix of every network namespace and /etc/netns
// directory of the lab.
func NetNSPrefix(lab string) string { return Prefix + lab + "-" }

// StateDir returns the directory holding the lab's state.json and daemon.pid.
func StateDir(lab string) string { return filepath.Join(RunDir, lab) }

func statePath(lab string) string   { return filepath.Join(StateDir(lab), "state.json") }
func pidfilePath(lab string) string { return filepath.Join(StateDir(lab), "daemon.pid") }

// state is what state.json holds: enough for another process to find every
// namespace of the lab, to serve its pods and to rebuild its cluster.
type state struct {
	Name  string `json:"name"`
	Nodes int    `json:"nodes"`
	// NextNode is the round-robin cursor for pods without a node.
	NextNode int `json:"nextNode"`
	// Pods maps "namespace/name" to where the pod lives.
	Pods map[string]*podPlace `json:"pods"`
	// Cluster is the lab's cluster with the effective pod IPs, nodes and
	// service ClusterIPs filled in.
	Cluster snapshot `json:"cluster"`
	// Manifests is opaque to the lab: the documents applied to it, kept for
	// the CLI (lab apply) across invocations.
	Manifests []json.RawMessage `json:"manifests,omitempty"`
}

// podPlace is where a pod lives in the lab.
type podPlace struct {
	Node  string `json:"node"`
	NetNS string `json:"netns"`
	// Veth is the node side of the pod's veth pair; empty for host-network pods.
	Veth string `json:"veth,omitempty"`
	// AllocatedIPs is set when the lab chose the pod's IPs.
	AllocatedIPs bool `json:"allocatedIPs,omitempty"`
	// Ready is set once the pod's network is complete; a pod left half-built
	// (an error, a crash) is rebuilt by the next Update.
	Ready bool `json:"ready"`
}

// snapshot is a model.Cluster in a JSON-friendly shape (model.Key map keys
// do not marshal), sorted.
type snapshot struct {
	Namespaces []*model.Namespace `json:"namespaces"`
	Pods       []*model.Pod       `json:"pods"`
	Services   []*model.Service   `json:"services"`
	Policies   []*model.Policy    `json:"policies"`
	Nodes      []*model.Node      `json:"nodes"`
}

func toSnapshot(c *model.Cluster) snapshot {
	var s snapshot
	for _, ns := range c.Namespaces {
		s.Namespaces = append(s.Namespaces, ns)
	}
	sort.Slice(s.Namespaces, func(i, j int) bool { return s.Namespaces[i].Name < s.Namespaces[j].Name })
	s.Pods = c.SortedPods()
	for _, sv := range c.Services {
		s.Services = append(s.Services, sv)
	}
	sort.Slice(s.Services, func(i, j int) bool { return s.Services[i].Key().Less(s.Services[j].Key()) })
	s.Policies = c.SortedPolicies()
	for _, n := range c.Nodes {
		s.Nodes = append(s.Nodes, n)
	}
	sort.Slice(s.Nodes, func(i, j int) bool { return nodeIndex(s.Nodes[i].Name) < nodeIndex(s.Nodes[j].Name) })
	return s
}

func (s snapshot) cluster() *model.Cluster {
	c := model.NewCluster()
	for _, ns := range s.Namespaces {
		c.Namespaces[ns.Name] = ns
	}
	for _, p := range s.Pods {
		c.Pods[p.Key()] = p
	}
	for _, sv := range s.Services {
		c.Services[sv.Key()] = sv
	}
	for _, p := range s.Policies {
		c.Policies[p.Key()] = p
	}
	for _, n := range s.Nodes {
		c.Nodes[n.Name] = n
	}
	return c
}

// ErrNotFound is returned by Load for a lab that has no state.
var ErrNotFound = errors.New("lab not found")

// Load reads the state of the lab called name, as saved by the process that
// built it.
func Load(name string) (*Lab, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(statePath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lab %s: %w (palisade lab up)", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", name, err)
	}
	st := &state{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("lab %s: %s: %w", name, statePath(name), err)
	}
	if st.Name != name {
		return nil, fmt.Errorf("lab %s: %s names lab %q", name, statePath(name), st.Name)
	}
	if st.Pods == nil {
		st.Pods = map[string]*podPlace{}
	}
	return newLab(st), nil
}

// Save writes the lab's state atomically (write, then rename).
func (l *Lab) Save() error {
	b, err := json.MarshalIndent(l.st, "", "  ")
	if err != nil {
		return fmt.Errorf("lab %s: encode state: %w", l.st.Name, err)
	}
	if err := os.MkdirAll(StateDir(l.st.Name), 0o755); err != nil {
		return fmt.Errorf("lab %s: %w", l.st.Name, err)
	}
	tmp := statePath(l.st.Name) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("lab %s: save state: %w", l.st.Name, err)
	}
	if err := os.Rename(tmp, statePath(l.st.Name)); err != nil {
		return fmt.Errorf("lab %s: save state: %w", l.st.Name, err)
	}
	return nil
}

// nodeIndex returns i for "node<i>", or 0.
func nodeIndex(node string) int {
	rest, ok := strings.CutPrefix(node, "node")
	if !ok || rest == "" || rest[0] == '0' {
		return 0
	}
	i := 0
	for _, r := range rest {
		if r < '0' || r > '9' || i > 1000 {
			return 0
		}
		i = i*10 + int(r-'0')
	}
	return i
}

// Addresses of the lab's fabric.
var (
	nodeNet4 = netip.MustParsePrefix("10.10.0.0/24")
	nodeNet6 = netip.MustParsePrefix("fd00:10:10::/64")
	svcNet4  = netip.MustParsePrefix("10.96.0.0/16")
	svcNet6  = netip.MustParsePrefix("fd00:10:96::/112")
	// gw4 and gw6 are every pod's default gateway: the node side of its
	// veth, reached through a static neighbour entry (Calico's scheme).
	gw4 = netip.MustParseAddr("169.254.1.1")
	gw6 = netip.MustParseAddr("fe80::1")
)

// maxNodes bounds Options.Nodes (node i is 10.10.0.i).
const maxNodes = 32

func nodeName(i int) string { return fmt.Sprintf("node%d", i) }

func nodeIPs(i int) []netip.Addr {
	return []netip.Addr{
		netip.AddrFrom4([4]byte{10, 10, 0, byte(i)}),
		netip.MustParseAddr(fmt.Sprintf("fd00:10:10::%x", i)),
	}
}

// podCIDRs returns node i's pod CIDRs, for pods without IPs.
func podCIDRs(i int) (netip.Prefix, netip.Prefix) {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i), 0}), 24),
		netip.MustParsePrefix(fmt.Sprintf("fd00:10:244:%x::/64", i))
}
