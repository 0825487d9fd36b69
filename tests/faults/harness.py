"""What every fault test shares: the CLI as a real process, the apps it acts on, the invariants, the table.

A fault row is one injected fault: the app is set up in a namespace of its own, the command runs as a
subprocess (real sockets, real signals) while the fault happens, then the invariants are read from the
cluster directly (not through any proxy):

- traffic on exactly one colour whose pods are ready: the live Service's selector names blue or green,
  and its EndpointSlices list exactly that colour's ready pods (for a group: every member on one side);
- the history agrees with the router: the `bluegreen.io/active-color` annotation names the selector's
  colour;
- the Lease is free, or held by the dead run and expiring (never renewed again);
- the command ended within its bound, with an exit code that says what happened (0 only when the goal
  state holds; 1 refused, 3 API error; 143 after SIGTERM; never a traceback);
- the next run of the same command works and leaves the state the command is for (a re-run of
  `switch` keeps the candidate live; a re-run of `rollback` leaves the previous release live).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lightkube import ApiError, Client
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import Namespace, Service

from tests.support.apps import create_app, endpoint_ips, ready_pod_ips, wait_available

OLD_IMAGE = "registry.local/shop:1.0"
NEW_IMAGE = "registry.local/shop:2.0"
GROUP = ("cart", "web")
ACTIVE = "bluegreen.io/active-color"
BOUND_S = 120.0  # the longest any faulted command may run (a stalled API costs ~60 s: 10 s per try)
WIDTH = 6  # rows run at once: most of a row is waiting (for rollouts, timeouts, an expiring Lease)
TERM_BOUND_S = 5.0  # from SIGTERM to exit: the safe-point budget
SET_UP_WAIT = 180.0  # seconds a scene's app may take to be available (set_up_app)


# -- what the engine on this branch cannot do yet ------------------------------------------------
#
# Issue 10's semantics land on main from other branches. Until one is there, the rows that need it
# fail, and say so: the tests needing it are strict xfails (an unexpected pass fails the run), and
# the marker lifts itself once the engine has the module that brings the behaviour.

BEHAVIOURS = {
    "intent": (
        "bluegreen.intent",
        "issue 10 items 1 and 4: `switch` promotes the recorded candidate (a re-run is a noop, never "
        "a flip back) and one write moves traffic and records the history",
    ),
    "cancel": (
        "bluegreen.cancel",
        "issue 10 item 3: SIGTERM stops at a safe point within 5 s, exits 143, releases the Lease",
    ),
}


def has(behaviour: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(BEHAVIOURS[behaviour][0]) is not None


def engine_bug(reason: str) -> pytest.MarkDecorator:
    """A row the engine on main gets wrong, reported to be fixed there; strict: a fix lifts it."""
    return pytest.mark.xfail(strict=True, reason=f"engine bug, reported: {reason}")


def needs(*behaviours: str) -> pytest.MarkDecorator:
    """xfail (strict) while the engine lacks any of `behaviours`; nothing once it has them all."""
    missing = [b for b in behaviours if not has(b)]
    return pytest.mark.xfail(
        bool(missing), strict=True, reason="not merged yet: " + "; ".join(BEHAVIOURS[b][1] for b in missing)
    )


# -- the CLI as a process --------------------------------------------------------------------------


@dataclass
class Run:
    argv: list[str]
    exit_code: int | None  # None: still running when its bound passed (then killed)
    elapsed: float
    stdout: str
    stderr: str
    killed_by: int | None = None  # the signal that ended it unhandled (exit_code is then 128+N)

    def describe(self) -> str:
        lines = self.stderr.strip().splitlines()
        crash = next((i for i, line in enumerate(lines) if line.startswith("Current thread")), None)
        # A crash (PYTHONFAULTHANDLER): where the crashing thread was, not the main thread's last frames.
        tail = lines[crash : crash + 5] if crash is not None else lines[-3:]
        return f"exit {self.exit_code} after {self.elapsed:.1f}s: {' | '.join(tail)}"

    @property
    def crashed(self) -> bool:
        """A Python traceback or an 'unexpected' error: a bug, whatever the exit code."""
        return "Traceback (most recent call last)" in self.stderr or "unexpected " in self.stderr


def cli_argv(command: Sequence[str], kubeconfig: Path) -> list[str]:
    return [sys.executable, "-m", "bluegreen.cli", *command, "--kubeconfig", str(kubeconfig)]


class Cli:
    """One `bluegreen` process; `.pid` is known as soon as it starts, so a hook can signal it."""

    def __init__(self, command: Sequence[str], kubeconfig: Path) -> None:
        self.argv = cli_argv(command, kubeconfig)
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # A segfault prints every thread's stack (faulthandler), so a crash says where it was.
            env={**os.environ, "GITHUB_RUN_ID": "", "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"},
        )
        self.signalled: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int = signal.SIGTERM) -> None:
        if self.signalled is None:
            self.signalled = time.monotonic()
        self.process.send_signal(signum)

    def wait(self, bound: float = BOUND_S) -> Run:
        try:
            out, err = self.process.communicate(timeout=bound)
            code: int | None = self.process.returncode
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
            code = None
        ended = time.monotonic()
        killed_by = -code if code is not None and code < 0 else None
        code = 128 + killed_by if killed_by else code  # as a shell reports it
        return Run(self.argv, code, ended - self.started, out, err, killed_by)


def run_cli(command: Sequence[str], kubeconfig: Path, bound: float = BOUND_S) -> Run:
    return Cli(command, kubeconfig).wait(bound)


def kubeconfig_via(cluster_kubeconfig: Path, port: int, out: Path) -> Path:
    """The cluster's kubeconfig with its server moved to 127.0.0.1:`port` (a proxy in front of it)."""
    config = json.loads(cluster_kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    out.write_text(json.dumps(config))
    out.chmod(0o600)
    return out


# -- apps ------------------------------------------------------------------------------------------

COMMANDS = ("deploy", "switch", "rollback", "group switch")


def command_args(command: str, namespace: str, config: Path | None = None) -> list[str]:
    """The command as a release workflow's job runs it (switch with no --to: promote the candidate)."""
    if command == "deploy":
        return ["deploy", "--app", "shop", "-n", namespace, "--image", NEW_IMAGE, "--timeout", "60s"]
    if command == "switch":
        return ["switch", "--app", "shop", "-n", namespace]
    if command == "rollback":
        return ["rollback", "--app", "shop", "-n", namespace]
    if command == "group switch":
        assert config is not None
        return ["group", "switch", "--group", "storefront", "--config", str(config), "--timeout", "30s"]
    raise ValueError(command)


@dataclass
class Scene:
    """One app (or group) in its own namespace, set up so that `command` has work to do."""

    command: str
    namespace: str
    kubeconfig: Path  # direct to the apiserver: for set-up and the next run
    config: Path | None = None
    flags: tuple[str, ...] = ()  # given to every run of the command (--router, --config, --probe)
    router: str = "service"  # what carries traffic: the live Service's selector, or the Ingress

    @property
    def apps(self) -> tuple[str, ...]:
        return GROUP if self.command == "group switch" else ("shop",)

    def args(self, *extra: str) -> list[str]:
        return [*command_args(self.command, self.namespace, self.config), *self.flags, *extra]

    @property
    def goal(self) -> str:
        """The colour traffic must be on once the command has done its job."""
        return "blue" if self.command in ("deploy", "rollback") else "green"


def new_namespace(kube: Client, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kube.create(Namespace(metadata=ObjectMeta(name=name, labels={"bluegreen.test/ns": "true"})))
    return name


def set_up(kube: Client, command: str, kubeconfig: Path, workdir: Path, prefix: str) -> Scene:
    """Blue live; green deployed with the new release by `bluegreen deploy` (the recorded candidate).

    For `deploy`, green still runs the old release; for `rollback`, `bluegreen switch` has moved
    traffic to green, so blue is the previous release to go back to. Only the CLI changes colours.
    """
    namespace = new_namespace(kube, prefix)
    scene = Scene(command, namespace, kubeconfig)
    if command == "group switch":
        for app in GROUP:
            set_up_app(kube, namespace, app, replicas=1)
        for app in GROUP:  # each member's candidate, as the release workflow deploys them
            set_up_cli(["deploy", "--app", app, "-n", namespace, "--image", NEW_IMAGE], kubeconfig)
        scene.config = workdir / f"{namespace}.yaml"
        scene.config.write_text(
            f"groups:\n  - name: storefront\n    namespace: {namespace}\n    members: [{', '.join(GROUP)}]\n"
        )
        return scene
    set_up_app(kube, namespace, "shop", replicas=2)
    who = ["--app", "shop", "-n", namespace]
    if command in ("switch", "rollback"):
        set_up_cli(["deploy", *who, "--image", NEW_IMAGE, "--timeout", "60s"], kubeconfig)
    if command == "rollback":
        must(run_cli(["switch", *who], kubeconfig))
    return scene


def set_up_app(kube: Client, namespace: str, app: str, *, replicas: int) -> None:
    """The app, both colours available, waited for longer than a test waits: a set-up is not under test,
    and after test_apiserver.py kills its cluster's apiserver, kwok's watches took 56 s to catch up
    once on CI (the pods of the next row's set-up were made ready then, past a 60 s wait)."""
    create_app(kube, namespace, app, replicas=replicas, wait=False)
    for color in ("blue", "green"):
        wait_available(kube, namespace, f"{app}-{color}", timeout=SET_UP_WAIT)


def must(run: Run) -> Run:
    if run.exit_code != 0:
        raise AssertionError(f"set-up command failed: {' '.join(run.argv[3:])}: {run.describe()}")
    return run


def set_up_cli(argv: list[str], kubeconfig: Path) -> Run:
    """A set-up command, asked once more if it failed: a set-up is not under test, and on a loaded
    2-core CI machine kwok's rollout once exceeded the test app's 30 s progress deadline."""
    first = run_cli(argv, kubeconfig)
    return first if first.exit_code == 0 else must(run_cli(argv, kubeconfig))


# -- invariants ------------------------------------------------------------------------------------


def _service(kube: Client, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kube.get(Service, name, namespace=namespace).to_dict()
    return found


def traffic(kube: Client, namespace: str, app: str, *, settle: float = 15.0) -> tuple[str | None, list[str]]:
    """The colour the live Service sends traffic to, and what is wrong with it (empty: all fine).

    EndpointSlices follow a selector change within a moment; a run cut right after its write may
    leave them converging, so they get `settle` seconds."""
    deadline = time.monotonic() + settle
    while True:
        svc = _service(kube, namespace, app)
        color = (svc["spec"].get("selector") or {}).get("bluegreen.io/color")
        if color not in ("blue", "green"):
            return None, [f"{app}: the Service selects no single colour ({svc['spec'].get('selector')})"]
        pods = ready_pod_ips(kube, namespace, {"app.kubernetes.io/name": app, "bluegreen.io/color": color})
        endpoints = endpoint_ips(kube, namespace, app)
        if pods and endpoints == pods:
            return color, []
        if time.monotonic() > deadline:
            return color, [
                f"{app}: selector {color}, but the EndpointSlices list {sorted(endpoints)} "
                f"and the ready {color} pods are {sorted(pods)}"
            ]
        time.sleep(0.25)


def ingress_traffic(kube: Client, namespace: str, app: str) -> tuple[str | None, list[str]]:
    """The colour the app's Ingress sends traffic to (its backend `<app>-<colour>`), and what is wrong."""
    from lightkube.resources.networking_v1 import Ingress

    found: dict[str, Any] = kube.get(Ingress, app, namespace=namespace).to_dict()
    paths = [
        p for rule in found["spec"].get("rules") or [] for p in (rule.get("http") or {}).get("paths") or []
    ]
    names = {p["backend"]["service"]["name"] for p in paths if p["path"] == "/"}
    colors = {name.removeprefix(f"{app}-") for name in names}
    if len(colors) != 1 or not colors <= {"blue", "green"}:
        return None, [f"{app}: the Ingress's / backends are {sorted(names)}, not one colour Service"]
    return colors.pop(), []


def history_problem(kube: Client, namespace: str, app: str, color: str | None) -> str | None:
    """What is wrong with the recorded history, given the colour the router reads (None: it agrees).

    Scenes start on blue with nothing recorded: no record agrees only while traffic never moved."""
    annotations = _service(kube, namespace, app)["metadata"].get("annotations") or {}
    recorded = annotations.get(ACTIVE)
    if recorded is None and color == "blue":
        return None
    if recorded != color:
        return f"{app}: the history says {ACTIVE}={recorded} while the selector says {color}"
    return None


def lease_state(kube: Client, namespace: str, app: str) -> tuple[str, float]:
    """('free', 0), ('expiring', seconds left) or ('absent', 0)."""
    try:
        lease = kube.get(Lease, f"bluegreen-{app}", namespace=namespace)
    except ApiError as error:
        if error.status.code == 404:
            return "absent", 0.0
        raise
    spec = lease.spec
    if spec is None or not spec.holderIdentity:
        return "free", 0.0
    renewed = spec.renewTime or spec.acquireTime
    duration = spec.leaseDurationSeconds or 60
    left = (renewed.timestamp() + duration - datetime.now(UTC).timestamp()) if renewed else float("inf")
    return "expiring", max(0.0, left)


@dataclass
class Observed:
    colors: dict[str, str | None]
    problems: list[str]
    lease: str  # summary: free / expiring 57s

    @property
    def color(self) -> str:
        values = set(self.colors.values())
        return str(values.pop()) if len(values) == 1 else "split"


def observe(kube: Client, scene: Scene, *, lease_must_be_free: bool = False) -> Observed:
    """Every invariant that can be read from the cluster, for every app of the scene."""
    colors: dict[str, str | None] = {}
    problems: list[str] = []
    leases: list[str] = []
    for app in scene.apps:
        routed = ingress_traffic if scene.router == "ingress" else traffic
        color, wrong = routed(kube, scene.namespace, app)
        colors[app] = color
        problems += wrong
        if (problem := history_problem(kube, scene.namespace, app, color)) is not None:
            problems.append(problem)
        state, left = lease_state(kube, scene.namespace, app)
        if state == "expiring" and left > 60.5:
            problems.append(f"{app}: the Lease is held for {left:.0f}s more: longer than a Lease lasts")
        if state == "expiring" and lease_must_be_free:
            problems.append(f"{app}: the Lease is still held ({left:.0f}s left): the run did not release it")
        leases.append(state if state != "expiring" else f"expiring {left:.0f}s")
    if len(set(colors.values())) > 1:
        problems.append(f"the group is split: {colors}")
    return Observed(colors, problems, ", ".join(sorted(set(leases))))


# -- the table -------------------------------------------------------------------------------------


@dataclass
class Row:
    fault: str
    phase: str
    moment: str
    outcome: str = ""
    exit_code: int | None = None
    elapsed: float = 0.0
    problems: list[str] = field(default_factory=list)
    next_run: str = ""

    @property
    def consistent(self) -> bool:
        return not self.problems

    def cells(self) -> list[str]:
        code = "-" if self.exit_code is None else str(self.exit_code)
        return [
            self.fault,
            self.phase,
            self.moment,
            self.outcome,
            code,
            f"{self.elapsed:.1f}s",
            self.next_run,
            "yes" if self.consistent else "NO: " + "; ".join(self.problems),
        ]


HEADER = ["fault", "phase", "moment", "outcome", "exit", "took", "next run", "consistent?"]


class Ledger:
    """Every row of the session, in the order they ran (thread-safe: rows are run concurrently)."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self._lock = threading.Lock()

    def add(self, row: Row) -> Row:
        with self._lock:
            self.rows.append(row)
        return row

    def markdown(self) -> str:
        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        lines = [line(HEADER), line(["---"] * len(HEADER))]
        lines += [line(row.cells()) for row in self.rows]
        failed = sum(1 for r in self.rows if not r.consistent)
        lines.append("")
        lines.append(f"{len(self.rows)} faults injected, {len(self.rows) - failed} consistent, {failed} not.")
        return "\n".join(lines)


def verdict(row: Row, run: Run, observed: Observed, scene: Scene, *, expect: set[int]) -> None:
    """Fill `row` from a finished run and what the cluster shows after it."""
    row.exit_code, row.elapsed = run.exit_code, run.elapsed
    row.outcome = f"traffic {observed.color}, lease {observed.lease}"
    row.problems += observed.problems
    if run.exit_code is None:
        row.problems.append(f"still running after {run.elapsed:.0f}s (killed)")
    elif run.exit_code not in expect:
        row.problems.append(f"exit {run.exit_code}, expected one of {sorted(expect)}: {run.describe()}")
    if run.killed_by is not None and 143 in expect:
        row.problems.append(f"died of signal {run.killed_by} unhandled: no safe point, nothing reported")
    if run.crashed:
        row.problems.append(f"crashed: {run.describe()}")
    if run.exit_code == 0 and observed.color != scene.goal:
        row.problems.append(f"exit 0 but traffic is on {observed.color}, not {scene.goal}")


def next_run(kube: Client, scene: Scene, row: Row) -> None:
    """The same command again, as a re-run of the CI job: it must work and reach the command's goal.

    It waits for a Lease a fault left held (--wait-for-lock, `group` included), as a CI job set up
    for re-runs would."""
    before = observe(kube, scene).color
    run = run_cli(scene.args("--wait-for-lock", "90s"), scene.kubeconfig, bound=120)
    observed = observe(kube, scene)
    row.next_run = f"exit {run.exit_code}, {observed.color}"
    # A rollback already done may be refused on re-run (exit 1, "nothing to roll back to"): still right.
    already = scene.command == "rollback" and before == scene.goal and run.exit_code == 1
    if run.exit_code != 0 and not already:
        row.problems.append(f"next run: {run.describe()}")
    row.problems += [f"after the next run: {p}" for p in observed.problems]
    if observed.color != scene.goal:
        row.problems.append(f"after the next run traffic is on {observed.color}, not {scene.goal}")
    if scene.command == "deploy":
        dep: dict[str, Any] = kube.get(Deployment, "shop-green", namespace=scene.namespace).to_dict()
        images = [c["image"] for c in dep["spec"]["template"]["spec"]["containers"]]
        if images != [NEW_IMAGE]:
            row.problems.append(f"after the next deploy, green runs {images}, not {NEW_IMAGE}")


def drop(kube: Client, scene: Scene) -> None:
    """Delete the scene's namespace (not waited for): the session cluster's nodes hold 220 pods in all."""
    kube.delete(Namespace, scene.namespace)


def next_run_now_or_later(kube: Client, scene: Scene, row: Row, later: list[tuple[Scene, Row]]) -> None:
    """The next run at once when every Lease is free; after all faults (in `later`) when the fault
    left one held, so that its expiry is waited for once, not once per row."""
    if any(lease_state(kube, scene.namespace, app)[0] == "expiring" for app in scene.apps):
        later.append((scene, row))
        return
    next_run(kube, scene, row)
    drop(kube, scene)


def run_later(kube: Client, later: list[tuple[Scene, Row]]) -> None:
    def one(item: tuple[Scene, Row]) -> None:
        next_run(kube, *item)
        drop(kube, item[0])

    concurrently(later, one, width=WIDTH)


def concurrently(items: Sequence[Any], fn: Callable[[Any], None], width: int = WIDTH) -> None:
    """fn over items, `width` at a time; the first exception is raised after all have run."""
    from concurrent.futures import ThreadPoolExecutor

    from lightkube.resources.core_v1 import Pod
    from lightkube.resources.discovery_v1 import EndpointSlice

    from bluegreen.kube import prime_decoders

    # Two threads building lightkube's decoder for one type at once can crash the interpreter
    # (seen: a segfault of the test process): build them all before any thread starts.
    prime_decoders(Service, Deployment, Lease, Namespace, Pod, EndpointSlice)
    with ThreadPoolExecutor(max_workers=width) as pool:
        futures = [pool.submit(fn, item) for item in items]
    for future in futures:
        future.result()


def guarded(row: Row, fn: Callable[[], None]) -> None:
    """Run one row's work; a set-up or read that failed marks that row, not the whole matrix."""
    try:
        fn()
    except Exception as error:
        row.problems.append(f"the row could not run: {type(error).__name__}: {str(error)[:300]}")


LEDGER = Ledger()  # the session's rows: the conftest prints them at the end
