// Package names says what a lab calls the things it makes and where it
// keeps them: network namespaces, veths, /etc/netns directories, the files
// under /run/palisade/<lab>, and its marks in an API server. It is a
// package of its own because every other room of the lab names things, and
// because Down relies on it: a lab is removed by finding what carries its
// prefix, not by reading its state.
package names

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/palisade-net/palisade/internal/model"
)

// Prefix starts the name of everything the lab creates: network namespaces,
// /etc/netns directories and (as a directory) the state under /run.
const Prefix = "palisade-"

// RunDir holds one directory of state per lab.
const RunDir = "/run/palisade"

// EtcNetnsDir is where per-namespace /etc overrides live, as for `ip netns exec`.
const EtcNetnsDir = "/etc/netns"

// FieldManager owns what the lab writes to an API server.
const FieldManager = "palisade-lab"

// Lab names are lower-case letters and digits, starting with a letter: no
// '-', so that the prefix "palisade-<lab>-" of one lab is never a prefix of
// another lab's names.
var validName = regexp.MustCompile(`^[a-z][a-z0-9]{0,19}$`)

// ValidName reports whether name can name a lab: 1 to 20 lower-case letters
// or digits, starting with a letter.
func ValidName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid lab name %q: want 1-20 lower-case letters or digits, starting with a letter", name)
	}
	return nil
}

// NetNSPrefix returns the prefix of every network namespace and /etc/netns
// directory of the lab.
func NetNSPrefix(lab string) string { return Prefix + lab + "-" }

// StateDir returns the directory holding the lab's state.json and daemon.pid.
func StateDir(lab string) string { return filepath.Join(RunDir, lab) }

// Files under StateDir.

// StateFile is the lab's state.json.
func StateFile(lab string) string { return filepath.Join(StateDir(lab), "state.json") }

// Pidfile names the lab's daemon.
func Pidfile(lab string) string { return filepath.Join(StateDir(lab), "daemon.pid") }

// DaemonLog is where the lab's daemon writes.
func DaemonLog(lab string) string { return filepath.Join(StateDir(lab), "daemon.log") }

// KubeFile is kube.json, present when the lab runs in kubelet mode.
func KubeFile(lab string) string { return filepath.Join(StateDir(lab), "kube.json") }

// AgentKubeconfig is the agents' kubeconfig (server, CA, tokenFile).
func AgentKubeconfig(lab string) string { return filepath.Join(StateDir(lab), "agent.kubeconfig") }

// AgentToken is the agents' ServiceAccount token, renewed in place.
func AgentToken(lab string) string { return filepath.Join(StateDir(lab), "agent.token") }

// AgentsFile is agents.json, the agent processes the daemon runs.
func AgentsFile(lab string) string { return filepath.Join(StateDir(lab), "agents.json") }

// AgentLog is the file the agent of a node writes to.
func AgentLog(lab, node string) string { return filepath.Join(StateDir(lab), "agent-"+node+".log") }

// EtcDir returns /etc/netns/<netns>, whose files Exec binds over /etc.
func EtcDir(netnsName string) string { return filepath.Join(EtcNetnsDir, netnsName) }

// Nodes.

// NodeName returns "node<i>".
func NodeName(i int) string { return fmt.Sprintf("node%d", i) }

// NodeIndex returns i for "node<i>", or 0.
func NodeIndex(node string) int {
	rest, ok := strings.CutPrefix(node, "node")
	if !ok || rest == "" || rest[0] == '0' {
		return 0
	}
	i := 0
	for _, r := range rest {
		if r < '0' || r > '9' || i > 1000 {
			return 0
		}
		i = i*10 + int(r-'0')
	}
	return i
}

// Network namespaces and veths.

// NodeNetNS returns the network namespace name of a node.
func NodeNetNS(lab, node string) string { return NetNSPrefix(lab) + node }

// FabricNetNS returns the namespace holding the bridge that joins the nodes.
func FabricNetNS(lab string) string { return NetNSPrefix(lab) + "net" }

// PodNetNS returns the network namespace name of a pod:
// palisade-<lab>-<namespace>.<name>. Namespace names cannot contain '.', so
// the name is unambiguous and never collides with a node's ("node1", "net").
// Long names are cut and made unique by a hash.
func PodNetNS(lab string, k model.Key) string {
	const max = 80
	s := k.Namespace + "." + k.Name
	if len(s) > max {
		s = trunc(k.Namespace, 20) + "." + trunc(k.Name, 40) + "-" + keyHash(k)[:10]
	}
	return NetNSPrefix(lab) + s
}

// PodVeth returns the node-side name of a pod's veth: "pal" and 11 hex
// digits of a hash of the pod key (14 characters; the limit is 15).
func PodVeth(k model.Key) string { return "pal" + keyHash(k)[:11] }

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
