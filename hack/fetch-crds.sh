#!/usr/bin/env bash
# Copy the published CRDs the routers' integration tests install into hack/crds/.
# Each comes from a Go module fetched through the Go module proxy (checksummed by sum.golang.org);
# versions are pinned here and recorded in hack/crds/README.md. Re-run after changing a version.
set -euo pipefail

GATEWAY_API=v1.6.3   # v1.7.0 needs go >= 1.27 to unpack; the CRD files do not depend on it
ISTIO_API=v1.31.1
SMI_SDK=v0.5.0

here="$(cd "$(dirname "$0")" && pwd)"
out="$here/crds"
python="${PYTHON:-$here/../.venv/bin/python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

moddir() {  # the unpacked module's directory in the module cache
  (cd "$work" && GOFLAGS=-mod=mod go mod download -json "$1@$2") \
    | "$python" -c 'import json,sys; d=json.load(sys.stdin); sys.exit(d["Error"]) if "Error" in d else print(d["Dir"])'
}

gw="$(moddir sigs.k8s.io/gateway-api "$GATEWAY_API")"
istio="$(moddir istio.io/api "$ISTIO_API")"
smi="$(moddir github.com/servicemeshinterface/smi-sdk-go "$SMI_SDK")"

mkdir -p "$out"
for kind in httproutes gateways gatewayclasses referencegrants; do
  install -m 0644 "$gw/config/crd/standard/gateway.networking.k8s.io_$kind.yaml" "$out/gateway-api-$kind.yaml"
done

"$python" - "$istio/kubernetes/customresourcedefinitions.gen.yaml" "$smi/crds/split.yaml" "$out" <<'PY'
import sys
from pathlib import Path

import yaml

istio_all, smi_split, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

# Istio publishes every CRD in one file: keep the two the istio router uses, unchanged.
class Plain(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:  # no &id001 anchors in the files we write
        return True


wanted = {"virtualservices.networking.istio.io", "destinationrules.networking.istio.io"}
for doc in yaml.safe_load_all(Path(istio_all).read_text()):
    if doc and doc["metadata"]["name"] in wanted:
        short = doc["metadata"]["name"].split(".")[0]
        (out / f"istio-{short}.yaml").write_text(yaml.dump(doc, Dumper=Plain, sort_keys=False))

# SMI's last release still writes its CRD as apiextensions.k8s.io/v1beta1, which apiservers stopped
# serving in 1.22. Restate it in v1 without changing the schema: the same openAPIV3Schema on every
# version (v1beta1 applied the top-level one to all), printer columns per version. One deliberate
# change: v1alpha2 is served too, as Linkerd's SMI extension serves it (the version Linkerd reads).
old = yaml.safe_load(smi_split.read_text())
spec = old["spec"]
schema = {"type": "object", **spec["validation"]["openAPIV3Schema"]}
columns = [
    {"name": c["name"], "type": c["type"], "description": c["description"], "jsonPath": c["JSONPath"]}
    for c in spec.get("additionalPrinterColumns", [])
]
versions = []
for v in spec["versions"]:
    served = v["served"] or v["name"] == "v1alpha2"
    if not served:
        continue
    versions.append({
        "name": v["name"], "served": True, "storage": v["storage"],
        "schema": {"openAPIV3Schema": schema}, "additionalPrinterColumns": columns,
    })
new = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": old["metadata"]["name"]},
    "spec": {"group": spec["group"], "scope": spec["scope"], "names": spec["names"], "versions": versions},
}
header = (
    "# From github.com/servicemeshinterface/smi-sdk-go crds/split.yaml, restated from\n"
    "# apiextensions.k8s.io/v1beta1 to v1 by hack/fetch-crds.sh (schema unchanged; v1alpha2 served).\n"
)
(out / "smi-trafficsplits.yaml").write_text(header + yaml.dump(new, Dumper=Plain, sort_keys=False))
PY
echo "CRDs written to $out: gateway-api $GATEWAY_API, istio.io/api $ISTIO_API, smi-sdk-go $SMI_SDK"
