package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/palisade-net/palisade/internal/lab/daemon"
	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/lab/podserve"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/netns"
)

// Servers serves the lab's pods from this process (package podserve).
type Servers struct{ pods *podserve.Servers }

// StartServers starts serving every pod of the lab from this process.
// Errors (a port already taken in a host-network pod) are returned
// together, and the other servers keep running; Close stops them all.
func (l *Lab) StartServers() (*Servers, error) {
	s := &Servers{pods: podserve.New(l.log)}
	return s, s.Sync(l)
}

// Sync makes the servers those of the lab's current pods: new pods start,
// removed ones stop, pods whose ports or namespace changed restart.
func (s *Servers) Sync(l *Lab) error { return s.pods.Sync(l.st.Cluster.Pods, l.netnsPathOf) }

// Close stops every server and waits for them.
func (s *Servers) Close() error { return s.pods.Close() }

func (l *Lab) netnsPathOf(k model.Key) string {
	if place := l.st.Pods[k.String()]; place != nil {
		return netns.Path(place.NetNS)
	}
	return ""
}

// Serve is the lab daemon: it serves every pod of the lab called name until
// ctx ends or the lab goes away (its state is removed), following the state
// file as other processes change the lab (polled every 200 ms). Once the
// first pods are served it writes /run/palisade/<name>/daemon.pid, which
// Down uses to stop it; it removes the pidfile when it returns. It fails if
// another live daemon serves the lab.
func Serve(ctx context.Context, name string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := daemon.NotRunning(name); err != nil {
		return err
	}
	l, err := Load(name)
	if err != nil {
		return err
	}
	l.SetLogger(log)
	srv, err := l.StartServers()
	if err != nil {
		log.Warn("serving pods", "lab", name, "err", err)
	}
	defer srv.Close()
	if err := daemon.WritePidfile(name); err != nil {
		return fmt.Errorf("lab %s: pidfile: %w", name, err)
	}
	defer daemon.RemovePidfile(name)
	log.Info("lab daemon serving", "lab", name, "pods", len(l.st.Pods))

	last, _ := os.Stat(names.StateFile(name))
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		fi, err := os.Stat(names.StateFile(name))
		if errors.Is(err, os.ErrNotExist) {
			log.Info("lab is gone; daemon exits", "lab", name)
			return nil
		}
		if err != nil || (last != nil && os.SameFile(fi, last) && fi.ModTime().Equal(last.ModTime()) && fi.Size() == last.Size()) {
			continue
		}
		last = fi
		nl, err := Load(name)
		if err != nil {
			log.Warn("reloading lab state", "lab", name, "err", err)
			continue
		}
		nl.SetLogger(log)
		if err := srv.Sync(nl); err != nil {
			log.Warn("serving pods", "lab", name, "err", err)
		}
	}
}
