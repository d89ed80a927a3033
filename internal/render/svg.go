package render

import (
	"fmt"
	"html"
	"io"
	"strings"

	"github.com/palisade-net/palisade/internal/truth"
)

// cell is the side of a grid square in the SVG views, charWidth a
// monospace character's estimated width at the font size used.
const (
	cellSize  = 16
	charWidth = 7
)

var verdictColor = map[Verdict]string{Allow: "#3c9a5f", Deny: "#d04a3a", NoPort: "#c8c8c8"}

// WriteSVG draws each probe's grid as coloured squares (green allowed,
// red denied, grey no such port), rows sources and columns destinations,
// each square titled with its pair and explanation; Graphviz is not
// needed. The legend follows the grids.
func WriteSVG(w io.Writer, m *Matrix) error {
	label := charWidth * (maxKeyLen(m) + 1)
	n := len(m.Pods)
	width := max(label+n*cellSize+20, charWidth*legendLen(m)+20)
	var b strings.Builder
	y := 20
	for _, g := range m.Grids {
		fmt.Fprintf(&b, "<text x=\"10\" y=\"%d\" font-weight=\"bold\">%s</text>\n", y, esc(g.Probe.String()))
		top := y + 10 + label
		for j, p := range m.Pods {
			x := label + j*cellSize + cellSize/2 + 4
			fmt.Fprintf(&b, "<text x=\"%d\" y=\"%d\" transform=\"rotate(-90 %d %d)\">%s</text>\n", x, top-4, x, top-4, esc(p.Key))
		}
		for i, p := range m.Pods {
			ry := top + i*cellSize
			fmt.Fprintf(&b, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n", label, ry+cellSize-4, esc(p.Key))
			for j, c := range g.Cells[i] {
				fmt.Fprintf(&b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" stroke=\"#ffffff\" data-verdict=\"%s\"><title>%s</title></rect>\n",
					label+4+j*cellSize, ry, cellSize, cellSize, verdictColor[c.Verdict], c.Verdict, esc(cellTitle(m, g, i, j)))
			}
		}
		y = top + n*cellSize + 30
	}
	for _, l := range m.Legend() {
		fmt.Fprintf(&b, "<text x=\"10\" y=\"%d\">%s</text>\n", y, esc(l))
		y += 18
	}
	_, err := fmt.Fprintf(w, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"monospace\" font-size=\"12\">\n%s</svg>\n", width, y, b.String())
	return err
}

// cellTitle is a cell's hover text: the pair, probe, verdict and why.
func cellTitle(m *Matrix, g Grid, i, j int) string {
	c := g.Cells[i][j]
	s := fmt.Sprintf("%s -> %s %s: %s", m.Pods[i].Key, m.Pods[j].Key, g.Probe, c.Verdict)
	if c.Why != "" {
		s += "\n" + c.Why
	}
	return s
}

func maxKeyLen(m *Matrix) int {
	n := 1
	for _, p := range m.Pods {
		n = max(n, len([]rune(p.Key)))
	}
	return n
}

func legendLen(m *Matrix) int {
	n := 0
	for _, l := range m.Legend() {
		n = max(n, len(l))
	}
	return n
}

// esc escapes text for HTML and XML alike: line by line through
// truth.Escape (no control character reaches a page, and XML forbids
// most), then html.EscapeString, which writes only &lt; &gt; &amp; &#39;
// &#34;, entities XML knows too.
func esc(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = truth.Escape(l)
	}
	return html.EscapeString(strings.Join(lines, "\n"))
}
