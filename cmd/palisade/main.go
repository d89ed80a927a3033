// Command palisade enforces Kubernetes NetworkPolicy in the Linux kernel and
// predicts, explains and tests connectivity.
package main

import (
	"os"

	"github.com/palisade-net/palisade/internal/cli"
	"github.com/palisade-net/palisade/internal/lab"
)

func main() {
	// lab exec re-runs this binary to enter a pod's namespaces; in that
	// case this call becomes the command and never returns.
	lab.MaybeNSExec()
	os.Exit(cli.Main(os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
