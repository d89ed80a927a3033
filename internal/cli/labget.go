package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/palisade-net/palisade/internal/lab/store"
	"github.com/palisade-net/palisade/internal/manifest"
	"github.com/palisade-net/palisade/internal/model"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// resourceKinds maps what kubectl accepts after get/describe to a kind.
var resourceKinds = map[string]string{
	"pods": "Pod", "pod": "Pod", "po": "Pod",
	"services": "Service", "service": "Service", "svc": "Service",
	"networkpolicies": "NetworkPolicy", "networkpolicy": "NetworkPolicy", "netpol": "NetworkPolicy",
	"namespaces": "Namespace", "namespace": "Namespace", "ns": "Namespace",
}

func labGet(s Streams, args []string) error {
	fs := newFlags("lab get", s)
	var lf labFlags
	addLabFlags(fs, &lf)
	all := fs.Bool("A", false, "every namespace")
	fs.BoolVar(all, "all-namespaces", false, "every namespace")
	showLabels := fs.Bool("show-labels", false, "add a LABELS column")
	out := fs.String("o", "", "output: wide, yaml or json")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 || len(pos) > 2 {
		return badInputf("usage: palisade lab get pods|services|networkpolicies|namespaces [NAME] [-A] [--show-labels] [-o wide|yaml|json]")
	}
	kind := resourceKinds[strings.ToLower(pos[0])]
	if kind == "" {
		return badInputf("lab get: unknown resource type %q", pos[0])
	}
	switch *out {
	case "", "wide", "yaml", "json":
	default:
		return badInputf("-o %q: want wide, yaml or json", *out)
	}
	ls, err := store.Open(lf.name)
	if err != nil {
		return err
	}
	defer ls.Close()
	ns := lf.namespace
	if *all || kind == "Namespace" {
		ns = ""
	}
	name := ""
	if len(pos) == 2 {
		name = pos[1]
	}
	objs := ls.Enrich(ls.Find(kind, ns, name))
	if kind == "Namespace" {
		objs = ls.Namespaces(name)
	}
	if len(objs) == 0 {
		if name != "" {
			return fmt.Errorf("%s %q not found", strings.ToLower(kind), name)
		}
		where := fmt.Sprintf(" in %s namespace", ns)
		if ns == "" {
			where = ""
		}
		fmt.Fprintf(s.Err, "No resources found%s.\n", where)
		return nil
	}
	switch *out {
	case "yaml", "json":
		return printObjects(s.Out, objs, name != "", *out)
	}
	return printTable(s.Out, kind, objs, ns == "" && kind != "Namespace", *out == "wide", *showLabels)
}

