// Package truth builds truth tables: for one port and protocol, which pod
// can open a connection to which. It is the shape that matrix prints and
// conformance compares, whether the table was predicted by the engine,
// written as an expectation, or observed in the lab.
package truth

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

// Table is a truth table for one port and protocol. Allowed[from] lists,
// sorted, every pod that from can reach; every pod appears as a key.
type Table struct {
	// Family is "IPv6" for a table of the pods' IPv6 addresses; empty
	// (IPv4) otherwise, as the contract's tables have no family.
	Family   string              `json:"family,omitempty"`
	Port     uint16              `json:"port"`
	Protocol string              `json:"protocol"`
	Allowed  map[string][]string `json:"allowed"`
}

// Step is one step of a scenario: a table per probe.
type Step struct {
	Probes []Table `json:"probes"`
}

// Document is a scenario's truth tables, as DESIGN.md's contract says.
type Document struct {
	Scenario string `json:"scenario"`
	Steps    []Step `json:"steps"`
}

// Grid is a table as a dense matrix, convenient to fill and compare.
type Grid struct {
	Port     uint16
	Protocol model.Protocol
	Pods     []string // pod keys in Less order, rows and columns
	Allow    [][]bool // Allow[from][to]
}

// Less orders pod keys for rows and columns: pods first, then the pods
// that stand for workloads ("ns/name[Kind]"), each group by namespace,
// then name, then kind. Workloads are templates with no address, pods
// are often fixed ones with addresses; keeping the workloads' rows in one
// block, and every namespace contiguous within a block, makes a matrix of
// a real cluster's manifests read in the order its directories do.
func Less(a, b string) bool {
	ans, aname, akind := splitKey(a)
	bns, bname, bkind := splitKey(b)
	switch {
	case (akind == "") != (bkind == ""):
		return akind == ""
	case ans != bns:
		return ans < bns
	case aname != bname:
		return aname < bname
	}
	return akind < bkind
}

// splitKey splits "ns/name" or "ns/name[Kind]".
func splitKey(k string) (ns, name, kind string) {
	ns, name, _ = strings.Cut(k, "/")
	if i := strings.LastIndexByte(name, '['); i > 0 && strings.HasSuffix(name, "]") {
		name, kind = name[:i], name[i+1:len(name)-1]
	}
	return ns, name, kind
}

// NewGrid returns a grid over pods with every pair denied.
func NewGrid(pods []string, port uint16, proto model.Protocol) *Grid {
	g := &Grid{Port: port, Protocol: proto, Pods: append([]string(nil), pods...)}
	sort.Slice(g.Pods, func(i, j int) bool { return Less(g.Pods[i], g.Pods[j]) })
	g.Allow = make([][]bool, len(g.Pods))
	for i := range g.Allow {
		g.Allow[i] = make([]bool, len(g.Pods))
	}
	return g
}

// Table converts the grid to its JSON form.
func (g *Grid) Table() Table {
	t := Table{Port: g.Port, Protocol: g.Protocol.String(), Allowed: map[string][]string{}}
	for i, from := range g.Pods {
		to := []string{}
		for j, p := range g.Pods {
			if g.Allow[i][j] {
				to = append(to, p)
			}
		}
		t.Allowed[from] = to
	}
	return t
}

// Pair is one ordered pair of pods and what two tables say of it.
type Pair struct {
	From, To string
	Want     bool // first table
	Got      bool // second table
}

func (p Pair) String() string {
	return fmt.Sprintf("%s -> %s: want %s, got %s", p.From, p.To, word(p.Want), word(p.Got))
}

func word(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

// Diff returns the pairs where want and got differ. Both grids must be
// over the same pods.
func Diff(want, got *Grid) []Pair {
	var out []Pair
	for i := range want.Pods {
		for j := range want.Pods {
			if want.Allow[i][j] != got.Allow[i][j] {
				out = append(out, Pair{want.Pods[i], want.Pods[j], want.Allow[i][j], got.Allow[i][j]})
			}
		}
	}
	return out
}

// Predict fills a grid from the engine: for every ordered pair of pods,
// whether a connection to the destination's address of the family fam
// (IPv4 when unset) on port/proto is allowed. Pods with addresses but none
// of that family can neither send nor receive; pods without any address
// (manifests without status) are judged by identity alone.
func Predict(e *engine.Engine, pods []*model.Pod, fam netip.Addr, port uint16, proto model.Protocol) *Grid {
	keys := make([]string, len(pods))
	for i, p := range pods {
		keys[i] = p.Key().String()
	}
	g := NewGrid(keys, port, proto)
	byKey := map[string]*model.Pod{}
	for _, p := range pods {
		byKey[p.Key().String()] = p
	}
	ordered := make([]*model.Pod, len(g.Pods))
	for i, k := range g.Pods {
		ordered[i] = byKey[k]
	}
	eps, has := Endpoints(ordered, fam)
	for i := range g.Pods {
		for j := range g.Pods {
			if has[i] && has[j] {
				g.Allow[i][j] = e.Allowed(engine.Conn{From: eps[i], To: eps[j], Protocol: proto, Port: port})
			}
		}
	}
	return g
}

// Endpoints gives each pod's endpoint for the family fam (IPv4 when
// unset), and whether the pod can take part in a connection of that
// family: a pod with addresses but none of fam's cannot; a pod without
// any address (manifests without status) can, judged by identity alone.
// Predict and every grid built beside it share this rule.
func Endpoints(pods []*model.Pod, fam netip.Addr) ([]engine.Endpoint, []bool) {
	eps := make([]engine.Endpoint, len(pods))
	ok := make([]bool, len(pods))
	for i, p := range pods {
		eps[i], ok[i] = engine.PodEndpoint(p, fam)
		ok[i] = ok[i] || len(p.IPs) == 0
	}
	return eps, ok
}

// Escape makes s safe to print on a terminal: every rune that is not
// printable (control characters such as ESC, CR, LF and tab, bidi
// overrides such as U+202E, invalid UTF-8) becomes its Go escape as %q
// writes it (\x1b, \r, \u202e, \xff), so that no name or value read from
// the input can clear the screen, move the cursor, reorder a line or forge
// one. Printable text, non-ASCII letters included, is left alone, and
// nothing is quoted: an escaped name still reads in its place. Every text
// writer of the command line uses it; JSON needs none (encoding/json
// escapes).
func Escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || !strconv.IsPrint(r) {
			q := strconv.Quote(s[i : i+n])
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
