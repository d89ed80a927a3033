package render

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/truth"
)

// small is two namespaces: app/web (declares http=8080), app/client, and
// data/db (declares pg=5432), whose policy admits app=web pods of any
// namespace on port pg only.
func small(t *testing.T, explain bool) *Matrix {
	t.Helper()
	e := smallEngine()
	m := Build(e, e.Pods(), netip.Addr{}, []Probe{{Port: 5432, Protocol: model.TCP}, {Name: "http", Protocol: model.TCP}}, explain)
	m.Source, m.Ports = "small", "given with --port"
	return m
}

func smallEngine() *engine.Engine {
	c := model.NewCluster()
	add := func(ns, name, app string, ports ...model.ContainerPort) {
		c.EnsureNamespace(ns)
		c.Pods[model.Key{Namespace: ns, Name: name}] = &model.Pod{Namespace: ns, Name: name, Labels: map[string]string{"app": app}, Ports: ports}
	}
	add("app", "web", "web", model.ContainerPort{Name: "http", Port: 8080, Protocol: model.TCP})
	add("app", "client", "client")
	add("data", "db", "db", model.ContainerPort{Name: "pg", Port: 5432, Protocol: model.TCP})
	pol := &model.Policy{Namespace: "data", Name: "db-ingress", PodSelector: model.Selector{MatchLabels: map[string]string{"app": "db"}}, Ingress: true,
		IngressRules: []model.Rule{{
			Peers: []model.Peer{{NamespaceSelector: &model.Selector{}, PodSelector: &model.Selector{MatchLabels: map[string]string{"app": "web"}}}},
			Ports: []model.Port{{Protocol: model.TCP, Name: "pg"}},
		}}}
	c.Policies[pol.Key()] = pol
	return engine.FromCluster(c)
}

