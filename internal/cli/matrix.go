package cli

import (
	"fmt"
	"net/netip"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/truth"
)

func runMatrix(s Streams, args []string) error {
	fs := newFlags("matrix", s)
	in := addInput(fs)
	var ports stringList
	fs.Var(&ports, "port", "port to probe, 80/TCP (repeatable; default 80/TCP)")
	out := fs.String("o", "text", "output: text or json")
	ipv6 := fs.Bool("6", false, "use the pods' IPv6 addresses")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("matrix", pos); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	if len(ports) == 0 {
		ports = stringList{"80/TCP"}
	}
	type probe struct {
		port  uint16
		proto model.Protocol
	}
	var probes []probe
	for _, p := range ports {
		port, proto, err := parsePort(p)
		if err != nil {
			return badInput(err)
		}
		probes = append(probes, probe{port, proto})
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
	// Rows and columns are the pods of the namespaces -n/-A show (in
	// truth.Less's order: pods, then workloads); the engine holds every
	// namespace, since peers cross namespaces.
	var pods []*model.Pod
	for _, p := range e.Pods() {
		if in.shows(p.Namespace) {
			pods = append(pods, p)
		}
	}
	doc := truth.Document{Scenario: in.describe(), Steps: []truth.Step{{}}}
	for i, pr := range probes {
		g := truth.Predict(e, pods, fam, pr.port, pr.proto)
		if *out == "json" {
			doc.Steps[0].Probes = append(doc.Steps[0].Probes, g.Table())
			continue
		}
		if i > 0 {
			fmt.Fprintln(s.Out)
		}
		if err := truth.WriteGrid(s.Out, g); err != nil {
			return err
		}
	}
	if *out == "json" {
		return writeJSON(s.Out, doc)
	}
	return nil
}
