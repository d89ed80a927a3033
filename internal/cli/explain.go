package cli

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/truth"
)

// explained is explain's JSON document for one pod.
type explained struct {
	Pod string `json:"pod"`
	// Workload is the kind of workload the pod stands for ("Deployment",
	// ...), and Replicas how many pods it runs (0: not given).
	Workload    string            `json:"workload,omitempty"`
	Replicas    int               `json:"replicas,omitempty"`
	IPs         []string          `json:"ips"`
	Node        string            `json:"node,omitempty"`
	HostNetwork bool              `json:"hostNetwork,omitempty"`
	Labels      map[string]string `json:"labels"`
	Ingress     explainedDir      `json:"ingress"`
	Egress      explainedDir      `json:"egress"`
}

type explainedDir struct {
	// ClusterPolicies are the cluster-wide policies that apply to the
	// pod in this direction, in evaluation order.
	ClusterPolicies []explainedClusterPolicy `json:"clusterPolicies,omitempty"`
	Isolated        bool                     `json:"isolated"`
	Policies        []string                 `json:"policies,omitempty"`
	Rules           []explainedRule          `json:"rules,omitempty"`
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

func explainFlags(s Streams) (*flag.FlagSet, func(pos []string) error) {
	fs := newFlags("explain", s)
	in := addInput(fs)
	out := fs.String("o", "text", "output: text, json or yaml")
	return fs, func(pos []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		c, err := in.load(s)
		if err != nil {
			return err
		}
		e := engine.FromCluster(c)
		// Without names, every pod of the namespaces -n/-A show, in the
		// matrix's order (truth.Less: pods, then workloads); the engine still
		// holds all of them, since peers cross namespaces.
		var pods []*model.Pod
		for _, p := range e.Pods() {
			if len(pos) == 0 && in.shows(p.Namespace) {
				pods = append(pods, p)
			}
		}
		sort.SliceStable(pods, func(i, j int) bool { return truth.Less(pods[i].Key().String(), pods[j].Key().String()) })
		for _, a := range pos {
			r, err := in.parseRef(a)
			if err != nil {
				return badInput(err)
			}
			if r.typ == "svc" {
				return badInputf("%q: explain takes pods, not Services", a)
			}
			p, err := needPod(e, r.key)
			if err != nil {
				return badInput(err)
			}
			pods = append(pods, p)
		}
		docs := []explained{} // JSON [] when there is nothing to explain
		for _, p := range pods {
			docs = append(docs, explainPod(e, p))
		}
		if isDoc(*out) {
			return writeDoc(s.Out, *out, docs)
		}
		for i, d := range docs {
			if i > 0 {
				fmt.Fprintln(s.Out)
			}
			writeExplained(s.Out, d)
		}
		return nil
	}
}

func explainPod(e *engine.Engine, p *model.Pod) explained {
	d := explained{Pod: p.Key().String(), Workload: p.Workload, Replicas: p.Replicas,
		Node: p.Node, HostNetwork: p.HostNetwork, Labels: p.Labels, IPs: []string{}}
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
	d := explainedDir{ClusterPolicies: explainClusterDir(e, p, dir)}
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
		xp := explainedPeer{Selects: peerSelects(peer, r.Ref.Policy.Namespace)}
		if peer.IPBlock != nil {
			xp.CIDRs = []string{peer.IPBlock.CIDR.String()}
		}
		for _, m := range members[i] {
			xp.Pods = append(xp.Pods, m.Key().String())
		}
		er.Peers = append(er.Peers, xp)
	}
	if !r.AllPorts {
		er.Ports = append(er.Ports, strings.Split(engine.DescribePorts(r), ", ")...)
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
			er.Resolved = append(er.Resolved, fmt.Sprintf("%s/%s resolves on each destination pod, whether a selector or an ipBlock holding its address matched it", np.Name, np.Protocol))
		}
	}
	return er
}

// writeExplained prints d as text; every name and value goes through esc.
func writeExplained(w io.Writer, d explained) {
	ips := strings.Join(d.IPs, ", ")
	if ips == "" {
		ips = "no IP"
	}
	fmt.Fprintf(w, "%s (%s) labels %s", esc(d.Pod), ips, labelString(d.Labels))
	if d.Node != "" {
		fmt.Fprintf(w, " node %s", esc(d.Node))
	}
	fmt.Fprintln(w)
	if d.Workload != "" {
		fmt.Fprintf(w, "  stands for %s\n", esc(standsFor(d)))
	}
	if len(d.IPs) == 0 {
		fmt.Fprintln(w, "  no IP in the input: no policy's ipBlock can match it, only pod selectors can")
	}
	if d.HostNetwork {
		fmt.Fprintln(w, "  host network: its traffic is the node's, and no policy selects it")
	}
	writeExplainedDir(w, "ingress", "who may connect to it", "from", d.Ingress)
	writeExplainedDir(w, "egress", "where it may connect", "to", d.Egress)
}

// standsFor says which pods a workload's entry stands for: one on every
// node for a DaemonSet, else its replicas when the input says how many.
// Two of them talk to each other under policy, which the matrix's
// diagonal shows.
func standsFor(d explained) string {
	ns, name, _ := strings.Cut(d.Pod, "/")
	name = strings.TrimSuffix(name, "["+d.Workload+"]")
	who := fmt.Sprintf("%s %s/%s", d.Workload, ns, name)
	switch {
	case d.Workload == "DaemonSet":
		return "the pod of " + who + " on every node"
	case d.Replicas == 1:
		return "the one pod of " + who
	case d.Replicas > 1:
		return fmt.Sprintf("the %d replicas of %s", d.Replicas, who)
	}
	return "the pods of " + who
}

func writeExplainedDir(w io.Writer, dir, what, prep string, d explainedDir) {
	writeExplainedCluster(w, dir, prep, d.ClusterPolicies)
	switch {
	case !d.Isolated && len(d.ClusterPolicies) > 0:
		fmt.Fprintf(w, "  %s: no NetworkPolicy isolates it: what no cluster rule decides is allowed\n", dir)
		return
	case !d.Isolated:
		fmt.Fprintf(w, "  %s: not isolated: %s is not restricted\n", dir, what)
		return
	}
	fmt.Fprintf(w, "  %s: isolated by %s\n", dir, esc(strings.Join(d.Policies, ", ")))
	if len(d.ClusterPolicies) > 0 {
		note := "NetworkPolicy decides what the Admin tier passes or does not match"
		for _, p := range d.ClusterPolicies {
			if p.Tier == model.BaselineTier.String() {
				note += "; the Baseline tier is never reached for this direction"
				break
			}
		}
		fmt.Fprintf(w, "    (%s)\n", note)
	}
	if len(d.Rules) == 0 {
		fmt.Fprintf(w, "    nothing is allowed (%s)\n", what)
		return
	}
	for _, r := range d.Rules {
		peers := "anyone (every pod and address)"
		if !r.AnyPeer {
			var parts []string
			for _, p := range r.Peers {
				part := esc(p.Selects)
				if p.CIDRs == nil {
					if len(p.Pods) == 0 {
						part += ": none today"
					} else {
						part += ": " + esc(abbreviate(p.Pods, 8))
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
		fmt.Fprintf(w, "    %s %s on %s  [%s %s[%d]]\n", prep, peers, esc(ports), esc(r.Policy), dir, r.Index)
		for _, res := range r.Resolved {
			fmt.Fprintf(w, "      %s\n", esc(res))
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
		parts[i] = esc(k + "=" + l[k])
	}
	return strings.Join(parts, ",")
}
