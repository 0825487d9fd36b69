"""Blue/green apps and ServiceAccount credentials on the test cluster, made the way a user would."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

from lightkube import ApiError, Client
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.core_v1 import (
    Container,
    ContainerPort,
    PodSpec,
    PodTemplateSpec,
    ServicePort,
    ServiceSpec,
)
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod, Service, ServiceAccount, ServiceAccountToken
from lightkube.resources.discovery_v1 import EndpointSlice

NAME_LABEL = "app.kubernetes.io/name"
COLOR_LABEL = "bluegreen.io/color"
FAULT_LABEL = "bluegreen.test/fault"  # crashloop | unready: see hack/kwok-stages.yaml
# Images whose pods kwok fails the same way: a bad release, when the template is copied from live.
CRASHLOOP_IMAGE = "fault.local/crashloop:1"
UNREADY_IMAGE = "fault.local/unready:1"


def deployment(
    name: str,
    color: str,
    *,
    replicas: int = 2,
    image: str = "registry.local/shop:1.0",
    fault: str | None = None,
) -> Deployment:
    labels = {NAME_LABEL: name, COLOR_LABEL: color}
    pod_labels = {**labels, **({FAULT_LABEL: fault} if fault else {})}
    return Deployment(
        metadata=ObjectMeta(name=f"{name}-{color}", labels=labels),
        spec=DeploymentSpec(
            replicas=replicas,
            selector=LabelSelector(matchLabels=labels),
            progressDeadlineSeconds=30,
            template=PodTemplateSpec(
                metadata=ObjectMeta(labels=pod_labels),
                spec=PodSpec(
                    containers=[Container(name="app", image=image, ports=[ContainerPort(containerPort=8080)])]
                ),
            ),
        ),
    )


def service(name: str, app: str, color: str | None) -> Service:
    selector = {NAME_LABEL: app, **({COLOR_LABEL: color} if color else {})}
    return Service(
        metadata=ObjectMeta(name=name, labels={NAME_LABEL: app}),
        spec=ServiceSpec(selector=selector, ports=[ServicePort(name="http", port=80, targetPort=8080)]),
    )


def create_app(
    kube: Client,
    namespace: str,
    name: str = "shop",
    *,
    replicas: int = 2,
    image: str = "registry.local/shop:1.0",
    active: str = "blue",
    idle_image: str | None = None,
    wait: bool = True,
) -> None:
    """Both colours, the live Service on `active` and the preview Service on the other, all Ready."""
    idle = "green" if active == "blue" else "blue"
    kube.create(deployment(name, active, replicas=replicas, image=image), namespace=namespace)
    kube.create(deployment(name, idle, replicas=replicas, image=idle_image or image), namespace=namespace)
    kube.create(service(name, name, active), namespace=namespace)
    kube.create(service(f"{name}-preview", name, idle), namespace=namespace)
    if wait:
        for color in (active, idle):
            wait_available(kube, namespace, f"{name}-{color}")


def wait_available(kube: Client, namespace: str, name: str, *, timeout: float = 60) -> Deployment:
    """The Deployment once its newest ReplicaSet has every replica updated and available."""
    deadline = time.monotonic() + timeout
    while True:
        found = kube.get(Deployment, name, namespace=namespace)
        spec, status = found.spec, found.status
        assert spec is not None and found.metadata is not None
        if status is not None and (status.observedGeneration or 0) >= (found.metadata.generation or 0):
            want = spec.replicas if spec.replicas is not None else 1
            if (
                (status.updatedReplicas or 0) == want
                and (status.availableReplicas or 0) == want
                and (status.replicas or 0) == want
            ):
                return found
        if time.monotonic() > deadline:
            raise AssertionError(f"deployment {namespace}/{name} not available after {timeout}s: {status}")
        time.sleep(0.1)


def ready_pod_ips(kube: Client, namespace: str, labels: Mapping[str, str]) -> set[str]:
    pods = kube.list(Pod, namespace=namespace, labels=dict(labels))
    return {
        p.status.podIP
        for p in pods
        if p.status
        and p.status.podIP
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    }


def endpoint_ips(kube: Client, namespace: str, service_name: str) -> set[str]:
    """Addresses the Service's EndpointSlices list as ready: where its traffic would go."""
    slices = kube.list(
        EndpointSlice, namespace=namespace, labels={"kubernetes.io/service-name": service_name}
    )
    return {
        address
        for s in slices
        for endpoint in s.endpoints or []
        if endpoint.conditions is None or endpoint.conditions.ready is not False
        for address in endpoint.addresses
    }


def service_account_kubeconfig(
    kube: Client, admin_kubeconfig: Path, namespace: str, account: str, out: Path
) -> Path:
    """A kubeconfig that authenticates as ServiceAccount `namespace/account` with a one-hour token."""
    try:
        kube.get(ServiceAccount, account, namespace=namespace)
    except ApiError as error:
        if error.status.code != 404:
            raise
        kube.create(ServiceAccount(metadata=ObjectMeta(name=account)), namespace=namespace)
    issued = kube.create(
        ServiceAccountToken(
            metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[], expirationSeconds=3600)
        ),
        account,
        namespace=namespace,
    )
    assert issued.status is not None
    admin = json.loads(admin_kubeconfig.read_text())
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": account,
        "clusters": [cluster],
        "users": [{"name": account, "user": {"token": issued.status.token}}],
        "contexts": [
            {
                "name": account,
                "context": {"cluster": cluster["name"], "user": account, "namespace": namespace},
            }
        ],
    }
    out.write_text(json.dumps(config))
    out.chmod(0o600)
    return out
