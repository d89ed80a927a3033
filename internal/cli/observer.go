package cli

import (
	"errors"
	"os"

	"github.com/palisade-net/palisade/internal/conformance"
	"github.com/palisade-net/palisade/internal/lab"
)

// newObserver returns the lab-backed observer for conformance --observed:
// each scenario is built as a two-node lab named "conformance".
func newObserver(Streams) (conformance.Observer, error) {
	if os.Geteuid() != 0 {
		return nil, badInput(errors.New("--observed builds the scenarios in network namespaces and nftables: run as root"))
	}
	return lab.NewObserver("conformance", 2), nil
}
