#!/usr/bin/env bash
# Builds the etcd and kube-apiserver binaries that envtest needs from the Go
# module proxy (no binary downloads), caches them outside the work tree keyed by
# version, and prints the directory to use as KUBEBUILDER_ASSETS.
#
# The first build takes several minutes; later calls return at once.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
kube_version="$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$here/envtest/kube-apiserver/go.mod" | head -n1)"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' "$here/envtest/etcd/go.mod" | head -n1)"
# The go.mod lists the version on the require line: "require k8s.io/kubernetes vX".
[ -n "$kube_version" ] || kube_version="$(sed -n 's/^require k8s.io\/kubernetes \(v[^ ]*\)$/\1/p' "$here/envtest/kube-apiserver/go.mod")"
[ -n "$etcd_version" ] || etcd_version="$(sed -n 's/^require go.etcd.io\/etcd\/server\/v3 \(v[^ ]*\)$/\1/p' "$here/envtest/etcd/go.mod")"

cache="${TWINSYNC_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/twinsync/envtest}"
dir="$cache/kube-$kube_version-etcd-$etcd_version"

log() { echo "envtest: $*" >&2; }

build() { # name module-dir ldflags
	local name="$1" src="$2" ldflags="$3"
	if [ -x "$dir/$name" ]; then
		return 0
	fi
	log "building $name (first time only; this takes several minutes)"
	mkdir -p "$dir"
	(cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$dir/$name.tmp" .)
	mv "$dir/$name.tmp" "$dir/$name"
}

minor="${kube_version#v1.}"
minor="${minor%%.*}"
pkg=k8s.io/component-base/version
kube_ldflags="-s -w -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$kube_version -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

build etcd "$here/envtest/etcd" "-s -w"
build kube-apiserver "$here/envtest/kube-apiserver" "$kube_ldflags"
echo "$dir"
