package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/palisade-net/palisade/internal/lab/kubetest"
	"github.com/palisade-net/palisade/internal/truth"
)

// The cell colours of internal/render/html.go's style: the screenshot
// must show both.
var (
	allowColour = color.RGBA{0xc9, 0xec, 0xd4, 0xff}
	denyColour  = color.RGBA{0xf6, 0xc9, 0xc3, 0xff}
)

// TestBrowserMatrixHTML renders the seed example's `palisade matrix -o
// html` in Debian's headless Chromium (issue 12): the DOM after the page's
// script ran has a cell per pair with the verdict `-o json` predicts, the
// namespace grouping and the graph's isolated marks, and the fragment's
// filters hide and dim what they should; the screenshot is the window's
// size and shows the allowed and the denied cells' colours.
func TestBrowserMatrixHTML(t *testing.T) {
	chromium := needChromium(t)
	bin := buildPalisade(t)
	seed := filepath.Join(kubetest.ModuleRoot(t), "examples", "seed")
	page := filepath.Join(t.TempDir(), "matrix.html")
	if err := os.WriteFile(page, palisadeOut(t, bin, "matrix", "-f", seed, "-o", "html"), 0o644); err != nil {
		t.Fatal(err)
	}
	var doc truth.Document
	if err := json.Unmarshal(palisadeOut(t, bin, "matrix", "-f", seed, "-o", "json"), &doc); err != nil {
		t.Fatalf("matrix -o json: %v", err)
	}
	if len(doc.Steps) != 1 || len(doc.Steps[0].Probes) != 1 {
		t.Fatalf("matrix -o json: want one step with one probe for the seed, got %+v", doc)
	}
	want := doc.Steps[0].Probes[0]
	pods := sortedKeys(want.Allowed)
	url := "file://" + page

	t.Run("dom", func(t *testing.T) {
		tests := []struct {
			name, fragment string
			hidden         func(pod string) bool // rows and columns the filter hides
			dim            func(verdict string) bool
		}{
			{"all", "", func(string) bool { return false }, func(string) bool { return false }},
			{"filter", "#filter=client", func(p string) bool { return !strings.Contains(p, "client") }, func(string) bool { return false }},
			{"verdict", "#verdict=deny", func(string) bool { return false }, func(v string) bool { return v != "deny" }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				out := runChromium(t, chromium, "--dump-dom", url+tt.fragment)
				checkDOM(t, parseDOM(t, out), want, pods, tt.hidden, tt.dim)
			})
		}
	})

	t.Run("screenshot", func(t *testing.T) {
		const w, h = 1000, 800
		tests := []struct {
			name, fragment string
			allowColour    bool // #verdict=deny dims the allowed cells
		}{
			{"all", "", true},
			{"verdict", "#verdict=deny", false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				shot := filepath.Join(t.TempDir(), "matrix.png")
				runChromium(t, chromium, "--screenshot="+shot, fmt.Sprintf("--window-size=%d,%d", w, h), url+tt.fragment)
				img := readPNG(t, shot)
				if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
					t.Fatalf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), w, h)
				}
				allow, deny := countColour(img, allowColour), countColour(img, denyColour)
				t.Logf("%s: %d pixels of the allowed colour, %d of the denied", url+tt.fragment, allow, deny)
				// A cell is at least 10x10 pixels: the seed has three
				// allowed cells (the diagonal) and six denied ones.
				if deny < 6*100 {
					t.Errorf("screenshot has %d pixels of the denied colour %s, want the six denied cells", deny, hexColour(denyColour))
				}
				if tt.allowColour && allow < 3*100 {
					t.Errorf("screenshot has %d pixels of the allowed colour %s, want the three allowed cells", allow, hexColour(allowColour))
				}
				if !tt.allowColour && allow != 0 {
					t.Errorf("screenshot has %d pixels of the allowed colour with verdict=deny, want them dimmed", allow)
				}
			})
		}
	})
}

