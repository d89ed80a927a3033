package hosts

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/palisade-net/palisade/internal/model"
)

func TestHostsFile(t *testing.T) {
	pods := []*model.Pod{
		{Namespace: "default", Name: "frontend", IPs: []netip.Addr{netip.MustParseAddr("10.244.1.2")}},
		{Namespace: "other", Name: "late", IPs: []netip.Addr{netip.MustParseAddr("10.10.5.5")}},
	}
	svcs := []*model.Service{{Namespace: "default", Name: "web", ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")}}}
	got := string(File("lab", "pod default/frontend", "default", pods, svcs))
	want := "# palisade lab lab: pod default/frontend\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"10.244.1.2\tfrontend\n10.96.0.10\tweb web.default web.default.svc web.default.svc.cluster.local\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("File (-want +got):\n%s", diff)
	}
	if other := string(File("lab", "pod other/late", "other", pods, svcs)); strings.Contains(other, "\tweb ") || strings.Contains(other, "frontend") {
		t.Errorf("File for namespace other = %q: has default's bare names", other)
	}
}
