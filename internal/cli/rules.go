package cli

import (
	"github.com/palisade-net/palisade/internal/dataplane"
)

// dumpRules reads Palisade's table from the kernel of a network namespace
// and renders it as nft text.
func dumpRules(netnsPath string) (string, error) {
	return dataplane.Dump(netnsPath)
}
