package netns

import (
	"fmt"
	"github.com/palisade-net/palisade/internal/fixture"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestCreateDoDelete(t *testing.T) {
	fixture.RequireRoot(t)
	name := fmt.Sprintf("palisade-nstest-%d", os.Getpid())
	path, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Delete(name) })

	if _, err := Create(name); err == nil {
		t.Errorf("Create(%q) twice = nil error, want one", name)
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil && !strings.Contains(string(out), name) {
		t.Errorf("ip netns list = %q, want it to list %s", out, name)
	}
	names, err := List("palisade-nstest-")
	if err != nil || len(names) != 1 || names[0] != name {
		t.Errorf("List = %v, %v; want [%s]", names, err, name)
	}

	// Inside, only lo exists; outside, the host's interfaces.
	var inside []net.Interface
	if err := Do(path, func() error {
		var err error
		inside, err = net.Interfaces()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(inside) != 1 || inside[0].Name != "lo" {
		t.Errorf("interfaces in new netns = %v, want only lo", inside)
	}

	h, err := NewHandle(path)
	if err != nil {
		t.Fatal(err)
	}
	links, err := h.LinkList()
	h.Close()
	if err != nil || len(links) != 1 {
		t.Errorf("LinkList via handle = %d links, %v; want 1 (lo)", len(links), err)
	}
	if err := Sysctl(path, map[string]string{"net.ipv4.ip_forward": "1"}); err != nil {
		t.Fatal(err)
	}
	var fwd []byte
	Do(path, func() error { fwd, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward"); return err })
	if strings.TrimSpace(string(fwd)) != "1" {
		t.Errorf("ip_forward in netns = %q, want 1", fwd)
	}
	// The caller's namespace must be untouched.
	if _, err := netlink.LinkByName("lo"); err != nil {
		t.Fatal(err)
	}

	if err := Delete(name); err != nil {
		t.Fatal(err)
	}
	if err := Delete(name); err != nil {
		t.Errorf("Delete of a missing netns = %v, want nil", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("after Delete, stat %s = %v, want not exist", path, err)
	}
}
