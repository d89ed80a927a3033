// Package conformance loads the shared scenario files
// (../shared/conformance/FORMAT.md) and runs them: the expected truth
// table from the file, the predicted one from the engine, and, through an
// Observer, the one probed for real in the lab.
package conformance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/palisade-net/palisade/internal/apiconv"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
)

// Scenario is one scenario file, its cluster built and its actions decoded.
type Scenario struct {
	Name    string
	Source  string
	File    string
	Cluster *model.Cluster
	// Checks are judged on Cluster before any step (FORMAT.md, "Checks").
	Checks []Check
	Steps  []Step
	// Warnings are the manifest reader's lines about what it skipped in
	// the scenario's manifests.
	Warnings []string
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
	// Family is the address family probed: the unspecified address of
	// IPv4 (the default) or IPv6. A pod is reached at its address of
	// that family.
	Family   netip.Addr
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
	Name    string       `yaml:"name"`
	Source  string       `yaml:"source"`
	Cluster clusterField `yaml:"cluster"`
	// Manifests, instead of a cluster: files and directories of
	// Kubernetes objects, relative to the scenario file.
	Manifests []string    `yaml:"manifests"`
	Checks    []fileCheck `yaml:"checks"`
	Steps     []fileStep  `yaml:"steps"`
}

// clusterField is a scenario's cluster: the name of a known one, or an
// inline cluster.
type clusterField struct {
	Name   string
	Inline *fileCluster
}

// UnmarshalYAML has yaml.v3's older signature on purpose: its unmarshal
// function decodes with the file's own decoder, which rejects unknown
// fields, where yaml.Node.Decode would silently drop a misspelled one.
func (c *clusterField) UnmarshalYAML(unmarshal func(any) error) error {
	if unmarshal(&c.Name) == nil {
		return nil
	}
	c.Inline = &fileCluster{}
	return unmarshal(c.Inline)
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
	Family   string `yaml:"family"`
	Port     uint16 `yaml:"port"`
	Protocol string `yaml:"protocol"`
	Expect   struct {
		Default string    `yaml:"default"`
		Rules   yaml.Node `yaml:"rules"` // read by expectRules
	} `yaml:"expect"`
}

type fileCluster struct {
	Namespaces []fileNamespace `yaml:"namespaces"`
	Pods       []filePod       `yaml:"pods"`
}

type fileNamespace struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type filePod struct {
	Namespace string            `yaml:"namespace"`
	Name      string            `yaml:"name"`
	Labels    map[string]string `yaml:"labels"`
	IPs       []string          `yaml:"ips"`
	Node      string            `yaml:"node"`
	Ports     []filePort        `yaml:"ports"`
}

