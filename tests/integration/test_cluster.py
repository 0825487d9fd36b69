"""The local cluster behaves as a real one where bluegreen depends on it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lightkube import ApiError, Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import PolicyRule, RoleRef, Subject
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Node, Pod, Service
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding

from hack.localcluster import LocalCluster
from tests.support.apps import (
    create_app,
    deployment,
    endpoint_ips,
    ready_pod_ips,
    service,
    service_account_kubeconfig,
    wait_available,
)


def test_nodes_are_ready(kube: Client) -> None:
    nodes = list(kube.list(Node))
    assert len(nodes) >= 1
    for node in nodes:
        assert node.status is not None
        ready = {c.type: c.status for c in node.status.conditions or []}
        assert ready.get("Ready") == "True", node.metadata and node.metadata.name


def test_deployment_rolls_out_and_endpoint_slice_lists_exactly_its_ready_pods(
    kube: Client, namespace: str
) -> None:
    kube.create(deployment("shop", "blue", replicas=3), namespace=namespace)
    kube.create(deployment("other", "blue", replicas=1), namespace=namespace)
    kube.create(service("shop", "shop", "blue"), namespace=namespace)

    wait_available(kube, namespace, "shop-blue")
    wait_available(kube, namespace, "other-blue")

    pods = ready_pod_ips(kube, namespace, {"app.kubernetes.io/name": "shop"})
    assert len(pods) == 3
    # The EndpointSlice controller fills the slice a moment after the pods turn Ready.
    for _ in range(100):
        if endpoint_ips(kube, namespace, "shop") == pods:
            break
        time.sleep(0.1)
    assert endpoint_ips(kube, namespace, "shop") == pods


def test_faulty_pods_never_become_ready(kube: Client, namespace: str) -> None:
    kube.create(deployment("shop", "green", replicas=1, fault="crashloop"), namespace=namespace)
    with pytest.raises(AssertionError, match="not available"):
        wait_available(kube, namespace, "shop-green", timeout=5)
    (pod,) = kube.list(Pod, namespace=namespace)
    assert pod.status is not None and pod.status.containerStatuses
    waiting = pod.status.containerStatuses[0].state
    assert waiting is not None and waiting.waiting is not None
    assert waiting.waiting.reason == "CrashLoopBackOff"


def test_service_account_with_namespaced_role_is_refused_outside_its_namespace(
    kube: Client, cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    other = f"{namespace}-other"[:63]
    kube.create(Namespace(metadata=ObjectMeta(name=other)))
    try:
        kube.create(
            Role(
                metadata=ObjectMeta(name="deployer"),
                rules=[
                    PolicyRule(apiGroups=["apps"], resources=["deployments"], verbs=["get", "list"]),
                ],
            ),
            namespace=namespace,
        )
        kube.create(
            RoleBinding(
                metadata=ObjectMeta(name="deployer"),
                roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="Role", name="deployer"),
                subjects=[Subject(kind="ServiceAccount", name="ci", namespace=namespace)],
            ),
            namespace=namespace,
        )
        config = service_account_kubeconfig(
            kube, cluster.kubeconfig, namespace, "ci", tmp_path / "ci.kubeconfig"
        )
        as_ci = Client(KubeConfig.from_file(config))

        assert list(as_ci.list(Deployment, namespace=namespace)) == []
        with pytest.raises(ApiError) as refused:
            list(as_ci.list(Deployment, namespace=other))
        assert refused.value.status.code == 403
        with pytest.raises(ApiError) as refused_write:
            as_ci.create(service("x", "x", "blue"), namespace=namespace)
        assert refused_write.value.status.code == 403
    finally:
        kube.delete(Namespace, other)


def test_create_app_gives_two_ready_colours_behind_live_and_preview_services(
    kube: Client, namespace: str
) -> None:
    create_app(kube, namespace, "shop", replicas=2)
    live = kube.get(Service, "shop", namespace=namespace)
    preview = kube.get(Service, "shop-preview", namespace=namespace)
    assert live.spec and live.spec.selector and live.spec.selector["bluegreen.io/color"] == "blue"
    assert preview.spec and preview.spec.selector and preview.spec.selector["bluegreen.io/color"] == "green"
