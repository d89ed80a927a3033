package lab

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/palisade-net/palisade/internal/lab/probe"
	"github.com/palisade-net/palisade/internal/model"
)

// Probe tries one connection from a pod to addr:port and reports whether it
// got through within timeout (1 s when timeout <= 0): for TCP, the
// handshake completed; for UDP, a datagram sent got an answer (package
// probe). Refused, unreachable and timed-out attempts are (false, nil); err
// is for probes that could not be made (unknown pod, ctx ended, SCTP:
// probe.ErrSCTPUnsupported, the lab serves and probes TCP and UDP only).
// Probe is safe for concurrent use.
func (l *Lab) Probe(ctx context.Context, from model.Key, to netip.Addr, port uint16, proto model.Protocol, timeout time.Duration) (bool, error) {
	nsPath, err := l.PodNetNS(from)
	if err != nil {
		return false, err
	}
	return probe.Dial(ctx, nsPath, to, port, proto, timeout)
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
