package cli

import (
	"errors"
	"os"
	"time"

	"github.com/palisade-net/palisade/internal/conformance"
	"github.com/palisade-net/palisade/internal/lab"
)

// observerLab is the lab that conformance --observed builds each scenario in.
const observerLab = "conformance"

// newObserver returns the observer for conformance --observed: each
// scenario is built as a two-node lab. With a kubeconfig, the scenario
// goes through that API server: the lab plays the kubelet, `palisade
// agent` processes enforce, and the objects are written with client-go.
func newObserver(_ Streams, kubeconfig string) (conformance.Observer, error) {
	if os.Geteuid() != 0 {
		return nil, badInput(errors.New("--observed builds the scenarios in network namespaces and nftables: run as root"))
	}
	if kubeconfig == "" {
		return lab.NewObserver(observerLab, 2), nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return &lab.KubeObserver{
		Name: observerLab, Nodes: 2, Kubeconfig: kubeconfig, Timeout: 500 * time.Millisecond,
		Daemon: []string{self, "lab", "daemon", "--name", observerLab},
	}, nil
}
