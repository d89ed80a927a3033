package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// explained is explain's JSON document for one pod.
type explained struct {
	Pod         string            `json:"pod"`
	IPs         []string          `json:"ips"`
	Node        string            `json:"node,omitempty"`
	HostNetwork bool              `json:"hostNetwork,omitempty"`
	Labels      map[string]string `json:"labels"`
	Ingress     explainedDir      `json:"ingress"`
	Egress      explainedDir      `json:"egress"`
}

type explainedDir struct {
	Isolated bool            `json:"isolated"`
	Policies []string        `json:"policies,omitempty"`
	Rules    []explainedRule `json:"rules,omitempty"`
}

type explainedRule struct {
	Policy   string          `json:"policy"`
	Index    int             `json:"index"`
	AnyPeer  bool            `json:"anyPeer"`
	Peers    []explainedPeer `json:"peers,omitempty"`
	AnyPort  bool            `json:"anyPort"`
	Ports    []string        `json:"ports,omitempty"`
	Resolved []string        `json:"resolvedNamedPorts,omitempty"`
}

type explainedPeer struct {
	Selects string   `json:"selects"`
	Pods    []string `json:"pods,omitempty"`
	CIDRs   []string `json:"cidrs,omitempty"`
}

func runExplain(s Streams, args []string) error {
	fs := newFlags("explain", s)
	in := addInput(fs)
	out := fs.String("o", "text", "output: text or json")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	c, err := in.load(s)
	if err != nil {
		return err
	}
	e := engine.FromCluster(c)
	pods := e.Pods()
	if len(pos) > 0 {
		pods = nil
		for _, a := range pos {
			k, err := model.ParseKey(a, "default")
			if err != nil {
				return badInput(err)
			}
			p := e.Pod(k)
			if p == nil {
				return badInputf("no pod %s in the manifests", k)
			}
			pods = append(pods, p)
		}
	}
	var docs []explained
	for _, p := range pods {
		docs = append(docs, explainPod(e, p))
	}
	if *out == "json" {
		enc := json.NewEncoder(s.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(docs)
	}
	for i, d := range docs {
		if i > 0 {
			fmt.Fprintln(s.Out)
		}
		writeExplained(s.Out, d)
	}
	return nil
}

func explainPod(e *engine.Engine, p *model.Pod) explained {
	d := explained{Pod: p.Key().String(), Node: p.Node, HostNetwork: p.HostNetwork, Labels: p.Labels, IPs: []string{}}
	if d.Labels == nil {
		d.Labels = map[string]string{}
	}
	for _, ip := range p.IPs {
		d.IPs = append(d.IPs, ip.String())
	}
	d.Ingress = explainDir(e, p, model.Ingress)
	d.Egress = explainDir(e, p, model.Egress)
	return d
}

func explainDir(e *engine.Engine, p *model.Pod, dir model.Direction) explainedDir {
	var d explainedDir
	for _, pol := range e.Isolating(p.Key(), dir) {
		d.Isolated = true
		d.Policies = append(d.Policies, pol.Key.String())
		for _, r := range pol.Rules[dir] {
			d.Rules = append(d.Rules, explainRule(e, p, r))
		}
	}
	return d
}

func explainRule(e *engine.Engine, p *model.Pod, r *engine.Rule) explainedRule {
	er := explainedRule{Policy: r.Ref.Policy.String(), Index: r.Ref.Index, AnyPeer: r.AllPeers, AnyPort: r.AllPorts}
	members := e.PeerMembers(r)
	for i, peer := range r.Spec().Peers {
		var xp explainedPeer
		switch {
		case peer.IPBlock != nil:
			xp.Selects = "addresses " + peer.IPBlock.CIDR.String()
			if len(peer.IPBlock.Except) > 0 {
				var ex []string
				for _, x := range peer.IPBlock.Except {
					ex = append(ex, x.String())
				}
				xp.Selects += " except " + strings.Join(ex, ", ")
			}
			xp.CIDRs = []string{peer.IPBlock.CIDR.String()}
		case peer.NamespaceSelector == nil:
			xp.Selects = fmt.Sprintf("pods %s in namespace %s", peer.PodSelector, r.Ref.Policy.Namespace)
		case peer.PodSelector == nil:
			xp.Selects = fmt.Sprintf("every pod in namespaces %s", peer.NamespaceSelector)
		default:
			xp.Selects = fmt.Sprintf("pods %s in namespaces %s", peer.PodSelector, peer.NamespaceSelector)
		}
		for _, m := range members[i] {
			xp.Pods = append(xp.Pods, m.Key().String())
		}
		er.Peers = append(er.Peers, xp)
	}
	if !r.AllPorts {
		for _, part := range strings.Split(engine.DescribePorts(r), ", ") {
			er.Ports = append(er.Ports, part)
		}
	}
	if r.Ref.Direction == model.Ingress {
		for _, np := range r.Named {
			if port, ok := p.NamedPort(np.Name, np.Protocol); ok {
				er.Resolved = append(er.Resolved, fmt.Sprintf("%s/%s = %d on this pod", np.Name, np.Protocol, port))
			} else {
				er.Resolved = append(er.Resolved, fmt.Sprintf("%s/%s is not a port of this pod: matches nothing here", np.Name, np.Protocol))
			}
		}
	} else {
		for _, np := range r.Named {
			er.Resolved = append(er.Resolved, fmt.Sprintf("%s/%s resolves on each destination pod (never on an ipBlock)", np.Name, np.Protocol))
		}
	}
	return er
}

func writeExplained(w io.Writer, d explained) {
	ips := strings.Join(d.IPs, ", ")
	if ips == "" {
		ips = "no IP"
	}
	fmt.Fprintf(w, "%s (%s) labels %s", d.Pod, ips, labelString(d.Labels))
	if d.Node != "" {
		fmt.Fprintf(w, " node %s", d.Node)
	}
	fmt.Fprintln(w)
	if d.HostNetwork {
		fmt.Fprintln(w, "  host network: its traffic is the node's, and no policy selects it")
	}
	writeExplainedDir(w, "ingress", "who may connect to it", "from", d.Ingress)
	writeExplainedDir(w, "egress", "where it may connect", "to", d.Egress)
}

func writeExplainedDir(w io.Writer, dir, what, prep string, d explainedDir) {
	if !d.Isolated {
		fmt.Fprintf(w, "  %s: not isolated: %s is not restricted\n", dir, what)
		return
	}
	fmt.Fprintf(w, "  %s: isolated by %s\n", dir, strings.Join(d.Policies, ", "))
	if len(d.Rules) == 0 {
		fmt.Fprintf(w, "    nothing is allowed (%s)\n", what)
		return
	}
	for _, r := range d.Rules {
		peers := "anyone (every pod and address)"
		if !r.AnyPeer {
			var parts []string
			for _, p := range r.Peers {
				part := p.Selects
				if p.CIDRs == nil {
					if len(p.Pods) == 0 {
						part += ": none today"
					} else {
						part += ": " + abbreviate(p.Pods, 8)
					}
				}
				parts = append(parts, part)
			}
			peers = strings.Join(parts, "; or ")
		}
		ports := "any port"
		if !r.AnyPort {
			ports = strings.Join(r.Ports, ", ")
		}
		fmt.Fprintf(w, "    %s %s on %s  [%s %s[%d]]\n", prep, peers, ports, r.Policy, dir, r.Index)
		for _, res := range r.Resolved {
			fmt.Fprintf(w, "      %s\n", res)
		}
	}
}

func abbreviate(items []string, max int) string {
	if len(items) <= max {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:max], ", ") + fmt.Sprintf(" and %d more", len(items)-max)
}

func labelString(l map[string]string) string {
	if len(l) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}
