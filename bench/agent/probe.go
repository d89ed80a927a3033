package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/palisade-net/palisade/internal/dataplane"
)

// setProbe lists the names of the sets of Palisade's table in one GETSET
// dump, on a netlink socket opened once in the namespace. It is the cheap
// way to watch the kernel: a policy's rules and its per-rule named-port
// sets (<ns>_<policy>_<ing|egr><i>_named<family>) come and go in the same
// atomic transaction, so the set names show a change exactly when the
// rule comments do. dataplane.Read, by contrast, opens a socket per set
// and per chain (see BENCHMARKS.md).
type setProbe struct {
	conn *netlink.Conn
	req  netlink.Message
}

func newSetProbe(path string) (*setProbe, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		return nil, err
	}
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_SET_TABLE, Data: []byte(dataplane.TableName + "\x00")}})
	if err != nil {
		conn.Close()
		return nil, err
	}
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSET),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
	return &setProbe{conn: conn, req: req}, nil
}

func (p *setProbe) Close() error { return p.conn.Close() }

// hasPrefix reports whether a set's name starts with prefix.
func (p *setProbe) hasPrefix(prefix string) (bool, error) {
	msgs, err := p.conn.Execute(p.req)
	if err != nil {
		return false, fmt.Errorf("list sets: %w", err)
	}
	found := false
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return false, err
		}
		for ad.Next() {
			if ad.Type() == unix.NFTA_SET_NAME && strings.HasPrefix(ad.String(), prefix) {
				found = true
			}
		}
	}
	return found, nil
}
