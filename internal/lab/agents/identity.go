package agents

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/palisade-net/palisade/deploy"
	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/lab/statefile"
)

// The agents' identity: deploy/'s Namespace, ServiceAccount and RBAC, a
// TokenRequest token for the ServiceAccount (renewed in place), and a
// kubeconfig that reads it.

const (
	// Namespace and ServiceAccount are deploy/'s identity of the agent,
	// under which the lab runs its agents.
	Namespace      = "palisade-system"
	ServiceAccount = "palisade-agent"
	// TokenTTL is the lifetime of an agent token; the daemon renews it at
	// half-life.
	TokenTTL = time.Hour
)

// InstallRBAC applies deploy/'s Namespace, ServiceAccount, ClusterRole
// and ClusterRoleBinding (server-side apply, as `kubectl apply
// --server-side` would), exactly as the files say.
func InstallRBAC(ctx context.Context, cs kubernetes.Interface) error {
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
	po := metav1.PatchOptions{FieldManager: names.FieldManager, Force: &force}
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

// MintToken requests a token for deploy/'s ServiceAccount (the
// TokenRequest API, as `kubectl create token` does).
func MintToken(ctx context.Context, cs kubernetes.Interface, ttl time.Duration) (string, error) {
	secs := int64(ttl / time.Second)
	tr, err := cs.CoreV1().ServiceAccounts(Namespace).CreateToken(ctx, ServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}},
		metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for serviceaccount %s/%s (does the API server sign ServiceAccount tokens? --service-account-signing-key-file): %w",
			Namespace, ServiceAccount, err)
	}
	return tr.Status.Token, nil
}

// Kubeconfig renders a kubeconfig for the agent: the server and CA of
// cfg, and the token read from tokenFile (which client-go re-reads, so the
// token can be renewed in place).
func Kubeconfig(cfg *rest.Config, tokenFile string) ([]byte, error) {
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
	kc.AuthInfos[ServiceAccount] = &clientcmdapi.AuthInfo{TokenFile: tokenFile}
	kc.Contexts[ServiceAccount] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: ServiceAccount}
	kc.CurrentContext = ServiceAccount
	return clientcmd.Write(*kc)
}

// WriteKubeconfig mints the agents' token and writes it and their
// kubeconfig (server and CA of cfg) under the lab's state directory.
func WriteKubeconfig(ctx context.Context, cs kubernetes.Interface, cfg *rest.Config, lab string) error {
	if err := RenewToken(ctx, cs, lab); err != nil {
		return err
	}
	b, err := Kubeconfig(cfg, names.AgentToken(lab))
	if err != nil {
		return err
	}
	return statefile.Write(names.AgentKubeconfig(lab), b, 0o600)
}

// RenewToken mints a new token for the agents and writes it where their
// kubeconfig reads it.
func RenewToken(ctx context.Context, cs kubernetes.Interface, lab string) error {
	tok, err := MintToken(ctx, cs, TokenTTL)
	if err != nil {
		return err
	}
	return statefile.Write(names.AgentToken(lab), []byte(tok), 0o600)
}

// CheckIdentity asks the API server who cfg (the agents' kubeconfig)
// authenticates as: it must be the ServiceAccount.
func CheckIdentity(ctx context.Context, cfg *rest.Config) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("the agents' kubeconfig: %w", err)
	}
	want := "system:serviceaccount:" + Namespace + ":" + ServiceAccount
	if got := r.Status.UserInfo.Username; got != want {
		return fmt.Errorf("the agents' kubeconfig authenticates as %q, want %q", got, want)
	}
	return nil
}
