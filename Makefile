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
.PHONY: images cluster-up cluster-down cluster-smoke cluster-demo
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
