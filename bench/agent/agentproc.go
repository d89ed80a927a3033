package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// agentProc is one `palisade agent` subprocess, its stderr (JSON logs) in
// a file.
type agentProc struct {
	cmd     *exec.Cmd
	addr    string // metrics address
	logPath string
	logOff  int64 // how far tail has read
	start   time.Time
	done    chan struct{}
	waitErr error
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startAgent starts the agent; start is taken just before the fork.
func startAgent(bin, kubeconfig, netnsPath, logPath string) (*agentProc, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	args := []string{"agent", "--kubeconfig", kubeconfig, "--node-name", localNode,
		"--netns", netnsPath, "--metrics-addr", addr}
	if *flagHeapProfile != "" || *flagCPUProfile != "" {
		args = append(args, "--profiling")
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Dies with the bench if the bench dies hard; SIGINT from a terminal
	// reaches it too (same process group), and it stops gracefully.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	a := &agentProc{cmd: cmd, addr: addr, logPath: logPath, done: make(chan struct{})}
	a.start = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	running.Store(cmd.Process.Pid, a)
	go func() {
		a.waitErr = cmd.Wait()
		running.Delete(cmd.Process.Pid)
		close(a.done)
	}()
	return a, nil
}

func (a *agentProc) pid() int { return a.cmd.Process.Pid }

// heapProfile saves the agent's heap profile (after a GC) to file.
func (a *agentProc) heapProfile(file string) error {
	resp, err := http.Get("http://" + a.addr + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	return saveProfile(resp, file, "heap profile")
}

// cpuProfile saves a CPU profile of the agent's next d to file; it
// first waits up to 10 s for the agent to serve (/healthz), so that a
// profile asked for at start covers the start from the listener on.
func (a *agentProc) cpuProfile(d time.Duration, file string) error {
	for n := 0; ; n++ {
		resp, err := httpc.Get("http://" + a.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if n == 5000 {
			return fmt.Errorf("cpu profile: agent not serving: %w", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	c := &http.Client{Timeout: d + 30*time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", a.addr, max(1, int(d.Round(time.Second)/time.Second))))
	if err != nil {
		return err
	}
	return saveProfile(resp, file, "cpu profile")
}

// saveProfile writes a pprof response's body to file.
func saveProfile(resp *http.Response, file, what string) error {
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", what, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// stop sends SIGTERM (the agent leaves its table in place) and waits;
// SIGKILL after 10 s.
func (a *agentProc) stop() error {
	select {
	case <-a.done:
		return a.waitErr
	default:
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
		return a.waitErr
	case <-time.After(10 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
		return errors.New("agent did not stop on SIGTERM within 10 s; killed")
	}
}

var (
	httpc = &http.Client{Timeout: 2 * time.Second}
	// A scrape reads the table back from the kernel (the per-pod drop
	// counters), which takes seconds with a large table.
	scrapec = &http.Client{Timeout: time.Minute}
)

// waitReady polls /readyz every interval until it answers 200 and
// returns the time since the process was started.
func (a *agentProc) waitReady(ctx context.Context, interval, timeout time.Duration) (time.Duration, error) {
	deadline := a.start.Add(timeout)
	url := "http://" + a.addr + "/readyz"
	for {
		resp, err := httpc.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(a.start), nil
			}
		}
		select {
		case <-a.done:
			return 0, fmt.Errorf("agent exited before ready (%v); log: %s", a.waitErr, a.logPath)
		default:
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("agent not ready after %s; log: %s", timeout, a.logPath)
		}
		time.Sleep(interval)
	}
}

// memory returns VmRSS and VmHWM in bytes, from /proc/PID/status.
func memory(pid int) (rss, hwm int64, err error) {
	st, err := procStatus(pid)
	return st["VmRSS"], st["VmHWM"], err
}

// procStatus returns the kB fields of /proc/PID/status, in bytes.
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[2] == "kB" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			out[strings.TrimSuffix(f[0], ":")] = v * 1024
		}
	}
	return out, nil
}

// memoryDetail says what the agent's resident memory is made of: anonymous
// (the Go heap, stacks, runtime) and file-backed (the binary's pages)
// from /proc, and the Go heap's live and total figures from /metrics.
func (a *agentProc) memoryDetail() string {
	var parts []string
	if st, err := procStatus(a.pid()); err == nil {
		for _, k := range []string{"RssAnon", "RssFile"} {
			parts = append(parts, fmt.Sprintf("%s %s", k, mb(st[k])))
		}
	}
	if m, err := a.scrape(); err == nil {
		for _, g := range []string{"go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_heap_sys_bytes", "go_memstats_next_gc_bytes"} {
			if v, ok := gauge(m, g); ok {
				parts = append(parts, fmt.Sprintf("%s %s", strings.TrimSuffix(strings.TrimPrefix(g, "go_memstats_"), "_bytes"), mb(int64(v))))
			}
		}
	}
	return strings.Join(parts, ", ")
}

// cpuTime returns the process's user+system CPU time (/proc/PID/stat).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+2:])
	// fields after ")": state(0) ... utime(11) stime(12), in clock ticks (100 Hz)
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond, nil
}

// scrape returns the agent's /metrics text.
func (a *agentProc) scrape() (string, error) {
	resp, err := scrapec.Get("http://" + a.addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// histogram is a Prometheus histogram's cumulative buckets.
type histogram struct {
	les    []float64 // upper bounds, ascending, +Inf last
	counts []float64 // cumulative
	sum    float64
	count  float64
}

// parseHistogram reads metric name's buckets from Prometheus text.
func parseHistogram(text, name string) (histogram, error) {
	var h histogram
	type b struct{ le, n float64 }
	var bs []b
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, name+"_bucket{"):
			i := strings.Index(line, `le="`)
			j := strings.Index(line[i+4:], `"`)
			leS := line[i+4 : i+4+j]
			le := math.Inf(1)
			if leS != "+Inf" {
				le, _ = strconv.ParseFloat(leS, 64)
			}
			n, _ := strconv.ParseFloat(strings.TrimSpace(line[strings.LastIndexByte(line, ' '):]), 64)
			bs = append(bs, b{le, n})
		case strings.HasPrefix(line, name+"_sum "):
			h.sum, _ = strconv.ParseFloat(strings.Fields(line)[1], 64)
		case strings.HasPrefix(line, name+"_count "):
			h.count, _ = strconv.ParseFloat(strings.Fields(line)[1], 64)
		}
	}
	if len(bs) == 0 {
		return h, fmt.Errorf("no histogram %s in /metrics", name)
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for _, x := range bs {
		h.les = append(h.les, x.le)
		h.counts = append(h.counts, x.n)
	}
	return h, nil
}

// sub returns h - o (the observations made between two scrapes).
func (h histogram) sub(o histogram) histogram {
	out := histogram{les: h.les, sum: h.sum - o.sum, count: h.count - o.count}
	for i := range h.counts {
		c := h.counts[i]
		if i < len(o.counts) {
			c -= o.counts[i]
		}
		out.counts = append(out.counts, c)
	}
	return out
}

// quantile interpolates linearly within the bucket, as PromQL's
// histogram_quantile does.
func (h histogram) quantile(q float64) float64 {
	if h.count == 0 || len(h.counts) == 0 {
		return math.NaN()
	}
	total := h.counts[len(h.counts)-1]
	rank := q * total
	lo, prev := 0.0, 0.0
	for i, c := range h.counts {
		if c >= rank {
			if math.IsInf(h.les[i], 1) {
				return lo // highest finite bound
			}
			if c == prev {
				return h.les[i]
			}
			return lo + (h.les[i]-lo)*(rank-prev)/(c-prev)
		}
		lo, prev = h.les[i], c
	}
	return lo
}

// gauge returns the value of a metric without labels.
func gauge(text, name string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, name+" ") {
			v, err := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// logLine is one JSON log line of the agent.
type logLine struct {
	Time        time.Time `json:"time"`
	Msg         string    `json:"msg"`
	Transaction string    `json:"transaction"`
	E2K         string    `json:"event_to_kernel_max"`
	Events      int       `json:"events"`
	SinceStart  string    `json:"since_start"`
	Pods        int       `json:"pods"`
	LocalPods   int       `json:"local_pods"`
	Policies    int       `json:"policies"`
	Chains      int       `json:"chains"`
	Sets        int       `json:"sets"`
	Elements    int       `json:"elements"`
	Level       string    `json:"level"`
	Error       string    `json:"error"`
}

// tail returns the log lines written since the last call.
func (a *agentProc) tail() ([]logLine, error) {
	f, err := os.Open(a.logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(a.logOff, io.SeekStart); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	// Only whole lines.
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	a.logOff += int64(len(b))
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out, nil
}

// txDuration parses the duration at the end of a Stats string
// ("... N messages in 1.234ms").
func txDuration(s string) (time.Duration, bool) {
	i := strings.LastIndex(s, " in ")
	if i < 0 {
		return 0, false
	}
	d, err := time.ParseDuration(s[i+4:])
	return d, err == nil
}
