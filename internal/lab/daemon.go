package lab

import (
	"github.com/palisade-net/palisade/internal/lab/daemon"
	"github.com/palisade-net/palisade/internal/lab/names"
)

// DaemonLog returns the file a daemon started by StartDaemon writes to.
func DaemonLog(lab string) string { return names.DaemonLog(lab) }

// StartDaemon starts argv, a command that runs Serve for the lab called
// name (the CLI's `palisade lab daemon NAME`), as a detached process: a
// session of its own, stdin from /dev/null, stdout and stderr appended to
// DaemonLog(name), the environment of this process. It returns the daemon's
// PID once its pidfile names it, which Serve writes after its first pods are
// served (waiting at most 10 s), or an error if it exits first. If a live
// daemon already serves the lab, it returns that one's PID.
func StartDaemon(name string, argv []string) (int, error) { return daemon.Start(name, argv) }
