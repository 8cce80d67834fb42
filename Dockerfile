# syntax=docker/dockerfile:1
# The operator image: a static manager binary on distroless, as non-root.
# Build from the repository root (make docker-build builds all three images):
#
#   docker build -t ghcr.io/twinsync/manager:dev .

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
# Dependencies first, so source edits reuse the module cache layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/manager ./cmd/manager

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/manager /manager
USER 65532:65532
# 8081 health probes, 8443 HTTPS metrics.
EXPOSE 8081 8443
ENTRYPOINT ["/manager"]
