"""Data safety on a real PostgreSQL: expand before deploy, contract only once the old release is gone.

A throwaway PostgreSQL (tests/support/postgres.py) on a Unix socket, and the sample app's two versions
as real processes writing and reading it without pause (tests/support/pgapp.py): version 1 knows the
column `name`; version 2 writes `full_name` and reads rows of both versions. The bluegreen phases run
against the session's real local cluster, as `bluegreen` commands, with the hooks as argument lists
running the real psql against the real database.

Without PostgreSQL the tests are skipped saying why; BLUEGREEN_REQUIRE_TRAFFIC=1 (CI) fails them
instead, like the traffic rig's tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Service

from bluegreen import report
from bluegreen.cli import Outcome, execute
from bluegreen.history import MIGRATIONS
from hack.localcluster import LocalCluster
from tests.support.apps import create_app
from tests.support.postgres import Postgres, PostgresUnavailable, unavailable

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]

SCHEMA_V1 = """
CREATE TABLE people (id bigserial PRIMARY KEY, name text NOT NULL, writer text NOT NULL);
CREATE INDEX people_writer ON people (writer, id);
"""
# Expand: only adds. The trigger keeps both columns filled whichever version writes, so version 1
# keeps working beside version 2, and a rollback needs no down migration. Safe to run again.
EXPAND = """
ALTER TABLE people ADD COLUMN IF NOT EXISTS full_name text;
CREATE OR REPLACE FUNCTION people_sync_names() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.full_name IS NULL THEN NEW.full_name := NEW.name; END IF;
  IF NEW.name IS NULL THEN NEW.name := NEW.full_name; END IF;
  RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER people_sync_names BEFORE INSERT OR UPDATE ON people
  FOR EACH ROW EXECUTE FUNCTION people_sync_names();
