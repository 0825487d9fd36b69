"""Which GitOps controller manages an object, read from its labels, annotations and managedFields (pure).

Argo CD and Flux re-apply what Git says. When Git holds the live Service with a colour in its selector,
their next sync writes that colour back after a switch, unless told to leave the selector alone
(docs/gitops.md says how). bluegreen cannot read their settings (an Argo CD Application lives in
another namespace, outside our Role), so it says what it sees on the objects themselves, and names
who wrote the selector back when one does.
"""

from __future__ import annotations

from typing import Any, NamedTuple

DOC = "docs/gitops.md"

ARGO_TRACKING_ID = "argocd.argoproj.io/tracking-id"  # the default tracking since Argo CD 3.0
ARGO_PREFIX = "argocd.argoproj.io/"
INSTANCE_LABEL = "app.kubernetes.io/instance"  # Argo CD's label tracking; Helm charts set it too
HELM_RELEASE_ANNOTATION = "meta.helm.sh/release-name"  # set by `helm install`, not by `helm template`
HELM_CHART_LABEL = "helm.sh/chart"  # the label the charts `helm create` makes set
FLUX_KINDS = {"kustomize.toolkit.fluxcd.io": "Kustomization", "helm.toolkit.fluxcd.io": "HelmRelease"}
FLUX_SSA = "kustomize.toolkit.fluxcd.io/ssa"
FLUX_RECONCILE = "kustomize.toolkit.fluxcd.io/reconcile"
# The field managers their controllers write with (managedFields): evidence even without the labels.
MANAGERS = {
    "argocd-controller": "Argo CD",  # its server-side apply (sync option ServerSideApply=true)
    "argocd-application-controller": "Argo CD",  # its default, client-side apply
    "kustomize-controller": "Flux",
    "helm-controller": "Flux",
}


class Managed(NamedTuple):
    """A GitOps controller that manages one object, and how sure we are of it."""

    tool: str  # "Argo CD" or "Flux"
    owner: str  # "Application shop", "Kustomization flux-system/apps", "" when unknown
    evidence: str  # the label, annotation or field manager it was read from
    certain: bool  # False: a label other tools set too (app.kubernetes.io/instance)
    # A setting on the object itself that keeps the controller off it (Flux's ssa/reconcile
    # annotations); "" when none is seen (Argo CD's ignoreDifferences lives on the Application).
    protected: str = ""

    def line(self, what: str, *, service: bool = True) -> str:
        """One sentence for `status` and the job summary. `service`: `what` is the Service whose
        selector a switch writes (else a colour's Deployment, which deploy and retire write)."""
        sure = "managed by" if self.certain else "possibly managed by"
        owner = f" {self.owner}" if self.owner else ""
        said = f"{what} is {sure} {self.tool}{owner} ({self.evidence})"
        fields = "the selector after a switch" if service else "what deploy and retire write on it"
        if self.protected:
            return f"{said}; {self.protected} keeps it from reverting {fields}"
        return f"{said}: its sync reverts {fields} unless told to leave it alone, see {DOC}"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._asdict())


def detect(obj: dict[str, Any] | None) -> Managed | None:
    """The GitOps controller that manages `obj` (a Service or Deployment as JSON), or None."""
    if not obj:
        return None
    meta = obj.get("metadata") or {}
    labels: dict[str, str] = meta.get("labels") or {}
    annotations: dict[str, str] = meta.get("annotations") or {}
    return _argo(labels, annotations) or _flux(labels, annotations) or _by_manager(meta)


def _argo(labels: dict[str, str], annotations: dict[str, str]) -> Managed | None:
    tracking = annotations.get(ARGO_TRACKING_ID, "")
    if tracking:
        # "<app>:<group>/<kind>:<namespace>/<name>"; an app in another namespace is "<ns>_<app>"
        return Managed(
            tool="Argo CD",
            owner=f"Application {tracking.split(':', 1)[0]}",
            evidence=f"annotation {ARGO_TRACKING_ID}",
            certain=True,
        )
    instance = labels.get(INSTANCE_LABEL, "")
    own = sorted(key for key in annotations if key.startswith(ARGO_PREFIX))
    if instance and own:
        return Managed(
            tool="Argo CD",
            owner=f"Application {instance}",
            evidence=f"label {INSTANCE_LABEL} and annotation {own[0]}",
            certain=True,
        )
    if own:
        return Managed(tool="Argo CD", owner="", evidence=f"annotation {own[0]}", certain=True)
    if instance and HELM_RELEASE_ANNOTATION not in annotations and HELM_CHART_LABEL not in labels:
        # Argo CD's label tracking (its default before 3.0), or some other tool's label: said as a
        # possibility. Every Helm chart sets the label to its release name, so there it says nothing.
        return Managed(
            tool="Argo CD",
            owner=f"Application {instance}",
            evidence=f"label {INSTANCE_LABEL}={instance}, which Helm charts set too",
            certain=False,
        )
    return None


def _flux(labels: dict[str, str], annotations: dict[str, str]) -> Managed | None:
    for group, kind in FLUX_KINDS.items():
        name = labels.get(f"{group}/name", "")
        if not name:
            continue
        namespace = labels.get(f"{group}/namespace", "")
        return Managed(
            tool="Flux",
            owner=f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}",
            evidence=f"label {group}/name",
            certain=True,
            protected=_flux_protection(labels, annotations),
        )
    return None


def _flux_protection(labels: dict[str, str], annotations: dict[str, str]) -> str:
    """Flux's per-object settings that stop it re-applying the object (label or annotation)."""
    marks = {**labels, **annotations}
    ssa = marks.get(FLUX_SSA, "")
    if ssa.lower() in ("ifnotpresent", "ignore"):
        return f"{FLUX_SSA}: {ssa}"
    if marks.get(FLUX_RECONCILE, "").lower() == "disabled":
        return f"{FLUX_RECONCILE}: disabled"
    return ""


def _by_manager(meta: dict[str, Any]) -> Managed | None:
    for entry in meta.get("managedFields") or []:
        tool = MANAGERS.get(str(entry.get("manager") or ""))
        if tool:
            return Managed(tool=tool, owner="", evidence=f"field manager {entry['manager']}", certain=True)
    return None


def selector_writer(service: dict[str, Any], key: str) -> str:
    """The field manager that last wrote `spec.selector[key]` of `service`, from its managedFields
    ("" when none is recorded). Several may share it (server-side apply): the newest write wins.

    A Service's selector is an atomic map: its owner owns it whole ("f:selector": {}); a per-key
    entry is taken too, should the schema ever make it granular."""

    def owns(entry: dict[str, Any]) -> bool:
        spec = (entry.get("fieldsV1") or {}).get("f:spec") or {}
        if "f:selector" not in spec:
            return False
        keys = spec["f:selector"] or {}
        return not keys or f"f:{key}" in keys

    owners = [entry for entry in (service.get("metadata") or {}).get("managedFields") or [] if owns(entry)]
    if not owners:
        return ""
    newest = max(owners, key=lambda entry: str(entry.get("time") or ""))
    return str(newest.get("manager") or "")


def describe_writer(manager: str, service: dict[str, Any]) -> str:
    """`manager` with the tool it belongs to, when known: "argocd-controller (Argo CD, Application shop)"."""
    if not manager:
        return "an unknown writer (no managedFields entry)"
    tool = MANAGERS.get(manager, "")  # a person's kubectl is not the GitOps tool that tracks the object
    managed = detect(service)
    if tool and managed and managed.tool == tool and managed.owner:
        return f"{manager} ({tool}, {managed.owner})"
    return f"{manager} ({tool})" if tool else manager
