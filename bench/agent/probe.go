package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"

	"github.com/palisade-net/palisade/internal/dataplane"
)

// chainProbe is the cheap way to watch the kernel for one local pod: it
// looks the pod up in the ingress4 verdict map (one small dump) and lists
// the comments of the rules of the chain it jumps to (another), on one
// netlink socket kept open in the namespace. Every nft rule of a policy
// rule carries the comment "<ns>/<policy> ingress[<i>]", and a policy's
// rules, its chains and the pod's map element change in one atomic
// transaction. dataplane.Read, by contrast, dumps every set and chain of
// the table (see BENCHMARKS.md).
type chainProbe struct {
	f     *os.File
	conn  *nftables.Conn
	table *nftables.Table
	map4  *nftables.Set
}

// errRaced: the chain went away between the two dumps (a transaction in
// between); poll again.
var errRaced = errors.New("chain gone between the map and the rules")

func newChainProbe(path string) (*chainProbe, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	conn, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())), nftables.AsLasting())
	if err != nil {
		f.Close()
		return nil, err
	}
	t := &nftables.Table{Name: dataplane.TableName, Family: nftables.TableFamilyINet}
	return &chainProbe{f: f, conn: conn, table: t,
		map4: &nftables.Set{Table: t, Name: "ingress4", IsMap: true, KeyType: nftables.TypeIPAddr, DataType: nftables.TypeVerdict}}, nil
}

func (p *chainProbe) Close() error {
	p.conn.CloseLasting()
	return p.f.Close()
}

// hasComment reports whether a rule of pod's ingress chain has a comment
// starting with prefix (false when the pod is not isolated for ingress).
func (p *chainProbe) hasComment(pod netip.Addr, prefix string) (bool, error) {
	elems, err := p.conn.GetSetElements(p.map4)
	if err != nil {
		return false, fmt.Errorf("list ingress4: %w", err)
	}
	chain := ""
	for _, e := range elems {
		if len(e.Key) == 4 && netip.AddrFrom4([4]byte(e.Key)) == pod {
			chain = dataplane.VerdictChain(e.Val)
		}
	}
	if chain == "" {
		return false, nil
	}
	rules, err := p.conn.GetRules(p.table, &nftables.Chain{Name: chain, Table: p.table})
	if err != nil {
		return false, errRaced
	}
	for _, r := range rules {
		if c, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok && strings.HasPrefix(c, prefix) {
			return true, nil
		}
	}
	return false, nil
}