UPDATE people SET full_name = name WHERE full_name IS NULL;
"""
# Contract: removes what only version 1 needed. Safe to run again.
CONTRACT = """
DROP TRIGGER IF EXISTS people_sync_names ON people;
DROP FUNCTION IF EXISTS people_sync_names();
ALTER TABLE people ALTER COLUMN full_name SET NOT NULL;
ALTER TABLE people DROP COLUMN IF EXISTS name;
"""
# An expand that fails half-way: its first statement would add a column; the whole file is one
# transaction (psql --single-transaction), so nothing of it stays.
BROKEN_EXPAND = """
ALTER TABLE people ADD COLUMN IF NOT EXISTS nickname text;
UPDATE people SET nickname = substr(name, 1, 1);
SELECT 1 / 0;
"""


def not_here(reason: str) -> None:
    if os.environ.get("BLUEGREEN_REQUIRE_TRAFFIC") == "1":
        pytest.fail(f"BLUEGREEN_REQUIRE_TRAFFIC=1, but the PostgreSQL tests cannot run: {reason}")
    pytest.skip(f"no PostgreSQL here: {reason}")


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    reason = unavailable()
    if reason:
        not_here(reason)
    server = Postgres()
    try:
        server.up()
    except (PostgresUnavailable, subprocess.CalledProcessError) as error:
        server.down()
        not_here(f"the test cluster did not start: {error}")
    try:
        server.psql(SCHEMA_V1)
        yield server
    finally:
        server.down()
    assert not server.root.exists(), "the PostgreSQL test cluster's directory was left behind"


def write_config(directory: Path, postgres: Postgres, *, expand: str = EXPAND) -> Path:
    """bluegreen.yaml with the hooks: psql as an argument list, its connection given in `env`."""
    for name, sql in (("expand.sql", expand), ("contract.sql", CONTRACT)):
        (directory / name).write_text(sql)

    def hook(sql: str) -> dict[str, Any]:
        return {
            "command": [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "--single-transaction",
                "-f",
                str(directory / sql),
            ],
            "timeout": "60s",
            "env": postgres.env(),
        }

    config = {
        "app": "shop",
        "checks": [{"name": "pods", "kind": "kubernetes"}],
        "gate": {"min-healthy": "1s", "interval": "0.5s"},
        "migrations": {"expand": hook("expand.sql"), "contract": hook("contract.sql")},
    }
    path = directory / "bluegreen.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


@dataclass
class Writer:
    """One version of the sample app, as a process, and what it logged."""

    version: int
    log: Path
    process: subprocess.Popen[bytes]
    marks: list[int] = field(default_factory=list)

    @classmethod
    def start(cls, version: int, directory: Path, postgres: Postgres) -> Writer:
        log = directory / f"v{version}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.pgapp", "--version", str(version), "--log", str(log)],
            cwd=ROOT,
            env={**os.environ, **postgres.env()},
            stdin=subprocess.DEVNULL,
        )
        return cls(version, log, process)

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def writes(self) -> dict[int, str]:
        return {int(p[1]): p[2] for p in (line.split(" ", 2) for line in self.lines()) if p[0] == "W"}

    def counts(self) -> tuple[int, int, list[str]]:
        """(acknowledged writes, good reads, failures)."""
        lines = self.lines()
        return (
            sum(1 for line in lines if line.startswith("W ")),
            sum(1 for line in lines if line == "R"),
            [line for line in lines if line.startswith("F ")],
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        assert self.lines()[-1:] == ["END"], f"v{self.version} did not end its last round cleanly"


class Steps:
    """The writers through the release: after each step, each running writer must make progress
    (a number of new writes and reads under the new state) with no failure at all."""

    PROGRESS = 15  # new writes per running version after each step
    LONGEST = 60.0  # seconds a writer gets to make that progress

    def __init__(self) -> None:
        self.writers: list[Writer] = []
        self.table: list[tuple[str, dict[str, tuple[int, int, int]]]] = []

    def settle(self, step: str) -> None:
        running = [w for w in self.writers if w.process.poll() is None]
        start = {w.version: w.counts()[0] for w in running}
        deadline = time.monotonic() + self.LONGEST
        while any(w.counts()[0] < start[w.version] + self.PROGRESS for w in running):
            assert time.monotonic() < deadline, f"after {step}: a writer made no progress"
            for w in running:
                assert w.process.poll() is None, f"after {step}: v{w.version} exited"
            time.sleep(0.1)
        row = {}
        for w in self.writers:
            writes, reads, failures = w.counts()
            assert failures == [], f"after {step}: v{w.version} failed: {failures[:5]}"
            row[f"v{w.version}"] = (writes, reads, len(failures))
        self.table.append((step, row))


def ok(outcome: Outcome, step: str) -> None:
    assert outcome.exit_code == 0, f"{step}: exit {outcome.exit_code}: {outcome.error}"


def refused(outcome: Outcome) -> str:
    assert outcome.exit_code == 1, f"contract was not refused: exit {outcome.exit_code} {outcome.result}"
    assert outcome.error is not None
    return f"{outcome.error.message} -- {outcome.error.remedy}"


def checksum(rows: dict[int, str]) -> tuple[int, str]:
    text = "\n".join(f"{k}:{rows[k]}" for k in sorted(rows))
    return len(rows), hashlib.sha256(text.encode()).hexdigest()


def test_expand_switch_rollback_retire_contract_under_continuous_writes(
    cluster: LocalCluster, kube: Client, namespace: str, postgres: Postgres, tmp_path: Path
) -> None:
    config = write_config(tmp_path, postgres)

    def bg(*args: str) -> Outcome:
        where = ["--app", "shop", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
        return execute([*args, *where])

    create_app(kube, namespace, "shop", image="registry.local/shop:1.0")  # v1 live on blue
    steps = Steps()
    steps.writers.append(v1 := Writer.start(1, tmp_path, postgres))
    try:
        steps.settle("v1 alone on blue")

        ok(bg("migrate", "expand", "--config", str(config), "--release", "v2"), "expand")
        assert postgres.columns("people") == ["id", "name", "writer", "full_name"]
        steps.settle("expand")

        ok(bg("deploy", "--image", "registry.local/shop:2.0"), "deploy v2 to green")
        steps.writers.append(v2 := Writer.start(2, tmp_path, postgres))
        steps.settle("deploy v2 to green")

        ok(bg("gate", "--config", str(config)), "gate")
        why = refused(bg("migrate", "contract", "--config", str(config), "--release", "v2"))
        assert "shop-green has 2 replicas" in why and "bluegreen retire" in why
        steps.settle("gate (contract refused)")

        ok(bg("switch", "--config", str(config), "--reason", "v2"), "switch to v2")
        why = refused(bg("migrate", "contract", "--config", str(config), "--release", "v2"))
        assert "shop-blue has 2 replicas" in why and "a rollback" in why
        steps.settle("switch to green (contract refused)")

        ok(bg("rollback", "--reason", "drill"), "rollback to v1")
        refused(bg("migrate", "contract", "--config", str(config), "--release", "v2"))
        steps.settle("rollback to blue (contract refused)")

        # The rolled-back release is rejected: going back to it is a deliberate, recorded --force.
        ok(bg("switch", "--to", "green", "--force", "--reason", "v2 again after the drill"), "switch again")
        refused(bg("migrate", "contract", "--config", str(config), "--release", "v2"))
        assert postgres.columns("people") == ["id", "name", "writer", "full_name"]
        steps.settle("switch to green again (contract refused)")

        ok(bg("retire"), "retire v1")
        v1.stop()  # its pods are gone: the old version no longer runs anywhere
        steps.settle("retire blue")

        ok(bg("migrate", "contract", "--config", str(config), "--release", "v2"), "contract")
        assert postgres.columns("people") == ["id", "writer", "full_name"]
        steps.settle("contract")

        # v1 needs the column contract removed: a rollback to it is refused, and blue stays retired.
        back = bg("rollback", "--reason", "too late")
        assert back.exit_code == 1 and back.error is not None
        assert "contract ran for release v2" in back.error.message and "Roll forward" in back.error.remedy
        blue = kube.get(Deployment, "shop-blue", namespace=namespace)
        assert blue.spec is not None and blue.spec.replicas == 0
        steps.settle("rollback after contract (refused)")
    finally:
        for w in steps.writers:
            w.stop()

    for step, row in steps.table:
        print(
            f"{step:45} " + "  ".join(f"{v}: {w} writes {r} reads {f} failed" for v, (w, r, f) in row.items())
        )
    acknowledged = {**v1.writes(), **v2.writes()}
    lines = postgres.psql("SELECT id, full_name FROM people").splitlines()
    stored = {int(i): value for i, value in (line.split("|", 1) for line in lines)}
    assert checksum(stored) == checksum(acknowledged), "rows were lost or changed"
    assert len(v1.writes()) > 0 and len(v2.writes()) > 0
    print(
        f"rows: {len(stored)} (v1 {len(v1.writes())}, v2 {len(v2.writes())}); sha256 {checksum(stored)[1][:16]}"
    )

    service = kube.get(Service, "shop", namespace=namespace)
    assert service.metadata is not None and service.metadata.annotations is not None
    runs = json.loads(service.metadata.annotations[MIGRATIONS])
    assert [(r["hook"], r["outcome"]) for r in reversed(runs)] == [
        ("expand", "succeeded"),
        *[("contract", "refused")] * 4,
        ("contract", "succeeded"),
    ]
    assert all(r["release"] == "v2" for r in runs) and runs[0]["seconds"] > 0
    status = bg("status")
    assert status.result is not None
    assert "last migration: contract succeeded for release v2" in report.text(status.result)


def test_a_failing_expand_leaves_the_schema_and_the_idle_colour_as_they_were(
    cluster: LocalCluster, kube: Client, namespace: str, postgres: Postgres, tmp_path: Path
) -> None:
    config = write_config(tmp_path, postgres, expand=BROKEN_EXPAND)
    create_app(kube, namespace, "shop", image="registry.local/shop:1.0")
    postgres.psql("INSERT INTO people (name, writer) VALUES ('ada', 'v1'), ('grace', 'v1')")
    before = kube.get(Deployment, "shop-green", namespace=namespace)
    outcome = execute(
        [
            *("migrate", "expand", "--config", str(config), "--app", "shop", "-n", namespace),
            *("--kubeconfig", str(cluster.kubeconfig), "-o", "json"),
        ]
    )
    assert outcome.exit_code == 1 and outcome.result is not None
    assert outcome.result.result == "failed"
    text = "\n".join(outcome.result.messages)
    assert "psql exited with code 3" in text and "division by zero" in text
    assert "nothing was deployed" in text
    assert postgres.columns("people") == ["id", "name", "writer"]
    assert postgres.psql("SELECT count(*) FROM people") == "2"
    after = kube.get(Deployment, "shop-green", namespace=namespace)
    assert before.metadata is not None and after.metadata is not None
    assert after.metadata.resourceVersion == before.metadata.resourceVersion


def test_without_postgresql_these_tests_skip_saying_why_and_fail_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BLUEGREEN_REQUIRE_TRAFFIC", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL here: initdb is missing"):
        not_here("initdb is missing")
    monkeypatch.setenv("BLUEGREEN_REQUIRE_TRAFFIC", "1")
    with pytest.raises(pytest.fail.Exception, match="BLUEGREEN_REQUIRE_TRAFFIC=1, but the PostgreSQL tests"):
        not_here("initdb is missing")
