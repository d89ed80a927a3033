package dataplane

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/palisade-net/palisade/internal/engine"
)

var rawExprRe = regexp.MustCompile(`@nh,|@th,|\[invalid|unknown|0x[0-9a-f]{6,}`)

// quotedRe matches comments and log prefixes, which rawExprRe skips: the
// guard's prefixes say "unknown-pod-…".
var quotedRe = regexp.MustCompile(`"[^"]*"`)

// TestKernelListing applies every golden ruleset into a fresh netns and
// checks that `nft list table inet palisade` prints plain nft syntax equal
// to String() (modulo counter values, element and block order).
func TestKernelListing(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			ns, en := newEnforcer(t)
			rs := Compile(engine.FromCluster(tc.cluster()), "node-1", tc.opts)
			if _, err := en.Apply(context.Background(), rs); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			got := nftList(t, ns)
			if m := rawExprRe.FindString(quotedRe.ReplaceAllString(got, `""`)); m != "" {
				t.Errorf("nft list shows raw bytecode (%q):\n%s", m, got)
			}
			if diff := cmp.Diff(normalize(rs.String()), normalize(got)); diff != "" {
				t.Errorf("nft list differs from String() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKernelSeedListingExact: for the seed, the listing is String() to
// the byte once counter values are blanked.
func TestKernelSeedListingExact(t *testing.T) {
	ns, path := newNetns(t)
	en, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer en.Close()
	rs := Compile(seedEngine(), "node-1", Options{})
	if _, err := en.Apply(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	got := elemCounterRe.ReplaceAllString(nftList(t, ns), "")
	got = counterRe.ReplaceAllString(got, "counter")
	if diff := cmp.Diff(rs.String(), got); diff != "" {
		t.Errorf("nft list differs from String() (-want +got):\n%s", diff)
	}
}

// bytecode returns `nft --debug=netlink list table` without set element
// dumps and handles: the rules' expressions, per chain.
func bytecode(t *testing.T, ns string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "--debug=netlink", "list", "table", "inet", TableName).Output()
	if err != nil {
		t.Fatalf("nft --debug=netlink list: %v", err)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "inet "+TableName+" "):
			// "inet palisade CHAIN HANDLE [POSITION]": handles may differ.
			if f := strings.Fields(l); len(f) >= 3 {
				keep = append(keep, strings.Join(f[:3], " "))
			}
		case strings.HasPrefix(l, "  [") || strings.HasPrefix(l, "  userdata"):
			keep = append(keep, l)
		}
		if strings.HasPrefix(l, "table inet") {
			break // the listing follows the bytecode
		}
	}
	return strings.Join(keep, "\n")
}

// TestKernelBytecodeMatchesNft loads String() with `nft -f` into one netns
// and our netlink rendition into another: the rules' bytecode must be the
// same, so what administrators read is what runs.
func TestKernelBytecodeMatchesNft(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			rs := Compile(engine.FromCluster(tc.cluster()), "node-1", tc.opts)
			ours, path := newNetns(t)
			en, err := New(path)
			if err != nil {
				t.Fatal(err)
			}
			defer en.Close()
			if _, err := en.Apply(context.Background(), rs); err != nil {
				t.Fatal(err)
			}
			theirs, _ := newNetns(t)
			file := filepath.Join(t.TempDir(), "ruleset.nft")
			if err := os.WriteFile(file, []byte(rs.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, "ip", "netns", "exec", theirs, "nft", "-f", file)
			if diff := cmp.Diff(bytecode(t, theirs), bytecode(t, ours)); diff != "" {
				t.Errorf("bytecode differs from nft -f (-nft +ours):\n%s", diff)
			}
		})
	}
}

// TestKernelDump: Dump reads the table back from the kernel without the
// nft binary and prints what `nft list table inet palisade` prints,
// counters included.
func TestKernelDump(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			ns, en := newEnforcer(t)
			rs := Compile(engine.FromCluster(tc.cluster()), "node-1", tc.opts)
			if _, err := en.Apply(context.Background(), rs); err != nil {
				t.Fatal(err)
			}
			got, err := Dump(en.nsPath)
			if err != nil {
				t.Fatalf("Dump: %v", err)
			}
			if diff := cmp.Diff(normalize(nftList(t, ns)), normalize(got)); diff != "" {
				t.Errorf("Dump differs from nft list (-nft +Dump):\n%s", diff)
			}
			// Read back, the ruleset diffs as equal to what was applied.
			back, err := Read(en.nsPath)
			if err != nil {
				t.Fatal(err)
			}
			back.Live = false
			if diff := cmp.Diff(rs.String(), back.String()); diff != "" {
				t.Errorf("Read differs from the applied ruleset (-applied +read):\n%s", diff)
			}
		})
	}
	_, path := newNetns(t)
	if _, err := Dump(path); !errors.Is(err, ErrNoTable) {
		t.Errorf("Dump(empty netns) = %v, want ErrNoTable", err)
	}
}
