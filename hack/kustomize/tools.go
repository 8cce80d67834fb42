//go:build tools

// Package tools pins kustomize, built from the Go module proxy by
// `make build-installer` (no kustomize binary needs to be installed).
package tools

import _ "sigs.k8s.io/kustomize/kustomize/v5"
