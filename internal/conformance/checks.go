package conformance

import (
	"bytes"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
)

// Check is one expectation of a file's checks (FORMAT.md, "Checks"): the
// engine must give every pair of pods that From and To name, other than
// a pod to itself, this verdict on one port.
type Check struct {
	From, To string
	Port     uint16
	Protocol model.Protocol
	Family   netip.Addr // IPv4 or IPv6 unspecified
	Allow    bool
}

// CheckResult is one pair of a check, judged by the engine.
type CheckResult struct {
	Index    int // the check's index in checks
	Check    Check
	From, To string // the pair's pod keys
	Pass     bool
	// Verdict is the engine's answer with its reasons; zero when Err.
	Verdict engine.Verdict
	// Err says why the pair could not be judged (a pod without an
	// address of the check's family).
	Err string
	// Line is the line Run added to its Result's Failures, when it fails.
	Line string
}

type fileCheck struct {
	From     string `yaml:"from"`
	To       string `yaml:"to"`
	Port     uint16 `yaml:"port"`
	Protocol string `yaml:"protocol"`
	Family   string `yaml:"family"`
	Verdict  string `yaml:"verdict"`
}

// parseChecks validates a file's checks against the pods of its cluster,
// so that a misspelled pod, or a check of a pod with only itself, is bad
// input rather than a pass.
func parseChecks(fcs []fileCheck, c *model.Cluster) ([]Check, error) {
	pods := c.SortedPods()
	names := map[string]bool{}
	for _, p := range pods {
		names[p.Key().String()] = true
	}
	var out []Check
	for i, fc := range fcs {
		path := fmt.Sprintf("checks[%d]", i)
		c := Check{From: fc.From, To: fc.To, Port: fc.Port, Protocol: model.TCP, Family: netip.IPv4Unspecified()}
		switch {
		case fc.From == "":
			return nil, fmt.Errorf("%s.from: required: a pod (ns/name) or a pattern (ns/*, */name, *)", path)
		case fc.To == "":
			return nil, fmt.Errorf("%s.to: required: a pod (ns/name) or a pattern (ns/*, */name, *)", path)
		case fc.Port == 0:
			return nil, fmt.Errorf("%s.port: required, 1-65535", path)
		}
		if fc.Protocol != "" {
			proto, err := model.ParseProtocol(fc.Protocol)
			if err != nil || fc.Protocol != proto.String() {
				return nil, fmt.Errorf("%s.protocol: %q: want TCP, UDP or SCTP", path, fc.Protocol)
			}
			c.Protocol = proto
		}
		switch fc.Family {
		case "", "IPv4":
		case "IPv6":
			c.Family = netip.IPv6Unspecified()
		default:
			return nil, fmt.Errorf("%s.family: %q: want IPv4 or IPv6", path, fc.Family)
		}
		var err error
		if c.Allow, err = verdict(fc.Verdict); err != nil {
			return nil, fmt.Errorf("%s.verdict: %v", path, err)
		}
		if err := patternsMatch([]ExpectRule{{From: c.From, To: c.To}}, names); err != nil {
			return nil, fmt.Errorf("%s%s", path, strings.TrimPrefix(err.Error(), "[0]"))
		}
		if len(pairs(pods, c)) == 0 {
			return nil, fmt.Errorf("%s: %s -> %s names no pair but a pod with itself, which policy never applies to", path, c.From, c.To)
		}
		out = append(out, c)
	}
	return out, nil
}

// manifestCluster reads a file's manifests, paths relative to the file,
// as palisade -f reads them (a directory's files, not its
// subdirectories). It returns the reader's warnings (kinds skipped,
// policies of other APIs) as lines.
func manifestCluster(paths []string, file string) (*model.Cluster, []string, error) {
	dir := filepath.Dir(file)
	abs := make([]string, len(paths))
	for i, p := range paths {
		if p == "" || p == "-" {
			return nil, nil, fmt.Errorf("manifests[%d]: %q: want a file or directory", i, p)
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		abs[i] = p
	}
	var warn bytes.Buffer
	objs, err := manifest.ReadWith(abs, nil, &warn, manifest.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("manifests: %w", err)
	}
	c, err := manifest.Cluster(objs)
	if err != nil {
		return nil, nil, fmt.Errorf("manifests: %w", err)
	}
	var warnings []string
	for _, l := range strings.Split(strings.TrimSpace(warn.String()), "\n") {
		if l != "" {
			warnings = append(warnings, l)
		}
	}
	return c, warnings, nil
}

// pairs returns the pairs of pods a check names. A pattern names pods as
// in expect rules (a workload's pod NAME[KIND] also answers to NAME); the
// pair of a pod with itself is left out unless the pod stands for several
// replicas, since a pod's traffic to itself is never subject to policy.
func pairs(pods []*model.Pod, c Check) [][2]*model.Pod {
	keys := make([]string, len(pods))
	for i, p := range pods {
		keys[i] = p.Key().String()
	}
	idx := newPodIndex(keys)
	var out [][2]*model.Pod
	for _, fi := range idx.match(c.From) {
		for _, ti := range idx.match(c.To) {
			if fi != ti || pods[fi].Siblings() {
				out = append(out, [2]*model.Pod{pods[fi], pods[ti]})
			}
		}
	}
	return out
}

// runChecks judges every pair of every check on the engine, with its
// reasons.
func runChecks(e *engine.Engine, pods []*model.Pod, checks []Check) []CheckResult {
	var out []CheckResult
	for i, c := range checks {
		for _, p := range pairs(pods, c) {
			out = append(out, judge(e, i, c, p[0], p[1]))
		}
	}
	return out
}

func judge(e *engine.Engine, i int, c Check, from, to *model.Pod) CheckResult {
	r := CheckResult{Index: i, Check: c, From: from.Key().String(), To: to.Key().String()}
	src, ok1 := engine.PodEndpoint(from, c.Family)
	dst, ok2 := engine.PodEndpoint(to, c.Family)
	for _, p := range []struct {
		ok  bool
		pod *model.Pod
	}{{ok1, from}, {ok2, to}} {
		// A pod without addresses (a workload) is judged by identity.
		if !p.ok && len(p.pod.IPs) > 0 {
			fam := "IPv4"
			if c.Family.Is6() {
				fam = "IPv6"
			}
			r.Err = fmt.Sprintf("pod %s has no %s address", p.pod.Key(), fam)
			return r
		}
	}
	r.Verdict = e.Explain(engine.Conn{From: src, To: dst, Protocol: c.Protocol, Port: c.Port})
	r.Pass = r.Verdict.Allowed == c.Allow
	return r
}
