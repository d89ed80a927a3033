# syntax=docker/dockerfile:1
# The agent image: one static binary (no cgo: netlink and nftables are pure
# Go), on distroless static. It needs nothing else from the image: no nft,
# no iptables, no shell.
#
#   docker build -t REGISTRY/palisade:TAG .
#   (cd deploy && kustomize edit set image ghcr.io/palisade-net/palisade=REGISTRY/palisade:TAG)
#   kubectl apply -k deploy/

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/palisade ./cmd/palisade

# static-debian12 runs as uid 0 (the :nonroot tag does not): the DaemonSet
# grants only NET_ADMIN and NET_RAW, which take effect for uid 0 alone.
FROM gcr.io/distroless/static-debian12
COPY --from=build /out/palisade /palisade
ENTRYPOINT ["/palisade"]
CMD ["agent"]
