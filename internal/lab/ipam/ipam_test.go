package ipam

import (
	"net/netip"
	"testing"

	"github.com/palisade-net/palisade/internal/model"
)

func TestAllocate(t *testing.T) {
	used := map[netip.Addr]model.Key{netip.MustParseAddr("10.244.1.2"): {}}
	got, err := Allocate(netip.MustParsePrefix("10.244.1.0/24"), 2, used)
	if err != nil || got != netip.MustParseAddr("10.244.1.3") {
		t.Errorf("Allocate = %v, %v; want 10.244.1.3", got, err)
	}
	full := map[netip.Addr]model.Key{}
	for a := netip.MustParseAddr("10.0.0.2"); a.Less(netip.MustParseAddr("10.0.1.0")); a = a.Next() {
		full[a] = model.Key{}
	}
	if got, err := Allocate(netip.MustParsePrefix("10.0.0.0/24"), 2, full); err == nil {
		t.Errorf("Allocate in a full /24 = %v, want an error", got)
	}
}
