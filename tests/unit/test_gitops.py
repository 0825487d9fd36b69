"""Which GitOps controller manages an object, and who wrote a selector back (bluegreen.gitops, pure)."""

from __future__ import annotations

from typing import Any

import pytest

from bluegreen import gitops
from bluegreen.github import summary
from bluegreen.model import Result

KEY = "bluegreen.io/color"


def obj(
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    managed_fields: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "shop", "labels": labels or {}, "annotations": annotations or {}}
    if managed_fields is not None:
        meta["managedFields"] = managed_fields
    return {"metadata": meta}


def owns_selector(
    manager: str, time: str, operation: str = "Update", *, keys: bool = False
) -> dict[str, Any]:
    """A managedFields entry owning the selector: whole, as the apiserver records an atomic map
    (a Service's selector), or key by key."""
    return {
        "manager": manager,
        "operation": operation,
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:spec": {"f:selector": {f"f:{KEY}": {}} if keys else {}}},
    }


@pytest.mark.parametrize(
    ("found", "tool", "owner", "certain"),
    [
        # Argo CD's default tracking since 3.0: "<app>:<group>/<kind>:<namespace>/<name>"
        (
            obj(annotations={"argocd.argoproj.io/tracking-id": "shop-prod:/Service:shop/shop"}),
            "Argo CD",
            "Application shop-prod",
            True,
        ),
        # label tracking with one of its own annotations beside it
        (
            obj(
                labels={"app.kubernetes.io/instance": "shop-prod"},
                annotations={"argocd.argoproj.io/sync-options": "Prune=false"},
            ),
            "Argo CD",
            "Application shop-prod",
            True,
        ),
        # label alone: other tools set it too, so only a possibility
        (obj(labels={"app.kubernetes.io/instance": "shop-prod"}), "Argo CD", "Application shop-prod", False),
        (
            obj(
                labels={
                    "kustomize.toolkit.fluxcd.io/name": "apps",
                    "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
                }
            ),
            "Flux",
            "Kustomization flux-system/apps",
            True,
        ),
        (
            obj(labels={"helm.toolkit.fluxcd.io/name": "shop", "helm.toolkit.fluxcd.io/namespace": "shop"}),
            "Flux",
            "HelmRelease shop/shop",
            True,
        ),
        # no label, but the controller's field manager in managedFields
        (
            obj(managed_fields=[owns_selector("argocd-controller", "2026-12-02T00:00:00Z")]),
            "Argo CD",
            "",
            True,
        ),
        (
            obj(managed_fields=[owns_selector("kustomize-controller", "2026-12-02T00:00:00Z")]),
            "Flux",
            "",
            True,
        ),
    ],
)
def test_detect_names_the_tool_and_what_manages_the_object(
    found: dict[str, Any], tool: str, owner: str, certain: bool
) -> None:
    managed = gitops.detect(found)
    assert managed is not None
    assert (managed.tool, managed.owner, managed.certain) == (tool, owner, certain)


@pytest.mark.parametrize(
    "found",
    [
        obj(),
        obj(labels={"app.kubernetes.io/name": "shop"}),
        # a chart's own instance label (helm template or helm install) says nothing about Argo CD
        obj(labels={"app.kubernetes.io/instance": "shop", "helm.sh/chart": "shop-0.3.1"}),
        obj(labels={"app.kubernetes.io/instance": "shop"}, annotations={"meta.helm.sh/release-name": "shop"}),
        obj(managed_fields=[owns_selector("bluegreen", "2026-12-02T00:00:00Z")]),
    ],
)
def test_objects_no_gitops_tool_manages_are_not_flagged(found: dict[str, Any]) -> None:
    assert gitops.detect(found) is None


def test_flux_ssa_annotation_is_reported_as_keeping_flux_off_the_selector() -> None:
    labels = {
        "kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
    }
    guarded = gitops.detect(
        obj(labels=labels, annotations={"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"})
    )
    bare = gitops.detect(obj(labels=labels))
    assert guarded is not None and bare is not None
    assert guarded.protected == "kustomize.toolkit.fluxcd.io/ssa: IfNotPresent"
    assert "keeps it from reverting the selector" in guarded.line("Service shop")
    assert bare.protected == ""
    assert "reverts the selector after a switch" in bare.line("Service shop")
    assert gitops.DOC in bare.line("Service shop")


def test_the_line_says_managed_by_argo_cd_and_hedges_a_label_alone() -> None:
    sure = gitops.detect(obj(annotations={"argocd.argoproj.io/tracking-id": "shop:/Service:shop/shop"}))
    maybe = gitops.detect(obj(labels={"app.kubernetes.io/instance": "shop"}))
    assert sure is not None and maybe is not None
    assert sure.line("Service shop").startswith("Service shop is managed by Argo CD Application shop")
    assert maybe.line("Service shop").startswith("Service shop is possibly managed by Argo CD")
    assert "what deploy and retire write" in sure.line("Deployment shop-blue", service=False)


def test_selector_writer_is_the_newest_manager_of_the_colour_key() -> None:
    service = obj(
        managed_fields=[
            owns_selector("bluegreen", "2026-12-02T04:00:00Z"),
            owns_selector("argocd-controller", "2026-12-02T04:00:01Z", operation="Apply", keys=True),
            # another field entirely: not a writer of the selector
            {
                "manager": "kubectl-edit",
                "time": "2026-12-02T05:00:00Z",
                "fieldsV1": {"f:spec": {"f:ports": {}}},
            },
        ]
    )
    assert gitops.selector_writer(service, KEY) == "argocd-controller"
    whole = obj(managed_fields=[owns_selector("kustomize-controller", "2026-12-02T04:00:01Z")])
    assert gitops.selector_writer(whole, KEY) == "kustomize-controller"
    other_key = obj(
        managed_fields=[{**owns_selector("x", "t"), "fieldsV1": {"f:spec": {"f:selector": {"f:app": {}}}}}]
    )
    assert gitops.selector_writer(other_key, KEY) == ""
    assert gitops.selector_writer(obj(), KEY) == ""


def test_describe_writer_names_the_tool_only_for_its_own_manager() -> None:
    service = obj(annotations={"argocd.argoproj.io/tracking-id": "shop:/Service:shop/shop"})
    assert (
        gitops.describe_writer("argocd-controller", service)
        == "argocd-controller (Argo CD, Application shop)"
    )
    # a person's kubectl on an Argo CD-managed Service is not Argo CD
    assert gitops.describe_writer("kubectl-edit", service) == "kubectl-edit"
    assert gitops.describe_writer("kustomize-controller", obj()) == "kustomize-controller (Flux)"
    assert "unknown" in gitops.describe_writer("", service)


def test_job_summary_has_a_gitops_section_with_the_revert_and_the_managed_objects() -> None:
    managed = gitops.detect(obj(annotations={"argocd.argoproj.io/tracking-id": "shop:/Service:shop/shop"}))
    assert managed is not None
    result = Result(phase="switch", result="failed", app="shop", namespace="shop")
    result.details = {
        "gitops": {"service": managed.to_dict()},
        "reverted": {"to": "blue", "by": "argocd-controller"},
    }
    text = summary.markdown(result, None, phase="switch", app="shop")
    assert "### GitOps" in text
    assert "written back** to `blue` by `argocd-controller`" in text
    assert (
        "| Service | Argo CD Application shop | annotation argocd.argoproj.io/tracking-id | not seen |"
        in text
    )
    plain = Result(phase="switch", result="switched", app="shop", namespace="shop")
    assert "### GitOps" not in summary.markdown(plain, None, phase="switch", app="shop")
