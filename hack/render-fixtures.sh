#!/usr/bin/env bash
# Renders the -f tests' fixtures (tests/fixtures/manifests) with the real kustomize and Helm, from the
# example app kept in the repo (examples/kustomize, examples/helm/shop), so the tests read what those
# tools print: kustomize's hash-suffixed generator names, Helm's order, comments and labels.
#
# Needs kustomize and helm of the versions below (on PATH, or $KUSTOMIZE and $HELM). Not run by
# `make deps` or CI: building both from their Go modules takes minutes (8 min cold on 2 cores here).
#   GOBIN=/tmp/tools go install sigs.k8s.io/kustomize/kustomize/v5@v5.8.1
#   GOBIN=/tmp/tools go install helm.sh/helm/v3/cmd/helm@v3.22.0
#   KUSTOMIZE=/tmp/tools/kustomize HELM=/tmp/tools/helm bash hack/render-fixtures.sh
# Then run tests/unit/test_manifests.py and tests/integration/test_manifests.py: a new tool version
# may print other hashes, which those tests name.
set -euo pipefail

KUSTOMIZE_VERSION=v5.8.1
HELM_VERSION=v3.22.0
kustomize=${KUSTOMIZE:-kustomize}
helm=${HELM:-helm}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/tests/fixtures/manifests

for tool in "$kustomize" "$helm"; do
  command -v "$tool" >/dev/null || {
    echo "render-fixtures: $tool not found: install it as this script's header says" >&2
    exit 1
  }
done
# `go install` builds carry no release stamp: kustomize says "(devel)" or its version, helm "v3.22".
echo "render-fixtures: kustomize $("$kustomize" version 2>/dev/null || true), helm $("$helm" version --short 2>/dev/null || true)" >&2

cd "$root"  # the commands in the headers are run from the repository's root

render() {  # render FILE TOOL-AND-VERSION COMMAND...
  local file=$1 tool=$2
  shift 2
  {
    local shown=("$(basename "$1")" "${@:2}")  # the command as a user types it, not the tool's path
    echo "# Rendered by $tool: \`${shown[*]}\` (from the repository's root; re-render: bash hack/render-fixtures.sh)."
    "$@"
  } >"$out/$file.tmp"
  mv "$out/$file.tmp" "$out/$file"
  echo "render-fixtures: $out/$file" >&2
}

render kustomize-v1.yaml "kustomize $KUSTOMIZE_VERSION (sigs.k8s.io/kustomize/kustomize/v5)" "$kustomize" build examples/kustomize
render kustomize-v2.yaml "kustomize $KUSTOMIZE_VERSION (sigs.k8s.io/kustomize/kustomize/v5)" "$kustomize" build tests/fixtures/manifests/kustomize-release-2
render helm.yaml "helm $HELM_VERSION (helm.sh/helm/v3)" "$helm" template shop examples/helm/shop
