package cli

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/truth"
)

func runMatrix(s Streams, args []string) error {
	fs := newFlags("matrix", s)
	in := addInput(fs)
	var ports stringList
	fs.Var(&ports, "port", "port to probe, 80/TCP (repeatable; default 80/TCP)")
	out := fs.String("o", "text", "output: text or json")
	ipv6 := fs.Bool("6", false, "use the pods' IPv6 addresses")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := checkOutput(*out); err != nil {
		return err
	}
	if len(ports) == 0 {
		ports = stringList{"80/TCP"}
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
	doc := truth.Document{Scenario: strings.Join(in.files, ","), Steps: []truth.Step{{}}}
	for i, p := range ports {
		port, proto, err := parsePort(p)
		if err != nil {
			return badInput(err)
		}
		g := truth.Predict(e, e.Pods(), fam, port, proto)
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
		enc := json.NewEncoder(s.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(doc)
	}
	return nil
}
