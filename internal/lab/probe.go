package lab

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/palisade-net/palisade/internal/lab/netns"
	"github.com/palisade-net/palisade/internal/model"
)

// ErrSCTPUnsupported is returned by Probe for SCTP: the lab serves and
// probes TCP and UDP only.
var ErrSCTPUnsupported = errors.New("lab: SCTP probes are not supported")

// Probe tries one connection from a pod to addr:port and reports whether it
// got through within timeout (1 s when timeout <= 0): for TCP, the handshake completed; for UDP, a
// datagram sent got an answer (sent up to three times within timeout).
// Refused, unreachable and timed-out attempts are (false, nil); err is for
// probes that could not be made (unknown pod, SCTP, ctx ended). The socket
// is made inside the source pod's namespace; Probe is safe for concurrent
// use.
func (l *Lab) Probe(ctx context.Context, from model.Key, to netip.Addr, port uint16, proto model.Protocol, timeout time.Duration) (bool, error) {
	nsPath, err := l.PodNetNS(from)
	if err != nil {
		return false, err
	}
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
	err = netns.Do(nsPath, func() error {
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

// ProbeReq is one probe for ProbeAll.
type ProbeReq struct {
	From  model.Key
	To    netip.Addr
	Port  uint16
	Proto model.Protocol
}

// ProbeResult is a ProbeReq's outcome.
type ProbeResult struct {
	ProbeReq
	OK  bool
	Err error
}

// ProbeAll runs the probes with at most workers at a time (32 when
// workers <= 0), each with timeout, and returns the results in the order of
// reqs.
func (l *Lab) ProbeAll(ctx context.Context, reqs []ProbeReq, timeout time.Duration, workers int) []ProbeResult {
	if workers <= 0 {
		workers = 32
	}
	out := make([]ProbeResult, len(reqs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(reqs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r := reqs[i]
				ok, err := l.Probe(ctx, r.From, r.To, r.Port, r.Proto, timeout)
				out[i] = ProbeResult{ProbeReq: r, OK: ok, Err: err}
			}
		}()
	}
	for i := range reqs {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}
