package lab

// Kubelet mode: the lab plays the kubelet (and the scheduler) for a real API
// server. KubeUp registers the lab's nodes as Node objects and installs
// deploy/'s RBAC; the lab daemon (ServeKube) watches Pods, Services,
// Namespaces and NetworkPolicies, binds pending pods to lab nodes, builds
// their network namespaces and writes their status, and runs one
// `palisade agent` per node, authenticated as deploy/'s ServiceAccount.
//
// Files under /run/palisade/<lab> besides state.json:
//   kube.json          the mode: the user's kubeconfig, the agents' kubeconfig
//   agent.kubeconfig   the agents' identity (server, CA, tokenFile)
//   agent.token        a TokenRequest token for palisade-system/palisade-agent,
//                      renewed by the daemon (client-go re-reads tokenFile)
//   agents.json        the agent processes (written by the daemon)
//   agent-<node>.log   each agent's output

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	npaclient "sigs.k8s.io/network-policy-api/pkg/client/clientset/versioned"

	"github.com/palisade-net/palisade/internal/kube"
	"github.com/palisade-net/palisade/internal/lab/agents"
	"github.com/palisade-net/palisade/internal/lab/crds"
	"github.com/palisade-net/palisade/internal/lab/kubelet"
	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/lab/statefile"
	"github.com/palisade-net/palisade/internal/model"
)

const (
	// KubeLabLabel marks the Node objects a lab registers; its value is the
	// lab's name.
	KubeLabLabel = kubelet.LabLabel
	// AgentNamespace and AgentServiceAccount are deploy/'s identity of the
	// agent, under which the lab runs its agents.
	AgentNamespace      = agents.Namespace
	AgentServiceAccount = agents.ServiceAccount
)

// KubeOptions configure a lab in kubelet mode.
type KubeOptions struct {
	// Kubeconfig is the kubeconfig of the API server, with rights to
	// register nodes, write pod status and install RBAC (an admin's).
	Kubeconfig string
	// NoAgents leaves the agents out: the lab only plays the kubelet, and
	// enforcement is up to whoever runs `palisade agent` for its nodes.
	NoAgents bool
}

// KubeInfo is what kube.json holds: a lab in kubelet mode.
type KubeInfo struct {
	// Kubeconfig is the absolute path of the user's kubeconfig.
	Kubeconfig string `json:"kubeconfig"`
	// Server is the API server's URL.
	Server string `json:"server"`
	// AgentKubeconfig is the agents' kubeconfig: deploy/'s ServiceAccount.
	AgentKubeconfig string `json:"agentKubeconfig"`
	// Agents is set when the daemon runs one agent per node.
	Agents bool `json:"agents"`
}

// AgentLog returns the file the agent of a node writes to.
func AgentLog(lab, node string) string { return names.AgentLog(lab, node) }

// Agents returns the agent processes of a lab in kubelet mode, as its
// daemon last recorded them (sorted by node).
func Agents(name string) []agents.Proc { return agents.Read(name) }

// WaitAgents waits until every node of a lab in kubelet mode has an agent
// answering 200 on /readyz. It fails early, with the end of its log, when an
// agent keeps exiting.
func WaitAgents(ctx context.Context, name string, timeout time.Duration) error {
	ki, err := LoadKube(name)
	if err != nil {
		return err
	}
	if !ki.Agents {
		return nil
	}
	l, err := Load(name)
	if err != nil {
		return err
	}
	return agents.Wait(ctx, name, l.Nodes(), timeout)
}

// IsKube reports whether the lab called name runs in kubelet mode.
func IsKube(name string) bool {
	if names.ValidName(name) != nil {
		return false
	}
	_, err := os.Stat(names.KubeFile(name))
	return err == nil
}

// LoadKube reads the kubelet mode of a lab; the error wraps ErrNotFound for
// a lab that is not in kubelet mode.
func LoadKube(name string) (*KubeInfo, error) {
	if err := names.ValidName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(names.KubeFile(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lab %s: not in kubelet mode: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", name, err)
	}
	var ki KubeInfo
	if err := json.Unmarshal(b, &ki); err != nil {
		return nil, fmt.Errorf("lab %s: %s: %w", name, names.KubeFile(name), err)
	}
	return &ki, nil
}

// KubeRESTConfig loads a kubeconfig file for the lab's own API calls.
func KubeRESTConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	cfg.UserAgent = "palisade-lab"
	cfg.Timeout = 30 * time.Second
	return cfg, nil
}

