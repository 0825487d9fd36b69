#!/usr/bin/env bash
# Builds the local cluster's binaries once per machine and version, into a cache outside the repo:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kube-proxy (the traffic rig's data
# plane, hack/traffic_rig.py) from k8s.io/kubernetes, etcd at the version Kubernetes pins, and kwok.
# Prints the cache's bin directory. Only missing ones are built.
set -euo pipefail

K8S_VERSION=v1.36.3
KWOK_VERSION=v0.8.0
here=$(cd "$(dirname "$0")" && pwd)
cache=${BLUEGREEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen}
bin=$cache/k8s-$K8S_VERSION-kwok-$KWOK_VERSION/bin
wanted=(kube-apiserver kube-controller-manager kube-scheduler kubectl kube-proxy etcd kwok)

have_all() { for b in "${wanted[@]}"; do [ -x "$bin/$b" ] || return 1; done; }
if have_all; then echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "build-k8s: Go is needed to build the cluster's binaries" >&2; exit 1; }
mkdir -p "$bin"
tmp=$(mktemp -d "$bin/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
ldflags+=" -X $vpkg.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"

start=$(date +%s)
missing=(); for b in "${wanted[@]}"; do [ -x "$bin/$b" ] || missing+=("$b"); done
echo "build-k8s: building ${missing[*]} (Kubernetes $K8S_VERSION, kwok $KWOK_VERSION) into $bin (once per machine)" >&2
packages=()
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl kube-proxy; do
  [ -x "$bin/$b" ] || packages+=("k8s.io/kubernetes/cmd/$b")
done
[ -x "$bin/etcd" ] || packages+=(./cmd/etcd)
if [ ${#packages[@]} -gt 0 ]; then
  # One go build for all of them shares the compile of their common packages.
  (cd "$here/k8s" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${packages[@]}")
fi
if [ ! -x "$bin/kwok" ]; then
  CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
fi
mv "$tmp"/* "$bin/"
echo "build-k8s: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
