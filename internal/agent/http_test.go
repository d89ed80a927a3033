package agent

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// serveTest serves h as the agent does, bounded by o, on a loopback port.
func serveTest(t *testing.T, h http.Handler, o HTTPOptions) (url string, l *limitListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, lln := NewHTTPServer(h, ln, o)
	go srv.Serve(lln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), lln.(*limitListener)
}

func getWithin(t *testing.T, url string, d time.Duration) (int, string, error) {
	t.Helper()
	c := &http.Client{Timeout: d, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestDefaultMetricsAddrIsLoopback(t *testing.T) {
	ap, err := netip.ParseAddrPort(DefaultMetricsAddr)
	if err != nil || !ap.Addr().IsLoopback() {
		t.Fatalf("DefaultMetricsAddr = %q: want a loopback address (the agent runs on the host's network)", DefaultMetricsAddr)
	}
}

// More connections than the cap, held open and idle (keep-alive after a
// request, or no request at all): the server never has more than the cap
// open, the idle ones are cut at their timeouts so that a probe still
// gets an answer while they are held, and it answers after they close.
func TestHTTPConnectionCap(t *testing.T) {
	const max = 4
	url, l := serveTest(t, okHandler(), HTTPOptions{MaxConns: max,
		ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	addr := strings.TrimPrefix(url, "http://")
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 40 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if i%2 == 0 { // a keep-alive request, then idle; the others send nothing
			c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
		}
	}
	time.Sleep(100 * time.Millisecond)
	if open := l.open.Load(); open > max {
		t.Errorf("%d connections open, cap %d", open, max)
	}
	// Held connections are cut at their timeouts: a probe gets through.
	code, body, err := getWithin(t, url+"/healthz", 10*time.Second)
	if err != nil || code != 200 || body != "ok\n" {
		t.Fatalf("healthz while 40 connections are held: %d %q %v", code, body, err)
	}
	if peak := l.peak.Load(); peak > max {
		t.Errorf("peak of %d open connections, cap %d", peak, max)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	for range 3 * max {
		if code, _, err := getWithin(t, url+"/healthz", 2*time.Second); err != nil || code != 200 {
			t.Fatalf("healthz after the connections closed: %d %v", code, err)
		}
	}
	eventually(t, "every connection closed", func() bool { return l.open.Load() == 0 })
	if peak := l.peak.Load(); peak > max {
		t.Errorf("peak of %d open connections, cap %d", peak, max)
	}
}

// A request whose headers never end is cut at ReadHeaderTimeout.
func TestHTTPSlowloris(t *testing.T) {
	url, _ := serveTest(t, okHandler(), HTTPOptions{ReadHeaderTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.Write([]byte("GET /metrics HTTP/1.1\r\nHost: x\r\nX-a: "))
	// Trickle a byte now and then: the deadline is for the whole header.
	go func() {
		for range 50 {
			time.Sleep(50 * time.Millisecond)
			if _, err := c.Write([]byte("a")); err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	took := time.Since(start)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %s", took)
	}
	if took > 2*time.Second {
		t.Errorf("cut after %s, want about 300ms", took)
	}
	if bytes.Contains(b, []byte("200 OK")) {
		t.Errorf("answered an unfinished request: %q", b)
	}
}

// A response the client does not read is cut at WriteTimeout; a CPU
// profile streams longer than that (its seconds, plus the margin), and
// one longer than MaxProfile is refused.
func TestHTTPWriteTimeoutAndProfile(t *testing.T) {
	big := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 1<<16)
		for range 1 << 14 { // 1 GiB, never read
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	mux := http.NewServeMux()
	mux.Handle("/big", big)
	mux.Handle("/", okHandler())
	url, _ := serveTest(t, mux, HTTPOptions{Profiling: true, WriteTimeout: 300 * time.Millisecond, MaxProfile: 2 * time.Second})

	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.Write([]byte("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"))
	time.Sleep(time.Second) // the server's writes block, then time out
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _ := io.Copy(io.Discard, bufio.NewReader(c))
	if n >= 1<<30 {
		t.Errorf("the whole response was written (%d bytes)", n)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("slow reader held for %s", took)
	}

	code, body, err := getWithin(t, url+"/debug/pprof/profile?seconds=1", 10*time.Second)
	if err != nil || code != 200 || len(body) == 0 {
		t.Errorf("1 s profile with a 300ms WriteTimeout: %d %v (%d bytes)", code, err, len(body))
	}
	if code, _, err := getWithin(t, url+"/debug/pprof/profile?seconds=30", 5*time.Second); err != nil || code != 400 {
		t.Errorf("profile longer than MaxProfile: %d %v, want 400", code, err)
	}
	if code, _, _ := getWithin(t, url+"/debug/pprof/", 5*time.Second); code != 200 {
		t.Errorf("pprof index: %d", code)
	}
}

// Without Profiling there is no /debug/pprof/.
func TestHTTPNoProfilingByDefault(t *testing.T) {
	url, _ := serveTest(t, http.NotFoundHandler(), HTTPOptions{})
	if code, _, _ := getWithin(t, url+"/debug/pprof/", 5*time.Second); code != 404 {
		t.Errorf("pprof index without Profiling: %d, want 404", code)
	}
}

// Serve stops when its context ends.
func TestServeStops(t *testing.T) {
	h := startAgent(t, Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.a.Serve(ctx, ln, HTTPOptions{}) }()
	if code, body, err := getWithin(t, "http://"+ln.Addr().String()+"/healthz", 5*time.Second); err != nil || code != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q %v", code, body, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
}
