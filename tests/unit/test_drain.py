"""The drain check: which pod templates and strategies make an app drop requests as its pods stop."""

from __future__ import annotations

from typing import Any

import pytest

from bluegreen.config import parse
from bluegreen.drain import check, prestop_seconds, unavailable_during_update
from bluegreen.errors import ConfigError


def deployment(
    *,
    probe: bool = True,
    prestop: dict[str, Any] | None = None,
    grace: int | None = 30,
    strategy: dict[str, Any] | None = None,
    replicas: int = 4,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "web", "image": "shop:1"}
    if probe:
        container["readinessProbe"] = {"httpGet": {"path": "/ready", "port": 8080}}
    if prestop is not None:
        container["lifecycle"] = {"preStop": prestop}
    pod: dict[str, Any] = {"containers": [container]}
    if grace is not None:
        pod["terminationGracePeriodSeconds"] = grace
    spec: dict[str, Any] = {"replicas": replicas, "template": {"spec": pod}}
    spec["strategy"] = strategy or {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}
    return {"spec": spec}


def fields(found: list[Any]) -> list[str]:
    return [f.field for f in found]


def test_the_documented_settings_pass() -> None:
    app = deployment(prestop={"sleep": {"seconds": 5}}, grace=30)
    assert check(app, longest_request=10) == []


def test_an_app_with_no_drain_gets_every_warning_with_its_field_and_fix() -> None:
    app = deployment(probe=False, prestop=None, grace=2, strategy={"type": "RollingUpdate"})
    found = check(app, longest_request=5)
    assert fields(found) == [
        "spec.template.spec.containers[web].readinessProbe",
        "spec.template.spec.containers[].lifecycle.preStop",
        "spec.template.spec.terminationGracePeriodSeconds",
        "spec.strategy.rollingUpdate.maxUnavailable",
    ]
    assert all(f.fix for f in found)
    assert "preStop.sleep.seconds: 5" in str(found[1])
    assert "at least 10" in str(found[2])


def test_grace_shorter_than_prestop_plus_the_longest_request_is_named() -> None:
    app = deployment(prestop={"sleep": {"seconds": 5}}, grace=30)
    assert fields(check(app, longest_request=26)) == ["spec.template.spec.terminationGracePeriodSeconds"]
    assert check(app, longest_request=25) == []


def test_an_unset_grace_period_is_kubernetes_default_30s() -> None:
    app = deployment(prestop={"sleep": {"seconds": 5}}, grace=None)
    assert check(app, longest_request=25) == []
    assert len(check(app, longest_request=26)) == 1


@pytest.mark.parametrize(
    ("hook", "seconds"),
    [
        ({"sleep": {"seconds": 5}}, 5.0),
        ({"exec": {"command": ["sleep", "7"]}}, 7.0),
        ({"exec": {"command": ["/bin/sh", "-c", "sleep 3"]}}, 3.0),
        ({"exec": {"command": ["/app/drain"]}}, 0.0),
        ({"httpGet": {"path": "/drain", "port": 8080}}, 0.0),
    ],
)
def test_prestop_delay_is_read_from_sleep_hooks(hook: dict[str, Any], seconds: float) -> None:
    assert prestop_seconds({"lifecycle": {"preStop": hook}}) == seconds


def test_no_prestop_is_none() -> None:
    assert prestop_seconds({"name": "web"}) is None


@pytest.mark.parametrize(
    ("strategy", "replicas", "down"),
    [
        ({"type": "RollingUpdate"}, 4, 1),  # the default 25 % of 4
        ({"type": "RollingUpdate"}, 3, 0),  # 25 % of 3 rounds down
        ({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%"}}, 4, 2),
        ({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}, 4, 0),
        ({"type": "Recreate"}, 4, 4),
    ],
)
def test_pods_down_during_an_update(strategy: dict[str, Any], replicas: int, down: int) -> None:
    app = deployment(strategy=strategy, replicas=replicas)
    assert unavailable_during_update(app) == down


def test_a_new_idle_deployment_has_no_serving_pods_to_take_down() -> None:
    app = deployment(prestop={"sleep": {"seconds": 5}}, strategy={"type": "Recreate"})
    assert fields(check(app, updates_serving_pods=True)) == ["spec.strategy.type"]
    assert check(app, updates_serving_pods=False) == []


def test_bluegreen_yaml_sets_the_drain_check_and_the_longest_request() -> None:
    config = parse("gate: {drain-check: refuse, max-request: 20s}")
    assert (config.gate.drain_check, config.gate.max_request) == ("refuse", 20.0)
    assert parse("").gate.drain_check == "warn"
    with pytest.raises(ConfigError, match="drain-check"):
        parse("gate: {drain-check: loud}")
