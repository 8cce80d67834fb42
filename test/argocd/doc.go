// Package argocd tests the Argo CD health checks in config/argocd: every
// health.lua runs against each case of its health_test.yaml, in Argo CD's
// resource_customizations format, so that the scripts can be copied into
// Argo CD (or upstreamed) unchanged.
//
// The scripts run in gopher-lua, the interpreter Argo CD embeds, with the
// same small set of standard libraries Argo CD opens (base, table, string,
// math) and the object as the global obj, converted from YAML the way Argo
// CD converts it from JSON.
package argocd
