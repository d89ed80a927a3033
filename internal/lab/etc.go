package lab

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/palisade-net/palisade/internal/model"
)

// etcDir returns /etc/netns/<netns>, whose files Exec binds over /etc.
func etcDir(netnsName string) string { return filepath.Join(EtcNetnsDir, netnsName) }

// resolvConf sends DNS to 127.0.0.1 in the pod, where nothing listens, so a
// name that is not in the pod's hosts file fails at once.
const resolvConf = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"

// writeEtc writes hosts and resolv.conf for every pod namespace and every
// node namespace (which host-network pods share).
func (l *Lab) writeEtc() error {
	c := l.st.Cluster.cluster()
	pods := c.SortedPods()
	svcs := make([]*model.Service, 0, len(c.Services))
	for _, s := range c.Services {
		svcs = append(svcs, s)
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Key().Less(svcs[j].Key()) })

	for _, node := range l.Nodes() {
		name := nodeNetNS(l.st.Name, node)
		if err := writeEtcFiles(name, hostsFile(l.st.Name, "node "+node, "", nil, svcs)); err != nil {
			return err
		}
	}
	for _, p := range pods {
		place := l.st.Pods[p.Key().String()]
		if place == nil || p.HostNetwork {
			continue
		}
		if err := writeEtcFiles(place.NetNS, hostsFile(l.st.Name, "pod "+p.Key().String(), p.Namespace, pods, svcs)); err != nil {
			return err
		}
	}
	return nil
}

// hostsFile renders a hosts file for a pod of namespace ns (or a node, ns
// ""): the pods of ns by name, and every service as name.ns, name.ns.svc and
// name.ns.svc.cluster.local, plus its bare name in ns.
func hostsFile(lab, who, ns string, pods []*model.Pod, svcs []*model.Service) []byte {
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

func writeEtcFiles(netnsName string, hosts []byte) error {
	dir := etcDir(netnsName)
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
