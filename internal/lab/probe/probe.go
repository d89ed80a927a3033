// Package probe makes one connection attempt from inside a network
// namespace and says whether it got through: the lab's way of asking the
// kernel what its policy allows. It is apart from the lab so that what
// "allowed" means (a TCP handshake; a UDP answer) reads in one place.
package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/netns"
)

// ErrSCTPUnsupported is returned by Dial for SCTP: the lab serves and
// probes TCP and UDP only.
var ErrSCTPUnsupported = errors.New("lab: SCTP probes are not supported")

// Dial tries one connection from the namespace at nsPath to addr:port and
// reports whether it got through within timeout (1 s when timeout <= 0):
// for TCP, the handshake completed; for UDP, a datagram sent got an answer
// (sent up to three times within timeout).
// Refused, unreachable and timed-out attempts are (false, nil); err is for
// probes that could not be made (SCTP, ctx ended). The socket is made
// inside the namespace; Dial is safe for concurrent use.
func Dial(ctx context.Context, nsPath string, to netip.Addr, port uint16, proto model.Protocol, timeout time.Duration) (bool, error) {
	if proto == model.SCTP {
		return false, ErrSCTPUnsupported
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := netip.AddrPortFrom(to.Unmap(), port).String()
	var ok bool
	err := netns.Do(nsPath, func() error {
		var d net.Dialer
		switch proto {
		case model.TCP:
			c, err := d.DialContext(pctx, "tcp", addr)
			if err == nil {
				ok = true
				c.Close()
			}
		case model.UDP:
			ok = probeUDP(pctx, &d, addr, timeout)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	if !ok && ctx.Err() != nil {
		return false, ctx.Err()
	}
	return ok, nil
}

func probeUDP(ctx context.Context, d *net.Dialer, addr string, timeout time.Duration) bool {
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	buf := make([]byte, 2048)
	const tries = 3
	for i := range tries {
		if _, err := c.Write([]byte("palisade probe\n")); err != nil {
			return false // e.g. ICMP unreachable from an earlier try
		}
		wait := time.Now().Add(timeout / tries)
		if i == tries-1 || wait.After(deadline) {
			wait = deadline
		}
		c.SetReadDeadline(wait)
		n, err := c.Read(buf)
		if err == nil && n > 0 {
			return true
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || ctx.Err() != nil {
			return false // refused (port unreachable), or out of time
		}
	}
	return false
}
