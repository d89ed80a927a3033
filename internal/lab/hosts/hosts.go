// Package hosts is how pods find each other by name in the lab: for every
// node and pod namespace, /etc/netns/<netns>/hosts lists the Services (and
// the pods of the pod's namespace) and resolv.conf points DNS nowhere, so an
// unknown name fails at once. Exec binds both over /etc. It is a room of its
// own because name resolution is a plain-file concern, apart from the
// network the lab builds.
package hosts

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/palisade-net/palisade/internal/lab/names"
	"github.com/palisade-net/palisade/internal/model"
)

// resolvConf sends DNS to 127.0.0.1 in the pod, where nothing listens, so a
// name that is not in the pod's hosts file fails at once.
const resolvConf = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"

// Write writes hosts and resolv.conf for every node namespace of the lab
// called lab (which host-network pods share) and every pod namespace;
// netnsOf names a pod's namespace ("" for a pod that has none yet).
func Write(lab string, nodes []string, c *model.Cluster, netnsOf func(model.Key) string) error {
	pods := c.SortedPods()
	svcs := make([]*model.Service, 0, len(c.Services))
	for _, s := range c.Services {
		svcs = append(svcs, s)
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Key().Less(svcs[j].Key()) })

	for _, node := range nodes {
		name := names.NodeNetNS(lab, node)
		if err := writeFiles(name, File(lab, "node "+node, "", nil, svcs)); err != nil {
			return err
		}
	}
	for _, p := range pods {
		ns := netnsOf(p.Key())
		if ns == "" || p.HostNetwork {
			continue
		}
		if err := writeFiles(ns, File(lab, "pod "+p.Key().String(), p.Namespace, pods, svcs)); err != nil {
			return err
		}
	}
	return nil
}

// File renders a hosts file for a pod of namespace ns (or a node, ns
// ""): the pods of ns by name, and every service as name.ns, name.ns.svc and
// name.ns.svc.cluster.local, plus its bare name in ns.
func File(lab, who, ns string, pods []*model.Pod, svcs []*model.Service) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# palisade lab %s: %s\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n", lab, who)
	for _, p := range pods {
		if p.Namespace != ns {
			continue
		}
		for _, ip := range p.IPs {
			fmt.Fprintf(&b, "%s\t%s\n", ip, p.Name)
		}
	}
	for _, s := range svcs {
		names := []string{s.Name + "." + s.Namespace, s.Name + "." + s.Namespace + ".svc", s.Name + "." + s.Namespace + ".svc.cluster.local"}
		if s.Namespace == ns {
			names = append([]string{s.Name}, names...)
		}
		for _, ip := range s.ClusterIPs {
			fmt.Fprintf(&b, "%s\t%s\n", ip, strings.Join(names, " "))
		}
	}
	return b.Bytes()
}

func writeFiles(netnsName string, hosts []byte) error {
	dir := names.EtcDir(netnsName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"hosts": hosts, "resolv.conf": []byte(resolvConf)} {
		path := filepath.Join(dir, name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			continue
		}
		// Rewrite in place rather than rename: a process already running in
		// the pod has this inode bind-mounted over /etc and sees the update.
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
