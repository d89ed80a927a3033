package lab

import (
	"fmt"

	"github.com/palisade-net/palisade/internal/lab/hosts"
	"github.com/palisade-net/palisade/internal/lab/ipam"
	"github.com/palisade-net/palisade/internal/lab/kubeproxy"
	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/model"
)

// What makes a Service work in the lab, after Update has given it its
// ClusterIPs (ipam): its DNAT in every node (kubeproxy) and its names in
// every namespace's hosts file (hosts).

// syncServices replaces the services table in every node, one transaction
// per node.
func (l *Lab) syncServices() error {
	rules := kubeproxy.Rules(l.st.Cluster.cluster())
	for _, node := range l.Nodes() {
		var veths []string
		for _, k := range l.PodsOnNode(node) {
			if v := l.st.Pods[k.String()].Veth; v != "" {
				veths = append(veths, v)
			}
		}
		h, err := l.net().OpenNode(node)
		if err != nil {
			return err
		}
		err = kubeproxy.Program(h.Fd(), rules, veths, ipam.NodeIPs(names.NodeIndex(node)))
		h.Close()
		if err != nil {
			return fmt.Errorf("lab %s: %s: table %s: %w", l.st.Name, node, kubeproxy.Table, err)
		}
	}
	return nil
}

// writeEtc writes hosts and resolv.conf for every pod namespace and every
// node namespace (which host-network pods share).
func (l *Lab) writeEtc() error {
	return hosts.Write(l.st.Name, l.Nodes(), l.st.Cluster.cluster(), func(k model.Key) string {
		if place := l.st.Pods[k.String()]; place != nil {
			return place.NetNS
		}
		return ""
	})
}
