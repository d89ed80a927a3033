// Package deploy holds the manifests that install Palisade into a cluster
// (kubectl apply -k deploy/). They are embedded so that the lab's kubelet
// mode installs exactly these RBAC objects and runs its agents under them.
package deploy

import "embed"

// Files are the manifests of this directory.
//
//go:embed *.yaml
var Files embed.FS

// RBAC lists, in apply order, the files that give the agent its identity
// and permissions: everything but the DaemonSet.
var RBAC = []string{"namespace.yaml", "serviceaccount.yaml", "clusterrole.yaml", "clusterrolebinding.yaml"}
