package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/palisade-net/palisade/internal/lab/netns"
)

// Down removes the lab called name: its daemon (by pidfile, which may be
// stale), every network namespace named palisade-<name>-*, every
// /etc/netns/palisade-<name>-* directory and its state directory. It works
// from what exists, not from the state, so it finishes the job after a
// crash, and a lab that does not exist is not an error.
func Down(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	var errs []error
	if err := stopDaemon(name); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, removePrefixed(NetNSPrefix(name)))
	if err := os.RemoveAll(StateDir(name)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab %s down: %w", name, err)
	}
	return nil
}

// DownAll removes every lab, and everything else named palisade-* under
// /run/netns and /etc/netns.
func DownAll() error {
	var errs []error
	labs := map[string]bool{}
	if ents, err := os.ReadDir(RunDir); err == nil {
		for _, e := range ents {
			labs[e.Name()] = true
		}
	}
	nss, err := netns.List(Prefix)
	errs = append(errs, err)
	for _, n := range nss {
		name, _, _ := strings.Cut(strings.TrimPrefix(n, Prefix), "-")
		labs[name] = true
	}
	for name := range labs {
		if ValidName(name) == nil {
			errs = append(errs, Down(name))
		}
	}
	errs = append(errs, removePrefixed(Prefix))
	return errors.Join(errs...)
}

// removePrefixed deletes the namespaces and /etc/netns directories whose
// names start with prefix.
func removePrefixed(prefix string) error {
	var errs []error
	nss, err := netns.List(prefix)
	errs = append(errs, err)
	for _, n := range nss {
		errs = append(errs, netns.Delete(n))
	}
	dirs, err := filepath.Glob(filepath.Join(EtcNetnsDir, prefix+"*"))
	errs = append(errs, err)
	for _, d := range dirs {
		errs = append(errs, os.RemoveAll(d))
	}
	return errors.Join(errs...)
}

// The pidfile holds "PID STARTTIME": the start time (field 22 of
// /proc/PID/stat) tells a live daemon from a recycled PID.

func writePidfile(lab string) error {
	st, err := procStart(os.Getpid())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(StateDir(lab), 0o755); err != nil {
		return err
	}
	tmp := pidfilePath(lab) + ".tmp"
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d %s\n", os.Getpid(), st), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, pidfilePath(lab))
}

// daemonPID returns the PID of the lab's daemon if the pidfile names a
// process that is still that daemon, else 0.
func daemonPID(lab string) int {
	b, err := os.ReadFile(pidfilePath(lab))
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
	if st, err := procStart(pid); err != nil || st != f[1] {
		return 0
	}
	return pid
}

func procStart(pid int) (string, error) {
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

// stopDaemon stops the lab's daemon: SIGTERM, up to 3 s of waiting, then
// SIGKILL and up to 2 s more. A missing or stale pidfile is fine.
func stopDaemon(lab string) error {
	pid := daemonPID(lab)
	if pid == 0 {
		return nil
	}
	gone := func(limit time.Duration) bool {
		for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if daemonPID(lab) != pid {
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