func printObjects(w io.Writer, objs []manifest.Object, single bool, format string) error {
	var v any
	if single && len(objs) == 1 {
		v = objs[0].API
	} else {
		items := make([]runtime.Object, len(objs))
		for i, o := range objs {
			items[i] = o.API
		}
		v = map[string]any{"apiVersion": "v1", "kind": "List", "items": items, "metadata": map[string]string{"resourceVersion": ""}}
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "    ")
		return enc.Encode(v)
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// age prints a duration the way kubectl's AGE column does.
func age(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	d := time.Since(t.Time).Round(time.Second)
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 10*time.Minute:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 3*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 8*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

func labelsColumn(l map[string]string) string {
	if len(l) == 0 {
		return "<none>"
	}
	return labelString(l)
}

func printTable(w io.Writer, kind string, objs []manifest.Object, withNS, wide, showLabels bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	var header []string
	switch kind {
	case "Pod":
		header = []string{"NAME", "READY", "STATUS", "RESTARTS", "AGE"}
		if wide {
			header = append(header, "IP", "NODE", "NOMINATED NODE", "READINESS GATES")
		}
	case "Service":
		header = []string{"NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"}
		if wide {
			header = append(header, "SELECTOR")
		}
	case "NetworkPolicy":
		header = []string{"NAME", "POD-SELECTOR", "AGE"}
	case "Namespace":
		header = []string{"NAME", "STATUS", "AGE"}
	}
	if withNS {
		header = append([]string{"NAMESPACE"}, header...)
	}
	if showLabels {
		header = append(header, "LABELS")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, o := range objs {
		m := store.Meta(o)
		var row []string
		switch api := o.API.(type) {
		case *corev1.Pod:
			n := len(api.Spec.Containers)
			row = []string{api.Name, fmt.Sprintf("%d/%d", n, n), string(api.Status.Phase), "0", age(api.CreationTimestamp)}
			if wide {
				node := api.Spec.NodeName
				if node == "" {
					node = "<none>"
				}
				ip := api.Status.PodIP
				if ip == "" {
					ip = "<none>"
				}
				row = append(row, ip, node, "<none>", "<none>")
			}
		case *corev1.Service:
			var ports []string
			for _, p := range api.Spec.Ports {
				ports = append(ports, fmt.Sprintf("%d/%s", p.Port, protoOf(p.Protocol)))
			}
			cip := api.Spec.ClusterIP
			if cip == "" {
				cip = "<none>"
			}
			row = []string{api.Name, string(api.Spec.Type), cip, "<none>", strings.Join(ports, ","), age(api.CreationTimestamp)}
			if wide {
				row = append(row, labelsColumn(api.Spec.Selector))
			}
		case *networkingv1.NetworkPolicy:
			sel := metav1.FormatLabelSelector(&api.Spec.PodSelector)
			row = []string{api.Name, sel, age(api.CreationTimestamp)}
		case *corev1.Namespace:
			row = []string{api.Name, "Active", age(api.CreationTimestamp)}
		default:
			continue
		}
		if withNS {
			row = append([]string{m.GetNamespace()}, row...)
		}
		if showLabels {
			row = append(row, labelsColumn(m.GetLabels()))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func protoOf(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

func labDescribe(s Streams, args []string) error {
	fs := newFlags("lab describe", s)
	var lf labFlags
	addLabFlags(fs, &lf)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || resourceKinds[strings.ToLower(pos[0])] != "NetworkPolicy" {
		return badInputf("usage: palisade lab describe networkpolicy NAME")
	}
	ls, err := store.Open(lf.name)
	if err != nil {
		return err
	}
	defer ls.Close()
	objs := ls.Find("NetworkPolicy", lf.namespace, pos[1])
	if len(objs) == 0 {
		return fmt.Errorf("networkpolicies.networking.k8s.io %q not found", pos[1])
	}
	np := objs[0].API.(*networkingv1.NetworkPolicy)
	pol := objs[0].Model.(*model.Policy)
	describeNetworkPolicy(s.Out, np, pol)
	return nil
}

// describeNetworkPolicy prints a policy as `kubectl describe` does, with
// the policy types the API server would have defaulted.
func describeNetworkPolicy(w io.Writer, np *networkingv1.NetworkPolicy, pol *model.Policy) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "Name:\t%s\n", np.Name)
	fmt.Fprintf(tw, "Namespace:\t%s\n", pol.Namespace)
	fmt.Fprintf(tw, "Created on:\t%s\n", np.CreationTimestamp)
	fmt.Fprintf(tw, "Labels:\t%s\n", mapLines(np.Labels))
	fmt.Fprintf(tw, "Annotations:\t%s\n", mapLines(np.Annotations))
	tw.Flush()
	fmt.Fprintln(w, "Spec:")
	if len(np.Spec.PodSelector.MatchLabels) == 0 && len(np.Spec.PodSelector.MatchExpressions) == 0 {
		fmt.Fprintln(w, "  PodSelector:     <none> (Allowing the specific traffic to all pods in this namespace)")
	} else {
		fmt.Fprintf(w, "  PodSelector:     %s\n", metav1.FormatLabelSelector(&np.Spec.PodSelector))
	}
	var types []string
	if pol.Ingress {
		types = append(types, "Ingress")
		fmt.Fprintln(w, "  Allowing ingress traffic:")
		var rules []describedRule
		for _, r := range np.Spec.Ingress {
			rules = append(rules, describedRule{r.Ports, r.From})
		}
		describeRules(w, rules, "From", "source", "ingress")
	} else {
		fmt.Fprintln(w, "  Not affecting ingress traffic")
	}
	if pol.Egress {
		types = append(types, "Egress")
		fmt.Fprintln(w, "  Allowing egress traffic:")
		var rules []describedRule
		for _, r := range np.Spec.Egress {
			rules = append(rules, describedRule{r.Ports, r.To})
		}
		describeRules(w, rules, "To", "destination", "egress")
	} else {
		fmt.Fprintln(w, "  Not affecting egress traffic")
	}
	fmt.Fprintf(w, "  Policy Types: %s\n", strings.Join(types, ", "))
}

func mapLines(m map[string]string) string {
	if len(m) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var lines []string
	for _, k := range keys {
		lines = append(lines, k+"="+m[k])
	}
	return strings.Join(lines, "\n\t")
}

// describedRule is an ingress or egress rule: its ports and its peers.
type describedRule struct {
	ports []networkingv1.NetworkPolicyPort
	peers []networkingv1.NetworkPolicyPeer
}

func describeRules(w io.Writer, rules []describedRule, peerWord, peerNoun, dir string) {
	const indent = "    "
	if len(rules) == 0 {
		fmt.Fprintf(w, "%s<none> (Selected pods are isolated for %s connectivity)\n", indent, dir)
		return
	}
	for i, r := range rules {
		ports, peers := r.ports, r.peers
		if len(ports) == 0 {
			fmt.Fprintf(w, "%sTo Port: <any> (traffic allowed to all ports)\n", indent)
		}
		for _, p := range ports {
			proto := corev1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			port := "<any>"
			if p.Port != nil {
				port = p.Port.String()
				if p.EndPort != nil {
					port += fmt.Sprintf("-%d", *p.EndPort)
				}
			}
			fmt.Fprintf(w, "%sTo Port: %s/%s\n", indent, port, proto)
		}
		if len(peers) == 0 {
			fmt.Fprintf(w, "%s%s: <any> (traffic not restricted by %s)\n", indent, peerWord, peerNoun)
		}
		for _, p := range peers {
			fmt.Fprintf(w, "%s%s:\n", indent, peerWord)
			if p.NamespaceSelector != nil {
				fmt.Fprintf(w, "%s  NamespaceSelector: %s\n", indent, metav1.FormatLabelSelector(p.NamespaceSelector))
			}
			if p.PodSelector != nil {
				fmt.Fprintf(w, "%s  PodSelector: %s\n", indent, metav1.FormatLabelSelector(p.PodSelector))
			}
			if p.IPBlock != nil {
				fmt.Fprintf(w, "%s  IPBlock:\n%s    CIDR: %s\n%s    Except: %s\n", indent, indent, p.IPBlock.CIDR, indent, strings.Join(p.IPBlock.Except, ", "))
			}
		}
		if i != len(rules)-1 {
			fmt.Fprintf(w, "%s----------\n", indent)
		}
	}
}
