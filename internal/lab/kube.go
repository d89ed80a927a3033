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

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/palisade-net/palisade/deploy"
	"github.com/palisade-net/palisade/internal/model"
)

const (
	// KubeLabLabel marks the Node objects a lab registers; its value is the
	// lab's name.
	KubeLabLabel = "palisade.dev/lab"
	// AgentNamespace and AgentServiceAccount are deploy/'s identity of the
	// agent, under which the lab runs its agents.
	AgentNamespace      = "palisade-system"
	AgentServiceAccount = "palisade-agent"
	// kubeFieldManager owns what the lab writes to the API server.
	kubeFieldManager = "palisade-lab"
	// agentTokenTTL is the lifetime of an agent token; the daemon renews it
	// at half-life.
	agentTokenTTL = time.Hour
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

func kubePath(lab string) string            { return filepath.Join(StateDir(lab), "kube.json") }
func agentKubeconfigPath(lab string) string { return filepath.Join(StateDir(lab), "agent.kubeconfig") }
func agentTokenPath(lab string) string      { return filepath.Join(StateDir(lab), "agent.token") }

// AgentLog returns the file the agent of a node writes to.
func AgentLog(lab, node string) string { return filepath.Join(StateDir(lab), "agent-"+node+".log") }

// IsKube reports whether the lab called name runs in kubelet mode.
func IsKube(name string) bool {
	if ValidName(name) != nil {
		return false
	}
	_, err := os.Stat(kubePath(name))
	return err == nil
}

// LoadKube reads the kubelet mode of a lab; the error wraps ErrNotFound for
// a lab that is not in kubelet mode.
func LoadKube(name string) (*KubeInfo, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(kubePath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("lab %s: not in kubelet mode: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", name, err)
	}
	var ki KubeInfo
	if err := json.Unmarshal(b, &ki); err != nil {
		return nil, fmt.Errorf("lab %s: %s: %w", name, kubePath(name), err)
	}
	return &ki, nil
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
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
	return cs, ki, nil
}

// KubeUp builds a lab in kubelet mode: the network of Up (no pods yet: they
// come from the API server), its nodes registered as Node objects with
// their lab addresses, deploy/'s Namespace, ServiceAccount, ClusterRole and
// ClusterRoleBinding applied, and a kubeconfig for the agents minted from a
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
	ki := &KubeInfo{Kubeconfig: path, Server: cfg.Host, AgentKubeconfig: agentKubeconfigPath(name), Agents: !kopts.NoAgents}
	fail := func(err error) (*Lab, error) {
		if derr := KubeDown(name); derr != nil {
			l.log.Warn("cleaning up after a failed lab up", "lab", name, "err", derr)
		}
		return nil, fmt.Errorf("lab %s: %w", name, err)
	}
	b, _ := json.MarshalIndent(ki, "", "  ")
	if err := writeFileAtomic(kubePath(name), append(b, '\n'), 0o644); err != nil {
		return fail(err)
	}
	if err := registerNodes(ctx, cs, l); err != nil {
		return fail(err)
	}
	if err := InstallAgentRBAC(ctx, cs); err != nil {
		return fail(err)
	}
	if err := writeAgentKubeconfig(ctx, cs, cfg, name); err != nil {
		return fail(err)
	}
	if err := checkAgentIdentity(ctx, name); err != nil {
		return fail(err)
	}
	l.log.Info("lab up in kubelet mode", "lab", name, "server", cfg.Host, "nodes", opts.Nodes)
	return l, nil
}

