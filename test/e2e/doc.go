// Package e2e runs the device twin tutorial end to end, with assertions:
// a real kube-apiserver and etcd, the embedded hub, the manager and the
// device simulator as separate processes built from cmd/, exactly what
// `make demo` runs (both use internal/localstack). It needs
// KUBEBUILDER_ASSETS, which `make test` sets; without it the test is
// skipped.
package e2e
