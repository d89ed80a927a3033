// Package conformance loads the shared scenario files
// (../shared/conformance/FORMAT.md) and runs them: the expected truth
// table from the file, the predicted one from the engine, and, through an
// Observer, the one probed for real in the lab.
package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
	"go.yaml.in/yaml/v3"
)

// Scenario is one scenario file, its cluster built and its actions decoded.
type Scenario struct {
	Name    string
	Source  string
	File    string
	Cluster *model.Cluster
	Steps   []Step
}

// Step is a list of actions, then probes.
type Step struct {
	Do     []Action
	Probes []Probe
}

// Action changes the cluster: exactly one field is set.
type Action struct {
	Apply  *manifest.Object
	Delete *ObjectRef
	Label  *LabelAction
}

// ObjectRef names an object to delete.
type ObjectRef struct {
	Kind      string `yaml:"kind"`
	Namespace string `yaml:"namespace"`
	Name      string `yaml:"name"`
}

// LabelAction replaces all labels of a Namespace or Pod.
type LabelAction struct {
	ObjectRef `yaml:",inline"`
	Labels    map[string]string `yaml:"labels"`
}

// Probe is one port and protocol probed between every pair, and the
// expectation.
type Probe struct {
	Port     uint16
	Protocol model.Protocol
	Default  bool // allow
	Rules    []ExpectRule
}

// ExpectRule overrides the verdict for pairs matching From and To.
type ExpectRule struct {
	From, To string
	Allow    bool
}

type fileScenario struct {
	Name    string     `yaml:"name"`
	Source  string     `yaml:"source"`
	Cluster yaml.Node  `yaml:"cluster"`
	Steps   []fileStep `yaml:"steps"`
}

type fileStep struct {
	Do     []fileAction `yaml:"do"`
	Probes []fileProbe  `yaml:"probes"`
}

type fileAction struct {
	Apply  yaml.Node    `yaml:"apply"` // a pointer would make yaml.v3 decode into the Node's own fields
	Delete *ObjectRef   `yaml:"delete"`
	Label  *LabelAction `yaml:"label"`
}

type fileProbe struct {
	Port     uint16 `yaml:"port"`
	Protocol string `yaml:"protocol"`
	Expect   struct {
		Default string    `yaml:"default"`
		Rules   yaml.Node `yaml:"rules"` // read by expectRules
	} `yaml:"expect"`
}

