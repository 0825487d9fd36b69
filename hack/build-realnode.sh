#!/usr/bin/env bash
# Builds the real node's binaries once per machine and version (hack/realnode.py), into a cache outside
# the repo: kubelet and kube-proxy from the same wrapper module as the control plane (hack/k8s),
# containerd, its runc shim and ctr from containerd's Go module, and the test app (hack/realnode-app).
# runc and the CNI plugins come from Debian (installed here when missing, as root). Prints the bin
# directory. Only missing binaries are built, one Go build at a time (the machines are small).
# Cold: about 5 min with an empty Go build cache, 3 min after build-k8s.sh (shared Go cache).
set -euo pipefail

K8S_VERSION=v1.36.3
CONTAINERD_VERSION=v2.4.2
here=$(cd "$(dirname "$0")" && pwd)
cache=${BLUEGREEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bluegreen}
bin=$cache/realnode-k8s-$K8S_VERSION-containerd-$CONTAINERD_VERSION/bin
app_sum=$(cat "$here/realnode-app/go.mod" "$here/realnode-app/main.go" | sha256sum | cut -c1-12)
wanted=(kubelet kube-proxy containerd containerd-shim-runc-v2 ctr "app-$app_sum")

have_all() { for b in "${wanted[@]}"; do [ -x "$bin/$b" ] || return 1; done; }
# --cached-only: print the bin directory when every binary is built, else say so (exit 3) without
# building or installing anything (`make demo` asks, and falls back to stand-in pods).
if [ "${1:-}" = "--cached-only" ]; then
  if have_all; then echo "$bin"; exit 0; fi
  echo "build-realnode: the real node is not built; run make deps (hack/build-realnode.sh)" >&2; exit 3
fi

debian=()
command -v runc >/dev/null 2>&1 || debian+=(runc)
[ -x /usr/lib/cni/bridge ] || debian+=(containernetworking-plugins)
command -v nft >/dev/null 2>&1 || debian+=(nftables)
command -v conntrack >/dev/null 2>&1 || debian+=(conntrack)
command -v nsenter >/dev/null 2>&1 || debian+=(util-linux)
if [ ${#debian[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "build-realnode: not root, so not installing ${debian[*]}: the real-node tests will be skipped" >&2
  else
    DEBIAN_FRONTEND=noninteractive bash "$(dirname "$0")/apt.sh" install -y -qq --no-install-recommends "${debian[@]}" >/dev/null \
      || { bash "$(dirname "$0")/apt.sh" update -qq && DEBIAN_FRONTEND=noninteractive bash "$(dirname "$0")/apt.sh" install -y -qq --no-install-recommends "${debian[@]}" >/dev/null; }
  fi
fi

if have_all; then echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "build-realnode: Go is needed to build the real node's binaries" >&2; exit 1; }
mkdir -p "$bin"
tmp=$(mktemp -d "$bin/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor"
ldflags+=" -X $vpkg.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"

start=$(date +%s)
missing=(); for b in "${wanted[@]}"; do [ -x "$bin/$b" ] || missing+=("$b"); done
echo "build-realnode: building ${missing[*]} into $bin (once per machine)" >&2
packages=()
for b in kubelet kube-proxy; do
  [ -x "$bin/$b" ] || packages+=("k8s.io/kubernetes/cmd/$b")
done
if [ ${#packages[@]} -gt 0 ]; then
  (cd "$here/k8s" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${packages[@]}")
fi
mod=github.com/containerd/containerd/v2
cldflags="-s -w -X $mod/version.Version=$CONTAINERD_VERSION"
if [ ! -x "$bin/containerd" ] || [ ! -x "$bin/ctr" ]; then
  CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "$cldflags" -tags urfave_cli_no_docs \
    "$mod/cmd/containerd@$CONTAINERD_VERSION" "$mod/cmd/ctr@$CONTAINERD_VERSION"
fi
if [ ! -x "$bin/containerd-shim-runc-v2" ]; then
  CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "$cldflags" -tags "urfave_cli_no_docs no_grpc" \
    "$mod/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
fi
if [ ! -x "$bin/app-$app_sum" ]; then
  rm -f "$bin"/app-*
  (cd "$here/realnode-app" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/app-$app_sum" .)
fi
mv "$tmp"/* "$bin/"
echo "build-realnode: built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
