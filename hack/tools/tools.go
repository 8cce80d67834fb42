//go:build tools

// Package tools pins the code generators the project builds from the Go
// module proxy.
package tools

import (
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
