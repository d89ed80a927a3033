package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/palisade-net/palisade/internal/lab/daemon"
	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/netns"
)

// Down removes the lab called name: its daemon (by pidfile, which may be
// stale), every network namespace named palisade-<name>-*, every
// /etc/netns/palisade-<name>-* directory and its state directory. It works
// from what exists, not from the state, so it finishes the job after a
// crash, and a lab that does not exist is not an error.
func Down(name string) error {
	if err := names.ValidName(name); err != nil {
		return err
	}
	var errs []error
	if err := daemon.Stop(name); err != nil {
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
	if ents, err := os.ReadDir(names.RunDir); err == nil {
		for _, e := range ents {
			labs[e.Name()] = true
		}
	}
	nss, err := netns.List(names.Prefix)
	errs = append(errs, err)
	for _, n := range nss {
		name, _, _ := strings.Cut(strings.TrimPrefix(n, names.Prefix), "-")
		labs[name] = true
	}
	for name := range labs {
		if names.ValidName(name) == nil {
			errs = append(errs, Down(name))
		}
	}
	errs = append(errs, removePrefixed(names.Prefix))
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
	dirs, err := filepath.Glob(filepath.Join(names.EtcNetnsDir, prefix+"*"))
	errs = append(errs, err)
	for _, d := range dirs {
		errs = append(errs, os.RemoveAll(d))
	}
	return errors.Join(errs...)
}