type fileCluster struct {
	Namespaces []struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"namespaces"`
	Pods []struct {
		Namespace string            `yaml:"namespace"`
		Name      string            `yaml:"name"`
		Labels    map[string]string `yaml:"labels"`
		IPs       []string          `yaml:"ips"`
		Node      string            `yaml:"node"`
		Ports     []struct {
			Name     string `yaml:"name"`
			Port     uint16 `yaml:"port"`
			Protocol string `yaml:"protocol"`
		} `yaml:"ports"`
	} `yaml:"pods"`
}

// LoadPaths loads every scenario in the files and directories given
// (*.yaml in a directory, sorted).
func LoadPaths(paths []string) ([]*Scenario, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(p, "*.yaml"))
		if err != nil {
			return nil, err
		}
		sort.Strings(matches)
		files = append(files, matches...)
	}
	var out []*Scenario
	var errs []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sc, err := Parse(data, f)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		out = append(out, sc)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return out, nil
}

// Parse reads one scenario. It uses a YAML 1.2 reader, so that namespace
// "y" stays a string.
func Parse(data []byte, file string) (*Scenario, error) {
	var fs fileScenario
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fs); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if fs.Name == "" {
		return nil, fmt.Errorf("%s: name: required", file)
	}
	sc := &Scenario{Name: fs.Name, Source: fs.Source, File: file}
	where := func(format string, args ...any) error {
		return fmt.Errorf("%s: scenario %s: %s", file, fs.Name, fmt.Sprintf(format, args...))
	}
	var err error
	if fs.Cluster.Kind == yaml.ScalarNode {
		if fs.Cluster.Value != "standard" {
			return nil, where("cluster: %q is not a known cluster (want standard or an inline cluster)", fs.Cluster.Value)
		}
		sc.Cluster = Standard()
	} else if sc.Cluster, err = inlineCluster(&fs.Cluster); err != nil {
		return nil, where("cluster: %v", err)
	}
	for i, st := range fs.Steps {
		var step Step
		for j, a := range st.Do {
			path := fmt.Sprintf("steps[%d].do[%d]", i, j)
			var act Action
			n := 0
			if a.Apply.Kind != 0 {
				n++
				obj, err := decodeNode(&a.Apply, fmt.Sprintf("%s#%s.apply", file, path))
				if err != nil {
					return nil, err
				}
				act.Apply = &obj
			}
			if a.Delete != nil {
				n++
				act.Delete = a.Delete
			}
			if a.Label != nil {
				n++
				act.Label = a.Label
			}
			if n != 1 {
				return nil, where("%s: want exactly one of apply, delete, label", path)
			}
			step.Do = append(step.Do, act)
		}
		for j, p := range st.Probes {
			path := fmt.Sprintf("steps[%d].probes[%d]", i, j)
			proto, err := model.ParseProtocol(p.Protocol)
			if err != nil || p.Protocol != proto.String() {
				return nil, where("%s.protocol: %q: want TCP, UDP or SCTP", path, p.Protocol)
			}
			if p.Port == 0 {
				return nil, where("%s.port: required, 1-65535", path)
			}
			pr := Probe{Port: p.Port, Protocol: proto}
			if pr.Default, err = verdict(p.Expect.Default); err != nil {
				return nil, where("%s.expect.default: %v", path, err)
			}
			if pr.Rules, err = expectRules(&p.Expect.Rules); err != nil {
				return nil, where("%s.expect.rules%v", path, err)
			}
			step.Probes = append(step.Probes, pr)
		}
		sc.Steps = append(sc.Steps, step)
	}
	return sc, nil
}

func verdict(s string) (bool, error) {
	switch s {
	case "allow":
		return true, nil
	case "deny":
		return false, nil
	}
	return false, fmt.Errorf("%q: want allow or deny", s)
}

// expectRules reads expect.rules from its YAML node. It walks the node
// rather than letting yaml.v3 decode it into structs: an expectation may
// list tens of thousands of pairs, and reflection over each of their
// scalars cost more than running the scenario. Errors start with the
// rule's index, "[3].verdict: ...".
func expectRules(n *yaml.Node) ([]ExpectRule, error) {
	if n.Kind == 0 || n.ShortTag() == "!!null" {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf(": line %d: want a list of rules", n.Line)
	}
	out := make([]ExpectRule, 0, len(n.Content))
	for i, item := range n.Content {
		if item.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("[%d]: line %d: want {from, to, verdict}", i, item.Line)
		}
		var r ExpectRule
		seen := map[string]bool{}
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, v := item.Content[j], item.Content[j+1]
			if seen[k.Value] {
				return nil, fmt.Errorf("[%d].%s: line %d: repeated", i, k.Value, k.Line)
			}
			seen[k.Value] = true
			if v.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("[%d].%s: line %d: want a string", i, k.Value, v.Line)
			}
			val := v.Value
			if v.ShortTag() == "!!null" {
				val = ""
			}
			switch k.Value {
			case "from":
				r.From = val
			case "to":
				r.To = val
			case "verdict":
				var err error
				if r.Allow, err = verdict(val); err != nil {
					return nil, fmt.Errorf("[%d].verdict: %v", i, err)
				}
			default:
				return nil, fmt.Errorf("[%d]: line %d: field %s not found: want from, to, verdict", i, k.Line, k.Value)
			}
		}
		if !seen["verdict"] {
			return nil, fmt.Errorf("[%d].verdict: required: want allow or deny", i)
		}
		out = append(out, r)
	}
	return out, nil
}

// decodeNode turns an embedded YAML object into a validated API object.
func decodeNode(n *yaml.Node, source string) (manifest.Object, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return manifest.Object{}, fmt.Errorf("%s: %w", source, err)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return manifest.Object{}, fmt.Errorf("%s: %w", source, err)
	}
	return manifest.DecodeObject(data, source)
}

func inlineCluster(n *yaml.Node) (*model.Cluster, error) {
	var fc fileCluster
	if err := n.Decode(&fc); err != nil {
		return nil, err
	}
	c := model.NewCluster()
	for _, ns := range fc.Namespaces {
		model.SetNamespaceLabels(c.EnsureNamespace(ns.Name), ns.Labels)
	}
	for i, fp := range fc.Pods {
		p := &model.Pod{Namespace: fp.Namespace, Name: fp.Name, Labels: fp.Labels, Node: fp.Node}
		if p.Node == "" {
			p.Node = "node1"
		}
		for _, s := range fp.IPs {
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("pods[%d].ips: %v", i, err)
			}
			p.IPs = append(p.IPs, ip)
		}
		if len(p.IPs) == 0 {
			return nil, fmt.Errorf("pods[%d] (%s/%s): ips: required", i, fp.Namespace, fp.Name)
		}
		for j, cp := range fp.Ports {
			proto := model.TCP
			if cp.Protocol != "" {
				var err error
				if proto, err = model.ParseProtocol(cp.Protocol); err != nil {
					return nil, fmt.Errorf("pods[%d].ports[%d].protocol: %v", i, j, err)
				}
			}
			p.Ports = append(p.Ports, model.ContainerPort{Name: cp.Name, Port: cp.Port, Protocol: proto})
		}
		c.EnsureNamespace(p.Namespace)
		c.Pods[p.Key()] = p
	}
	addNode(c)
	return c, nil
}

// addNode gives every scenario cluster its node, as the standard cluster
// describes: traffic from 10.10.0.1 to the node's pods is never filtered.
func addNode(c *model.Cluster) {
	c.Nodes["node1"] = &model.Node{Name: "node1", IPs: []netip.Addr{
		netip.MustParseAddr("10.10.0.1"), netip.MustParseAddr("fd00:10:10::1")}}
}

// Standard returns the standard cluster of FORMAT.md.
func Standard() *model.Cluster {
	c := model.NewCluster()
	var ports []model.ContainerPort
	for _, port := range []uint16{80, 81} {
		for _, proto := range model.Protocols {
			ports = append(ports, model.ContainerPort{
				Name: fmt.Sprintf("serve-%d-%s", port, strings.ToLower(proto.String())), Port: port, Protocol: proto})
		}
	}
	for i, ns := range []string{"x", "y", "z"} {
		model.SetNamespaceLabels(c.EnsureNamespace(ns), map[string]string{"ns": ns})
		for j, name := range []string{"a", "b", "c"} {
			p := &model.Pod{
				Namespace: ns, Name: name, Node: "node1",
				Labels: map[string]string{"pod": name},
				IPs: []netip.Addr{
					netip.MustParseAddr(fmt.Sprintf("10.10.%d.%d", i+1, j+1)),
					netip.MustParseAddr(fmt.Sprintf("fd00:10:10:%d::%d", i+1, j+1)),
				},
				Ports: append([]model.ContainerPort(nil), ports...),
			}
			c.Pods[p.Key()] = p
		}
	}
	addNode(c)
	return c
}