// registerNodes creates (or takes over, if this lab registered it before)
// a Node per lab node, with the lab's addresses and pod CIDRs, Ready.
func registerNodes(ctx context.Context, cs kubernetes.Interface, l *Lab) error {
	for i := 1; i <= l.st.Nodes; i++ {
		name := nodeName(i)
		v4, v6 := podCIDRs(i)
		want := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				KubeLabLabel:             l.st.Name,
			}},
			Spec: corev1.NodeSpec{PodCIDR: v4.String(), PodCIDRs: []string{v4.String(), v6.String()}},
		}
		node, err := cs.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{FieldManager: kubeFieldManager})
		if apierrors.IsAlreadyExists(err) {
			node, err = cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err == nil && node.Labels[KubeLabLabel] != l.st.Name {
				return fmt.Errorf("node %s already exists in the API server and is not lab %s's (label %s=%q): use an API server without nodes of its own, or remove it",
					name, l.st.Name, KubeLabLabel, node.Labels[KubeLabLabel])
			}
		}
		if err != nil {
			return fmt.Errorf("register node %s: %w", name, err)
		}
		ips := nodeIPs(i)
		now := metav1.Now()
		node.Status = corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: ips[0].String()},
				{Type: corev1.NodeInternalIP, Address: ips[1].String()},
				{Type: corev1.NodeHostName, Address: name},
			},
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "PalisadeLab",
				Message:           "network namespace " + nodeNetNS(l.st.Name, name) + " of palisade lab " + l.st.Name,
				LastHeartbeatTime: now, LastTransitionTime: now,
			}},
			Capacity:    nodeResources(),
			Allocatable: nodeResources(),
			NodeInfo: corev1.NodeSystemInfo{
				OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: "palisade-lab",
				OSImage: "palisade lab (network namespaces)",
			},
		}
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{FieldManager: kubeFieldManager}); err != nil {
			return fmt.Errorf("node %s status: %w", name, err)
		}
	}
	return nil
}

func nodeResources() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourcePods:   resource.MustParse("250"),
		corev1.ResourceCPU:    resource.MustParse("2"),
		corev1.ResourceMemory: resource.MustParse("4Gi"),
	}
}

// InstallAgentRBAC applies deploy/'s Namespace, ServiceAccount, ClusterRole
// and ClusterRoleBinding (server-side apply, as `kubectl apply
// --server-side` would), exactly as the files say.
func InstallAgentRBAC(ctx context.Context, cs kubernetes.Interface) error {
	for _, file := range deploy.RBAC {
		data, err := deploy.Files.ReadFile(file)
		if err != nil {
			return err
		}
		if err := applyDeployFile(ctx, cs, file, data); err != nil {
			return fmt.Errorf("deploy/%s: %w", file, err)
		}
	}
	return nil
}

func applyDeployFile(ctx context.Context, cs kubernetes.Interface, file string, data []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return err
	}
	var obj runtime.Object
	switch tm.Kind {
	case "Namespace":
		obj = &corev1.Namespace{}
	case "ServiceAccount":
		obj = &corev1.ServiceAccount{}
	case "ClusterRole":
		obj = &rbacv1.ClusterRole{}
	case "ClusterRoleBinding":
		obj = &rbacv1.ClusterRoleBinding{}
	default:
		return fmt.Errorf("unexpected kind %q", tm.Kind)
	}
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		return err
	}
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	meta := obj.(metav1.Object)
	force := true
	po := metav1.PatchOptions{FieldManager: kubeFieldManager, Force: &force}
	switch o := obj.(type) {
	case *corev1.Namespace:
		_, err = cs.CoreV1().Namespaces().Patch(ctx, o.Name, types.ApplyPatchType, body, po)
	case *corev1.ServiceAccount:
		_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Patch(ctx, o.Name, types.ApplyPatchType, body, po)
	case *rbacv1.ClusterRole:
		_, err = cs.RbacV1().ClusterRoles().Patch(ctx, o.Name, types.ApplyPatchType, body, po)
	case *rbacv1.ClusterRoleBinding:
		_, err = cs.RbacV1().ClusterRoleBindings().Patch(ctx, o.Name, types.ApplyPatchType, body, po)
	}
	if err != nil {
		return fmt.Errorf("apply %s %s: %w", tm.Kind, meta.GetName(), err)
	}
	return nil
}

