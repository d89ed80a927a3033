package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/lab/nsexec"
	"github.com/palisade-net/palisade/internal/model"
	"github.com/palisade-net/palisade/internal/netns"
)

// Exec runs a host command (argv[0] looked up in PATH) inside a pod: in its
// network namespace, with the pod's hosts and resolv.conf bound over /etc in
// a private mount namespace, as `ip netns exec` does. It returns the
// command's exit code (nsexec.ExitFailed when entering the pod failed, the
// reason printed to stderr); err is set only when the command could not be run or
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
	cmd, err := nsexec.Command(ctx, netns.Path(place.NetNS), names.EtcDir(place.NetNS), argv)
	if err != nil {
		return -1, fmt.Errorf("exec: %w", err)
	}
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
// os.Args[1] is the hidden argument it returns at once; otherwise it enters
// the pod and replaces the process with the command (see nsexec.Main).
func MaybeNSExec() { nsexec.Main() }
