# syntax=docker/dockerfile:1
#
# Phalanx: coordinator, worker and the phalanx CLI in one small image.
#
# Multi-arch build and push (BuildKit / buildx):
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     -t ghcr.io/phalanx-llm/phalanx:v0.1.0 --push .
#
# The Go compiler runs natively on the build machine ($BUILDPLATFORM) and
# cross-compiles for each $TARGETPLATFORM: the binaries are static
# (CGO_ENABLED=0), so no emulation is needed. The final image is distroless
# (no shell, no package manager) and runs as the non-root user 65532.
# deploy/deploy_test.go runs the `go build` below for linux/amd64 and
# linux/arm64 and checks its flags, so keep the command on one RUN line.

ARG GO_IMAGE=golang:1.26
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "-s -w -X github.com/phalanx-llm/phalanx/internal/daemon.Version=$VERSION" -o /out/ ./cmd/coordinator ./cmd/worker ./cmd/phalanx

FROM ${BASE_IMAGE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="phalanx" \
      org.opencontainers.image.description="Phalanx: Microsoft Phi-2 served from a pool of machines (coordinator, worker, phalanx CLI)" \
      org.opencontainers.image.source="https://github.com/phalanx-llm/phalanx" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/coordinator /out/worker /out/phalanx /usr/local/bin/
# 65532 is distroless's "nonroot"; numeric so that Kubernetes' runAsNonRoot
# can verify it without a passwd lookup.
USER 65532:65532
# Kubernetes sets the command per container (coordinator, worker, phalanx);
# `docker run IMAGE pull microsoft/phi-2` runs the CLI.
ENTRYPOINT ["/usr/local/bin/phalanx"]