type filePort struct {
	Name     string `yaml:"name"`
	Port     int32  `yaml:"port"` // wide enough for apiconv to reject 0 or 70000
	Protocol string `yaml:"protocol"`
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
func Parse(data []byte, file string) (*Scenario, error) { return parse(data, file, true) }

// parse is Parse; lift says whether liftRules may read rules blocks
// (tests compare both ways).
func parse(data []byte, file string, lift bool) (*Scenario, error) {
	var lifted [][]ExpectRule
	if lift {
		data, lifted = liftRules(data)
	}
	var fs fileScenario
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fs); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	// A second document would be silently ignored: a scenario file holds
	// one scenario. An empty one (a trailing ---) holds nothing to ignore.
	for {
		var extra yaml.Node
		err := dec.Decode(&extra)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(extra.Content) == 1 && extra.Content[0].ShortTag() == "!!null" && extra.Content[0].Value == "" {
			continue
		}
		return nil, fmt.Errorf("%s: line %d: a second YAML document: a scenario file holds one scenario", file, extra.Line)
	}
	if fs.Name == "" {
		return nil, fmt.Errorf("%s: name: required", file)
	}
	sc := &Scenario{Name: fs.Name, Source: fs.Source, File: file}
	// where prefixes every line, so that each of several errors found at
	// once names the file.
	where := func(format string, args ...any) error {
		prefix := fmt.Sprintf("%s: scenario %s: ", file, fs.Name)
		lines := strings.Split(fmt.Sprintf(format, args...), "\n")
		return errors.New(prefix + strings.Join(lines, "\n"+prefix))
	}
	var err error
	switch {
	case fs.Manifests != nil && (fs.Cluster.Inline != nil || fs.Cluster.Name != ""):
		return nil, where("cluster and manifests: give one of them")
	case fs.Manifests != nil:
		if len(fs.Manifests) == 0 {
			return nil, where("manifests: empty: list files or directories of Kubernetes objects")
		}
		if sc.Cluster, sc.Warnings, err = manifestCluster(fs.Manifests, file); err != nil {
			return nil, where("%v", err)
		}
	case fs.Cluster.Inline != nil:
		if sc.Cluster, err = inlineCluster(fs.Cluster.Inline); err != nil {
			return nil, where("%v", err)
		}
	case fs.Cluster.Name == "standard":
		sc.Cluster = Standard()
	case fs.Cluster.Name == "":
		return nil, where("cluster: required: standard, an inline cluster, or manifests")
	default:
		return nil, where("cluster: %q is not a known cluster (want standard or an inline cluster)", fs.Cluster.Name)
	}
	if len(fs.Steps) == 0 && len(fs.Checks) == 0 {
		return nil, where("steps: required: a scenario has at least one step, or checks")
	}
	// pods holds the pods each step's probes see, to reject a pattern that
	// names none: a misspelled name would otherwise quietly expect nothing.
	pods := map[string]bool{}
	for k := range sc.Cluster.Pods {
		pods[k.String()] = true
	}
	if sc.Checks, err = parseChecks(fs.Checks, sc.Cluster); err != nil {
		return nil, where("%v", err)
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
				if clusterKind(a.Delete.Kind) && a.Delete.Namespace != "" {
					return nil, where("%s.delete.namespace: %s is cluster-scoped: leave namespace out", path, a.Delete.Kind)
				}
			}
			if a.Label != nil {
				n++
				act.Label = a.Label
			}
			if n != 1 {
				return nil, where("%s: want exactly one of apply, delete, label", path)
			}
			if act.Apply != nil && act.Apply.Kind == "Pod" {
				pods[act.Apply.Key.String()] = true
			}
			if d := act.Delete; d != nil && d.Kind == "Pod" {
				delete(pods, model.Key{Namespace: d.Namespace, Name: d.Name}.String())
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
			pr := Probe{Family: netip.IPv4Unspecified(), Port: p.Port, Protocol: proto}
			switch p.Family {
			case "", "IPv4":
			case "IPv6":
				pr.Family = netip.IPv6Unspecified()
			default:
				return nil, where("%s.family: %q: want IPv4 or IPv6", path, p.Family)
			}
			if pr.Default, err = verdict(p.Expect.Default); err != nil {
				return nil, where("%s.expect.default: %v", path, err)
			}
			if pr.Rules, err = expectRules(&p.Expect.Rules, lifted); err != nil {
				return nil, where("%s.expect.rules%v", path, err)
			}
			if err := patternsMatch(pr.Rules, pods); err != nil {
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
// scalars cost about as much as running the scenario. A block that
// liftRules read is a tagged scalar naming it in lifted. Errors start
// with the rule's index, "[3].verdict: ...".
func expectRules(n *yaml.Node, lifted [][]ExpectRule) ([]ExpectRule, error) {
	if n.Kind == 0 || n.ShortTag() == "!!null" {
		return nil, nil
	}
	if n.Kind == yaml.ScalarNode && n.Tag == liftedTag {
		if rules, ok := liftedBlock(lifted, n.Value); ok {
			return rules, nil
		}
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
		var seen [3]bool // from, to, verdict; a map per rule cost more than the rest of this loop
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, v := item.Content[j], item.Content[j+1]
			f := slices.Index(ruleFields, k.Value)
			switch {
			case f < 0:
				return nil, fmt.Errorf("[%d]: line %d: field %s not found: want from, to, verdict", i, k.Line, k.Value)
			case seen[f]:
				return nil, fmt.Errorf("[%d].%s: line %d: repeated", i, k.Value, k.Line)
			case v.Kind != yaml.ScalarNode:
				return nil, fmt.Errorf("[%d].%s: line %d: want a string", i, k.Value, v.Line)
			}
			seen[f] = true
			val := v.Value
			if v.ShortTag() == "!!null" {
				val = ""
			}
			switch f {
			case 0:
				r.From = val
			case 1:
				r.To = val
			case 2:
				var err error
				if r.Allow, err = verdict(val); err != nil {
					return nil, fmt.Errorf("[%d].verdict: %v", i, err)
				}
			}
		}
		if !seen[2] {
			return nil, fmt.Errorf("[%d].verdict: required: want allow or deny", i)
		}
		out = append(out, r)
	}
	return out, nil
}

var ruleFields = []string{"from", "to", "verdict"}

// patternsMatch reports the first rule with a pattern that matches none
// of pods, "[3].to: ...".
func patternsMatch(rules []ExpectRule, pods map[string]bool) error {
	keys := make([]string, 0, len(pods))
	for k := range pods {
		keys = append(keys, k)
	}
	idx := newPodIndex(keys)
	for i, r := range rules {
		for _, p := range []struct{ name, pattern string }{{"from", r.From}, {"to", r.To}} {
			if p.pattern != "" && len(idx.match(p.pattern)) == 0 {
				return fmt.Errorf("[%d].%s: %q matches no pod", i, p.name, p.pattern)
			}
		}
	}
	return nil
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

// inlineCluster validates and builds an inline cluster through apiconv and
// manifest.Cluster, as if its namespaces and pods were manifests: the same
// name, label, port and address rules, and no two pods with one address.
// Errors name the scenario's fields ("cluster.pods[1].ports[0].port")
// rather than the API's.
func inlineCluster(fc *fileCluster) (*model.Cluster, error) {
	var objs []manifest.Object
	var errs []string
	seen := map[string]bool{}
	for i, fn := range fc.Namespaces {
		path := fmt.Sprintf("cluster.namespaces[%d]", i)
		ns, err := apiconv.Namespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fn.Name, Labels: fn.Labels}})
		switch {
		case err != nil:
			errs = append(errs, scenarioErrors(path, err)...)
		case seen["namespace "+ns.Name]:
			errs = append(errs, field.Duplicate(field.NewPath(path, "name"), ns.Name).Error())
		default:
			seen["namespace "+ns.Name] = true
			objs = append(objs, manifest.Object{Source: path, Kind: "Namespace", Key: model.Key{Name: ns.Name}, Model: ns})
		}
	}
	for i, fp := range fc.Pods {
		path := fmt.Sprintf("cluster.pods[%d]", i)
		api := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: fp.Namespace, Name: fp.Name, Labels: fp.Labels},
			Spec:       corev1.PodSpec{NodeName: fp.Node, Containers: []corev1.Container{{Name: "serve"}}},
		}
		if api.Spec.NodeName == "" {
			api.Spec.NodeName = "node1"
		}
		for _, ip := range fp.IPs {
			api.Status.PodIPs = append(api.Status.PodIPs, corev1.PodIP{IP: ip})
		}
		for _, cp := range fp.Ports {
			api.Spec.Containers[0].Ports = append(api.Spec.Containers[0].Ports,
				corev1.ContainerPort{Name: cp.Name, ContainerPort: cp.Port, Protocol: corev1.Protocol(cp.Protocol)})
		}
		p, err := apiconv.Pod(api)
		switch {
		case err != nil:
			errs = append(errs, scenarioErrors(path, err)...)
		case len(p.IPs) == 0:
			errs = append(errs, field.Required(field.NewPath(path, "ips"), "a scenario's pods have addresses").Error())
		case seen["pod "+p.Key().String()]:
			errs = append(errs, field.Duplicate(field.NewPath(path, "name"), p.Key().String()).Error())
		default:
			seen["pod "+p.Key().String()] = true
			objs = append(objs, manifest.Object{Source: path + ".ips", Kind: "Pod", Key: p.Key(), Model: p})
		}
	}
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "\n"))
	}
	c, err := manifest.Cluster(objs)
	if err != nil {
		return nil, err
	}
	addNode(c)
	return c, nil
}