// needChromium returns Debian's chromium, or skips (fails under CI=true)
// when it is not installed.
func needChromium(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err != nil {
		skipOrFail(t, "no chromium: apt-get install chromium (.ci/run installs it)")
	}
	return p
}

// palisadeOut runs the built palisade and returns its standard output.
func palisadeOut(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("palisade %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// runChromium runs headless Chromium once, with a new profile in a
// temporary directory, and returns its standard output. It gets 60
// seconds; its whole process group is killed when it ends, so no renderer
// outlives the test.
func runChromium(t *testing.T, chromium string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Without the background-networking flags Chromium keeps trying to
	// reach its services, which this machine's closed network refuses.
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--force-device-scale-factor=1", "--hide-scrollbars", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, chromium, append(base, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // ESRCH when all are gone
	}
	if ctx.Err() != nil {
		err = errors.Join(err, fmt.Errorf("after 60 s: %w", ctx.Err()))
	}
	if err != nil {
		t.Fatalf("chromium %s: %v\nstderr:\n%s", strings.Join(args, " "), err, lastChars(stderr.String(), 2000))
	}
	return stdout.Bytes()
}

func lastChars(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// domElem is an element of the dumped DOM with its parent.
type domElem struct {
	name   string
	attr   map[string]string
	parent *domElem
}

func (e *domElem) has(class string) bool {
	return slices.Contains(strings.Fields(e.attr["class"]), class)
}

// hidden says whether the element or an ancestor has the hidden
// attribute or display: none, as the page's script sets them.
func (e *domElem) hidden() bool {
	for ; e != nil; e = e.parent {
		if _, ok := e.attr["hidden"]; ok || strings.Contains(e.attr["style"], "display: none") {
			return true
		}
	}
	return false
}

// ancestor returns the nearest enclosing element with class.
func (e *domElem) ancestor(class string) *domElem {
	for p := e.parent; p != nil; p = p.parent {
		if p.has(class) {
			return p
		}
	}
	return nil
}

// parseDOM reads Chromium's serialized DOM (HTML, not XML: void
// elements unclosed, bare attributes) with encoding/xml's lenient mode.
func parseDOM(t *testing.T, dom []byte) []*domElem {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(dom))
	d.Strict, d.AutoClose, d.Entity = false, xml.HTMLAutoClose, xml.HTMLEntity
	var all []*domElem
	var cur *domElem
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("parsing the dumped DOM: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			e := &domElem{name: tok.Name.Local, attr: map[string]string{}, parent: cur}
			for _, a := range tok.Attr {
				e.attr[a.Name.Local] = a.Value
			}
			all = append(all, e)
			cur = e
		case xml.EndElement:
			if cur != nil {
				cur = cur.parent
			}
		}
	}
	if len(all) == 0 {
		t.Fatalf("empty DOM:\n%s", dom)
	}
	return all
}

