package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/lab/statefile"
	"github.com/palisade-net/palisade/internal/lab/topology"
	"github.com/palisade-net/palisade/internal/model"
)

// NetNSPrefix returns the prefix of every network namespace and /etc/netns
// directory of the lab.
func NetNSPrefix(lab string) string { return names.NetNSPrefix(lab) }

// StateDir returns the directory holding the lab's state.json and daemon.pid.
func StateDir(lab string) string { return names.StateDir(lab) }

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
	// Manifests is opaque to the lab: the documents applied to it, kept
	// across invocations for package store (the CLI's lab verbs) and
	// mirrored by the kubelet in kubelet mode.
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

// net returns where the pod's network lives, for package topology.
func (p *podPlace) net() topology.Place {
	return topology.Place{Node: p.Node, NetNS: p.NetNS, Veth: p.Veth}
}

// snapshot is a model.Cluster in a JSON-friendly shape (model.Key map keys
// do not marshal), sorted.
type snapshot struct {
	Namespaces []*model.Namespace `json:"namespaces"`
	Pods       []*model.Pod       `json:"pods"`
	Services   []*model.Service   `json:"services"`
	Policies   []*model.Policy    `json:"policies"`
	// ClusterPolicies are the cluster-wide policies, in evaluation order.
	ClusterPolicies []*model.ClusterPolicy `json:"clusterPolicies,omitempty"`
	Nodes           []*model.Node          `json:"nodes"`
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
	s.ClusterPolicies = c.SortedClusterPolicies()
	for _, n := range c.Nodes {
		s.Nodes = append(s.Nodes, n)
	}
	sort.Slice(s.Nodes, func(i, j int) bool { return names.NodeIndex(s.Nodes[i].Name) < names.NodeIndex(s.Nodes[j].Name) })
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
	for _, p := range s.ClusterPolicies {
		c.ClusterPolicies[p.Key()] = p
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
	if err := names.ValidName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(names.StateFile(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lab %s: %w (palisade lab up)", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", name, err)
	}
	st := &state{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("lab %s: %s: %w", name, names.StateFile(name), err)
	}
	if st.Name != name {
		return nil, fmt.Errorf("lab %s: %s names lab %q", name, names.StateFile(name), st.Name)
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
	if err := statefile.Write(names.StateFile(l.st.Name), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("lab %s: save state: %w", l.st.Name, err)
	}
	return nil
}

// maxNodes bounds Options.Nodes (node i is 10.10.0.i).
const maxNodes = 32
