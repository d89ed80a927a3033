// Package daemon starts, finds and stops the background process that
// serves a lab (its pods' servers; in kubelet mode, the kubelet and the
// agents). The process is named by a pidfile holding its PID and start
// time, so a stale pidfile or a recycled PID is never taken for it. It is a
// room of its own because both kinds of lab run such a daemon, and Down
// must stop one without loading anything else.
package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/lab/statefile"
)

// Start starts argv, a command that serves the lab called name (the
// CLI's `palisade lab daemon NAME`), as a detached process: a
// session of its own, stdin from /dev/null, stdout and stderr appended to
// names.DaemonLog(name), the environment of this process. It returns the daemon's
// PID once its pidfile names it, which Serve writes after its first pods are
// served (waiting at most 10 s), or an error if it exits first. If a live
// daemon already serves the lab, it returns that one's PID.
func Start(name string, argv []string) (int, error) {
	if err := names.ValidName(name); err != nil {
		return 0, err
	}
	if len(argv) == 0 {
		return 0, errors.New("start daemon: no command")
	}
	if pid := PID(name); pid != 0 {
		return pid, nil
	}
	if err := os.MkdirAll(names.StateDir(name), 0o755); err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(names.DaemonLog(name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("lab %s: start daemon: %w", name, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it if this process outlives it
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return 0, fmt.Errorf("lab %s: daemon exited (%v): %s", name, err, LogTail(names.DaemonLog(name)))
		case <-deadline:
			cmd.Process.Kill()
			return 0, fmt.Errorf("lab %s: daemon wrote no pidfile within 10s: %s", name, LogTail(names.DaemonLog(name)))
		case <-tick.C:
			if PID(name) == pid {
				return pid, nil
			}
		}
	}
}

// LogTail returns the last line of a log file ("" if there is none).
func LogTail(path string) string {
	b, _ := os.ReadFile(path)
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}

// The pidfile holds "PID STARTTIME": the start time (field 22 of
// /proc/PID/stat) tells a live daemon from a recycled PID.

// WritePidfile names this process the lab's daemon.
func WritePidfile(lab string) error {
	st, err := StartTime(os.Getpid())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(names.StateDir(lab), 0o755); err != nil {
		return err
	}
	return statefile.Write(names.Pidfile(lab), fmt.Appendf(nil, "%d %s\n", os.Getpid(), st), 0o644)
}

// PID returns the PID of the lab's daemon if the pidfile names a
// process that is still that daemon, else 0.
func PID(lab string) int {
	b, err := os.ReadFile(names.Pidfile(lab))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 1 {
		return 0
	}
	if st, err := StartTime(pid); err != nil || st != f[1] {
		return 0
	}
	return pid
}

// StartTime returns a process's start time (field 22 of /proc/PID/stat),
// which tells it from a later process that reuses its PID; an error for a
// process that is gone or a zombie.
func StartTime(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// comm (field 2) is in parentheses and may hold spaces: split after it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("/proc/%d/stat: short", pid)
	}
	if f[0] == "Z" || f[0] == "X" {
		return "", fmt.Errorf("process %d has exited", pid)
	}
	return f[19], nil // field 22 overall
}

// Stop stops the lab's daemon: SIGTERM, up to 3 s of waiting, then
// SIGKILL and up to 2 s more. A missing or stale pidfile is fine.
func Stop(lab string) error {
	pid := PID(lab)
	if pid == 0 {
		return nil
	}
	gone := func(limit time.Duration) bool {
		for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if PID(lab) != pid {
				return true
			}
		}
		return false
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return nil // exited meanwhile
	}
	if gone(3 * time.Second) {
		return nil
	}
	syscall.Kill(pid, syscall.SIGKILL)
	if gone(2 * time.Second) {
		return nil
	}
	return fmt.Errorf("daemon pid %d did not exit", pid)
}

// NotRunning returns an error if a live daemon other than this process
// serves the lab.
func NotRunning(lab string) error {
	if pid := PID(lab); pid != 0 && pid != os.Getpid() {
		return fmt.Errorf("lab %s: daemon already running (pid %d)", lab, pid)
	}
	return nil
}

// RemovePidfile removes the pidfile if it names this process.
func RemovePidfile(lab string) {
	if PID(lab) == os.Getpid() {
		os.Remove(names.Pidfile(lab))
	}
}
