"""The Lease, the history patch and the Event as the plain JSON the switch path sends (issue 14: no
lightkube on that path): the same bodies lightkube's typed models sent before, compared here with
what those models encode to (lightkube is only imported by this test)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.models.core_v1 import ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.events_v1 import Event

import bluegreen.history
import bluegreen.lock
from bluegreen import history
from bluegreen.errors import ConflictError, NotFoundError
from bluegreen.lock import MODE, PREEMPTED_BY, PREEMPTIBLE, Lock, current_holder, micro_time, parsed_time
from bluegreen.model import AppSpec, RunInfo

MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
PATH = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/bluegreen-shop"
APP = AppSpec(name="shop", namespace="ns")


def encoded(model: Any) -> dict[str, Any]:
    """What lightkube sent for `model`: msgspec's JSON of it."""
    out: dict[str, Any] = json.loads(msgspec.json.encode(model))
    return out


def times_as_datetimes(body: dict[str, Any], *keys: str) -> dict[str, Any]:
    """`body` with the MicroTimes under `keys` (dotted) parsed: msgspec leaves out a fraction of 0."""
    out = copy.deepcopy(body)
    for key in keys:
        *parents, last = key.split(".")
        where = out
        for parent in parents:
            where = where[parent]
        if last in where:
            where[last] = parsed_time(where[last])
    return out