// checkDOM checks every cell of the one grid against want (ids, pair,
// verdict, explanation), the namespace grouping, the graph's nodes and
// isolated marks, and what the filters hide and dim.
func checkDOM(t *testing.T, all []*domElem, want truth.Table, pods []string, hidden func(string) bool, dim func(string) bool) {
	t.Helper()
	byID := map[string]*domElem{}
	var cols, rows, cells, nodes []*domElem
	for _, e := range all {
		if id := e.attr["id"]; id != "" {
			byID[id] = e
		}
		switch {
		case e.name == "th" && e.has("col"):
			cols = append(cols, e)
		case e.name == "tr" && e.has("row"):
			rows = append(rows, e)
		case e.name == "td" && e.has("cell"):
			cells = append(cells, e)
		case e.name == "g" && e.has("node"):
			nodes = append(nodes, e)
		}
	}
	probe := fmt.Sprintf("%d/%s", want.Port, want.Protocol)
	if g := byID["grid-0"]; g == nil || g.attr["data-probe"] != probe {
		t.Fatalf("table#grid-0[data-probe=%s] missing: %v", probe, g)
	}
	if len(cols) != len(pods) || len(rows) != len(pods) || len(cells) != len(pods)*len(pods) {
		t.Fatalf("%d columns, %d rows, %d cells; want %d pods squared", len(cols), len(rows), len(cells), len(pods))
	}
	for i, from := range pods {
		if got := cols[i].attr["data-pod"]; got != from {
			t.Errorf("column %d is %q, want %q", i, got, from)
		}
		if got := rows[i].attr["data-pod"]; got != from {
			t.Errorf("row %d is %q, want %q", i, got, from)
		}
		if tb := rows[i].ancestor("ns-group"); tb == nil || tb.attr["data-ns"] != rows[i].attr["data-ns"] || tb.name != "tbody" {
			t.Errorf("row %s is not in its namespace's tbody.ns-group: %v", from, tb)
		}
		if cols[i].hidden() != hidden(from) || rows[i].hidden() != hidden(from) {
			t.Errorf("pod %s: column hidden %t, row hidden %t; want %t", from, cols[i].hidden(), rows[i].hidden(), hidden(from))
		}
		for j, to := range pods {
			id := fmt.Sprintf("cell-0-%d-%d", i, j)
			c := byID[id]
			if c == nil {
				t.Errorf("td#%s missing", id)
				continue
			}
			verdict := "deny"
			if slices.Contains(want.Allowed[from], to) {
				verdict = "allow"
			}
			a := c.attr
			if a["data-from"] != from || a["data-to"] != to || a["data-probe"] != probe || a["data-verdict"] != verdict || !c.has(verdict) {
				t.Errorf("td#%s: from %q to %q probe %q verdict %q class %q; want %s -> %s %s %s",
					id, a["data-from"], a["data-to"], a["data-probe"], a["data-verdict"], a["class"], from, to, probe, verdict)
			}
			if word := map[string]string{"allow": "allowed: ", "deny": "denied: "}[verdict]; !strings.HasPrefix(a["data-explanation"], word) {
				t.Errorf("td#%s: explanation %q does not start %q", id, a["data-explanation"], word)
			}
			if c.has("dim") != dim(verdict) || c.hidden() != (hidden(from) || hidden(to)) {
				t.Errorf("td#%s (%s): dim %t hidden %t; want dim %t hidden %t", id, verdict, c.has("dim"), c.hidden(), dim(verdict), hidden(from) || hidden(to))
			}
		}
	}
	// The graph: a node per pod, isolated when it reaches no other pod
	// and no other pod reaches it.
	if len(nodes) != len(pods) {
		t.Fatalf("%d graph nodes, want %d", len(nodes), len(pods))
	}
	for _, n := range nodes {
		p := n.attr["data-pod"]
		isolated := true
		for from, tos := range want.Allowed {
			for _, to := range tos {
				if from != to && (from == p || to == p) {
					isolated = false
				}
			}
		}
		if got := n.attr["data-isolated"]; got != fmt.Sprint(isolated) || n.has("isolated") != isolated {
			t.Errorf("graph node %s: data-isolated %q class %q, want isolated %t", p, got, n.attr["class"], isolated)
		}
		if n.hidden() != hidden(p) {
			t.Errorf("graph node %s: hidden %t, want %t", p, n.hidden(), hidden(p))
		}
	}
}

func sortedKeys(m map[string][]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if truth.Less(a, b) {
			return -1
		}
		if truth.Less(b, a) {
			return 1
		}
		return 0
	})
	return keys
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decoding the screenshot: %v", err)
	}
	return img
}

func hexColour(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

// countColour counts the pixels of exactly c: Chromium paints a cell's
// background flat, without colour management in headless mode.
func countColour(img image.Image, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)) == c {
				n++
			}
		}
	}
	return n
}
