package dataplane

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"github.com/palisade-net/palisade/internal/fixture"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/model"
)

func requireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found", name)
		}
		t.Skipf("%s not found", name)
	}
}

// newNetns creates a throwaway network namespace, removed at cleanup,
// and returns its name and path.
func newNetns(t testing.TB) (name, path string) {
	t.Helper()
	fixture.RequireRoot(t)
	requireTool(t, "ip")
	b := make([]byte, 4)
	rand.Read(b)
	name = "palisade-test-" + hex.EncodeToString(b)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name, "/run/netns/" + name
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nftList returns `nft list table inet palisade` in netns ns, or "" when
// the table does not exist.
func nftList(t testing.TB, ns string) string {
	t.Helper()
	requireTool(t, "nft")
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", TableName)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "No such file") {
			return ""
		}
		t.Fatalf("nft list: %v: %s", err, stderr.String())
	}
	return string(out)
}

var (
	counterRe     = regexp.MustCompile(`counter packets \d+ bytes \d+`)
	elemCounterRe = regexp.MustCompile(` counter packets \d+ bytes \d+`)
)

// normalize turns nft text into a comparable form: counters without
// values, blocks (sets, maps, chains) sorted by header, set elements
// sorted, whitespace collapsed. Rule order inside a chain is kept.
func normalize(text string) string {
	lines := strings.Split(text, "\n")
	type block struct {
		header string
		body   []string
	}
	var blocks []block
	var cur *block
	var elems []string
	inElems := false
	flushElems := func() {
		sort.Strings(elems)
		cur.body = append(cur.body, "elements = { "+strings.Join(elems, ", ")+" }")
		elems, inElems = nil, false
	}
	for _, raw := range lines {
		l := strings.TrimSpace(raw)
		if l == "" || strings.HasPrefix(l, "table ") || l == "}" && cur == nil {
			continue
		}
		if cur == nil {
			blocks = append(blocks, block{header: l})
			cur = &blocks[len(blocks)-1]
			continue
		}
		if l == "}" {
			cur = nil
			continue
		}
		if strings.HasPrefix(l, "elements = { ") {
			inElems = true
			l = strings.TrimPrefix(l, "elements = { ")
		}
		if inElems {
			end := strings.HasSuffix(l, " }")
			l = strings.TrimSuffix(l, " }")
			for _, e := range strings.Split(l, ",") {
				if e = strings.TrimSpace(elemCounterRe.ReplaceAllString(e, "")); e != "" {
					elems = append(elems, e)
				}
			}
			if end {
				flushElems()
			}
			continue
		}
		cur.body = append(cur.body, counterRe.ReplaceAllString(l, "counter"))
	}
	sort.SliceStable(blocks, func(i, j int) bool { return blocks[i].header < blocks[j].header })
	var b strings.Builder
	for _, bl := range blocks {
		b.WriteString(bl.header + "\n")
		for _, l := range bl.body {
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}

// seedCluster is the walkthrough of ../../shared/seed: frontend, backend
// and client-pod in default on node-1, and frontend-access.
func seedCluster() *model.Cluster {
	c := model.NewCluster()
	c.EnsureNamespace("default")
	c.Nodes["node-1"] = &model.Node{Name: "node-1", IPs: []netip.Addr{netip.MustParseAddr("10.20.0.1")}}
	for i, name := range []string{"frontend", "backend", "client-pod"} {
		app := strings.TrimSuffix(name, "-pod")
		if name == "client-pod" {
			app = "client"
		}
		p := &model.Pod{
			Namespace: "default", Name: name, Node: "node-1",
			Labels: map[string]string{"app": app},
			IPs:    []netip.Addr{netip.AddrFrom4([4]byte{10, 20, 0, byte(11 + i)})},
			Ports:  []model.ContainerPort{{Name: "http", Port: 80, Protocol: model.TCP}},
		}
		c.Pods[p.Key()] = p
	}
	addPolicy(c, frontendAccess())
	return c
}

func addPolicy(c *model.Cluster, p *model.Policy) { c.Policies[p.Key()] = p }

func frontendAccess() *model.Policy {
	return &model.Policy{
		Namespace: "default", Name: "frontend-access",
		PodSelector: model.Selector{MatchLabels: map[string]string{"app": "frontend"}},
		Ingress:     true,
		IngressRules: []model.Rule{{
			Peers: []model.Peer{{PodSelector: &model.Selector{MatchLabels: map[string]string{"app": "backend"}}}},
			Ports: []model.Port{{Protocol: model.TCP, Port: 80}},
		}},
	}
}

func defaultDenyAll(ns string) *model.Policy {
	return &model.Policy{Namespace: ns, Name: "default-deny-all", Ingress: true, Egress: true}
}

func seedEngine() *engine.Engine { return engine.FromCluster(seedCluster()) }