// apiFields renames the API fields apiconv reports to the scenario's own:
// an inline pod is one container, its ports and its ips.
var apiFields = strings.NewReplacer("metadata.", "", "spec.nodeName", "node",
	"spec.containers[0].", "", "containerPort", "port", "status.podIPs", "ips")

// scenarioErrors returns one line per field error of an apiconv error,
// "cluster.pods[1].ports[0].port: Invalid value: ...".
func scenarioErrors(path string, err error) []string {
	var ae *apiconv.Error
	if !errors.As(err, &ae) {
		return []string{path + ": " + err.Error()}
	}
	var out []string
	for _, fe := range ae.Errs {
		e := *fe
		e.Field = path + "." + apiFields.Replace(e.Field)
		out = append(out, e.Error())
	}
	return out
}

// addNode gives every scenario cluster its node, as the standard cluster
// describes: traffic from 10.10.0.1 to the node's pods is never filtered.
// Its labels are what cluster policies' nodes peers select.
func addNode(c *model.Cluster) {
	c.Nodes["node1"] = &model.Node{Name: "node1",
		Labels: map[string]string{"kubernetes.io/hostname": "node1", "kubernetes.io/os": "linux"},
		IPs:    []netip.Addr{netip.MustParseAddr("10.10.0.1"), netip.MustParseAddr("fd00:10:10::1")}}
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
