"""Fuzzing the mutating commands end to end on the real local cluster: bad input changes nothing.

Over 200 generated invalid invocations of deploy, switch, rollback, retire, init and group switch,
each a valid command line with one thing made wrong (a path-like name aimed at a second namespace, a
non-finite or huge number, conflicting flags, a broken bluegreen.yaml or kubeconfig, ...). Each must
end in exit 2 with a message naming the input, no "unexpected" and no traceback, within a bounded
time, and leave every object in the app's namespace and in a second namespace exactly as it was
(resourceVersions compared after every invocation). Most run in-process through `execute(argv)`,
as the Action runs them; a sample runs as real `bluegreen` processes.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from lightkube import Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod, Secret, Service, ServiceAccount
from lightkube.resources.discovery_v1 import EndpointSlice

from bluegreen import validate
from bluegreen.cli import execute
from hack.localcluster import LocalCluster
from tests.fuzz.counting import TRIED, peak
from tests.support.apps import create_app

pytestmark = pytest.mark.cluster
KINDS = (Service, Deployment, ReplicaSet, Pod, Lease, ConfigMap, Secret, ServiceAccount, EndpointSlice)
TIME_LIMIT = 30.0  # seconds one refused invocation may take (a refusal needs at most a few reads)


@dataclass(frozen=True)
class Rig:
    kube: Client
    namespace: str  # the app's
    other: str  # a second namespace no input should ever reach
    kubeconfig: str
    config: str  # a valid bluegreen.yaml with group g (the app)
    files: Path  # where bad files are written

    def snapshot(self) -> dict[str, str]:
        """resourceVersion of every object of KINDS in both namespaces."""
        found: dict[str, str] = {}
        for ns in (self.namespace, self.other):
            for kind in KINDS:
                for obj in self.kube.list(kind, namespace=ns):
                    meta = obj.metadata  # type: ignore[attr-defined]
                    found[f"{ns}/{kind.__name__}/{meta.name}"] = str(meta.resourceVersion)
        return found


@pytest.fixture(scope="module")
def rig(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    kube = Client(KubeConfig.from_file(cluster.kubeconfig), field_manager="bluegreen-tests")
    suffix = uuid.uuid4().hex[:6]
    names = (f"fuzz-app-{suffix}", f"fuzz-other-{suffix}")
    for name in names:
        kube.create(Namespace(metadata=ObjectMeta(name=name, labels={"bluegreen.test/ns": "true"})))
    for name in names:
        create_app(kube, name, "shop", replicas=1)
    files = tmp_path_factory.mktemp("fuzz")
    config = files / "bluegreen.yaml"
    config.write_text(f"groups:\n  - name: g\n    namespace: {names[0]}\n    members: [shop]\n")
    time.sleep(2)  # let the controllers' last status writes land before the first snapshot
    try:
        yield Rig(kube, names[0], names[1], str(cluster.kubeconfig), str(config), files)
    finally:
        for name in names:
            kube.delete(Namespace, name)


# -- invalid invocations: a valid base with exactly one thing made wrong ---------------------------


def base(rig: Rig, command: str) -> list[str]:
    app = ["--app", "shop", "-n", rig.namespace, "--kubeconfig", rig.kubeconfig]
    return {
        "deploy": ["deploy", *app, "--image", "registry.local/shop:2.0"],
        "switch": ["switch", *app, "--force"],
        "rollback": ["rollback", *app, "--to", "green"],
        "retire": ["retire", *app, "--after", "0s"],
        "init": ["init", *app, "--from", "shop-blue"],
        "group switch": [
            "group",
            "switch",
            "--group",
            "g",
            "--config",
            rig.config,
            "--kubeconfig",
            rig.kubeconfig,
        ],
    }[command]


def replace(argv: list[str], flag: str, value: str, *, alias: str = "") -> list[str]:
    """argv with `flag`'s value replaced (or `flag value` added); --flag=value so '-x' stays a value."""
    out = list(argv)
    for spelling in (flag, alias):
        if spelling and spelling in out:
            at = out.index(spelling)
            del out[at : at + 2]
    return [*out, f"{flag}={value}"]


def invalid(check: Any) -> Any:
    """A filter keeping what `check` refuses: generated bad values must really be bad."""

    def refused(value: str) -> bool:
        try:
            check(value)
        except ValueError:
            return True
        return False

    return refused