func write(t *testing.T, f func(io.Writer, *Matrix) error, m *Matrix) string {
	t.Helper()
	var b bytes.Buffer
	if err := f(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

const legend = "rows are sources, columns destinations: . allowed, X denied, - the destination declares no such named port\n" +
	"ports probed: 5432/TCP, http/TCP (given with --port)\n"

func TestText(t *testing.T) {
	want := "5432/TCP\n" +
		"-           app/client  app/web  data/db\n" +
		"app/client  .           .        X\n" +
		"app/web     .           .        .\n" +
		"data/db     .           .        .\n" +
		"\n" +
		"http/TCP\n" +
		"-           app/client  app/web  data/db\n" +
		"app/client  -           .        -\n" +
		"app/web     -           .        -\n" +
		"data/db     -           .        -\n" +
		"\n" + legend
	if got := write(t, WriteText, small(t, false)); got != want {
		t.Errorf("text =\n%s\nwant\n%s", got, want)
	}
}

func TestMarkdown(t *testing.T) {
	want := "### 5432/TCP\n\n" +
		"| from \\ to | app/client | app/web | data/db |\n" +
		"|---|---|---|---|\n" +
		"| app/client | . | . | X |\n" +
		"| app/web | . | . | . |\n" +
		"| data/db | . | . | . |\n\n" +
		"### http/TCP\n\n" +
		"| from \\ to | app/client | app/web | data/db |\n" +
		"|---|---|---|---|\n" +
		"| app/client | - | . | - |\n" +
		"| app/web | - | . | - |\n" +
		"| data/db | - | . | - |\n\n" +
		"- rows are sources, columns destinations: . allowed, X denied, - the destination declares no such named port\n" +
		"- ports probed: 5432/TCP, http/TCP (given with --port)\n"
	if got := write(t, WriteMarkdown, small(t, false)); got != want {
		t.Errorf("md =\n%s\nwant\n%s", got, want)
	}
}

func TestCSV(t *testing.T) {
	want := `probe,from,to,port,protocol,verdict,explanation
5432/TCP,app/client,app/client,5432,TCP,allow,"allowed: loopback, a pod to itself is never subject to policy"
5432/TCP,app/client,app/web,5432,TCP,allow,allowed: egress of app/client not isolated; ingress of app/web not isolated
5432/TCP,app/client,data/db,5432,TCP,deny,"denied: egress of app/client not isolated; ingress of data/db isolated by data/db-ingress, no rule allows it (data/db-ingress ingress[0]: source app/client is not a peer of this rule)"
5432/TCP,app/web,app/client,5432,TCP,allow,allowed: egress of app/web not isolated; ingress of app/client not isolated
5432/TCP,app/web,app/web,5432,TCP,allow,"allowed: loopback, a pod to itself is never subject to policy"
5432/TCP,app/web,data/db,5432,TCP,allow,"allowed: egress of app/web not isolated; ingress of data/db isolated by data/db-ingress, allowed by data/db-ingress ingress[0]"
5432/TCP,data/db,app/client,5432,TCP,allow,allowed: egress of data/db not isolated; ingress of app/client not isolated
5432/TCP,data/db,app/web,5432,TCP,allow,allowed: egress of data/db not isolated; ingress of app/web not isolated
5432/TCP,data/db,data/db,5432,TCP,allow,"allowed: loopback, a pod to itself is never subject to policy"
http/TCP,app/client,app/client,,TCP,no-port,app/client declares no container port http/TCP
http/TCP,app/client,app/web,8080,TCP,allow,http/TCP is port 8080 on app/web; allowed: egress of app/client not isolated; ingress of app/web not isolated
http/TCP,app/client,data/db,,TCP,no-port,data/db declares no container port http/TCP
http/TCP,app/web,app/client,,TCP,no-port,app/client declares no container port http/TCP
http/TCP,app/web,app/web,8080,TCP,allow,"http/TCP is port 8080 on app/web; allowed: loopback, a pod to itself is never subject to policy"
http/TCP,app/web,data/db,,TCP,no-port,data/db declares no container port http/TCP
http/TCP,data/db,app/client,,TCP,no-port,app/client declares no container port http/TCP
http/TCP,data/db,app/web,8080,TCP,allow,http/TCP is port 8080 on app/web; allowed: egress of data/db not isolated; ingress of app/web not isolated
http/TCP,data/db,data/db,,TCP,no-port,data/db declares no container port http/TCP
`
	if got := write(t, WriteCSV, small(t, true)); got != want {
		t.Errorf("csv =\n%s\nwant\n%s", got, want)
	}
}

// A numbered probe's verdicts are truth.Predict's, for both families:
// these pods have no addresses, so IPv6 changes nothing.
func TestBuildAgreesWithPredict(t *testing.T) {
	e := smallEngine()
	for _, fam := range []netip.Addr{{}, netip.IPv6Unspecified()} {
		m := Build(e, e.Pods(), fam, []Probe{{Port: 5432, Protocol: model.TCP}, {Port: 8080, Protocol: model.TCP}}, false)
		for gi, g := range m.Grids {
			want := truth.Predict(e, e.Pods(), fam, g.Probe.Port, g.Probe.Protocol)
			for i := range want.Pods {
				if want.Pods[i] != m.Pods[i].Key {
					t.Fatalf("row %d: %s, want %s", i, m.Pods[i].Key, want.Pods[i])
				}
				for j := range want.Pods {
					if (g.Cells[i][j].Verdict == Allow) != want.Allow[i][j] {
						t.Errorf("grid %d %s -> %s: %v, Predict %v", gi, want.Pods[i], want.Pods[j], g.Cells[i][j].Verdict, want.Allow[i][j])
					}
				}
			}
		}
	}
}

func TestDOT(t *testing.T) {
	got := write(t, WriteDOT, small(t, false))
	if !strings.HasPrefix(got, "digraph matrix {\n") || !strings.HasSuffix(got, "}\n") || strings.Count(got, "{") != strings.Count(got, "}") {
		t.Fatalf("not a digraph:\n%s", got)
	}
	for _, want := range []string{
		"subgraph cluster_0 {\n    label=\"app\";\n    \"app/client\";\n    \"app/web\";\n  }\n",
		"subgraph cluster_1 {\n    label=\"data\";\n    \"data/db\";\n  }\n",
		"\"app/web\" -> \"data/db\" [label=\"5432/TCP\"];\n",
		"\"app/client\" -> \"app/web\" [label=\"5432/TCP, http/TCP\"];\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("dot lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\"app/client\" -> \"data/db\"") || strings.Contains(got, "\"app/web\" -> \"app/web\"") {
		t.Errorf("a denied pair or a self edge:\n%s", got)
	}
}

// The graph marks pods with no connection to or from another pod.
func TestIsolatedInDOT(t *testing.T) {
	m := &Matrix{Pods: []Pod{{Key: "a/x", Namespace: "a"}, {Key: "a/y", Namespace: "a"}},
		Grids: []Grid{{Probe: Probe{Port: 80, Protocol: model.TCP}, Cells: [][]Cell{{{Verdict: Allow}, {}}, {{}, {Verdict: Allow}}}}}}
	got := write(t, WriteDOT, m)
	if strings.Count(got, `xlabel="isolated"`) != 2 || strings.Contains(got, "->") {
		t.Errorf("want both isolated and no edge:\n%s", got)
	}
}

// With Group, the graph has a node per group: an edge when some pod of
// one group reaches some pod of another; a group reaching only itself is
// isolated.
func TestGraphGroups(t *testing.T) {
	m := &Matrix{Pods: []Pod{{Key: "a/web-1", Namespace: "a"}, {Key: "a/web-2", Namespace: "a"}, {Key: "a/db", Namespace: "a"}, {Key: "b/job", Namespace: "b"}},
		Grids: []Grid{{Probe: Probe{Port: 80, Protocol: model.TCP}, Cells: [][]Cell{
			{{Verdict: Allow}, {Verdict: Allow}, {}, {}},
			{{Verdict: Allow}, {Verdict: Allow}, {Verdict: Allow}, {}},
			{{}, {}, {Verdict: Allow}, {}},
			{{}, {}, {}, {Verdict: Allow}},
		}}},
		Group: func(k string) string { return strings.TrimRight(k, "0123456789-") + "-*" }}
	nodes, edges := m.Graph()
	var got []string
	for _, n := range nodes {
		got = append(got, n.Key+" "+map[bool]string{true: "isolated", false: "connected"}[n.Isolated])
	}
	if strings.Join(got, ", ") != "a/web-* connected, a/db-* connected, b/job-* isolated" {
		t.Errorf("nodes %v", got)
	}
	if len(edges) != 1 || nodes[edges[0].From].Key != "a/web-*" || nodes[edges[0].To].Key != "a/db-*" || edges[0].Probes[0] != "80/TCP" {
		t.Errorf("edges %v", edges)
	}
	dot := write(t, WriteDOT, m)
	if !strings.Contains(dot, "\"a/web-*\" -> \"a/db-*\" [label=\"80/TCP\"];\n") || !strings.Contains(dot, "\"b/job-*\" [style") {
		t.Errorf("dot:\n%s", dot)
	}
	doc := parseXML(t, write(t, WriteHTML, m))
	if g := find(doc, func(n *node) bool { return n.name == "g" && hasClass(n, "node") }); len(g) != 3 || g[2].attr["data-isolated"] != "true" || !hasClass(g[2], "isolated") {
		t.Errorf("html graph nodes %d", len(g))
	}
}

// node is an element of a parsed page.
type node struct {
	name     string
	attr     map[string]string
	text     string
	children []*node
	parent   *node
}

// parseXML reads markup strictly as XML: well-formed, only XML's entities.
func parseXML(t *testing.T, s string) *node {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s))
	root := &node{}
	cur := root
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, s)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &node{name: tok.Name.Local, attr: map[string]string{}, parent: cur}
			for _, a := range tok.Attr {
				n.attr[a.Name.Local] = a.Value
			}
			cur.children = append(cur.children, n)
			cur = n
		case xml.EndElement:
			cur = cur.parent
		case xml.CharData:
			cur.text += string(tok)
		}
	}
	return root
}

