package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	npaclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/palisade-net/palisade/internal/kube"
	"github.com/palisade-net/palisade/internal/lab/agents"
	"github.com/palisade-net/palisade/internal/lab/daemon"
	"github.com/palisade-net/palisade/internal/lab/kubelet"
	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/model"
)

// ServeKube is the daemon of a lab in kubelet mode (KubeUp). It does what
// Serve does (serve the pods' ports) and what a kubelet and a scheduler do
// for the lab's nodes, from client-go informers on Pods, Services,
// Namespaces and NetworkPolicies:
//
//   - a pending pod (no spec.nodeName) is bound to a lab node, round-robin
//     (pods/binding, as the scheduler does); a pod bound to another node is
//     not the lab's and is left alone;
//   - a pod of a lab node gets its network namespace and addresses (its
//     status.podIPs when they are set and free, else the node's pod CIDR),
//     and its status is written through the status subresource: podIP(s),
//     hostIP(s), phase Running, Ready;
//   - a pod being deleted (deletionTimestamp) is torn down, then deleted
//     with grace period 0, as a kubelet confirms a deletion;
//   - Services get the ClusterIPs the API server allocated, with DNAT in
//     every node and names in the pods' hosts files;
//   - namespaces and policies are kept in the lab's state (for lab get,
//     probe and matrix); enforcement is the agents' job.
//
// After the first pass it starts one `palisade agent` per node (unless the
// lab was made with NoAgents), authenticated as deploy/'s ServiceAccount,
// renews their token at half its lifetime, and writes the pidfile. It runs
// until ctx ends or the lab is removed; then it stops the agents.
func ServeKube(ctx context.Context, name string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := daemon.NotRunning(name); err != nil {
		return err
	}
	ki, err := LoadKube(name)
	if err != nil {
		return err
	}
	l, err := Load(name)
	if err != nil {
		return err
	}
	l.SetLogger(log)
	cfg, err := KubeRESTConfig(ki.Kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	srv, err := l.StartServers()
	if err != nil {
		log.Warn("serving pods", "lab", name, "err", err)
	}
	defer srv.Close()

	pc, err := npaclient.NewForConfig(kube.PolicyConfig(cfg))
	if err != nil {
		return err
	}
	kl, err := kubelet.New(cs, pc, kubeletLab{l, srv}, log)
	if err != nil {
		return err
	}
	ictx, stopInformers := context.WithCancel(ctx)
	defer stopInformers()
	if err := kl.Start(ictx); err != nil {
		return fmt.Errorf("lab %s: API server %s: %w", name, ki.Server, err)
	}
	if err := kl.Reconcile(ctx); err != nil {
		log.Warn("kubelet: first pass", "lab", name, "err", err)
	}

	agentsCtx, stopAgents := context.WithCancel(context.Background())
	agentsDone := make(chan struct{})
	if ki.Agents {
		sup, err := agents.NewSupervisor(name, ki.AgentKubeconfig, log)
		if err != nil {
			stopAgents()
			return err
		}
		go func() {
			defer close(agentsDone)
			sup.Run(agentsCtx, l.Nodes(), l.NodeNetNS)
		}()
	} else {
		close(agentsDone)
	}
	// On the way out: the agents stop first, and only then does the pidfile
	// go, since Down takes its removal for the daemon (and its agents) gone.
	defer func() {
		stopAgents()
		<-agentsDone
		daemon.RemovePidfile(name)
	}()
	if err := daemon.WritePidfile(name); err != nil {
		return fmt.Errorf("lab %s: pidfile: %w", name, err)
	}
	log.Info("lab daemon serving in kubelet mode", "lab", name, "server", ki.Server, "pods", len(l.st.Pods), "agents", ki.Agents)

	renew := time.NewTicker(agents.TokenTTL / 2)
	defer renew.Stop()
	alive := time.NewTicker(time.Second)
	defer alive.Stop()
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-alive.C:
			if _, err := os.Stat(names.StateFile(name)); errors.Is(err, os.ErrNotExist) {
				log.Info("lab is gone; daemon exits", "lab", name)
				return nil
			}
			continue
		case <-renew.C:
			if err := agents.RenewToken(ctx, cs, name); err != nil {
				log.Warn("renewing the agents' token", "lab", name, "err", err)
			}
			continue
		case <-kl.Poked():
		case <-retry:
		}
		// Let a burst of events (kubectl apply -f of a whole file) settle.
		time.Sleep(30 * time.Millisecond)
		select {
		case <-kl.Poked():
		default:
		}
		retry = nil
		if err := kl.Reconcile(ctx); err != nil {
			log.Warn("kubelet: retrying in 1s", "lab", name, "err", err)
			retry = time.After(time.Second)
		}
	}
}

// kubeletLab is the lab as its kubelet drives it: after every update, the
// pods are served.
type kubeletLab struct {
	*Lab
	srv *Servers
}

func (k kubeletLab) Update(ctx context.Context, c *model.Cluster) error {
	if err := k.Lab.Update(ctx, c); err != nil {
		return err
	}
	if err := k.srv.Sync(k.Lab); err != nil {
		k.log.Warn("serving pods", "lab", k.st.Name, "err", err)
	}
	return nil
}
