package render

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/palisade-net/palisade/internal/truth"
)

// Formats are the -o values the writers below serve, by name.
var Formats = map[string]func(io.Writer, *Matrix) error{
	"text": WriteText,
	"csv":  WriteCSV,
	"md":   WriteMarkdown,
	"dot":  WriteDOT,
	"svg":  WriteSVG,
	"html": WriteHTML,
}

// WriteText prints each probe's grid as matrix always has (the probe, a
// header of destinations, a row per source), its columns aligned with
// spaces, then a blank line and the legend. Names go through
// truth.Escape.
func WriteText(w io.Writer, m *Matrix) error {
	var b strings.Builder
	for gi, g := range m.Grids {
		if gi > 0 {
			b.WriteString("\n")
		}
		b.WriteString(g.Probe.String() + "\n")
		rows := [][]string{{"-"}}
		for _, p := range m.Pods {
			rows[0] = append(rows[0], truth.Escape(p.Key))
		}
		for i, p := range m.Pods {
			row := []string{truth.Escape(p.Key)}
			for _, c := range g.Cells[i] {
				row = append(row, c.Verdict.Mark())
			}
			rows = append(rows, row)
		}
		writeAligned(&b, rows)
	}
	b.WriteString("\n")
	for _, l := range m.Legend() {
		b.WriteString(l + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeAligned pads every column but the last to its widest cell plus
// two spaces, counting runes.
func writeAligned(b *strings.Builder, rows [][]string) {
	var width []int
	for _, r := range rows {
		for j, c := range r {
			if j >= len(width) {
				width = append(width, 0)
			}
			width[j] = max(width[j], len([]rune(c)))
		}
	}
	for _, r := range rows {
		for j, c := range r {
			b.WriteString(c)
			if j < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[j]-len([]rune(c))+2))
			}
		}
		b.WriteString("\n")
	}
}

// WriteCSV writes one record per probe and ordered pair, with a header:
// probe, from, to, the port connected to (empty when the destination
// declares no such named port), protocol, verdict and explanation.
func WriteCSV(w io.Writer, m *Matrix) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"probe", "from", "to", "port", "protocol", "verdict", "explanation"})
	for _, g := range m.Grids {
		for i, from := range m.Pods {
			for j, to := range m.Pods {
				c := g.Cells[i][j]
				port := ""
				if c.Verdict != NoPort {
					port = strconv.Itoa(int(c.Port))
				}
				cw.Write([]string{g.Probe.String(), from.Key, to.Key, port, g.Probe.Protocol.String(), c.Verdict.String(), c.Why})
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteMarkdown writes a table per probe under a heading, then the legend
// as a list.
func WriteMarkdown(w io.Writer, m *Matrix) error {
	var b strings.Builder
	for _, g := range m.Grids {
		fmt.Fprintf(&b, "### %s\n\n| from \\ to |", g.Probe)
		for _, p := range m.Pods {
			b.WriteString(" " + mdEscape(p.Key) + " |")
		}
		b.WriteString("\n|---|" + strings.Repeat("---|", len(m.Pods)) + "\n")
		for i, p := range m.Pods {
			b.WriteString("| " + mdEscape(p.Key) + " |")
			for _, c := range g.Cells[i] {
				b.WriteString(" " + mdEscape(c.Verdict.Mark()) + " |")
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	for _, l := range m.Legend() {
		b.WriteString("- " + mdEscape(l) + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdEscape keeps text from breaking a table or turning into markup.
func mdEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "|", `\|`, "*", `\*`, "_", `\_`, "`", "\\`", "[", `\[`, "]", `\]`, "<", "&lt;", ">", "&gt;")
	return r.Replace(truth.Escape(s))
}

// WriteDOT writes a Graphviz digraph of Graph: a node per pod (or
// group), clustered by namespace; an edge per allowed pair of distinct
// nodes, labelled with the probes that allow it; nodes with no edge
// dashed, red and labelled isolated.
func WriteDOT(w io.Writer, m *Matrix) error {
	var b strings.Builder
	b.WriteString("digraph matrix {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fillcolor=\"#e8f0fe\"];\n")
	nodes, edges := m.Graph()
	for ni, ns := range m.namespaces() {
		fmt.Fprintf(&b, "  subgraph cluster_%d {\n    label=%s;\n", ni, dotQuote(ns))
		for _, n := range nodes {
			if n.Namespace != ns {
				continue
			}
			attrs := ""
			if n.Isolated {
				attrs = ` [style="rounded,filled,dashed", fillcolor="#fde2e2", color="#c00000", xlabel="isolated"]`
			}
			fmt.Fprintf(&b, "    %s%s;\n", dotQuote(n.Key), attrs)
		}
		b.WriteString("  }\n")
	}
	for _, e := range edges {
		fmt.Fprintf(&b, "  %s -> %s [label=%s];\n", dotQuote(nodes[e.From].Key), dotQuote(nodes[e.To].Key), dotQuote(strings.Join(e.Probes, ", ")))
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(truth.Escape(s)) + `"`
}

// namespaces lists the pods' namespaces in the order rows meet them.
func (m *Matrix) namespaces() []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range m.Pods {
		if !seen[p.Namespace] {
			seen[p.Namespace] = true
			out = append(out, p.Namespace)
		}
	}
	return out
}
