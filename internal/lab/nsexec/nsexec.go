// Package nsexec runs a host command inside a lab pod: in the pod's
// network namespace, with its hosts and resolv.conf bound over /etc in a
// private mount namespace, as `ip netns exec` does. It re-executes the
// current binary with a hidden first argument (Arg) and enters the pod on a
// locked thread before execve, so the binary's main must call Main first
// thing. It is a room of its own because it is the one piece of the lab that
// runs in another process, before anything else.
package nsexec

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Arg is the hidden first argument by which Command re-executes the
// current binary to enter a pod.
const Arg = "__nsexec"

// ExitFailed is the exit code of a command that never started because
// entering the pod failed (the reason is printed to its stderr).
const ExitFailed = 125

// Command returns the command that runs argv (argv[0] looked up in PATH)
// in the network namespace at nsPath with the files of etcDir bound over
// /etc: the current binary, re-executed with Arg. Cancelling ctx kills it.
func Command(ctx context.Context, nsPath, etcDir string, argv []string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := append([]string{Arg, nsPath, etcDir, "--"}, argv...)
	return exec.CommandContext(ctx, self, args...), nil
}

// Main is the hidden entry point of Command. A binary that uses Command
// calls it first thing in main (and a test binary in TestMain). Unless
// os.Args[1] is "__nsexec" it returns at once. Otherwise it never returns:
// it enters the pod (setns into the network namespace, a private mount
// namespace with / made a recursive slave so that nothing propagates back
// to the host, sysfs remounted for the namespace, hosts and resolv.conf
// bound over /etc) and replaces the process with the command, or exits
// with ExitFailed.
//
// Namespaces are per thread, so this runs on a locked thread, and execve
// from that thread carries its namespaces into the command.
func Main() {
	if len(os.Args) < 2 || os.Args[1] != Arg {
		return
	}
	runtime.LockOSThread()
	err := nsexec(os.Args[2:])
	fmt.Fprintf(os.Stderr, "palisade: entering pod: %v\n", err)
	os.Exit(ExitFailed)
}

// nsexec takes NETNS-PATH ETC-DIR -- ARGV... and returns only on failure.
func nsexec(args []string) error {
	if len(args) < 4 || args[2] != "--" {
		return fmt.Errorf("usage: %s NETNS ETCDIR -- COMMAND [ARG...]", Arg)
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
