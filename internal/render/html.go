package render

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// WriteHTML writes one self-contained page (inline style and script, no
// URL to fetch): a filter, a grid per probe grouped by namespace whose
// cells carry their verdict and explanation (shown on hover), and a graph
// of the pods with an edge per allowed connection, pods that have none
// marked isolated. The markup is also well-formed XML, so that tests (and
// tools) can read it with encoding/xml; ids, classes and data attributes
// are stable for a browser test:
//
//   - input#filter (substring of namespace/name), select#verdict
//     ("", allow, deny, no-port), select#probe ("" or a probe's name)
//   - table.grid#grid-P[data-probe], thead th.ns[data-ns],
//     th.col[data-pod][data-ns][data-col], tbody.ns-group[data-ns],
//     tr.row[data-pod][data-ns], td.cell#cell-P-I-J with data-from,
//     data-to, data-probe, data-port, data-verdict, data-explanation
//   - svg#graph: g.node#node-I[data-pod][data-ns][data-isolated] (the
//     pod's key, or its group's with Group), line.edge[data-from]
//     [data-to][data-probes]
//   - pre#detail: the explanation of the cell under the pointer
//
// A URL fragment presets the controls by their ids, as a query string:
// page.html#filter=shop&verdict=deny&probe=80/TCP.
func WriteHTML(w io.Writer, m *Matrix) error {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>palisade matrix</title>\n<style>/*<![CDATA[*/" + pageStyle + "/*]]>*/</style>\n</head>\n<body>\n")
	fmt.Fprintf(&b, "<h1>palisade matrix</h1>\n<p id=\"source\">%s</p>\n<ul id=\"legend\">\n", esc(m.Source))
	for _, l := range m.Legend() {
		fmt.Fprintf(&b, "<li>%s</li>\n", esc(l))
	}
	b.WriteString("</ul>\n<div id=\"controls\">\n<label>pods <input id=\"filter\" type=\"search\" placeholder=\"namespace/name contains\"/></label>\n")
	b.WriteString("<label>verdict <select id=\"verdict\"><option value=\"\">any</option><option value=\"allow\">allow</option><option value=\"deny\">deny</option><option value=\"no-port\">no-port</option></select></label>\n")
	b.WriteString("<label>port <select id=\"probe\"><option value=\"\">every</option>")
	for _, g := range m.Grids {
		fmt.Fprintf(&b, "<option value=\"%s\">%s</option>", esc(g.Probe.String()), esc(g.Probe.String()))
	}
	b.WriteString("</select></label>\n</div>\n<pre id=\"detail\">hover over a cell for its explanation</pre>\n<div id=\"grids\">\n")
	for gi, g := range m.Grids {
		writeHTMLGrid(&b, m, gi, g)
	}
	b.WriteString("</div>\n<h2>graph</h2>\n")
	writeGraph(&b, m)
	b.WriteString("<script>//<![CDATA[\n" + pageScript + "//]]></script>\n</body>\n</html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func writeHTMLGrid(b *strings.Builder, m *Matrix, gi int, g Grid) {
	probe := esc(g.Probe.String())
	fmt.Fprintf(b, "<table class=\"grid\" id=\"grid-%d\" data-probe=\"%s\">\n<caption>%s</caption>\n<thead>\n<tr><th class=\"corner\"></th>", gi, probe, probe)
	for _, ns := range m.namespaces() {
		n := 0
		for _, p := range m.Pods {
			if p.Namespace == ns {
				n++
			}
		}
		fmt.Fprintf(b, "<th class=\"ns\" data-ns=\"%s\" colspan=\"%d\">%s</th>", esc(ns), n, esc(ns))
	}
	b.WriteString("</tr>\n<tr><th class=\"corner\">from \\ to</th>")
	for j, p := range m.Pods {
		fmt.Fprintf(b, "<th class=\"col pod\" data-pod=\"%s\" data-ns=\"%s\" data-col=\"%d\" title=\"%s\">%s</th>", esc(p.Key), esc(p.Namespace), j, esc(podTitle(p)), esc(p.Key))
	}
	b.WriteString("</tr>\n</thead>\n")
	for _, ns := range m.namespaces() {
		fmt.Fprintf(b, "<tbody class=\"ns-group\" data-ns=\"%s\">\n<tr class=\"ns-head\"><th colspan=\"%d\">namespace %s</th></tr>\n", esc(ns), len(m.Pods)+1, esc(ns))
		for i, p := range m.Pods {
			if p.Namespace != ns {
				continue
			}
			fmt.Fprintf(b, "<tr class=\"row\" data-pod=\"%s\" data-ns=\"%s\"><th class=\"pod\" title=\"%s\">%s</th>", esc(p.Key), esc(p.Namespace), esc(podTitle(p)), esc(p.Key))
			for j, c := range g.Cells[i] {
				port := ""
				if c.Verdict != NoPort {
					port = fmt.Sprint(c.Port)
				}
				fmt.Fprintf(b, "<td class=\"cell %s\" id=\"cell-%d-%d-%d\" data-col=\"%d\" data-from=\"%s\" data-to=\"%s\" data-probe=\"%s\" data-port=\"%s\" data-verdict=\"%s\" data-explanation=\"%s\" title=\"%s\">%s</td>",
					c.Verdict, gi, i, j, j, esc(p.Key), esc(m.Pods[j].Key), probe, port, c.Verdict, esc(c.Why), esc(cellTitle(m, g, i, j)), c.Verdict.Mark())
			}
			b.WriteString("</tr>\n")
		}
		b.WriteString("</tbody>\n")
	}
	b.WriteString("</table>\n")
}

// podTitle says what a pod declares and what isolates it.
func podTitle(p Pod) string {
	s := p.Key
	if len(p.Declared) > 0 {
		s += "\nports: " + strings.Join(p.Declared, ", ")
	}
	if len(p.ClusterIngress) > 0 {
		s += "\ningress cluster policies: " + strings.Join(p.ClusterIngress, ", ")
	}
	if len(p.Ingress) > 0 {
		s += "\ningress isolated by " + strings.Join(p.Ingress, ", ")
	}
	if len(p.ClusterEgress) > 0 {
		s += "\negress cluster policies: " + strings.Join(p.ClusterEgress, ", ")
	}
	if len(p.Egress) > 0 {
		s += "\negress isolated by " + strings.Join(p.Egress, ", ")
	}
	return s
}

// writeGraph draws Graph's nodes on a circle, in row order so that a
// namespace's nodes sit together, with an arrow per edge.
func writeGraph(b *strings.Builder, m *Matrix) {
	nodes, edges := m.Graph()
	n := len(nodes)
	r := max(120.0, float64(n)*14)
	width := 1
	for _, nd := range nodes {
		width = max(width, len([]rune(nd.Key)))
	}
	margin := float64(charWidth*width + 20)
	cx, cy := r+margin, r+40
	pos := make([][2]float64, n)
	for i := range nodes {
		a := 2*math.Pi*float64(i)/float64(max(n, 1)) - math.Pi/2
		pos[i] = [2]float64{cx + r*math.Cos(a), cy + r*math.Sin(a)}
	}
	fmt.Fprintf(b, "<svg id=\"graph\" width=\"%.0f\" height=\"%.0f\" font-family=\"monospace\" font-size=\"12\">\n", 2*cx, 2*cy)
	b.WriteString("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#3c9a5f\"/></marker></defs>\n")
	for _, e := range edges {
		from, to := nodes[e.From].Key, nodes[e.To].Key
		// Stop short of the destination's circle so the arrow shows.
		p, q := pos[e.From], pos[e.To]
		dx, dy := q[0]-p[0], q[1]-p[1]
		d := math.Max(math.Hypot(dx, dy), 1)
		fmt.Fprintf(b, "<line class=\"edge\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" marker-end=\"url(#arrow)\" data-from=\"%s\" data-to=\"%s\" data-probes=\"%s\"><title>%s</title></line>\n",
			p[0], p[1], q[0]-dx/d*8, q[1]-dy/d*8, esc(from), esc(to), esc(strings.Join(e.Probes, " ")),
			esc(from+" -> "+to+": "+strings.Join(e.Probes, ", ")))
	}
	for i, nd := range nodes {
		class, title := "node", nd.Key
		if len(nd.Pods) > 1 || nd.Key != m.Pods[nd.Pods[0]].Key {
			var keys []string
			for _, pi := range nd.Pods {
				keys = append(keys, m.Pods[pi].Key)
			}
			title += "\npods: " + strings.Join(keys, ", ")
		} else {
			title = podTitle(m.Pods[nd.Pods[0]])
		}
		if nd.Isolated {
			class, title = "node isolated", title+"\nisolated: no connection to or from another node"
		}
		anchor, dx := "start", 10.0
		if pos[i][0] < cx-1 {
			anchor, dx = "end", -10
		}
		fmt.Fprintf(b, "<g class=\"%s\" id=\"node-%d\" data-pod=\"%s\" data-ns=\"%s\" data-isolated=\"%t\"><title>%s</title><circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">%s</text></g>\n",
			class, i, esc(nd.Key), esc(nd.Namespace), nd.Isolated, esc(title), pos[i][0], pos[i][1], pos[i][0]+dx, pos[i][1]+4, anchor, esc(nd.Key))
	}
	b.WriteString("</svg>\n")
}

const pageStyle = `
body { font-family: sans-serif; margin: 1em; }
#controls label { margin-right: 1em; }
#detail { background: #f4f4f4; padding: .5em; min-height: 3em; white-space: pre-wrap; }
table.grid { border-collapse: collapse; margin: 1em 0; font-family: monospace; }
table.grid caption { text-align: left; font-weight: bold; }
table.grid th, table.grid td { border: 1px solid #ddd; padding: 2px 4px; }
th.col { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; }
th.ns, tr.ns-head th { background: #e8f0fe; text-align: left; }
td.cell { text-align: center; cursor: default; }
td.allow { background: #c9ecd4; }
td.deny { background: #f6c9c3; }
td.no-port { background: #e6e6e6; }
td.dim { opacity: .15; }
#graph line.edge { stroke: #3c9a5f; stroke-opacity: .6; }
#graph g.node circle { fill: #4a6fd0; }
#graph g.isolated circle { fill: #ffffff; stroke: #c00000; stroke-width: 2; stroke-dasharray: 3 2; }
#graph g.isolated text { fill: #c00000; }
[hidden] { display: none !important; }
`

// pageScript filters rows, columns, namespace groups and graph nodes by
// the filter's text, dims cells of other verdicts, shows one probe's grid
// and edges, and puts the explanation of the hovered cell in #detail.
const pageScript = `
(function () {
  var filter = document.getElementById('filter');
  var verdict = document.getElementById('verdict');
  var probe = document.getElementById('probe');
  var detail = document.getElementById('detail');
  function match(pod) { return pod.toLowerCase().indexOf(filter.value.trim().toLowerCase()) !== -1; }
  function apply() {
    document.querySelectorAll('table.grid').forEach(function (t) {
      t.hidden = probe.value !== '' && t.dataset.probe !== probe.value;
      var cols = {}, perNS = {};
      t.querySelectorAll('th.col').forEach(function (th) {
        var show = match(th.dataset.pod);
        th.hidden = !show;
        cols[th.dataset.col] = show;
        perNS[th.dataset.ns] = (perNS[th.dataset.ns] || 0) + (show ? 1 : 0);
      });
      t.querySelectorAll('th.ns').forEach(function (th) {
        var n = perNS[th.dataset.ns] || 0;
        th.hidden = n === 0;
        th.colSpan = Math.max(n, 1);
      });
      t.querySelectorAll('tbody.ns-group').forEach(function (tb) {
        var any = false;
        tb.querySelectorAll('tr.row').forEach(function (tr) {
          tr.hidden = !match(tr.dataset.pod);
          any = any || !tr.hidden;
        });
        tb.hidden = !any;
      });
      t.querySelectorAll('td.cell').forEach(function (td) {
        td.hidden = !cols[td.dataset.col];
        td.classList.toggle('dim', verdict.value !== '' && td.dataset.verdict !== verdict.value);
      });
    });
    document.querySelectorAll('#graph g.node').forEach(function (g) { g.style.display = match(g.dataset.pod) ? '' : 'none'; });
    document.querySelectorAll('#graph line.edge').forEach(function (l) {
      var onProbe = probe.value === '' || l.dataset.probes.split(' ').indexOf(probe.value) !== -1;
      l.style.display = onProbe && match(l.dataset.from) && match(l.dataset.to) ? '' : 'none';
    });
  }
  // A fragment such as #filter=shop&verdict=deny presets the controls:
  // a link to one view (and the browser test's way in).
  var preset = new URLSearchParams(location.hash.slice(1));
  [filter, verdict, probe].forEach(function (el) { if (preset.has(el.id)) { el.value = preset.get(el.id); } });
  [filter, verdict, probe].forEach(function (el) { el.addEventListener('input', apply); el.addEventListener('change', apply); });
  document.addEventListener('mouseover', function (ev) {
    var c = ev.target.closest ? ev.target.closest('td.cell') : null;
    if (c) { detail.textContent = c.title; }
  });
  apply();
})();
`
