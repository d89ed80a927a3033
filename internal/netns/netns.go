// Package netns runs code inside Linux network namespaces and manages named
// namespaces the way `ip netns` does (a bind mount under /run/netns), in pure
// Go. It owns nothing but namespaces: it knows no pods, nodes or lab names.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Dir is where named network namespaces are bind-mounted, as by `ip netns add`.
const Dir = "/run/netns"

// Path returns the path of the named namespace.
func Path(name string) string { return filepath.Join(Dir, name) }

// Do runs fn on a fresh OS thread that has been switched into the network
// namespace at path, and returns fn's error.
//
// The goroutine running fn locks its OS thread and never unlocks it: when the
// goroutine returns, the Go runtime (1.10 and later) terminates that thread
// instead of returning it to the scheduler's pool. Switching back with a
// second setns, as netns.Set invites, is unsafe: if the switch back fails or
// is forgotten, an unrelated goroutine is later scheduled on a thread that is
// still in the pod's namespace, and its sockets silently appear there. A
// thread that is thrown away cannot leak its namespace (the reasoning of
// containernetworking/plugins pkg/ns). Threads the runtime creates later are
// cloned from a clean template thread, not from this one.
//
// Only code running on fn's goroutine is in the namespace: goroutines that fn
// starts run on other threads, in the original namespace. Sockets created in
// fn stay in the namespace for their whole life, and may be used from any
// goroutine afterwards.
func Do(path string, fn func() error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open netns: %w", err)
	}
	defer f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: see the doc comment.
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Create makes a new, empty network namespace bound to /run/netns/<name>, as
// `ip netns add` does, so `ip netns list` shows it, and returns its path. It
// fails if the name is taken.
func Create(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return "", fmt.Errorf("invalid netns name %q", name)
	}
	if err := ensureDir(); err != nil {
		return "", err
	}
	path := Path(name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0)
	if err != nil {
		return "", fmt.Errorf("create netns %s: %w", name, err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: this thread leaves its namespace for good (see Do).
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return "", fmt.Errorf("create netns %s: %w", name, err)
	}
	return path, nil
}

// ensureDir makes /run/netns a mount point with shared propagation, as
// iproute2 does, so that namespaces bound there are visible in mount
// namespaces created later (ip netns exec, our nsexec).
func ensureDir() error {
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) {
		// Not a mount point yet: bind it onto itself, then retry.
		if err := unix.Mount(Dir, Dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", Dir, err)
		}
		err = unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s shared: %w", Dir, err)
	}
	return nil
}

// Delete unbinds and removes the named namespace, like `ip netns del`. The
// namespace itself disappears when nothing else holds it (a process or an
// open socket). A name that does not exist is not an error.
func Delete(name string) error {
	path := Path(name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete netns %s: unmount: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

// List returns the names of the namespaces under /run/netns that start with
// prefix, sorted.
func List(prefix string) ([]string, error) {
	ents, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil // ReadDir sorts by name
}

// Handle is a netlink handle bound to a namespace, with the namespace's file
// descriptor kept open for callers that need it (nftables, veth peers).
// Close releases both.
type Handle struct {
	*netlink.Handle
	ns vnetns.NsHandle
}

// NewHandle opens a netlink handle bound to the namespace at path. Its
// sockets live in that namespace; no thread switches.
func NewHandle(path string) (*Handle, error) {
	ns, err := vnetns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink handle in %s: %w", path, err)
	}
	return &Handle{Handle: h, ns: ns}, nil
}

// Fd returns the namespace's file descriptor, valid until Close.
func (h *Handle) Fd() int { return int(h.ns) }

// Close closes the netlink sockets and the namespace descriptor.
func (h *Handle) Close() {
	h.Handle.Close()
	h.ns.Close()
}

// Sysctl sets /proc/sys/<key> (dotted) to its value for every entry of kv,
// in key order, inside the namespace at path. Only per-namespace keys (net.*) make sense here.
func Sysctl(path string, kv map[string]string) error {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return Do(path, func() error {
		for _, k := range keys {
			p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(p, []byte(kv[k]), 0o644); err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", k, kv[k], err)
			}
		}
		return nil
	})
}
