.PHONY: demo test build

build:
	go build -o bin/palisade ./cmd/palisade

# The seed article's walkthrough, for real, in network namespaces (root).
demo: build
	./bin/palisade demo

# Every test; run as root so the kernel and lab tests run too.
test:
	./scripts/test