// MintAgentToken requests a token for deploy/'s ServiceAccount (the
// TokenRequest API, as `kubectl create token` does).
func MintAgentToken(ctx context.Context, cs kubernetes.Interface, ttl time.Duration) (string, error) {
	secs := int64(ttl / time.Second)
	tr, err := cs.CoreV1().ServiceAccounts(AgentNamespace).CreateToken(ctx, AgentServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}},
		metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for serviceaccount %s/%s (does the API server sign ServiceAccount tokens? --service-account-signing-key-file): %w",
			AgentNamespace, AgentServiceAccount, err)
	}
	return tr.Status.Token, nil
}

// AgentKubeconfig renders a kubeconfig for the agent: the server and CA of
// cfg, and the token read from tokenFile (which client-go re-reads, so the
// token can be renewed in place).
func AgentKubeconfig(cfg *rest.Config, tokenFile string) ([]byte, error) {
	ca := cfg.TLSClientConfig.CAData
	if len(ca) == 0 && cfg.TLSClientConfig.CAFile != "" {
		var err error
		if ca, err = os.ReadFile(cfg.TLSClientConfig.CAFile); err != nil {
			return nil, err
		}
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["cluster"] = &clientcmdapi.Cluster{
		Server: cfg.Host, CertificateAuthorityData: ca, InsecureSkipTLSVerify: cfg.TLSClientConfig.Insecure,
		TLSServerName: cfg.TLSClientConfig.ServerName,
	}
	kc.AuthInfos[AgentServiceAccount] = &clientcmdapi.AuthInfo{TokenFile: tokenFile}
	kc.Contexts[AgentServiceAccount] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: AgentServiceAccount}
	kc.CurrentContext = AgentServiceAccount
	return clientcmd.Write(*kc)
}

func writeAgentKubeconfig(ctx context.Context, cs kubernetes.Interface, cfg *rest.Config, lab string) error {
	if err := renewAgentToken(ctx, cs, lab); err != nil {
		return err
	}
	b, err := AgentKubeconfig(cfg, agentTokenPath(lab))
	if err != nil {
		return err
	}
	return writeFileAtomic(agentKubeconfigPath(lab), b, 0o600)
}

func renewAgentToken(ctx context.Context, cs kubernetes.Interface, lab string) error {
	tok, err := MintAgentToken(ctx, cs, agentTokenTTL)
	if err != nil {
		return err
	}
	return writeFileAtomic(agentTokenPath(lab), []byte(tok), 0o600)
}

// checkAgentIdentity asks the API server who the agents' kubeconfig is: it
// must be the ServiceAccount.
func checkAgentIdentity(ctx context.Context, lab string) error {
	cfg, err := KubeRESTConfig(agentKubeconfigPath(lab))
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("the agents' kubeconfig: %w", err)
	}
	want := "system:serviceaccount:" + AgentNamespace + ":" + AgentServiceAccount
	if got := r.Status.UserInfo.Username; got != want {
		return fmt.Errorf("the agents' kubeconfig authenticates as %q, want %q", got, want)
	}
	return nil
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
	agents := readAgents(name)
	err := Down(name)
	killAgents(agents)
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
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: KubeLabLabel + "=" + name})
	if err != nil {
		return fmt.Errorf("lab %s: API cleanup: list nodes: %w", name, err)
	}
	var errs []error
	zero := int64(0)
	for _, n := range nodes.Items {
		pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.Name})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range pods.Items {
			err := cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
				GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &p.UID}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				errs = append(errs, fmt.Errorf("delete pod %s/%s: %w", p.Namespace, p.Name, err))
			}
		}
		if err := cs.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete node %s: %w", n.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab %s: API cleanup: %w", name, err)
	}
	return nil
}

// KubeDownAll runs KubeDown for every lab in kubelet mode, then DownAll.
func KubeDownAll() error {
	var errs []error
	if ents, err := os.ReadDir(RunDir); err == nil {
		for _, e := range ents {
			if IsKube(e.Name()) {
				errs = append(errs, KubeDown(e.Name()))
			}
		}
	}
	return errors.Join(append(errs, DownAll())...)
}
