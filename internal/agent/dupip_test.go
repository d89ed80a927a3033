package agent

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/palisade-net/palisade/internal/dataplane"
	"github.com/palisade-net/palisade/internal/engine"
	"github.com/palisade-net/palisade/internal/fixture"
	"github.com/palisade-net/palisade/internal/source"
)

// kernelNetns creates a throwaway network namespace, removed at cleanup,
// and returns its name and path.
func kernelNetns(t *testing.T) (name, path string) {
	t.Helper()
	fixture.RequireRoot(t)
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found", tool)
		}
	}
	b := make([]byte, 4)
	rand.Read(b)
	name = "palisade-agent-test-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return name, "/run/netns/" + name
}

// startKernelAgent runs an agent whose dataplane is a real Node in a
// fresh network namespace.
func startKernelAgent(t *testing.T, opts Options) (*harness, string) {
	t.Helper()
	ns, path := kernelNetns(t)
	node, err := NewNode(testNode, path, dataplane.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	src := newFakeSource()
	opts.NodeName = testNode
	a := New(src, node, opts)
	h := &harness{t: t, a: a, src: src, settled: make(chan struct{}, 1)}
	a.afterSync = h.afterSync
	fixture.RunUntilCleanup(t, a.Run)
	h.push, h.synced = <-src.push, <-src.synced
	return h, ns
}

func nftMap(t *testing.T, ns, name string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "map", "inet", dataplane.TableName, name).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list map %s: %v %s", name, err, out)
	}
	return string(out)
}

// Two pods of this node report one address (an address reused while the
// old pod lingers), each isolated by a different policy: the kernel
// cannot map the address to two chains (before, every transaction failed
// with "file exists"). The address goes to the pod not being deleted,
// else the newer, else the later name; the other gets it back when the
// owner goes. Every transaction succeeds; the gauge counts the dispute.
func TestKernelDuplicateLocalIP(t *testing.T) {
	logs := &fixture.LogBuffer{}
	h, ns := startKernelAgent(t, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	t0 := time.Now()
	ev := func(name, app string, created time.Time, deleting bool) source.Event {
		e := podEv(pod("shop", name, testNode, "10.0.0.7", "app", app))
		e.Created, e.Deleting = created, deleting
		return e
	}
	// The kernel's verdict map for the address: the chain of policy a or b.
	chainFor := func() string {
		t.Helper()
		for _, l := range strings.Split(nftMap(t, ns, "ingress4"), "\n") {
			if strings.Contains(l, "10.0.0.7") {
				// Chains are named after their policies: in-shop-a-HASH.
				for _, pol := range []string{"a", "b"} {
					if strings.Contains(l, "-shop-"+pol+"-") {
						return pol
					}
				}
				return "?" + l
			}
		}
		return ""
	}
	h.push(nsEv("shop"))
	h.push(polEv(allowFrom("shop", "a", map[string]string{"app": "a"}, "x")))
	h.push(polEv(allowFrom("shop", "b", map[string]string{"app": "b"}, "y")))
	h.push(ev("old", "a", t0, false))
	h.push(ev("new", "b", t0.Add(time.Minute), false))
	h.synced()
	h.settle()
	check := func(what, wantPolicy, wantOwner string, wantDup float64) {
		t.Helper()
		if n := gauge(t, h.a, "palisade_transaction_errors_total"); n != 0 {
			t.Fatalf("%s: %v failed transactions", what, n)
		}
		if got := chainFor(); got != wantPolicy {
			t.Errorf("%s: 10.0.0.7 goes to the chain of policy %q, want %q", what, got, wantPolicy)
		}
		var owner string
		h.a.withEngine(func(e *engine.Engine) {
			if p := e.PodByIP(netip.MustParseAddr("10.0.0.7")); p != nil {
				owner = p.Name
			}
		})
		if owner != wantOwner {
			t.Errorf("%s: the engine names %q for 10.0.0.7, want %q", what, owner, wantOwner)
		}
		if g := gauge(t, h.a, "palisade_duplicate_local_pod_ips"); g != wantDup {
			t.Errorf("%s: palisade_duplicate_local_pod_ips = %v, want %v", what, g, wantDup)
		}
	}
	check("newer wins", "b", "new", 1)
	if l := logs.Lines("two pods of this node report one address; enforcing it for one of them"); len(l) != 1 ||
		l[0]["owner"] != "shop/new" || l[0]["other"] != "shop/old" || l[0]["because"] != "newer" {
		t.Errorf("warnings: %v", l)
	}

	// The newer one is being deleted: the other pod takes the address.
	h.push(ev("new", "b", t0.Add(time.Minute), true))
	h.settle()
	check("the newer one deleting", "a", "old", 1)

	// Neither deleting, same creation: the later name ("old").
	h.push(ev("new", "b", t0, false))
	h.push(ev("old", "a", t0, false))
	h.settle()
	check("same age", "a", "old", 1)

	// The owner goes: the other one gets it back, no dispute left.
	h.push(del(source.KindPod, k("shop", "old")))
	h.settle()
	check("owner deleted", "b", "new", 0)
	if g := gauge(t, h.a, "palisade_local_pods"); g != 1 {
		t.Errorf("palisade_local_pods = %v, want 1", g)
	}

	// A dispute again, then the newer pod moves to another address.
	h.push(ev("old", "a", t0.Add(-time.Minute), false))
	h.settle()
	check("back again", "b", "new", 1)
	moved := ev("new", "b", t0, false)
	moved.Pod.IPs = []netip.Addr{netip.MustParseAddr("10.0.0.8")}
	h.push(moved)
	h.settle()
	check("the newer one moved", "a", "old", 0)
	if g := gauge(t, h.a, "palisade_local_pods"); g != 2 {
		t.Errorf("palisade_local_pods = %v, want 2", g)
	}
}