class Leases:
    """The Lease API of one namespace, with resourceVersions and 409s as the apiserver has them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lease: dict[str, Any] | None = None
        self.sent: list[tuple[str, dict[str, Any]]] = []
        monkeypatch.setattr(bluegreen.lock, "get_json", self.get_json)
        monkeypatch.setattr(bluegreen.lock, "write_json", self.write_json)

    def get_json(self, _kube: object, path: str) -> dict[str, Any]:
        assert path == PATH
        if self.lease is None:
            raise NotFoundError("not found")
        return copy.deepcopy(self.lease)

    def write_json(self, _kube: object, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.sent.append((method, copy.deepcopy(body)))
        if method == "POST":
            assert path == "/apis/coordination.k8s.io/v1/namespaces/ns/leases" and self.lease is None
        else:
            assert method == "PUT" and path == PATH and self.lease is not None
            if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
                raise ConflictError("the object has been modified")
        version = int((self.lease or {"metadata": {"resourceVersion": "0"}})["metadata"]["resourceVersion"])
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(version + 1)
        return copy.deepcopy(self.lease)


def test_micro_times_are_written_as_lightkube_wrote_them() -> None:
    when = datetime(2026, 12, 2, 7, 30, 0, 123456, tzinfo=UTC)
    assert micro_time(when) == "2026-12-02T07:30:00.123456Z" == msgspec.json.encode(when).decode().strip('"')
    assert parsed_time("2026-12-02T07:30:00.123456Z") == when
    assert parsed_time(None) is None and parsed_time("not a time") is None


def test_a_new_lease_is_created_as_lightkube_created_it(monkeypatch: pytest.MonkeyPatch) -> None:
    leases = Leases(monkeypatch)
    lock = Lock(None, APP, RunInfo(run_id="7"))  # type: ignore[arg-type]
    with lock.hold(preemptible=True):
        pass
    method, body = leases.sent[0]
    assert method == "POST"
    spec = body["spec"]
    assert MICRO.match(spec["acquireTime"]) and spec["renewTime"] == spec["acquireTime"]
    before = Lease(
        apiVersion="coordination.k8s.io/v1",
        kind="Lease",
        metadata=ObjectMeta(
            name="bluegreen-shop",
            labels={"app.kubernetes.io/managed-by": "bluegreen"},
            annotations={MODE: PREEMPTIBLE},
        ),
        spec=LeaseSpec(
            holderIdentity=lock.identity,
            leaseDurationSeconds=60,
            acquireTime=parsed_time(spec["acquireTime"]),
            renewTime=parsed_time(spec["renewTime"]),
            leaseTransitions=0,
        ),
    )
    keys = ("spec.acquireTime", "spec.renewTime")
    assert times_as_datetimes(body, *keys) == times_as_datetimes(encoded(before), *keys)


def test_take_renew_and_release_keep_the_guard_and_the_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    leases = Leases(monkeypatch)
    leases.lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "bluegreen-shop",
            "namespace": "ns",
            "resourceVersion": "41",
            "labels": {"app.kubernetes.io/managed-by": "bluegreen"},
            "annotations": {MODE: PREEMPTIBLE, PREEMPTED_BY: "an old rollback", "example.com/keep": "yes"},
        },
        "spec": {
            "holderIdentity": "a watch",
            "leaseDurationSeconds": 60,
            "acquireTime": "2026-12-02T07:00:00.000001Z",
            "renewTime": "2026-12-02T07:00:20.000001Z",
            "leaseTransitions": 4,
        },
    }
    lock = Lock(None, APP, RunInfo(run_id="rollback"))  # type: ignore[arg-type]
    with lock.hold(preempt=True):
        assert (current_holder(None, APP) or "").startswith(lock.identity)  # type: ignore[arg-type]
        lock._write(mode=None)  # a renewal, as the renewer thread sends it
    (take, taken), (renew, renewed), (release, released) = leases.sent
    assert (take, renew, release) == ("PUT", "PUT", "PUT")
    # The take: guarded by the version read, one more transition, the watch's mode gone, marked.
    assert taken["metadata"]["resourceVersion"] == "41"
    assert taken["metadata"]["annotations"] == {"example.com/keep": "yes", PREEMPTED_BY: lock.identity}
    assert taken["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "bluegreen"}
    assert taken["spec"]["holderIdentity"] == lock.identity and taken["spec"]["leaseTransitions"] == 5
    assert taken["spec"]["leaseDurationSeconds"] == 60
    assert (
        MICRO.match(taken["spec"]["acquireTime"])
        and taken["spec"]["acquireTime"] == taken["spec"]["renewTime"]
    )
    # The renewal: guarded by the version our take left, acquireTime kept, renewTime new.
    assert renewed["metadata"]["resourceVersion"] == "42"
    assert renewed["spec"]["acquireTime"] == taken["spec"]["acquireTime"]
    assert MICRO.match(renewed["spec"]["renewTime"]) and renewed["spec"]["leaseTransitions"] == 5
    # The release: guarded, the holder and renewTime cleared, the object and preempted-by kept.
    assert released["metadata"]["resourceVersion"] == "43"
    assert "holderIdentity" not in released["spec"] and "renewTime" not in released["spec"]
    assert released["spec"]["acquireTime"] == taken["spec"]["acquireTime"]
    assert released["metadata"]["annotations"] == {"example.com/keep": "yes", PREEMPTED_BY: lock.identity}
    assert current_holder(None, APP) is None  # type: ignore[arg-type]


def test_current_holder_describes_the_lease_as_read(monkeypatch: pytest.MonkeyPatch) -> None:
    leases = Leases(monkeypatch)
    assert current_holder(None, APP) is None  # type: ignore[arg-type]
    leases.lease = {
        "metadata": {"resourceVersion": "3", "annotations": {MODE: PREEMPTIBLE}},
        "spec": {
            "holderIdentity": "run 9",
            "leaseDurationSeconds": 60,
            "acquireTime": "2026-12-02T07:00:00.123456Z",
            "renewTime": "2026-12-02T07:00:40.654321Z",
        },
    }
    assert current_holder(None, APP) == (  # type: ignore[arg-type]
        "run 9 since 2026-12-02T07:00:00+00:00, last renewed 2026-12-02T07:00:40+00:00 by its clock"
        " (a watch: a rollback takes it over)"
    )


def test_the_event_is_posted_as_lightkube_posted_it(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, str, dict[str, Any]]] = []

    def write_json(_kube: object, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        sent.append((method, path, body))
        return body

    monkeypatch.setattr(bluegreen.history, "write_json", write_json)
    history.event(None, APP, reason="RolledBack", note="x" * 2000, warning=True)  # type: ignore[arg-type]
    [(method, path, body)] = sent
    assert (method, path) == ("POST", "/apis/events.k8s.io/v1/namespaces/ns/events")
    assert MICRO.match(body["eventTime"])
    before = Event(
        apiVersion="events.k8s.io/v1",
        kind="Event",
        metadata=ObjectMeta(generateName="shop.bluegreen-", namespace="ns"),
        eventTime=parsed_time(body["eventTime"]),  # type: ignore[arg-type]
        reportingController="bluegreen.io/bluegreen",
        reportingInstance=body["reportingInstance"],
        action="RolledBack",
        reason="RolledBack",
        note="x" * 1024,
        type="Warning",
        regarding=ObjectReference(apiVersion="v1", kind="Service", name="shop", namespace="ns"),
    )
    assert times_as_datetimes(body, "eventTime") == times_as_datetimes(encoded(before), "eventTime")


def test_the_history_is_a_merge_patch_guarded_by_the_version_read(monkeypatch: pytest.MonkeyPatch) -> None:
    patched: list[tuple[str, Any, str]] = []
    versions = iter(["5", "6"])

    def get_json(_kube: object, path: str) -> dict[str, Any]:
        assert path == "/api/v1/namespaces/ns/services/shop"
        return {
            "metadata": {"resourceVersion": next(versions), "annotations": {history.SWITCHING_TO: "green"}}
        }

    def patch_json(_kube: object, path: str, body: Any, *, patch: str) -> dict[str, Any]:
        patched.append((path, body, patch))
        if len(patched) == 1:
            raise ConflictError("the object has been modified")  # another writer: read again
        return {}

    monkeypatch.setattr(bluegreen.history, "get_json", get_json)
    monkeypatch.setattr(bluegreen.history, "patch_json", patch_json)
    history.clear_intent(None, APP)  # type: ignore[arg-type]
    body = {"metadata": {"resourceVersion": "6", "annotations": {history.SWITCHING_TO: None}}}
    assert patched[1] == ("/api/v1/namespaces/ns/services/shop", body, "merge")
    assert patched[0][1]["metadata"]["resourceVersion"] == "5"


def test_the_lock_and_the_history_import_no_client_library() -> None:
    """In a fresh interpreter, with the client seam (bluegreen.kube, the lead's to make lean) stood
    in for: importing lock and history loads neither lightkube nor its HTTP stack nor msgspec."""
    code = (
        "import json, sys, types\n"
        "seam = types.ModuleType('bluegreen.kube')\n"
        "for name in ('call', 'found', 'get_json', 'write_json', 'patch_json'):\n"
        "    setattr(seam, name, None)\n"
        "sys.modules['bluegreen.kube'] = seam\n"
        "import bluegreen.history, bluegreen.lock\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert {"lightkube", "httpx2", "msgspec"} & set(json.loads(out.stdout)) == set()
