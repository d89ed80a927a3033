// Command palisade enforces Kubernetes NetworkPolicy in the Linux kernel and
// predicts, explains and tests connectivity.
package main

import (
	"os"

	"github.com/palisade-net/palisade/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
}
