.PHONY: demo test build

build:
	go build -o bin/palisade ./cmd/palisade

# The seed article's walkthrough, for real, in network namespaces (root).
demo: build
	./bin/palisade demo

# Every test; run as root so the kernel and lab tests run too.
test:
	./scripts/test

# A real Kubernetes v1.37.2 cluster in network namespaces (root; the first
# build takes about 25 minutes on 2 cores, then it is cached; images are
# built from source, nothing is pulled): hack/cluster/README.md.
.PHONY: images cluster-up cluster-down cluster-smoke cluster-demo cluster-e2e cluster-e2e-ci cluster-window
images:
	bash hack/images/build.sh >/dev/null

cluster-up:
	NODES=2 IMAGES="pause agnhost palisade" bash hack/cluster/up.sh

cluster-down:
	bash hack/cluster/down.sh

# The seed walkthrough on the real two-node cluster with the real kubectl
# (CoreDNS, Palisade's DaemonSet from deploy/), each result checked; always
# torn down.
cluster-demo:
	bash hack/cluster/demo.sh

# Up, a pod Running, pod to pod and pod to Service across two nodes, down.
cluster-smoke:
	NODES=2 IMAGES="pause agnhost" bash hack/cluster/up.sh -- bash hack/cluster/smoke.sh

# Kubernetes' own NetworkPolicy e2e tests (e2e.test v1.37.2, built from the
# module proxy) on the real two-node cluster, Palisade from deploy/ with
# --log-denied and --terminate-denied; last line "N passed, N failed, N
# skipped"; always torn down. cluster-e2e-ci: the handful CI runs.
cluster-e2e:
	bash hack/cluster/e2e.sh

cluster-e2e-ci:
	SUBSET=ci bash hack/cluster/e2e.sh

# The start-up window: how long a new pod talks before its rules exist,
# with and without the agent's guard, and what the guard costs.
cluster-window:
	bash hack/cluster/window.sh

# The upstream network-policy-api conformance suite (sigs.k8s.io/network-policy-api
# v0.3.0, ClusterNetworkPolicy) on the real two-node cluster, Palisade from
# deploy/; results table and skips in hack/cluster/NPAPI.md; always torn down.
.PHONY: cluster-npapi
cluster-npapi:
	bash hack/cluster/npapi-conformance.sh
