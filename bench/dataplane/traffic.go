package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/palisade-net/palisade/internal/netns"
	"golang.org/x/sys/unix"
)

// servers listens in the server pod's namespace: connPorts accept and
// close at once; the stream port reads until EOF and answers with the
// byte count.
type servers struct {
	lns []net.Listener
	wg  sync.WaitGroup
}

func startServers(nsPath string, connPorts []int, streamPort int) (*servers, error) {
	s := &servers{}
	err := netns.Do(nsPath, func() error {
		for _, p := range append(append([]int(nil), connPorts...), streamPort) {
			ln, err := net.Listen("tcp4", fmt.Sprintf(":%d", p))
			if err != nil {
				return err
			}
			s.lns = append(s.lns, ln)
		}
		return nil
	})
	if err != nil {
		s.close()
		return nil, err
	}
	for i, ln := range s.lns {
		stream := i == len(s.lns)-1
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					continue // aborted by the client's reset before accept
				}
				if !stream {
					c.Close()
					continue
				}
				s.wg.Add(1)
				go func() {
					defer s.wg.Done()
					defer c.Close()
					c.SetDeadline(time.Now().Add(time.Minute))
					n, _ := io.CopyBuffer(io.Discard, c, make([]byte, 256<<10))
					var b [8]byte
					binary.BigEndian.PutUint64(b[:], uint64(n))
					c.Write(b[:])
				}()
			}
		}()
	}
	return s, nil
}

func (s *servers) close() {
	for _, ln := range s.lns {
		ln.Close()
	}
	s.wg.Wait()
}

// crrServer answers each connection's one-byte request with one byte and
// closes it, as netperf's netserver does for TCP_CRR: blocking system
// calls on a thread of its own, since the client waits for every answer
// and a wakeup through the Go scheduler would add its latency to both
// configurations' path.
type crrServer struct {
	fd   int
	done chan struct{}
}

func startCRRServer(nsPath string, port int) (*crrServer, error) {
	s := &crrServer{fd: -1, done: make(chan struct{})}
	err := netns.Do(nsPath, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		s.fd = fd
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port}); err != nil {
			return err
		}
		return unix.Listen(fd, 4096)
	})
	if err != nil {
		if s.fd >= 0 {
			unix.Close(s.fd)
		}
		return nil, err
	}
	go func() {
		runtime.LockOSThread()
		defer close(s.done)
		timeout := unix.NsecToTimeval(int64(time.Second))
		var b [1]byte
		for {
			c, _, err := unix.Accept4(s.fd, unix.SOCK_CLOEXEC)
			if err == unix.EINTR || err == unix.ECONNABORTED {
				continue
			}
			if err != nil {
				return // shut down by close
			}
			unix.SetsockoptTimeval(c, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &timeout)
			if n, _ := unix.Read(c, b[:]); n == 1 {
				unix.Write(c, b[:])
			}
			unix.Close(c)
		}
	}()
	return s, nil
}

// close wakes the blocked accept (shutdown makes it fail) and waits for
// the loop to end.
func (s *crrServer) close() {
	unix.Shutdown(s.fd, unix.SHUT_RDWR)
	<-s.done
	unix.Close(s.fd)
}

// connectOnce makes one connection from the namespace at nsPath, with a
// timeout, and reports whether it was established.
func connectOnce(nsPath string, to netip.Addr, port int, timeout time.Duration) (bool, error) {
	var ok bool
	err := netns.Do(nsPath, func() error {
		fd, err := dialFD(to, port, timeout)
		if err == nil {
			unix.Close(fd)
			ok = true
		}
		return nil
	})
	return ok, err
}

