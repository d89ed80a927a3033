package manifest

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/palisade-net/palisade/internal/model"
)

// Cluster builds the cluster state from objects in input order. A later
// object of the same kind and key replaces an earlier one (within a file or
// across files, like repeated kubectl apply). Every namespace an object
// uses exists, with only the kubernetes.io/metadata.name label unless a
// Namespace object gives it labels. The cluster shares the objects' model
// values.
//
// It fails, with *Error values, when an object carries no model value or
// when two pods (host-network pods aside) claim the same IP address.
func Cluster(objs []Object) (*model.Cluster, error) {
	c := model.NewCluster()
	podSource := map[model.Key]string{}
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
				podSource[m.Key()] = o.Source
				c.EnsureNamespace(m.Namespace)
				continue
			}
		case *model.Service:
			if m != nil {
				c.Services[m.Key()] = m
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
				errs = append(errs, &Error{Source: podSource[p.Key()], Kind: "Pod", Key: p.Key(),
					Err: fmt.Errorf("status.podIPs: address %s is also pod %s's", ip, q.Key())})
				continue
			}
			owner[ip] = p
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}
