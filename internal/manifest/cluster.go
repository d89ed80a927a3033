package manifest

import (
	"errors"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"github.com/palisade-net/palisade/internal/model"
)

// Cluster builds the cluster state from objects in input order. A later
// object of the same kind and key replaces an earlier one (within a file or
// across files, like repeated kubectl apply). Every namespace an object
// uses exists, with only the kubernetes.io/metadata.name label unless a
// Namespace object gives it labels. Cluster-wide policies go to
// ClusterPolicies by kind and name. The cluster shares the objects' model
// values.
//
// It fails, with *Error values, when an object carries no model value,
// when two pods (host-network pods aside) claim the same IP address, or
// when two Services claim the same cluster IP (the API server's allocator
// refuses the second).
func Cluster(objs []Object) (*model.Cluster, error) {
	c := model.NewCluster()
	podObj := map[model.Key]Object{} // by the model pod's key
	svcObj := map[model.Key]Object{}
	var errs []error
	for _, o := range objs {
		switch m := o.Model.(type) {
		case *model.Namespace:
			if m != nil {
				c.Namespaces[m.Name] = m
				continue
			}
		case *model.Pod:
			if m != nil {
				c.Pods[m.Key()] = m
				podObj[m.Key()] = o
				c.EnsureNamespace(m.Namespace)
				continue
			}
		case *model.Service:
			if m != nil {
				c.Services[m.Key()] = m
				svcObj[m.Key()] = o
				c.EnsureNamespace(m.Namespace)
				continue
			}
		case *model.Policy:
			if m != nil {
				c.Policies[m.Key()] = m
				c.EnsureNamespace(m.Namespace)
				continue
			}
		case *model.Node:
			if m != nil {
				c.Nodes[m.Name] = m
				continue
			}
		case *model.ClusterPolicy:
			if m != nil {
				// Keyed by kind and name: a ClusterNetworkPolicy read as
				// v1alpha2 and as v1beta1 is one object, as in the API.
				c.ClusterPolicies[m.Key()] = m
				continue
			}
		}
		errs = append(errs, &Error{Source: o.Source, Kind: o.Kind, Key: o.Key,
			Err: fmt.Errorf("no model object (%T)", o.Model)})
	}

	owner := map[netip.Addr]*model.Pod{}
	for _, p := range c.SortedPods() {
		if p.HostNetwork {
			continue
		}
		for _, ip := range p.IPs {
			if q, ok := owner[ip]; ok {
				o := podObj[p.Key()]
				errs = append(errs, &Error{Source: o.Source, Kind: o.Kind, Key: o.Key,
					Err: fmt.Errorf("status.podIPs: address %s is also pod %s's", ip, q.Key())})
				continue
			}
			owner[ip] = p
		}
	}

	svcOwner := map[netip.Addr]model.Key{}
	keys := make([]model.Key, 0, len(c.Services))
	for k := range c.Services {
		keys = append(keys, k)
	}
	model.SortKeys(keys)
	for _, k := range keys {
		for _, ip := range c.Services[k].ClusterIPs {
			if q, ok := svcOwner[ip]; ok {
				o := svcObj[k]
				errs = append(errs, &Error{Source: o.Source, Kind: o.Kind, Key: o.Key,
					Err: fmt.Errorf("%s: Invalid value: %q: provided IP is already allocated to Service %s (%s)",
						clusterIPField(o), ip.String(), q, svcObj[q].Source)})
				continue
			}
			svcOwner[ip] = k
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// clusterIPField names the field a Service gives its cluster IPs in.
func clusterIPField(o Object) string {
	if s, ok := o.API.(*corev1.Service); ok && len(s.Spec.ClusterIPs) == 0 {
		return "spec.clusterIP"
	}
	return "spec.clusterIPs"
}
