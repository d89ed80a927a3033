package cli

import (
	"flag"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/reachdiff"
	"github.com/palisade-net/palisade/internal/render"
	"github.com/palisade-net/palisade/internal/truth"
)

const matrixFormats = "text, json, yaml, csv, md, dot, svg or html"

func matrixFlags(s Streams) (*flag.FlagSet, func(pos []string) error) {
	fs := newFlags("matrix", s)
	in := addInput(fs)
	var ports stringList
	fs.Var(&ports, "port", "port to probe: 80, 80/TCP, 53/UDP, or a container port name as http or dns/UDP, resolved on each destination (repeatable; default: the container ports the pods declare, 80/TCP if none)")
	out := fs.String("o", "text", "output: "+matrixFormats+" (svg: the grids, drawn without Graphviz; html: one self-contained page with grids and graph)")
	ipv6 := fs.Bool("6", false, "use the pods' IPv6 addresses")
	nodes := fs.String("nodes", "pods", "graph nodes of -o dot and html: pods, or workloads (a controller's generated pod names as ns/NAME-*, as diff groups them)")
	return fs, func(pos []string) error {
		write, isRender := render.Formats[*out]
		if !isRender && !isDoc(*out) {
			return badInputf("-o %q: want %s", *out, matrixFormats)
		}
		switch {
		case *nodes != "pods" && *nodes != "workloads":
			return badInputf("--nodes %q: want pods or workloads", *nodes)
		case *nodes == "workloads" && *out != "dot" && *out != "html":
			return badInputf("--nodes workloads: only -o dot and html draw a graph")
		}
		var probes []render.Probe
		for _, p := range ports {
			pr, err := parseProbe(p)
			if err != nil {
				return badInput(err)
			}
			if pr.Name != "" && isDoc(*out) {
				return badInputf("--port %s: -o json tables have one port number (-o yaml's too), and a named port resolves per pod; give a number", p)
			}
			probes = append(probes, pr)
		}
		c, err := in.load(s)
		if err != nil {
			return err
		}
		e := engine.FromCluster(c)
		fam := flagFamily(*ipv6)
		pods, err := matrixPods(e, in, pos)
		if err != nil {
			return badInput(err)
		}
		for _, pr := range probes {
			if pr.Name != "" && !declares(pods, pr) {
				return badInputf("--port %s: no pod of the matrix declares a container port %s", pr.Name, pr)
			}
		}
		note := "given with --port"
		if len(probes) == 0 {
			probes, note = declaredProbes(pods), "the container ports the pods declare"
			if len(probes) == 0 {
				probes, note = []render.Probe{{Port: 80, Protocol: model.TCP}}, "no pod declares a container port: the default"
			}
		}
		if isDoc(*out) {
			doc := truth.Document{Scenario: in.describe(), Steps: []truth.Step{{}}}
			for _, pr := range probes {
				t := truth.Predict(e, pods, fam, pr.Port, pr.Protocol).Table()
				doc.Steps[0].Probes = append(doc.Steps[0].Probes, t)
			}
			return writeDoc(s.Out, *out, doc)
		}
		// Only the formats that show explanations pay for them.
		explain := *out == "csv" || *out == "svg" || *out == "html"
		m := render.Build(e, pods, fam, probes, explain)
		m.Source, m.Ports = in.describe(), note
		if *nodes == "workloads" {
			m.Group = reachdiff.Workload
		}
		return write(s.Out, m)
	}
}

// portName is an IANA service name, as a container port's name is.
var portName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$`)

// parseProbe reads --port: what parsePort reads, or NAME[/PROTOCOL].
func parseProbe(s string) (render.Probe, error) {
	port, proto, err := parsePort(s)
	if err == nil {
		return render.Probe{Port: port, Protocol: proto}, nil
	}
	name, p, hasProto := strings.Cut(s, "/")
	if !portName.MatchString(name) || strings.Trim(name, "0123456789") == "" {
		return render.Probe{}, fmt.Errorf("port %q: want a number 1-65535 or a container port name, optionally /TCP, /UDP or /SCTP", s)
	}
	proto = model.TCP
	if hasProto {
		if proto, err = model.ParseProtocol(p); err != nil {
			return render.Probe{}, fmt.Errorf("port %q: %v", s, err)
		}
	}
	return render.Probe{Name: name, Protocol: proto}, nil
}

// matrixPods returns the rows and columns: the pods args name (NS/POD,
// POD in -n's namespace, pod/NS/POD, a workload by name, or a path.Match
// pattern over namespace/name), else those of the namespaces -n/-A show.
// The engine holds every namespace, since peers cross namespaces.
func matrixPods(e *engine.Engine, in *input, args []string) ([]*model.Pod, error) {
	if len(args) == 0 {
		var pods []*model.Pod
		for _, p := range e.Pods() {
			if in.shows(p.Namespace) {
				pods = append(pods, p)
			}
		}
		return pods, nil
	}
	seen := map[model.Key]bool{}
	var pods []*model.Pod
	add := func(p *model.Pod) {
		if !seen[p.Key()] {
			seen[p.Key()] = true
			pods = append(pods, p)
		}
	}
	for _, a := range args {
		if strings.ContainsAny(a, "*?") {
			pat := a
			if !strings.Contains(pat, "/") {
				pat = in.defaultNS + "/" + pat
			}
			if _, err := path.Match(pat, ""); err != nil {
				return nil, fmt.Errorf("pattern %q: %v", a, err)
			}
			n := 0
			for _, p := range e.Pods() {
				k := p.Key().String()
				bare := strings.TrimSuffix(k, "["+p.Workload+"]")
				if matchOK(pat, k) || matchOK(pat, bare) {
					add(p)
					n++
				}
			}
			if n == 0 {
				return nil, fmt.Errorf("pattern %q matches no pod", a)
			}
			continue
		}
		r, err := in.parseRef(a)
		if err != nil {
			return nil, err
		}
		if r.typ == "svc" {
			return nil, fmt.Errorf("%q: matrix takes pods, not Services", a)
		}
		p, err := needPod(e, r.key)
		if err != nil {
			return nil, err
		}
		add(p)
	}
	return pods, nil
}

func matchOK(pat, s string) bool {
	ok, _ := path.Match(pat, s)
	return ok
}

// declaredProbes lists the distinct port numbers and protocols pods
// declare, by port, then protocol.
func declaredProbes(pods []*model.Pod) []render.Probe {
	seen := map[render.Probe]bool{}
	var out []render.Probe
	for _, p := range pods {
		for _, cp := range p.Ports {
			pr := render.Probe{Port: cp.Port, Protocol: cp.Protocol}
			if !seen[pr] {
				seen[pr] = true
				out = append(out, pr)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].Protocol < out[j].Protocol
	})
	return out
}

// declares reports whether one of pods declares the named port of pr.
func declares(pods []*model.Pod, pr render.Probe) bool {
	for _, p := range pods {
		if _, ok := p.NamedPort(pr.Name, pr.Protocol); ok {
			return true
		}
	}
	return false
}
