package lab

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/palisade-net/palisade/internal/model"
)

// nodeNetNS returns the network namespace name of a node.
func nodeNetNS(lab, node string) string { return NetNSPrefix(lab) + node }

// fabricNetNS returns the namespace holding the bridge that joins the nodes.
func fabricNetNS(lab string) string { return NetNSPrefix(lab) + "net" }

// podNetNS returns the network namespace name of a pod:
// palisade-<lab>-<namespace>.<name>. Namespace names cannot contain '.', so
// the name is unambiguous and never collides with a node's ("node1", "net").
// Long names are cut and made unique by a hash.
func podNetNS(lab string, k model.Key) string {
	const max = 80
	s := k.Namespace + "." + k.Name
	if len(s) > max {
		s = trunc(k.Namespace, 20) + "." + trunc(k.Name, 40) + "-" + keyHash(k)[:10]
	}
	return NetNSPrefix(lab) + s
}

// podVeth returns the node-side name of a pod's veth: "pal" and 11 hex
// digits of a hash of the pod key (14 characters; the limit is 15).
func podVeth(k model.Key) string { return "pal" + keyHash(k)[:11] }

func keyHash(k model.Key) string {
	h := sha256.Sum256([]byte(k.String()))
	return hex.EncodeToString(h[:])
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
