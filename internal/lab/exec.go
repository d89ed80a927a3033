package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/palisade-net/palisade/internal/lab/netns"
	"github.com/palisade-net/palisade/internal/model"
)

// nsexecArg is the hidden first argument by which Exec re-executes the
// current binary to enter a pod.
const nsexecArg = "__nsexec"

// ExitNSExecFailed is the exit code of a command that never started because
// entering the pod failed (the reason is printed to its stderr).
const ExitNSExecFailed = 125

// Exec runs a host command (argv[0] looked up in PATH) inside a pod: in its
// network namespace, with the pod's hosts and resolv.conf bound over /etc in
// a private mount namespace, as `ip netns exec` does. It returns the
// command's exit code; err is set only when the command could not be run or
// was killed by a signal. Cancelling ctx kills the command.
//
// Exec re-executes the current binary with a hidden first argument, so the
// binary's main must call MaybeNSExec first thing.
func (l *Lab) Exec(ctx context.Context, pod model.Key, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if len(argv) == 0 {
		return -1, errors.New("exec: no command")
	}
	_, place, err := l.pod(pod)
	if err != nil {
		return -1, err
	}
	self, err := os.Executable()
	if err != nil {
		return -1, fmt.Errorf("exec: %w", err)
	}
	args := append([]string{nsexecArg, netns.Path(place.NetNS), etcDir(place.NetNS), "--"}, argv...)
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ee.ExitCode() >= 0 {
			return ee.ExitCode(), nil
		}
		return -1, fmt.Errorf("exec in pod %s: %w", pod, err)
	}
	if err != nil {
		return -1, fmt.Errorf("exec in pod %s: %w", pod, err)
	}
	return 0, nil
}

// MaybeNSExec is the hidden entry point of Exec. A binary that uses Exec
// calls it first thing in main (and a test binary in TestMain). Unless
// os.Args[1] is "__nsexec" it returns at once. Otherwise it never returns:
// it enters the pod (setns into the network namespace, a private mount
// namespace with / made a recursive slave so that nothing propagates back
// to the host, sysfs remounted for the namespace, hosts and resolv.conf
// bound over /etc) and replaces the process with the command, or exits
// with ExitNSExecFailed.
//
// Namespaces are per thread, so this runs on a locked thread, and execve
// from that thread carries its namespaces into the command.
func MaybeNSExec() {
	if len(os.Args) < 2 || os.Args[1] != nsexecArg {
		return
	}
	runtime.LockOSThread()
	err := nsexec(os.Args[2:])
	fmt.Fprintf(os.Stderr, "palisade: entering pod: %v\n", err)
	os.Exit(ExitNSExecFailed)
}

// nsexec takes NETNS-PATH ETC-DIR -- ARGV... and returns only on failure.
func nsexec(args []string) error {
	if len(args) < 4 || args[2] != "--" {
		return fmt.Errorf("usage: %s NETNS ETCDIR -- COMMAND [ARG...]", nsexecArg)
	}
	nsPath, etc, argv := args[0], args[1], args[3:]
	f, err := os.Open(nsPath)
	if err != nil {
		return err
	}
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", nsPath, err)
	}
	f.Close()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "none", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make / a slave mount: %w", err)
	}
	remountSys()
	for _, name := range []string{"hosts", "resolv.conf"} {
		src, dst := filepath.Join(etc, name), filepath.Join("/etc", name)
		if _, err := os.Stat(src); err != nil {
			continue
		}
		if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s over %s: %w", src, dst, err)
		}
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}

// remountSys mounts a sysfs of the pod's network namespace over /sys, as
// `ip netns exec` does, so /sys/class/net shows the pod's interfaces. It is
// best effort: tools that use netlink do not need it.
func remountSys() {
	var st unix.Statfs_t
	flags := uintptr(0)
	if unix.Statfs("/sys", &st) == nil && st.Flags&unix.ST_RDONLY != 0 {
		flags = unix.MS_RDONLY
	}
	if unix.Unmount("/sys", unix.MNT_DETACH) != nil {
		return
	}
	unix.Mount("palisade-sysfs", "/sys", "sysfs", flags, "")
}