// KubeClient returns a client for the API server of a lab in kubelet mode,
// with the user's credentials.
func KubeClient(name string) (kubernetes.Interface, *KubeInfo, error) {
	ki, err := LoadKube(name)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := KubeRESTConfig(ki.Kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	// With the cluster policies' client, for kube.Apply and kube.Delete
	// of AdminNetworkPolicy, BaselineAdminNetworkPolicy and
	// ClusterNetworkPolicy (their CRDs must be installed on the API
	// server).
	pc, err := npaclient.NewForConfig(kube.PolicyConfig(cfg))
	if err != nil {
		return nil, nil, err
	}
	return &kube.Client{Clientset: cs, Policies: pc}, ki, nil
}

// KubeUp builds a lab in kubelet mode: the network of Up (no pods yet: they
// come from the API server), its nodes registered as Node objects with
// their lab addresses, deploy/'s Namespace, ServiceAccount, ClusterRole and
// ClusterRoleBinding applied, the cluster policy CRDs the server lacks
// installed (package crds), and a kubeconfig for the agents minted from a
// ServiceAccount token. The daemon (StartDaemon, then ServeKube) does the
// rest. On failure it removes what it made (KubeDown).
func KubeUp(ctx context.Context, name string, opts Options, kopts KubeOptions) (*Lab, error) {
	if kopts.Kubeconfig == "" {
		return nil, fmt.Errorf("lab %s: kubelet mode needs a kubeconfig", name)
	}
	path, err := filepath.Abs(kopts.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg, err := KubeRESTConfig(path)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	// Fail before building anything if the API server is not there.
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		return nil, fmt.Errorf("lab %s: API server %s: %w", name, cfg.Host, err)
	}

	l, err := Up(ctx, name, model.NewCluster(), opts)
	if err != nil {
		return nil, err
	}
	ki := &KubeInfo{Kubeconfig: path, Server: cfg.Host, AgentKubeconfig: names.AgentKubeconfig(name), Agents: !kopts.NoAgents}
	fail := func(err error) (*Lab, error) {
		if derr := KubeDown(name); derr != nil {
			l.log.Warn("cleaning up after a failed lab up", "lab", name, "err", derr)
		}
		return nil, fmt.Errorf("lab %s: %w", name, err)
	}
	b, _ := json.MarshalIndent(ki, "", "  ")
	if err := statefile.Write(names.KubeFile(name), append(b, '\n'), 0o644); err != nil {
		return fail(err)
	}
	if err := kubelet.RegisterNodes(ctx, cs, name, l.st.Nodes); err != nil {
		return fail(err)
	}
	if err := agents.InstallRBAC(ctx, cs); err != nil {
		return fail(err)
	}
	// The cluster policies' CRDs, those the server lacks, so that lab
	// apply takes AdminNetworkPolicy, BaselineAdminNetworkPolicy and
	// ClusterNetworkPolicy and the agents watch them. KubeDown leaves
	// them: removing a CRD deletes every object of it on the server.
	created, err := crds.Install(ctx, cs, 30*time.Second)
	if err != nil {
		return fail(err)
	}
	if len(created) > 0 {
		l.log.Info("installed the cluster policy CRDs", "lab", name, "crds", created)
	}
	if err := agents.WriteKubeconfig(ctx, cs, cfg, name); err != nil {
		return fail(err)
	}
	acfg, err := KubeRESTConfig(names.AgentKubeconfig(name))
	if err != nil {
		return fail(err)
	}
	if err := agents.CheckIdentity(ctx, acfg); err != nil {
		return fail(err)
	}
	l.log.Info("lab up in kubelet mode", "lab", name, "server", cfg.Host, "nodes", opts.Nodes)
	return l, nil
}

// KubeDown removes a lab in kubelet mode: Down (which stops the daemon and
// with it the agents), any agent left running, and in the API server what
// the lab's nodes held, as Kubernetes' garbage collector does for a deleted
// node: the pods bound to them (deleted at once: no kubelet is left), then
// the Node objects. deploy/'s RBAC stays: it is an install, which
// `kubectl delete -k deploy/` removes. For a lab not in kubelet mode it is
// Down. An unreachable API server is reported after the local cleanup.
func KubeDown(name string) error {
	ki, _ := LoadKube(name)
	procs := agents.Read(name)
	err := Down(name)
	agents.Kill(procs)
	if ki == nil {
		return err
	}
	return errors.Join(err, kubeCleanup(name, ki))
}

func kubeCleanup(name string, ki *KubeInfo) error {
	cfg, err := KubeRESTConfig(ki.Kubeconfig)
	if err != nil {
		return fmt.Errorf("lab %s: API cleanup: %w", name, err)
	}
	cfg.Timeout = 10 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := kubelet.RemoveNodes(ctx, cs, name); err != nil {
		return fmt.Errorf("lab %s: API cleanup: %w", name, err)
	}
	return nil
}

// KubeDownAll runs KubeDown for every lab in kubelet mode, then DownAll.
func KubeDownAll() error {
	var errs []error
	if ents, err := os.ReadDir(names.RunDir); err == nil {
		for _, e := range ents {
			if IsKube(e.Name()) {
				errs = append(errs, KubeDown(e.Name()))
			}
		}
	}
	return errors.Join(append(errs, DownAll())...)
}
