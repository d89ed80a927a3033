package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// parsePort reads "80", "80/TCP" or "53/udp".
func parsePort(s string) (uint16, model.Protocol, error) {
	num, proto, hasProto := strings.Cut(s, "/")
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return 0, 0, fmt.Errorf("port %q: want a number 1-65535, optionally /TCP, /UDP or /SCTP", s)
	}
	p := model.TCP
	if hasProto {
		if p, err = model.ParseProtocol(proto); err != nil {
			return 0, 0, fmt.Errorf("port %q: %v", s, err)
		}
	}
	return uint16(n), p, nil
}

// target is one destination that a --to argument resolves to: a pod or
// address, with the port the connection really uses (a Service's target
// port on that endpoint).
type target struct {
	ep   engine.Endpoint
	port uint16
}

// parseAddr reads an IP address, an IPv4-mapped IPv6 one (::ffff:10.0.1.10)
// as the IPv4 address it maps, since that is the packet the kernel sends.
func parseAddr(s string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(s)
	return ip.Unmap(), err == nil
}

// flagFamily is the unspecified address of the family a -6 flag picks: the
// engine's and the lab's way of naming one.
func flagFamily(ipv6 bool) netip.Addr {
	if ipv6 {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

// connFamily returns the connection's address family: that of an address
// given as --from or --to, else IPv6 with -6, else IPv4. Addresses of two
// families, or -6 with an IPv4 address, are an error: a connection has one.
func connFamily(from, to string, v6 bool) (netip.Addr, error) {
	fam := flagFamily(v6)
	by := "" // the flag and address that set fam
	for _, a := range [][2]string{{"--from", from}, {"--to", to}} {
		ip, ok := parseAddr(a[1])
		if !ok {
			continue
		}
		if by == "" && v6 && ip.Is4() {
			return fam, fmt.Errorf("-6 with %s %s, an IPv4 address: a connection has one address family", a[0], ip)
		}
		if by != "" && ip.Is6() != fam.Is6() {
			return fam, fmt.Errorf("%s is %s and %s %s is %s: a connection has one address family", by, family(fam), a[0], ip, family(ip))
		}
		fam, by = ip, a[0]+" "+ip.String()
	}
	return fam, nil
}

// resolveFrom turns --from's address or pod into an endpoint of the
// family fam.
func resolveFrom(e *engine.Engine, in *input, arg string, fam netip.Addr) (engine.Endpoint, error) {
	if ip, ok := parseAddr(arg); ok {
		return e.EndpointFor(ip), nil
	}
	r, err := in.parseRef(arg)
	if err != nil {
		return engine.Endpoint{}, fmt.Errorf("--from %v, or an IP address", err)
	}
	if r.typ == "svc" {
		return engine.Endpoint{}, fmt.Errorf("--from %q: a Service is not a source: give a pod", arg)
	}
	p, err := needPod(e, r.key)
	if err != nil {
		return engine.Endpoint{}, fmt.Errorf("--from %q: %v", arg, err)
	}
	return podEndpoint("--from", arg, p, fam)
}

// podEndpoint is p's endpoint of the family fam. A pod without addresses
// (a workload, a manifest without status) is judged by identity alone; one
// with addresses of the other family only cannot take part.
func podEndpoint(flag, arg string, p *model.Pod, fam netip.Addr) (engine.Endpoint, error) {
	ep, ok := engine.PodEndpoint(p, fam)
	if !ok && len(p.IPs) > 0 {
		return ep, fmt.Errorf("%s %q: pod %s has no %s address", flag, arg, p.Key(), family(fam))
	}
	return ep, nil
}

func family(fam netip.Addr) string {
	if fam.Is6() {
		return "IPv6"
	}
	return "IPv4"
}

// resolveTo turns --to's address, pod or Service into its destinations,
// and returns the Service when it names one. A bare name that is both a
// pod (or workload) and a Service is an error: the two differ by the
// Service's port mapping, and kubectl run --expose makes such pairs.
func resolveTo(e *engine.Engine, c *model.Cluster, in *input, arg string, fam netip.Addr, port uint16, proto model.Protocol) ([]target, *model.Service, error) {
	if ip, ok := parseAddr(arg); ok {
		for _, svc := range c.Services {
			for _, cip := range svc.ClusterIPs {
				if cip == ip {
					ts, err := serviceTargets(c, svc, fam, port, proto)
					return ts, svc, err
				}
			}
		}
		return []target{{e.EndpointFor(ip), port}}, nil, nil
	}
	r, err := in.parseRef(arg)
	if err != nil {
		return nil, nil, fmt.Errorf("--to %v, or an IP address", err)
	}
	var p *model.Pod
	if r.typ != "svc" {
		if p, err = findPod(e, r.key); err != nil {
			return nil, nil, fmt.Errorf("--to %q: %v", arg, err)
		}
	}
	var svc *model.Service
	if r.typ != "pod" {
		svc = c.Services[r.key]
	}
	switch {
	case p != nil && svc != nil:
		kind := "pod"
		if p.Workload != "" {
			kind = p.Workload
		}
		return nil, nil, fmt.Errorf("--to %q: %s %s and service %s both exist: say pod/%s for the %s, svc/%s for the Service (its endpoints, through its port mapping)",
			arg, kind, p.Key(), svc.Key(), r.key, kind, r.key)
	case p != nil:
		ep, err := podEndpoint("--to", arg, p, fam)
		return []target{{ep, port}}, nil, err
	case svc != nil:
		ts, err := serviceTargets(c, svc, fam, port, proto)
		return ts, svc, err
	}
	what := map[string]string{"": "pod or service", "pod": "pod", "svc": "service"}[r.typ]
	return nil, nil, fmt.Errorf("--to %q: no %s %s", arg, what, r.key)
}

// serviceTargets returns a Service's endpoints on the target port of the
// service port that port names.
func serviceTargets(c *model.Cluster, svc *model.Service, fam netip.Addr, port uint16, proto model.Protocol) ([]target, error) {
	var sp *model.ServicePort
	for i := range svc.Ports {
		if svc.Ports[i].Port == port && svc.Ports[i].Protocol == proto {
			sp = &svc.Ports[i]
		}
	}
	if sp == nil {
		return nil, fmt.Errorf("service %s has no port %d/%s", svc.Key(), port, proto)
	}
	var out []target
	for _, p := range c.Endpoints(svc) {
		tp, ok := sp.TargetPortOn(p)
		if !ok {
			continue // a named target port this pod lacks: not an endpoint
		}
		ep, ok := engine.PodEndpoint(p, fam)
		if !ok && len(p.IPs) > 0 {
			continue
		}
		out = append(out, target{ep, tp})
	}
	return out, nil
}

// checkResult is check's JSON document. Verdict is ALLOW when every
// endpoint of the destination allows the connection, DENY when none does
// (or there is none), PARTIAL otherwise; a pod or an address is one
// endpoint.
type checkResult struct {
	Verdict          string        `json:"verdict"`
	From             string        `json:"from"`
	To               string        `json:"to"`
	Service          string        `json:"service,omitempty"`
	Protocol         string        `json:"protocol"`
	Port             uint16        `json:"port"`
	AllowedEndpoints int           `json:"allowedEndpoints"`
	Endpoints        int           `json:"endpoints"`
	Results          []connVerdict `json:"connections"`
}

type connVerdict struct {
	From     string       `json:"from"`
	To       string       `json:"to"`
	Port     uint16       `json:"port"`
	Allowed  bool         `json:"allowed"`
	Shortcut string       `json:"shortcut,omitempty"`
	Egress   jsonDecision `json:"egress"`
	Ingress  jsonDecision `json:"ingress"`
}

type jsonDecision struct {
	Pod string `json:"pod,omitempty"`
	// Stage is what decided: "admin" (a rule of the Admin tier),
	// "networkPolicy", "baseline" (a rule of the Baseline tier) or
	// "default" (nothing did: allowed).
	Stage string `json:"stage"`
	// Isolated and Isolating say whether NetworkPolicy isolates the pod;
	// they are only known when NetworkPolicy was consulted (not when the
	// Admin tier decided).
	Isolated  bool      `json:"isolated"`
	Isolating []string  `json:"isolatingPolicies,omitempty"`
	Allowed   bool      `json:"allowed"`
	AllowedBy *jsonRule `json:"allowedBy,omitempty"`
	// AllowedByPeers is peerAllows for AllowedBy; test fills it when a
	// check meant to be denied is allowed.
	AllowedByPeers []string   `json:"allowedByPeers,omitempty"`
	Misses         []jsonMiss `json:"notMatched,omitempty"`
	// ClusterRule is the cluster policy rule that decided (stage admin
	// or baseline).
	ClusterRule *jsonClusterRule `json:"clusterRule,omitempty"`
	// PassedBy are the Pass rules that handed the decision down, in order.
	PassedBy []jsonClusterRule `json:"passedBy,omitempty"`
	// ClusterMisses are the rules of cluster policies that apply to the
	// pod and did not match, with why.
	ClusterMisses []jsonClusterMiss `json:"clusterNotMatched,omitempty"`
}

type jsonRule struct {
	Policy    string `json:"policy"`
	Direction string `json:"direction"`
	Index     int    `json:"index"`
}

type jsonMiss struct {
	jsonRule
	Reason string `json:"reason"`
	// Peers says, one line per peer of the rule, why it did not match
	// (see peerWhy); check fills it for the directions that deny.
	Peers []string `json:"peers,omitempty"`
}

func toJSONRule(r engine.RuleRef) jsonRule {
	return jsonRule{r.Policy.String(), r.Direction.String(), r.Index}
}

func toJSONDecision(d engine.Decision) jsonDecision {
	j := jsonDecision{Isolated: len(d.Isolating) > 0, Allowed: d.Allowed}
	if d.Applies() {
		j.Pod = d.Pod.String()
	}
	for _, k := range d.Isolating {
		j.Isolating = append(j.Isolating, k.String())
	}
	if d.By != nil {
		r := toJSONRule(*d.By)
		j.AllowedBy = &r
	}
	for _, m := range d.Misses {
		j.Misses = append(j.Misses, jsonMiss{jsonRule: toJSONRule(m.Rule), Reason: m.Reason})
	}
	addCluster(&j, d)
	return j
}

// explainDecision is toJSONDecision with, when d denies, each missed
// rule's per-peer reasons for connection c.
func explainDecision(e *engine.Engine, c engine.Conn, d engine.Decision) jsonDecision {
	j := toJSONDecision(d)
	if d.Allowed {
		return j
	}
	for i, m := range d.Misses {
		j.Misses[i].Peers = peerWhy(e, m.Rule, c)
	}
	return j
}

func checkFlags(s Streams) (*flag.FlagSet, func(pos []string) error) {
	fs := newFlags("check", s)
	in := addInput(fs)
	from := fs.String("from", "", "source: [pod/]NAMESPACE/POD, POD (in -n's namespace) or IP")
	to := fs.String("to", "", "destination: NAMESPACE/POD, svc/NAMESPACE/SERVICE, pod/NAMESPACE/POD or IP (NAMESPACE/ optional)")
	portArg := fs.String("port", "", "destination port: 80, 80/TCP, 53/UDP")
	out := fs.String("o", "text", "output: text, json or yaml")
	ipv6 := fs.Bool("6", false, "use the pods' IPv6 addresses")
	return fs, func(pos []string) error {
		if err := noArgs("check", pos); err != nil {
			return err
		}
		if err := checkOutput(*out); err != nil {
			return err
		}
		if *from == "" || *to == "" || *portArg == "" {
			return badInputf("check needs --from, --to and --port")
		}
		port, proto, err := parsePort(*portArg)
		if err != nil {
			return badInput(err)
		}
		fam, err := connFamily(*from, *to, *ipv6)
		if err != nil {
			return badInput(err)
		}
		c, err := in.load(s)
		if err != nil {
			return err
		}
		e := engine.FromCluster(c)
		src, err := resolveFrom(e, in, *from, fam)
		if err != nil {
			return badInput(err)
		}
		targets, svc, err := resolveTo(e, c, in, *to, fam, port, proto)
		if err != nil {
			return badInput(err)
		}
		res := checkResult{From: src.String(), Protocol: proto.String(), Port: port, Endpoints: len(targets)}
		switch ip, isIP := parseAddr(*to); {
		case svc != nil:
			res.To, res.Service = svc.Key().String(), svc.Key().String()
		case isIP:
			res.To = ip.String()
		default:
			res.To = targets[0].ep.String()
		}
		for _, t := range targets {
			conn := engine.Conn{From: src, To: t.ep, Protocol: proto, Port: t.port}
			v := e.Explain(conn)
			if v.Allowed {
				res.AllowedEndpoints++
			}
			res.Results = append(res.Results, connVerdict{
				From: src.String(), To: t.ep.String(), Port: t.port, Allowed: v.Allowed, Shortcut: v.Shortcut,
				Egress: explainDecision(e, conn, v.Egress), Ingress: explainDecision(e, conn, v.Ingress),
			})
		}
		switch res.AllowedEndpoints {
		case 0:
			res.Verdict = "DENY"
		case res.Endpoints:
			res.Verdict = "ALLOW"
		default:
			res.Verdict = "PARTIAL"
		}
		if *out != "text" {
			if err := writeDoc(s.Out, *out, res); err != nil {
				return err
			}
		} else {
			writeCheck(s.Out, res)
		}
		if res.Verdict != "ALLOW" {
			return silentExit(1) // some connection fails
		}
		return nil
	}
}

// writeJSON writes v indented, as every verb's -o json does.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// verdictWord is a connection's verdict in text output.
func verdictWord(allowed bool) string {
	if allowed {
		return "ALLOW"
	}
	return "DENY"
}

// writeCheck prints r as text; every name goes through esc.
func writeCheck(w io.Writer, r checkResult) {
	dest := esc(r.To)
	if r.Service != "" {
		dest = "service " + esc(r.Service)
	}
	fmt.Fprintf(w, "%s %s -> %s %d/%s", r.Verdict, esc(r.From), dest, r.Port, r.Protocol)
	switch {
	case r.Service == "":
		fmt.Fprintln(w)
	case r.Endpoints == 0:
		fmt.Fprintf(w, ": no endpoints\n  service %s selects no pod that serves port %d/%s: nothing can answer\n", esc(r.Service), r.Port, r.Protocol)
	default:
		fmt.Fprintf(w, ": %d of %d endpoint%s allowed\n", r.AllowedEndpoints, r.Endpoints, map[bool]string{true: "s"}[r.Endpoints > 1])
	}
	for _, c := range r.Results {
		indent := "  "
		if r.Service != "" || len(r.Results) > 1 {
			fmt.Fprintf(w, "  endpoint %s port %d: %s\n", esc(c.To), c.Port, verdictWord(c.Allowed))
			indent = "    "
		}
		if c.Shortcut != "" {
			fmt.Fprintf(w, "%s%s: never subject to policy\n", indent, c.Shortcut)
			if c.Shortcut == "loopback" {
				continue
			}
		}
		writeDecision(w, indent, "egress", c.From, c.Egress)
		if c.Shortcut == "" {
			writeDecision(w, indent, "ingress", c.To, c.Ingress)
		}
	}
}

func writeDecision(w io.Writer, indent, dir, who string, d jsonDecision) {
	if d.Pod == "" {
		fmt.Fprintf(w, "%s%s: %s is not a pod, no %s policy applies\n", indent, dir, esc(who), dir)
		return
	}
	fmt.Fprintf(w, "%s%s of %s: %s\n", indent, dir, esc(d.Pod), esc(decisionHeader(d, dir)))
	writeClusterTier(w, indent, d, model.AdminTier.String())
	if d.Stage == "networkPolicy" {
		writeNetworkPolicy(w, indent, d)
	}
	writeClusterTier(w, indent, d, model.BaselineTier.String())
}

// writeNetworkPolicy prints the rule of the isolating policies that
// allowed a direction, or why none did.
func writeNetworkPolicy(w io.Writer, indent string, d jsonDecision) {
	if d.AllowedBy != nil {
		fmt.Fprintf(w, "%s  allowed by %s %s[%d]\n", indent, esc(d.AllowedBy.Policy), strings.ToLower(d.AllowedBy.Direction), d.AllowedBy.Index)
		for _, p := range d.AllowedByPeers {
			fmt.Fprintf(w, "%s    %s\n", indent, esc(p))
		}
		return
	}
	fmt.Fprintf(w, "%s  denied: no rule allows it\n", indent)
	for _, m := range d.Misses {
		if m.Index < 0 {
			fmt.Fprintf(w, "%s    %s: %s\n", indent, esc(m.Policy), esc(m.Reason))
			continue
		}
		fmt.Fprintf(w, "%s    %s %s[%d]: %s\n", indent, esc(m.Policy), strings.ToLower(m.Direction), m.Index, esc(m.Reason))
		for _, p := range m.Peers {
			fmt.Fprintf(w, "%s      %s\n", indent, esc(p))
		}
	}
}
