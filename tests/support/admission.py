"""A cluster admission policy that refuses one Service's writes: how the tests make the apiserver
refuse a write that bluegreen sends (a webhook or policy in a user's cluster does the same)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from lightkube import ApiError, Client, codecs
from lightkube.resources.admissionregistration_v1 import (
    ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
)
from lightkube.resources.core_v1 import Service
from lightkube.types import PatchType


@contextmanager
def refusing(kube: Client, namespace: str, service: str, expression: str, name: str) -> Iterator[None]:
    """A ValidatingAdmissionPolicy refusing UPDATEs of one Service for which the CEL `expression`
    (over `object` and `oldObject`) is true: a cluster policy that lets one write through and not the
    next. Deleted on leaving."""
    policy = codecs.from_dict(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["UPDATE"],
                            "resources": ["services"],
                        }
                    ]
                },
                "matchConditions": [
                    {"name": "the-service", "expression": f"object.metadata.name == '{service}'"}
                ],
                "validations": [
                    {
                        "expression": f"!({expression}) && !(has(object.metadata.labels) && "
                        f"'{PROBE_LABEL}' in object.metadata.labels)",
                        "message": f"refused by test policy {name}",
                    }
                ],
            },
        }
    )
    binding = codecs.from_dict(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        }
    )
    kube.create(policy)
    kube.create(binding)
    try:
        yield
    finally:
        kube.delete(ValidatingAdmissionPolicyBinding, name)
        kube.delete(ValidatingAdmissionPolicy, name)
        wait_refusing(kube, namespace, service, refused=False)  # unloaded as asynchronously as loaded


PROBE_LABEL = "bluegreen.test/refuse-probe"


def wait_refusing(
    kube: Client, namespace: str, service: str, *, refused: bool = True, timeout: float = 30
) -> None:
    """Until the policy is in force (`refused`) or gone: the apiserver loads and unloads policies
    asynchronously. The probe is a dry-run patch adding the probe label, which every such policy refuses."""
    probe = {"metadata": {"labels": {PROBE_LABEL: "1"}}}
    deadline = time.monotonic() + timeout
    while True:
        try:
            kube.patch(Service, service, probe, namespace=namespace, patch_type=PatchType.MERGE, dry_run=True)
            if not refused:
                return
        except ApiError:
            if refused:
                return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the admission policy {'never took effect' if refused else 'stayed in force'}"
            )
        time.sleep(0.2)