BAD_NAMES = st.one_of(
    st.sampled_from(
        ["../{other}/shop", "{other}/shop", "../../{other}/services/shop", "shop/../../{other}", ".."]
    ),
    st.sampled_from(
        ["--", "Shop", "shop_1", "shop.", "-shop", "shop-", "", " shop", "shop\n", "ｓhop", "a" * 64]
    ),
    st.text(alphabet="abc/.-_ A\x00", min_size=1, max_size=20),
).filter(invalid(validate.dns_subdomain))
BAD_DURATIONS = st.one_of(
    st.sampled_from(
        ["nan", "inf", "-inf", "1e400", "NaN", "infinity", "25h", "99999999h", "-1s", "5 m", "1d", "0x10", ""]
    ),
    st.integers(86401, 10**30).map(str),
    st.text(alphabet="0123456789.hms-e+", min_size=1, max_size=12),
).filter(invalid(validate.duration))
BAD_YAML = st.sampled_from(
    [
        "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b]\n",
        "groups: " + "[" * 5000 + "]" * 5000 + "\n",
        "\xff\xfe binary",
        "groups:\n  - name: g\n    namespace: [a, b]\n    members: [shop]\n",
        "groups:\n  - name: g\n    namespace: ../{other}\n    members: [shop]\n",
        "groups:\n  - name: g\n    members:\n      - app: ../{other}/shop\n        namespace: {namespace}\n",
        "groups:\n  - name: g\n    namespace: {namespace}\n    members: [42]\n",
        "groups: 7\n",
        "app: shop\nnamespace: {namespace}\ngroups: [{{name: g, namespace: {namespace}, members: [{{app: shop, router: nope}}]}}]\n",
        "[1, 2",
    ]
)
BAD_KUBECONFIGS = st.sampled_from(
    [
        "",
        "- a\n- b\n",
        "clusters: 5\ncontexts: []\n",
        "clusters: [{name: a, cluster: {server: 7}}]\ncontexts: []\n",
        "clusters: [{name: a, cluster: {server: 'not a url'}}]\ncontexts: [{name: c, context: {cluster: a}}]\ncurrent-context: c\n",
        "clusters: [{name: a, cluster: {server: 'https://127.0.0.1:6443', certificate-authority-data: '!!'}}]\ncontexts: []\n",
        "clusters: [{name: a, cluster: {server: 'https://127.0.0.1:6443'}}]\ncontexts: [{name: c, context: {cluster: zz}}]\ncurrent-context: c\n",
        "x: &a [1]\ny: *a\n",
        "\x00\x01\x02",
    ]
)


MUTATING = ("deploy", "switch", "rollback", "retire", "init", "group switch")


@dataclass(frozen=True)
class Case:
    command: str
    mutation: str
    argv: tuple[str, ...]
    names: str  # what the message must name: the flag, input or file


