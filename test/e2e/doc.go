// Package e2e holds palisade's system tests: the agent and the CLI against
// a real kube-apiserver (hack/apiserver), in labs of network namespaces,
// and as processes killed under churn. The unit packages keep the tests
// that need neither root nor an API server.
//
// Without root, or without the kube-apiserver and etcd binaries
// (KUBE_APISERVER_BIN and ETCD_BIN, or hack/apiserver/build.sh's cache), a
// test skips and says why; under CI=true it never skips (it fails, or
// builds the API server first).
package e2e