// find returns the elements under n that pass ok, in document order.
func find(n *node, ok func(*node) bool) []*node {
	var out []*node
	for _, c := range n.children {
		if ok(c) {
			out = append(out, c)
		}
		out = append(out, find(c, ok)...)
	}
	return out
}

func hasClass(n *node, class string) bool {
	return strings.Contains(" "+n.attr["class"]+" ", " "+class+" ")
}

func TestHTML(t *testing.T) {
	m := small(t, true)
	page := write(t, WriteHTML, m)
	if !strings.HasPrefix(page, "<!DOCTYPE html>\n<html") {
		t.Errorf("not one HTML document:\n%.200s", page)
	}
	if strings.Contains(page, "http:") || strings.Contains(page, "https:") {
		t.Errorf("a URL in the page")
	}
	doc := parseXML(t, page)
	for _, n := range find(doc, func(n *node) bool { return n.attr["src"] != "" || n.attr["href"] != "" }) {
		for _, u := range []string{n.attr["src"], n.attr["href"]} {
			if u != "" && !strings.HasPrefix(u, "#") {
				t.Errorf("<%s> points outside the page: %q", n.name, u)
			}
		}
	}
	for _, n := range find(doc, func(n *node) bool { return n.name == "link" || n.name == "script" && n.attr["src"] != "" }) {
		t.Errorf("external resource <%s %v>", n.name, n.attr)
	}
	if f := find(doc, func(n *node) bool { return n.name == "input" && n.attr["id"] == "filter" }); len(f) != 1 {
		t.Errorf("%d filter inputs, want 1", len(f))
	}
	grids := find(doc, func(n *node) bool { return n.name == "table" && hasClass(n, "grid") })
	if len(grids) != 2 || grids[0].attr["data-probe"] != "5432/TCP" || grids[1].attr["id"] != "grid-1" {
		t.Fatalf("grids %d", len(grids))
	}
	// Grouped by namespace: a tbody per namespace, its rows that
	// namespace's pods; namespace headers spanning their columns.
	groups := find(grids[0], func(n *node) bool { return n.name == "tbody" })
	if len(groups) != 2 || groups[0].attr["data-ns"] != "app" || groups[1].attr["data-ns"] != "data" {
		t.Fatalf("namespace groups %v", groups)
	}
	rows := find(groups[0], func(n *node) bool { return n.name == "tr" && hasClass(n, "row") })
	if len(rows) != 2 || rows[0].attr["data-pod"] != "app/client" || rows[1].attr["data-pod"] != "app/web" {
		t.Errorf("rows of app: %d", len(rows))
	}
	ns := find(grids[0], func(n *node) bool { return n.name == "th" && hasClass(n, "ns") })
	if len(ns) != 2 || ns[0].attr["colspan"] != "2" || ns[1].attr["colspan"] != "1" {
		t.Errorf("namespace headers %d", len(ns))
	}
	cells := find(doc, func(n *node) bool { return n.name == "td" && hasClass(n, "cell") })
	if len(cells) != 2*9 {
		t.Fatalf("%d cells, want 18", len(cells))
	}
	byID := map[string]*node{}
	for _, c := range cells {
		byID[c.attr["id"]] = c
		if c.attr["data-explanation"] == "" || c.attr["data-from"] == "" || c.attr["data-to"] == "" {
			t.Errorf("cell %s lacks data: %v", c.attr["id"], c.attr)
		}
	}
	// Pods sort app/client, app/web, data/db: cell-0-0-2 is client -> db.
	for id, want := range map[string][4]string{
		"cell-0-0-2": {"deny", "app/client", "data/db", "no rule allows it"},
		"cell-0-1-2": {"allow", "app/web", "data/db", "allowed by data/db-ingress ingress[0]"},
		"cell-1-0-2": {"no-port", "app/client", "data/db", "declares no container port http/TCP"},
		"cell-1-2-1": {"allow", "data/db", "app/web", "http/TCP is port 8080 on app/web"},
	} {
		c := byID[id]
		if c == nil {
			t.Errorf("no %s", id)
			continue
		}
		if c.attr["data-verdict"] != want[0] || c.attr["data-from"] != want[1] || c.attr["data-to"] != want[2] || !strings.Contains(c.attr["data-explanation"], want[3]) || !hasClass(c, want[0]) {
			t.Errorf("%s = %v, want %v", id, c.attr, want)
		}
	}
	// The graph: a node per pod, an edge per allowed pair of distinct
	// pods; none is isolated here.
	nodes := find(doc, func(n *node) bool { return n.name == "g" && hasClass(n, "node") })
	edges := find(doc, func(n *node) bool { return n.name == "line" && hasClass(n, "edge") })
	if len(nodes) != 3 || len(edges) != 5 {
		t.Errorf("graph: %d nodes, %d edges, want 3 and 5", len(nodes), len(edges))
	}
	for _, n := range nodes {
		if n.attr["data-isolated"] != "false" {
			t.Errorf("%s marked isolated", n.attr["data-pod"])
		}
	}
	if s := find(doc, func(n *node) bool { return n.name == "script" }); len(s) != 1 || !strings.Contains(s[0].text, "getElementById('filter')") {
		t.Errorf("no inline script")
	}
}

