// Package agents runs the `palisade agent` processes of a lab in kubelet
// mode, one per node, as a DaemonSet's pods would run: it gives them
// deploy/'s identity (RBAC, a ServiceAccount token, a kubeconfig),
// supervises them (restarts with backoff, agents.json, death with the
// daemon) and waits until they are ready. It is apart from the kubelet
// emulation because the agents are the system under test, and the kubelet
// only the stage they run on.
package agents

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/palisade-net/palisade/internal/lab/daemon"
	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/lab/statefile"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one `palisade agent` process a lab daemon runs for a node.
type Proc struct {
	Node string `json:"node"`
	PID  int    `json:"pid"`
	// Start is the process's start time (/proc/PID/stat field 22), which
	// tells it from a process that recycled the PID.
	Start string `json:"start"`
	// MetricsAddr serves /metrics, /healthz and /readyz.
	MetricsAddr string   `json:"metricsAddr"`
	Log         string   `json:"log"`
	Restarts    int      `json:"restarts"`
	Argv        []string `json:"argv"`
}

// Read returns the agent processes of a lab in kubelet mode, as its
// daemon last recorded them (sorted by node).
func Read(lab string) []Proc {
	if names.ValidName(lab) != nil {
		return nil
	}
	b, err := os.ReadFile(names.AgentsFile(lab))
	if err != nil {
		return nil
	}
	var out []Proc
	_ = json.Unmarshal(b, &out)
	return out
}

// alive reports whether the process is still the one recorded.
func (a Proc) alive() bool {
	if a.PID <= 1 {
		return false
	}
	st, err := daemon.StartTime(a.PID)
	return err == nil && st == a.Start
}

// Kill kills the recorded agents that are still running (the daemon
// stops them; this is for a daemon that could not).
func Kill(agents []Proc) {
	for _, a := range agents {
		if a.alive() {
			syscall.Kill(a.PID, syscall.SIGKILL)
		}
	}
}

// Supervisor runs one agent per lab node, restarting those that exit
// (as a kubelet restarts a DaemonSet's pod), and stops them when its context
// ends. Agents are started with PR_SET_PDEATHSIG (SIGKILL), from one OS
// thread that stays locked for the life of the daemon, so a daemon killed
// with SIGKILL takes its agents along.
type Supervisor struct {
	lab        string
	self       string
	kubeconfig string
	log        *slog.Logger
	reqs       chan startReq

	mu    sync.Mutex
	procs map[string]*Proc
	wg    sync.WaitGroup
}

type startReq struct {
	cmd  *exec.Cmd
	done chan error
}

func NewSupervisor(lab, kubeconfig string, log *slog.Logger) (*Supervisor, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	s := &Supervisor{lab: lab, self: self, kubeconfig: kubeconfig, log: log,
		reqs: make(chan startReq), procs: map[string]*Proc{}}
	go s.starter()
	return s, nil
}

// starter starts every agent process from one locked OS thread. It never
// returns: PR_SET_PDEATHSIG fires when the thread that forked a child exits,
// which must be when the daemon does, not earlier.
func (s *Supervisor) starter() {
	runtime.LockOSThread()
	for r := range s.reqs {
		r.done <- r.cmd.Start()
	}
}

func (s *Supervisor) start(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	s.reqs <- startReq{cmd, done}
	return <-done
}

// Run starts the agents of nodes and keeps them running until ctx ends,
// then stops them (SIGTERM, 3 s, SIGKILL) and returns.
func (s *Supervisor) Run(ctx context.Context, nodes []string, nsPath func(string) string) {
	for _, node := range nodes {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.keep(ctx, node, nsPath(node))
		}()
	}
	s.wg.Wait()
	s.save()
}

func freeLocalPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// agentEnv is the daemon's environment without KUBECONFIG: an agent must
// use the kubeconfig it is given (the ServiceAccount), never fall back to
// the user's.
func agentEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "KUBECONFIG=") })
}

func (s *Supervisor) keep(ctx context.Context, node, nsPath string) {
	restarts := 0
	for ctx.Err() == nil {
		err := s.once(ctx, node, nsPath, restarts)
		if ctx.Err() != nil {
			return
		}
		restarts++
		backoff := min(time.Duration(1<<min(restarts-1, 5))*time.Second, 30*time.Second)
		s.log.Warn("agent exited; restarting", "lab", s.lab, "node", node, "err", err, "restarts", restarts, "in", backoff, "log", names.AgentLog(s.lab, node))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// once runs one agent process until it exits or ctx ends.
func (s *Supervisor) once(ctx context.Context, node, nsPath string, restarts int) error {
	port, err := freeLocalPort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	argv := []string{s.self, "agent", "--kubeconfig", s.kubeconfig, "--node-name", node, "--netns", nsPath, "--metrics-addr", addr}
	logf, err := os.OpenFile(names.AgentLog(s.lab, node), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- %s palisade lab %s: %s\n", time.Now().Format(time.RFC3339), s.lab, strings.Join(argv, " "))
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = agentEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.start(cmd); err != nil {
		return fmt.Errorf("start agent: %w", err)
	}
	start, _ := daemon.StartTime(cmd.Process.Pid)
	s.mu.Lock()
	s.procs[node] = &Proc{Node: node, PID: cmd.Process.Pid, Start: start, MetricsAddr: addr,
		Log: names.AgentLog(s.lab, node), Restarts: restarts, Argv: argv}
	s.mu.Unlock()
	s.save()
	s.log.Info("agent started", "lab", s.lab, "node", node, "pid", cmd.Process.Pid, "metrics", addr)

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		return fmt.Errorf("agent for %s exited: %v", node, err)
	case <-ctx.Done():
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(2 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	s.log.Info("agent stopped", "lab", s.lab, "node", node)
	return nil
}

// save writes agents.json. The lock is held through the write: the
// agents' goroutines save concurrently, through one temporary file.
func (s *Supervisor) save() {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Proc, 0, len(s.procs))
	for _, p := range s.procs {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Proc) int { return names.NodeIndex(a.Node) - names.NodeIndex(b.Node) })
	b, _ := json.MarshalIndent(out, "", "  ")
	if err := statefile.Write(names.AgentsFile(s.lab), append(b, '\n'), 0o644); err != nil {
		s.log.Warn("saving agents.json", "lab", s.lab, "err", err)
	}
}

// Wait waits until every one of nodes has an agent answering 200 on
// /readyz. It fails early, with the end of its log, when an agent keeps
// exiting.
func Wait(ctx context.Context, name string, nodes []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	ready := map[string]bool{}
	for {
		agents := map[string]Proc{}
		for _, a := range Read(name) {
			agents[a.Node] = a
		}
		var waiting []string
		for _, node := range nodes {
			if ready[node] {
				continue
			}
			a, ok := agents[node]
			if ok && a.Restarts >= 2 {
				return fmt.Errorf("lab %s: the agent of %s keeps exiting (%d restarts): %s", name, node, a.Restarts, daemon.LogTail(a.Log))
			}
			if ok && a.alive() && readyz(ctx, client, a.MetricsAddr) {
				ready[node] = true
				continue
			}
			waiting = append(waiting, node)
		}
		if len(waiting) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			var tails []string
			for _, n := range waiting {
				tails = append(tails, fmt.Sprintf("%s: %s", n, daemon.LogTail(names.AgentLog(name, n))))
			}
			return fmt.Errorf("lab %s: agents not ready within %s (%s)", name, timeout, strings.Join(tails, "; "))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func readyz(ctx context.Context, c *http.Client, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
