package cli

import (
	"encoding/json"
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

// resolveFrom turns NS/POD or IP into an endpoint of the family fam.
func resolveFrom(e *engine.Engine, arg string, fam netip.Addr) (engine.Endpoint, error) {
	if ip, err := netip.ParseAddr(arg); err == nil {
		return e.EndpointFor(ip), nil
	}
	k, err := model.ParseKey(arg, "default")
	if err != nil {
		return engine.Endpoint{}, fmt.Errorf("--from %q: want NAMESPACE/POD or an IP address", arg)
	}
	p := e.Pod(k)
	if p == nil {
		return engine.Endpoint{}, fmt.Errorf("--from %q: no pod %s in the manifests", arg, k)
	}
	ep, ok := engine.PodEndpoint(p, fam)
	if !ok && len(p.IPs) > 0 {
		return engine.Endpoint{}, fmt.Errorf("--from %q: pod %s has no %s address", arg, k, family(fam))
	}
	return ep, nil
}

func family(fam netip.Addr) string {
	if fam.Is6() {
		return "IPv6"
	}
	return "IPv4"
}

// resolveTo turns NS/POD, NS/SERVICE or IP into its destinations.
func resolveTo(e *engine.Engine, c *model.Cluster, arg string, fam netip.Addr, port uint16, proto model.Protocol) ([]target, *model.Service, error) {
	if ip, err := netip.ParseAddr(arg); err == nil {
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
	k, err := model.ParseKey(arg, "default")
	if err != nil {
		return nil, nil, fmt.Errorf("--to %q: want NAMESPACE/POD, NAMESPACE/SERVICE or an IP address", arg)
	}
	if p := e.Pod(k); p != nil {
		ep, ok := engine.PodEndpoint(p, fam)
		if !ok && len(p.IPs) > 0 {
			return nil, nil, fmt.Errorf("--to %q: pod %s has no %s address", arg, k, family(fam))
		}
		return []target{{ep, port}}, nil, nil
	}
	if svc := c.Services[k]; svc != nil {
		ts, err := serviceTargets(c, svc, fam, port, proto)
		return ts, svc, err
	}
	return nil, nil, fmt.Errorf("--to %q: no pod or service %s in the manifests", arg, k)
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

// checkResult is check's JSON document.
type checkResult struct {
	Verdict  string        `json:"verdict"`
	From     string        `json:"from"`
	To       string        `json:"to"`
	Service  string        `json:"service,omitempty"`
	Protocol string        `json:"protocol"`
	Port     uint16        `json:"port"`
	Results  []connVerdict `json:"connections"`
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
	Pod       string     `json:"pod,omitempty"`
	Isolated  bool       `json:"isolated"`
	Isolating []string   `json:"isolatingPolicies,omitempty"`
	Allowed   bool       `json:"allowed"`
	AllowedBy *jsonRule  `json:"allowedBy,omitempty"`
	Misses    []jsonMiss `json:"notMatched,omitempty"`
}

type jsonRule struct {
	Policy    string `json:"policy"`
	Direction string `json:"direction"`
	Index     int    `json:"index"`
}

type jsonMiss struct {
	jsonRule
	Reason string `json:"reason"`
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
		j.Misses = append(j.Misses, jsonMiss{toJSONRule(m.Rule), m.Reason})
	}
	return j
}

func runCheck(s Streams, args []string) error {
	fs := newFlags("check", s)
	in := addInput(fs)
	from := fs.String("from", "", "source: NAMESPACE/POD or IP")
	to := fs.String("to", "", "destination: NAMESPACE/POD, NAMESPACE/SERVICE or IP")
	portArg := fs.String("port", "", "destination port: 80, 80/TCP, 53/UDP")
	out := fs.String("o", "text", "output: text or json")
	ipv6 := fs.Bool("6", false, "use the pods' IPv6 addresses")
	if _, err := parse(fs, args); err != nil {
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
	c, err := in.load(s)
	if err != nil {
		return err
	}
	e := engine.FromCluster(c)
	fam := netip.IPv4Unspecified()
	if *ipv6 {
		fam = netip.IPv6Unspecified()
	}
	if ip, err := netip.ParseAddr(*to); err == nil {
		fam = ip
	} else if ip, err := netip.ParseAddr(*from); err == nil {
		fam = ip
	}
	src, err := resolveFrom(e, *from, fam)
	if err != nil {
		return badInput(err)
	}
	targets, svc, err := resolveTo(e, c, *to, fam, port, proto)
	if err != nil {
		return badInput(err)
	}
	res := checkResult{From: src.String(), To: *to, Protocol: proto.String(), Port: port}
	if svc != nil {
		res.Service = svc.Key().String()
	}
	allowed := len(targets) > 0
	for _, t := range targets {
		v := e.Explain(engine.Conn{From: src, To: t.ep, Protocol: proto, Port: t.port})
		allowed = allowed && v.Allowed
		res.Results = append(res.Results, connVerdict{
			From: src.String(), To: t.ep.String(), Port: t.port, Allowed: v.Allowed, Shortcut: v.Shortcut,
			Egress: toJSONDecision(v.Egress), Ingress: toJSONDecision(v.Ingress),
		})
	}
	res.Verdict = "DENY"
	if allowed {
		res.Verdict = "ALLOW"
	}
	if *out == "json" {
		enc := json.NewEncoder(s.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		writeCheck(s.Out, res)
	}
	if !allowed {
		return silentExit(1)
	}
	return nil
}

func writeCheck(w io.Writer, r checkResult) {
	dest := r.To
	if r.Service != "" {
		dest = "service " + r.Service
	}
	fmt.Fprintf(w, "%s %s -> %s %d/%s\n", r.Verdict, r.From, dest, r.Port, r.Protocol)
	if r.Service != "" && len(r.Results) == 0 {
		fmt.Fprintf(w, "  service %s has no endpoints: nothing can answer\n", r.Service)
	}
	for _, c := range r.Results {
		indent := "  "
		if r.Service != "" || len(r.Results) > 1 {
			fmt.Fprintf(w, "  endpoint %s port %d: %s\n", c.To, c.Port, map[bool]string{true: "ALLOW", false: "DENY"}[c.Allowed])
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
		fmt.Fprintf(w, "%s%s: %s is not a pod, no %s policy applies\n", indent, dir, who, dir)
		return
	}
	if !d.Isolated {
		fmt.Fprintf(w, "%s%s of %s: not isolated (no policy selects it for %s): allowed\n", indent, dir, d.Pod, strings.ToUpper(dir[:1])+dir[1:])
		return
	}
	fmt.Fprintf(w, "%s%s of %s: isolated by %s\n", indent, dir, d.Pod, strings.Join(d.Isolating, ", "))
	if d.AllowedBy != nil {
		fmt.Fprintf(w, "%s  allowed by %s %s[%d]\n", indent, d.AllowedBy.Policy, strings.ToLower(d.AllowedBy.Direction), d.AllowedBy.Index)
		return
	}
	fmt.Fprintf(w, "%s  denied: no rule allows it\n", indent)
	for _, m := range d.Misses {
		if m.Index < 0 {
			fmt.Fprintf(w, "%s    %s: %s\n", indent, m.Policy, m.Reason)
			continue
		}
		fmt.Fprintf(w, "%s    %s %s[%d]: %s\n", indent, m.Policy, strings.ToLower(m.Direction), m.Index, m.Reason)
	}
}
