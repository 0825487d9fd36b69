"""The published CRDs (hack/crds/) installed once per test session, so the apiserver's own schema
validates every patch the routers send; plus an app ready for any router to move."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

from bluegreen.model import AppSpec
from tests.support.apps import create_app

CRDS = Path(__file__).resolve().parents[3] / "hack" / "crds"


def install_crds(kube: Client, *, timeout: float = 60) -> list[str]:
    names: list[str] = []
    for path in sorted(CRDS.glob("*.yaml")):
        for loaded in codecs.load_all_yaml(path.read_text()):
            crd: Any = loaded  # lightkube's stubs type this as generic resources only
            assert crd.kind == "CustomResourceDefinition" and crd.metadata is not None
            kube.apply(crd, field_manager="bluegreen-tests", force=True)
            names.append(crd.metadata.name or "")
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            found = kube.get(CustomResourceDefinition, name)
            conditions = found.status.conditions if found.status else None
            if any(c.type == "Established" and c.status == "True" for c in conditions or []):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"CRD {name} not Established after {timeout}s")
            time.sleep(0.1)
    return names


@pytest.fixture(scope="session")
def crds(kube: Client) -> list[str]:
    return install_crds(kube)


@pytest.fixture
def app(kube: Client, namespace: str, crds: list[str]) -> AppSpec:
    """App `shop` in a fresh namespace: both colours Ready, Service `shop` on blue."""
    create_app(kube, namespace, "shop", replicas=1)
    return AppSpec(name="shop", namespace=namespace)