@st.composite
def invalid_invocations(draw: st.DrawFn, rig: Rig, command: str = "") -> Case:
    command = command or draw(st.sampled_from(MUTATING))
    argv = base(rig, command)
    per_app = command != "group switch"
    mutations = ["kubeconfig", "bogus flag", "duration"] + (
        ["app", "namespace", "service", "color-label", "router", "reason"]
        if per_app
        else ["config", "to", "group"]
    )
    mutations += {
        "deploy": ["conflict", "set-image"],
        "switch": ["to", "no-endpoints"],
        "init": ["from"],
    }.get(command, [])
    mutation = draw(st.sampled_from(mutations))
    fill = {"other": rig.other, "namespace": rig.namespace}

    def bad_file(content: str) -> str:
        path = rig.files / f"{uuid.uuid4().hex[:8]}.yaml"
        try:
            data = content.format(**fill)
        except (KeyError, IndexError, ValueError):
            data = content
        path.write_bytes(
            data.encode("utf-8", "surrogateescape") if "\xff" not in data else data.encode("latin-1")
        )
        return str(path)

    if mutation == "app":
        value = draw(BAD_NAMES).format(**fill)
        return Case(command, mutation, tuple(replace(argv, "--app", value)), "--app")
    if mutation == "namespace":
        value = draw(BAD_NAMES).format(**fill)
        return Case(command, mutation, tuple(replace(argv, "--namespace", value, alias="-n")), "--namespace")
    if mutation == "service":
        flag = draw(st.sampled_from(["--service", "--preview-service"]))
        value = draw(BAD_NAMES).format(**fill)
        if value == "":
            value = "../x"  # "" means the default name
        return Case(command, mutation, tuple(replace(argv, flag, value)), flag)
    if mutation == "color-label":
        value = draw(st.sampled_from(["a//b", "../x", "-x", "bluegreen.io/", "x" * 70, "a b"]))
        return Case(command, mutation, tuple(replace(argv, "--color-label", value)), "--color-label")
    if mutation == "router":
        value = draw(st.sampled_from(["nope", "../service", "", "service;rm"]))
        return Case(command, mutation, tuple(replace(argv, "--router", value)), "--router")
    if mutation == "reason":
        value = draw(st.sampled_from(["a\x00b", "line\nbreak", "bell\x07", "\x1b[31mred"]))
        command_argv = (
            replace(argv, "--reason", value)
            if command in ("switch", "rollback")
            else [*argv, "--reason", value]
        )
        names = "--reason" if command in ("switch", "rollback") else "unrecognized arguments"
        return Case(command, mutation, tuple(command_argv), names)
    if mutation == "duration":
        flag = draw(
            st.sampled_from(
                ["--timeout", "--after"] if command == "retire" else ["--timeout", "--wait-for-lock"]
            )
        )
        if command == "group switch":
            flag = "--timeout"
        return Case(command, mutation, tuple(replace(argv, flag, draw(BAD_DURATIONS))), flag)
    if mutation == "kubeconfig":
        path = bad_file(draw(BAD_KUBECONFIGS))
        return Case(command, mutation, tuple(replace(argv, "--kubeconfig", path)), "kubeconfig")
    if mutation == "bogus flag":
        flag = draw(st.sampled_from(["--bogus", "--forse", "--app-name", "--namespce"]))
        return Case(command, mutation, (*argv, flag, "x"), "unrecognized arguments")
    if mutation == "conflict":
        return Case(command, mutation, (*argv, "--set-image", "app=registry.local/shop:3"), "--set-image")
    if mutation == "set-image":
        value = draw(
            st.sampled_from(["../x=registry.local/a:1", "app=", "=img:1", "app=Not An Image", "APP=a:1"])
        )
        trimmed = [a for a in argv if a not in ("--image", "registry.local/shop:2.0")]
        return Case(command, mutation, (*trimmed, f"--set-image={value}"), "--set-image")
    if mutation == "to":
        value = draw(st.sampled_from(["purple", "../green", "", "BLUE ", "blue,green"]))
        if value == "BLUE ":
            value = "bleu"
        return Case(command, mutation, tuple(replace(argv, "--to", value)), "--to")
    if mutation == "no-endpoints":
        trimmed = [a for a in argv if a != "--force"]
        return Case(command, mutation, (*trimmed, "--allow-no-endpoints"), "--allow-no-endpoints")
    if mutation == "from":
        value = draw(BAD_NAMES).format(**fill) or "../x"
        return Case(command, mutation, tuple(replace(argv, "--from", value)), "--from")
    if mutation == "config":
        path = bad_file(draw(BAD_YAML))
        return Case(command, mutation, tuple(replace(argv, "--config", path)), Path(path).name)
    assert mutation == "group"
    value = draw(st.sampled_from(["nope", "../g", "g\x00", "x" * 2000]))
    return Case(command, mutation, tuple(replace(argv, "--group", value)), "group")


def check_refusal(case: Case, exit_code: int, message: str) -> None:
    assert exit_code == 2, (case, exit_code, message)
    assert case.names.lower() in message.lower(), (case, message)
    assert "unexpected" not in message and "Traceback" not in message, (case, message)


@pytest.fixture(scope="module")
def baseline(rig: Rig) -> dict[str, str]:
    return rig.snapshot()


def test_over_200_invalid_invocations_change_nothing(rig: Rig, baseline: dict[str, str]) -> None:
    @settings(max_examples=220)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(invalid_invocations(rig))
        TRIED[f"cluster: {case.command} (in-process)"] += 1
        started = time.monotonic()
        outcome = execute(list(case.argv))
        took = time.monotonic() - started
        message = "" if outcome.error is None else f"{outcome.error.message} {outcome.error.remedy}"
        check_refusal(case, outcome.exit_code, message)
        assert took < TIME_LIMIT, (case, took)
        peak("cluster: slowest refusal in-process (s)", took)
        assert rig.snapshot() == baseline, case

    run()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak("cluster: test process peak RSS (MiB)", peak_mib)
    assert peak_mib < 1024, f"the test process peaked at {peak_mib:.0f} MiB"


@pytest.mark.parametrize("command", MUTATING)
def test_a_sample_as_real_processes(rig: Rig, baseline: dict[str, str], command: str) -> None:
    """The same invariants through the `bluegreen` entry point: stderr, exit code, memory, time."""

    @settings(max_examples=2)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(invalid_invocations(rig, command))
        assume(not any("\x00" in arg for arg in case.argv))  # no process can be given a NUL in argv
        TRIED[f"cluster: {case.command} (subprocess)"] += 1
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "bluegreen.cli", *case.argv],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TIME_LIMIT * 2,
            env={**os.environ, "PYTHONFAULTHANDLER": "0"},
            check=False,
        )
        peak("cluster: slowest refusal as a process (s)", time.monotonic() - started)
        check_refusal(case, done.returncode, done.stderr)
        assert done.stderr.startswith("error: "), done.stderr
        assert rig.snapshot() == baseline, case

    run()
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    peak("cluster: largest bluegreen process RSS (MiB)", peak_mib)
    assert peak_mib < 512, f"a bluegreen process peaked at {peak_mib:.0f} MiB"