// dialFD connects a socket with SO_LINGER 0 (close sends a reset, so no
// TIME_WAIT piles up on the client's ports), waiting at most timeout. The
// connect is non-blocking and polled, so that the Go runtime's signals
// (EINTR) cannot break it.
func dialFD(to netip.Addr, port int, timeout time.Duration) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	err = unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: to.As4()})
	if err == unix.EINPROGRESS {
		err = waitFD(fd, unix.POLLOUT, time.Now().Add(timeout))
		if err == nil {
			var soerr int
			if soerr, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && soerr != 0 {
				err = unix.Errno(soerr)
			}
		}
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// connRate runs connections in a loop on one thread inside the client's
// namespace for dur (at most maxConns connections) and returns connections
// per second and how many connections failed (a SYN lost to an overflowing
// accept queue on this busy machine waits for the retransmission; the
// connect timeout of 3 s covers two). More than 1% failed fails the run.
// A connection is connect + reset-close, or with crr (netperf's TCP_CRR:
// connect, request, response, close) a one-byte request and its one-byte
// answer in between.
func connRate(ctx context.Context, nsPath string, to netip.Addr, port int, crr bool, dur time.Duration, maxConns int) (float64, int, error) {
	var rate float64
	var failed int
	err := netns.Do(nsPath, func() error {
		start := time.Now()
		deadline := start.Add(dur)
		n := 0
		for n < maxConns {
			if n%64 == 0 && (ctx.Err() != nil || time.Now().After(deadline)) {
				break
			}
			fd, err := dialFD(to, port, 3*time.Second)
			if err == nil && crr {
				err = requestResponse(fd, time.Second)
				if err != nil {
					unix.Close(fd)
				}
			}
			n++
			if err != nil {
				failed++
				if failed > 10 && failed*100 > n {
					return fmt.Errorf("%d of %d connections to %s:%d failed, last: %w", failed, n, to, port, err)
				}
				continue
			}
			unix.Close(fd)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rate = float64(n-failed) / time.Since(start).Seconds()
		return nil
	})
	return rate, failed, err
}

// requestResponse writes one byte on the connected non-blocking socket fd
// and waits at most timeout for one byte back.
func requestResponse(fd int, timeout time.Duration) error {
	if _, err := unix.Write(fd, []byte{'?'}); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	var b [1]byte
	for {
		n, err := unix.Read(fd, b[:])
		switch {
		case n == 1:
			return nil
		case err == nil:
			return io.ErrUnexpectedEOF
		case err != unix.EAGAIN && err != unix.EINTR:
			return err
		}
		if err := waitFD(fd, unix.POLLIN, deadline); err != nil {
			return err
		}
	}
}

// waitFD polls the non-blocking socket fd for events until deadline. It
// polls, not blocks in the Go runtime, so that the runtime's signals
// (EINTR) cannot break the wait.
func waitFD(fd int, events int16, deadline time.Time) error {
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return unix.ETIMEDOUT
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
		n, err := unix.Poll(pfd, int(left/time.Millisecond)+1)
		if err == unix.EINTR || (err == nil && n == 0) {
			continue
		}
		return err
	}
}

// throughput sends for dur (at most maxBytes) over one TCP connection from
// the client's namespace and returns the received rate in Gbit/s, counted
// by the receiver.
func throughput(ctx context.Context, nsPath string, to netip.Addr, port int, dur time.Duration, maxBytes int64) (float64, error) {
	var conn net.Conn
	err := netns.Do(nsPath, func() error {
		var err error
		conn, err = net.DialTimeout("tcp4", netip.AddrPortFrom(to, uint16(port)).String(), 2*time.Second)
		return err
	})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(dur + 30*time.Second))
	buf := make([]byte, 128<<10)
	start := time.Now()
	deadline := start.Add(dur)
	var sent int64
	for sent < maxBytes && ctx.Err() == nil && time.Now().Before(deadline) {
		n, err := conn.Write(buf)
		sent += int64(n)
		if err != nil {
			return 0, err
		}
	}
	conn.(*net.TCPConn).CloseWrite()
	var b [8]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return 0, fmt.Errorf("reading the receiver's count: %w", err)
	}
	got := binary.BigEndian.Uint64(b[:])
	if int64(got) != sent {
		return 0, fmt.Errorf("sent %d bytes, received %d", sent, got)
	}
	return float64(got) * 8 / time.Since(start).Seconds() / 1e9, nil
}

// cpuTime returns this process's user + system CPU time.
func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// monotonic returns CLOCK_MONOTONIC in seconds, the clock of
// `perf record -k CLOCK_MONOTONIC`, so that a profile can be cut into the
// runs of each configuration (`perf report --time START,END`).
func monotonic() float64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return float64(ts.Nano()) / 1e9
}