// Names from the input reach the page escaped: no markup, no control
// characters.
func TestHTMLEscapes(t *testing.T) {
	m := &Matrix{Source: "<b>&\x1b", Pods: []Pod{{Key: `a/<x y="1">`, Namespace: "a"}},
		Grids: []Grid{{Probe: Probe{Port: 80, Protocol: model.TCP}, Cells: [][]Cell{{{Verdict: Allow, Why: "a & b < c\x07"}}}}}}
	for name, f := range map[string]func(io.Writer, *Matrix) error{"html": WriteHTML, "svg": WriteSVG} {
		page := write(t, f, m)
		doc := parseXML(t, page)
		if len(find(doc, func(n *node) bool { return n.name == "x" || n.name == "b" })) != 0 || strings.ContainsAny(page, "\x1b\x07") {
			t.Errorf("%s: markup or a control character got through:\n%s", name, page)
		}
	}
}

func TestSVG(t *testing.T) {
	doc := parseXML(t, write(t, WriteSVG, small(t, true)))
	if len(doc.children) != 1 || doc.children[0].name != "svg" {
		t.Fatalf("not one svg")
	}
	rects := find(doc, func(n *node) bool { return n.name == "rect" })
	if len(rects) != 18 {
		t.Fatalf("%d squares, want 18", len(rects))
	}
	// Row app/client, column data/db of the first grid.
	if r := rects[2]; r.attr["data-verdict"] != "deny" || r.attr["fill"] != verdictColor[Deny] || !strings.Contains(r.children[0].text, "app/client -> data/db 5432/TCP: deny\ndenied:") {
		t.Errorf("square 2: %v %q", r.attr, r.children[0].text)
	}
}
