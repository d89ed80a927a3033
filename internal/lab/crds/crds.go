// Package crds holds the CRDs of the cluster-wide policy API
// (policy.networking.k8s.io: AdminNetworkPolicy, BaselineAdminNetworkPolicy,
// ClusterNetworkPolicy; see README.md for where each comes from) and
// installs them on an API server that lacks them, for a lab in kubelet
// mode and for tests.
package crds

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

//go:embed *.yaml
var files embed.FS

// Group is the API group of the CRDs.
const Group = "policy.networking.k8s.io"

// served is what discovery lists once every CRD is established.
var served = map[string][]string{
	"v1alpha1": {"adminnetworkpolicies", "baselineadminnetworkpolicies"},
	"v1alpha2": {"clusternetworkpolicies"},
	"v1beta1":  {"clusternetworkpolicies"},
}

// Install creates each CRD the API server does not have (one it has,
// of whatever version, is left alone) and waits, at most timeout, until
// discovery serves every version above. It returns the names of the CRDs
// it created.
func Install(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) ([]string, error) {
	names, err := fs.Glob(files, "*.yaml")
	if err != nil {
		return nil, err
	}
	var created []string
	for _, f := range names {
		b, err := files.ReadFile(f)
		if err != nil {
			return created, err
		}
		j, err := yaml.YAMLToJSON(b)
		if err != nil {
			return created, fmt.Errorf("%s: %w", f, err)
		}
		err = cs.Discovery().RESTClient().Post().AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").
			SetHeader("Content-Type", "application/json").Body(j).Do(ctx).Error()
		switch {
		case apierrors.IsAlreadyExists(err):
		case err != nil:
			return created, fmt.Errorf("creating the CRD of %s: %w", f, err)
		default:
			created = append(created, f)
		}
	}
	deadline := time.Now().Add(timeout)
	for v, resources := range served {
		for {
			l, err := cs.Discovery().ServerResourcesForGroupVersion(Group + "/" + v)
			ok := err == nil
			for _, r := range resources {
				ok = ok && slices.ContainsFunc(l.APIResources, func(a metav1.APIResource) bool { return a.Name == r })
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				return created, fmt.Errorf("%s/%s %v not served %s after the CRDs were installed: %v", Group, v, resources, timeout, err)
			}
			select {
			case <-ctx.Done():
				return created, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return created, nil
}
