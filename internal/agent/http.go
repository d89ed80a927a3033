package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMetricsAddr is where the agent serves /metrics, /healthz,
// /readyz (and /debug/pprof/ with --profiling) unless told otherwise.
//
// The agent runs in the host's network namespace (hostNetwork: it
// programs the node's nftables), so an address other than loopback is
// open to every pod of the node that can reach the node's IP, and
// /metrics names the pods of the node and their drop counts. Loopback is
// reachable only from the host's namespace: by the kubelet, whose probes
// of a hostNetwork pod run from the host (the DaemonSet's probes say
// host: 127.0.0.1, as Calico's felix does for its health port), by
// kubectl port-forward (which enters the pod's namespace, the host's),
// and by a node-local scraper. One address serves both: a second,
// open, address for health alone would be one more port open to pods
// for nothing the kubelet needs.
const DefaultMetricsAddr = "127.0.0.1:9484"

// HTTPOptions bound the agent's HTTP server. Zero fields take the
// defaults below.
type HTTPOptions struct {
	// Profiling also serves Go's profiles under /debug/pprof/.
	Profiling bool
	// MaxConns caps the open connections (default 16): beyond it new
	// ones wait in the kernel's accept queue until one closes.
	MaxConns int
	// ReadHeaderTimeout cuts a connection whose request headers do not
	// arrive in time (default 5 s): slowloris.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request (default 10 s).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response (default 15 s); the
	// profiles that stream for their seconds parameter get that long
	// plus WriteTimeout, and at most MaxProfile.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle that long
	// (default 30 s).
	IdleTimeout time.Duration
	// MaxProfile is the longest CPU profile or trace served (default
	// 60 s); longer ones are refused.
	MaxProfile time.Duration
	// MaxHeaderBytes bounds request headers (default 8 KiB).
	MaxHeaderBytes int
}

func (o *HTTPOptions) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.MaxConns == 0 {
		o.MaxConns = 16
	}
	if o.MaxHeaderBytes == 0 {
		o.MaxHeaderBytes = 8 << 10
	}
	def(&o.ReadHeaderTimeout, 5*time.Second)
	def(&o.ReadTimeout, 10*time.Second)
	def(&o.WriteTimeout, 15*time.Second)
	def(&o.IdleTimeout, 30*time.Second)
	def(&o.MaxProfile, 60*time.Second)
}

// Serve serves the agent's Handler (and pprof with o.Profiling) on ln
// until ctx ends, then shuts the server down (2 s at most). It returns
// nil after a shutdown, or the error that stopped the server.
func (a *Agent) Serve(ctx context.Context, ln net.Listener, o HTTPOptions) error {
	srv, ln := NewHTTPServer(a.Handler(), ln, o)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

// NewHTTPServer returns a server of h, bounded as o says, and the
// listener to serve it on: ln with the connection cap. The server's
// WriteTimeout is the longest any response may take (a profile's); every
// other request gets o.WriteTimeout through its own write deadline.
func NewHTTPServer(h http.Handler, ln net.Listener, o HTTPOptions) (*http.Server, net.Listener) {
	o.defaults()
	mux := http.NewServeMux()
	mux.Handle("/", h)
	long := map[string]bool{}
	if o.Profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		long["/debug/pprof/profile"], long["/debug/pprof/trace"] = true, true
	}
	bounded := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := o.WriteTimeout
		if long[r.URL.Path] {
			// pprof streams for ?seconds= (30 by default, as pprof's).
			sec := 30 * time.Second
			if s := r.FormValue("seconds"); s != "" {
				n, err := strconv.ParseFloat(s, 64)
				if err != nil || n <= 0 {
					http.Error(w, "bad seconds", http.StatusBadRequest)
					return
				}
				sec = time.Duration(n * float64(time.Second))
			}
			if sec > o.MaxProfile {
				http.Error(w, fmt.Sprintf("profiles of at most %s", o.MaxProfile), http.StatusBadRequest)
				return
			}
			d = sec + o.WriteTimeout
		}
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{
		Handler:           bounded,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		// pprof refuses a profile as long as the server's WriteTimeout,
		// so it is the longest profile plus the margin; requests get
		// their own deadline above.
		WriteTimeout:   o.MaxProfile + 2*o.WriteTimeout,
		IdleTimeout:    o.IdleTimeout,
		MaxHeaderBytes: o.MaxHeaderBytes,
	}
	return srv, LimitListener(ln, o.MaxConns)
}

// limitListener is netutil.LimitListener's idea, with a count the tests
// read: at most n connections open; Accept waits for a slot.
type limitListener struct {
	net.Listener
	sem   chan struct{}
	open  atomic.Int64
	peak  atomic.Int64
	close sync.Once
	done  chan struct{}
}

// LimitListener returns ln accepting at most n connections at once.
func LimitListener(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	n := l.open.Add(1)
	for p := l.peak.Load(); n > p && !l.peak.CompareAndSwap(p, n); p = l.peak.Load() {
	}
	return &limitConn{Conn: c, l: l}, nil
}

func (l *limitListener) Close() error {
	l.close.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		<-c.l.sem
	})
	return err
}

// notReady logs why the agent is not ready, once per reason and at most
// once a minute for the same one: /readyz answers only "not ready", for
// the reason may name API errors, addresses or files.
type notReadyLog struct {
	mu   sync.Mutex
	last string
	at   time.Time
}

func (n *notReadyLog) log(log *slog.Logger, now time.Time, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	msg := err.Error()
	if msg == n.last && now.Sub(n.at) < time.Minute {
		return
	}
	n.last, n.at = msg, now
	log.Warn("not ready", "reason", msg)
}
