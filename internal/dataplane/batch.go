package dataplane

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// google/nftables v0.3.0 marshals objects well but sends them badly for
// big transactions: every message asks for an ack, every rule for an echo,
// and Flush reads one reply per message, so with thousands of rules it
// falls out of step with the kernel and blocks (measured: a 126k-message
// load never completed). So the library only builds the batch here (its
// WithTestDial hook hands us the marshalled messages), and sendBatch sends
// it in one sendmsg with acks and echoes cleared: the kernel then answers
// only with errors, each naming the sequence number of the message that
// failed. A GETGEN request sent after the batch marks the end of its
// replies, since netlink processes a socket's requests in order.

// captureConn returns a Conn whose Flush hands the batch to *out instead
// of the kernel.
func captureConn(out *[]netlink.Message) (*nftables.Conn, error) {
	return nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		*out = append(*out, req...)
		return nil, io.EOF // no replies: Flush's reads return at once
	}))
}

// TxError is a transaction the kernel rejected. Nothing of it was applied.
type TxError struct {
	// Ops names the operations that failed, with the kernel's errors.
	Ops []OpError
}

// OpError is one failed operation of a transaction.
type OpError struct {
	Op  string // e.g. "add rule to chain ing-x-web-1a2b3c4d"
	Err error  // a unix.Errno
}

func (e *TxError) Error() string {
	var parts []string
	for _, op := range e.Ops {
		parts = append(parts, fmt.Sprintf("%s: %v", op.Op, op.Err))
	}
	return "nftables transaction rejected: " + strings.Join(parts, "; ")
}

// Is lets errors.Is match the kernel's errno of any failed operation.
func (e *TxError) Is(target error) bool {
	for _, op := range e.Ops {
		if errors.Is(op.Err, target) {
			return true
		}
	}
	return false
}

// sendBatch sends msgs (a batch as google/nftables marshals it: begin,
// operations, end) to the kernel in the network namespace nsFile (nil:
// the current one). ops names the operations, one per message between
// begin and end. A genid other than 0 makes the batch conditional: the
// kernel rejects it whole (ERESTART) unless the namespace's ruleset
// generation is still genid (NFNL_BATCH_GENID).
func sendBatch(ctx context.Context, nsFile *os.File, msgs []netlink.Message, ops []string, genid uint32) error {
	conn, err := dialNetfilter(nsFile)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer conn.Close()

	if genid != 0 {
		attr, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFNL_BATCH_GENID, Data: binary.BigEndian.AppendUint32(nil, genid)}})
		if err != nil {
			return err
		}
		msgs[0].Data = append(msgs[0].Data[:len(msgs[0].Data):len(msgs[0].Data)], attr...)
		msgs[0].Header.Length = uint32(unix.NLMSG_HDRLEN + len(msgs[0].Data))
	}
	size := 0
	for i := range msgs {
		m := &msgs[i]
		m.Header.Sequence = uint32(i + 1)
		m.Header.PID = 0
		m.Header.Flags &^= netlink.Acknowledge | netlink.Echo
		size += int(m.Header.Length)
	}
	if err := setBuffers(conn, size+(1<<20), 8<<20); err != nil {
		return err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(2 * time.Minute)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := conn.SendMessages(msgs); err != nil {
		return fmt.Errorf("send nftables batch (%d bytes): %w", size, err)
	}
	genSeq := uint32(len(msgs) + 1)
	if _, err := conn.Send(netlink.Message{
		Header: netlink.Header{
			Type:     netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
			Flags:    netlink.Request | netlink.Acknowledge,
			Sequence: genSeq,
		},
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	}); err != nil {
		return fmt.Errorf("send nftables sync: %w", err)
	}

	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var txErr TxError
	bp := replyBufs.Get().(*[]byte)
	defer replyBufs.Put(bp)
	buf := *bp
	for {
		var n int
		var rerr error
		if err := raw.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return fmt.Errorf("receive nftables replies: %w", err)
		}
		if rerr != nil {
			if rerr == unix.ENOBUFS {
				return fmt.Errorf("receive nftables replies: %w (replies lost; the outcome is unknown)", rerr)
			}
			return fmt.Errorf("receive nftables replies: %w", rerr)
		}
		replies, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("parse nftables replies: %w", err)
		}
		for _, r := range replies {
			if r.Header.Type != unix.NLMSG_ERROR || len(r.Data) < 4+unix.SizeofNlMsghdr {
				continue
			}
			errno := -int32(binary.NativeEndian.Uint32(r.Data[:4]))
			seq := binary.NativeEndian.Uint32(r.Data[4+8 : 4+12])
			if seq == genSeq {
				if errno != 0 {
					return fmt.Errorf("nftables sync: %w", unix.Errno(errno))
				}
				if len(txErr.Ops) > 0 {
					return &txErr
				}
				return nil
			}
			if errno == 0 {
				continue
			}
			op := "batch"
			if i := int(seq) - 2; i >= 0 && i < len(ops) {
				op = ops[i]
			}
			txErr.Ops = append(txErr.Ops, OpError{Op: op, Err: unix.Errno(errno)})
		}
	}
}

// replyBufs hold the buffers that sendBatch reads the kernel's replies
// into: 1 MiB, since an error reply quotes the message it refuses (a
// set's elements may be most of that). Allocating one per transaction
// was a quarter of what an agent allocated per policy change.
var replyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// setBuffers raises the socket's buffers: the batch must fit the send
// buffer whole. Forcing needs CAP_NET_ADMIN, which nftables needs anyway.
func setBuffers(conn *netlink.Conn, snd, rcv int) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, snd) != nil {
			serr = errors.Join(serr, unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, snd))
		}
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcv) != nil {
			serr = errors.Join(serr, unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcv))
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("netlink socket buffers: %w", serr)
	}
	return nil
}
