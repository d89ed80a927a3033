package dataplane

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// The Enforcer decides what to send (txn: the diff from the last ruleset,
// or a full rebuild) and a backend executes it: the kernel over netlink,
// or Model, an in-memory table that rejects what the kernel rejects. The
// seam is the list of operations below, all of one transaction.

// opKind is what one operation of a transaction does.
type opKind uint8

const (
	opAddTable   opKind = iota // create the table unless it exists
	opDelTable                 // the table and everything in it
	opFlushTable               // every rule of every chain
	opAddSet                   // set: its definition (Elems ignored)
	opDelSet                   // set: its name
	opAddChain                 // chain: its name and hook (Rules ignored)
	opFlushChain               // chain: its name
	opDelChain                 // chain: its name
	opAddRule                  // rule, appended to chain
	opAddElems                 // elems, to set
	opDelElems                 // elems, from set
)

// op is one operation of a transaction, one netlink message for the
// kernel.
type op struct {
	kind  opKind
	set   *Set
	chain *Chain
	rule  *Rule
	elems []Elem
}

// String names the operation in errors, as a *TxError reports it.
func (o *op) String() string {
	switch o.kind {
	case opAddTable:
		return "add table"
	case opDelTable:
		return "delete table"
	case opFlushTable:
		return "flush table"
	case opAddSet:
		return "add set " + o.set.Name
	case opDelSet:
		return "delete set " + o.set.Name
	case opAddChain:
		return "add chain " + o.chain.Name
	case opFlushChain:
		return "flush chain " + o.chain.Name
	case opDelChain:
		return "delete chain " + o.chain.Name
	case opAddRule:
		return fmt.Sprintf("add rule to chain %s: %s", o.chain.Name, o.rule)
	case opAddElems:
		return fmt.Sprintf("add %d elements to set %s", len(o.elems), o.set.Name)
	case opDelElems:
		return fmt.Sprintf("delete %d elements from set %s", len(o.elems), o.set.Name)
	}
	return fmt.Sprintf("op %d", o.kind)
}

// backend executes transactions on one table and reads it back.
type backend interface {
	// commit applies t's operations all or none; a rejection is a
	// *TxError carrying the kernel's errno.
	commit(ctx context.Context, t *txn) error
	// read returns the table as held (ErrNoTable when there is none).
	read() (*Ruleset, error)
	// held names the chains and sets held, for a full rebuild; nil when
	// there is no table.
	held() (*heldObjects, error)
}

// kernel is the backend of a network namespace: google/nftables marshals
// the operations, sendBatch sends them.
type kernel struct {
	nsPath string
	nsFile *os.File // nil: the current network namespace
	table  *nftables.Table
	setID  uint32
}

func (k *kernel) read() (*Ruleset, error) { return Read(k.nsPath) }

func (k *kernel) commit(ctx context.Context, t *txn) error {
	var msgs []netlink.Message
	conn, err := captureConn(&msgs)
	if err != nil {
		return err
	}
	for i := range t.batch {
		if err := k.marshal(conn, &t.batch[i]); err != nil {
			return fmt.Errorf("marshal %s: %w", &t.batch[i], err)
		}
	}
	if err := conn.Flush(); err != nil { // marshals into msgs
		return fmt.Errorf("marshal nftables batch: %w", err)
	}
	if len(msgs) != len(t.batch)+2 {
		return fmt.Errorf("internal error: %d netlink messages for %d operations", len(msgs)-2, len(t.batch))
	}
	return sendBatch(ctx, k.nsFile, msgs, t.ops, t.genid)
}

// marshal queues one operation on conn: exactly one netlink message.
func (k *kernel) marshal(conn *nftables.Conn, o *op) error {
	switch o.kind {
	case opAddTable:
		conn.AddTable(k.table)
	case opDelTable:
		conn.DelTable(k.table)
	case opFlushTable:
		conn.FlushTable(k.table)
	case opAddSet:
		k.setID++
		return conn.AddSet(o.set.nftSet(k.table, k.setID), nil)
	case opDelSet:
		conn.DelSet(&nftables.Set{Table: k.table, Name: o.set.Name})
	case opAddChain:
		conn.AddChain(nftChain(k.table, o.chain))
	case opFlushChain:
		conn.FlushChain(&nftables.Chain{Table: k.table, Name: o.chain.Name})
	case opDelChain:
		conn.DelChain(&nftables.Chain{Table: k.table, Name: o.chain.Name})
	case opAddRule:
		conn.AddRule(&nftables.Rule{Table: k.table, Chain: nftChain(k.table, o.chain), Exprs: o.rule.exprs(), UserData: o.rule.userData()})
	case opAddElems:
		return conn.SetAddElements(o.set.nftSet(k.table, 0), o.set.nftElems(o.elems, false))
	case opDelElems:
		return conn.SetDeleteElements(o.set.nftSet(k.table, 0), o.set.nftElems(o.elems, true))
	default:
		return errors.New("unknown operation")
	}
	return nil
}

// wireBytes estimates the size of e's kernel elements in a netlink
// message (a range is a start and an end element), to keep each
// message's element list under the 64 KiB attribute limit.
func (s *Set) wireBytes(e Elem) int {
	key := 4
	if s.Family == IPv6 {
		key = 16
	}
	switch s.Kind {
	case KindPeers, KindCIDRs:
		return 2 * (32 + key)
	case KindNamed:
		return 32 + key + 8
	case KindSelf:
		return 32 + 2*key
	case KindDispatch:
		return 32 + key + 24 + len(e.Jump)
	}
	return 32 + key
}

// chunkElems splits s's elements es into lists that each fit one netlink
// attribute.
func chunkElems(s *Set, es []Elem) [][]Elem {
	const budget = 48 << 10
	var out [][]Elem
	start, size := 0, 0
	for i, e := range es {
		n := s.wireBytes(e)
		if size+n > budget && i > start {
			out = append(out, es[start:i])
			start, size = i, 0
		}
		size += n
	}
	if start < len(es) {
		out = append(out, es[start:])
	}
	return out
}
