package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// DaemonLog returns the file a daemon started by StartDaemon writes to.
func DaemonLog(lab string) string { return filepath.Join(StateDir(lab), "daemon.log") }

// StartDaemon starts argv, a command that runs Serve for the lab called
// name (the CLI's `palisade lab daemon NAME`), as a detached process: a
// session of its own, stdin from /dev/null, stdout and stderr appended to
// DaemonLog(name), the environment of this process. It returns the daemon's
// PID once its pidfile names it, which Serve writes after its first pods are
// served (waiting at most 10 s), or an error if it exits first. If a live
// daemon already serves the lab, it returns that one's PID.
func StartDaemon(name string, argv []string) (int, error) {
	if err := ValidName(name); err != nil {
		return 0, err
	}
	if len(argv) == 0 {
		return 0, errors.New("start daemon: no command")
	}
	if pid := daemonPID(name); pid != 0 {
		return pid, nil
	}
	if err := os.MkdirAll(StateDir(name), 0o755); err != nil {
		return 0, err
	}
	logf, err := os.OpenFile(DaemonLog(name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
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
			return 0, fmt.Errorf("lab %s: daemon exited (%v): %s", name, err, logTail(DaemonLog(name)))
		case <-deadline:
			cmd.Process.Kill()
			return 0, fmt.Errorf("lab %s: daemon wrote no pidfile within 10s: %s", name, logTail(DaemonLog(name)))
		case <-tick.C:
			if daemonPID(name) == pid {
				return pid, nil
			}
		}
	}
}

func logTail(path string) string {
	b, _ := os.ReadFile(path)
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}
