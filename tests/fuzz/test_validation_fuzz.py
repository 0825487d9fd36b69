"""Property-based fuzzing of the validation edge alone (no cluster): over 10,000 generated inputs a run.

Each property is what a user relies on: a value the edge accepts is within the documented bounds
(a name fits its Kubernetes kind, a duration is finite and at most 24h, a rate is 0..1), and a value
it refuses gets one exit-2 error naming the input and quoting the value: never a crash, a hang or
an "unexpected" error. Failing examples Hypothesis found are kept as @example regressions.
"""

from __future__ import annotations

import math
import re
import string
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bluegreen import kube, validate
from bluegreen.cli import check_args, execute, parser
from bluegreen.config import Config, parse
from bluegreen.errors import ConfigError, UsageError
from bluegreen.github import inputs
from tests.fuzz.counting import TRIED

LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
NO_CLUSTER = ["--kubeconfig", "/nonexistent/kubeconfig"]

# Text near the edge of what is valid: the characters names, numbers and paths are made of.
NEAR = st.text(alphabet=string.ascii_lowercase[:6] + "0189-./_:%+eEhmsn AZ\t\x00é", max_size=80)
ANY_TEXT = st.one_of(NEAR, st.text(max_size=80))
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "1e-400", "0x10", "1_0", "٣"]),
)
DURATION_TEXT = st.one_of(
    NEAR,
    st.builds(
        lambda n, u: f"{n}{u}",
        st.one_of(st.integers(-5, 10**12), st.floats(allow_nan=True, allow_infinity=True)),
        st.sampled_from(["", "ms", "s", "m", "h", "d", "S", " s"]),
    ),
    st.builds(lambda a, b: a + b, st.sampled_from(["1h", "30m", "5s", "99999h"]), NEAR),
)


def _refusal_quotes(error: ValueError, value: object) -> None:
    assert validate._shown(value)[:40] in str(error), (value, str(error))


# -- scalars --------------------------------------------------------------------------------------


@settings(max_examples=2000)
@given(st.one_of(DURATION_TEXT, NUMBERS, st.none(), st.booleans(), st.lists(st.integers(), max_size=2)))
@example("1e400")
@example(float("nan"))
@example(10**400)
def test_durations_are_finite_and_within_24h(value: Any) -> None:
    TRIED["validate.duration"] += 1
    try:
        seconds = validate.duration(value)
    except ValueError as error:
        _refusal_quotes(error, value)
        return
    assert isinstance(seconds, float) and math.isfinite(seconds)
    assert 0 <= seconds <= validate.MAX_DURATION


@settings(max_examples=1500)
@given(st.one_of(NEAR, NUMBERS, st.builds(lambda n: f"{n}%", NUMBERS), st.none(), st.booleans()))
@example("nan%")
@example("+nan")
def test_ratios_and_tolerances_are_in_their_real_range(value: Any) -> None:
    TRIED["validate.ratio/tolerance"] += 1
    for parse_, top in ((validate.ratio, 1.0), (validate.tolerance, validate.MAX_TOLERANCE)):
        try:
            number = parse_(value)
        except ValueError as error:
            shown = value.strip()[1:] if isinstance(value, str) and value.strip().startswith("+") else value
            assert validate._shown(shown)[:40] in str(error) or validate._shown(value)[:40] in str(error)
            continue
        assert math.isfinite(number) and 0 <= number <= top


@settings(max_examples=500)
@given(st.one_of(NUMBERS, NEAR, st.none()), st.integers(0, 5), st.integers(5, 1000))
def test_counts_are_bounded_whole_numbers(value: Any, low: int, high: int) -> None:
    TRIED["validate.count"] += 1
    try:
        got = validate.count(value, minimum=low, maximum=high)
    except ValueError as error:
        _refusal_quotes(error, value)
        return
    assert isinstance(got, int) and not isinstance(got, bool) and low <= got <= high


# -- names ----------------------------------------------------------------------------------------

NAME_LIKE = st.one_of(
    NEAR,
    st.from_regex(r"[a-z][-a-z0-9]{0,70}", fullmatch=True),
    st.builds(lambda a, b: f"{a}/{b}", st.sampled_from(["..", "../..", "other", "a.b", ""]), NEAR),
)


@settings(max_examples=2000)
@given(st.one_of(NAME_LIKE, st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2)))
@example("../other-ns/services/shop")
@example("a" * 56)
def test_accepted_names_fit_their_kubernetes_kind(value: Any) -> None:
    TRIED["validate.names"] += 1
    for check in (validate.app_name, validate.namespace, validate.service_name, validate.container_name):
        try:
            name = check(value)
        except ValueError as error:
            _refusal_quotes(error, value)
            continue
        assert LABEL.fullmatch(name) and len(name) <= 63, (check, name)
        assert "/" not in name and ".." not in name
        if check is validate.app_name:
            assert len(f"{name}-preview") <= 63 and name[0].isalpha()
    try:
        sub = validate.dns_subdomain(value)
    except ValueError as error:
        _refusal_quotes(error, value)
    else:
        assert len(sub) <= 253 and all(LABEL.fullmatch(p) for p in sub.split("."))


# -- the CLI's front: flags typed and bounded before anything runs ---------------------------------

COMMANDS = {
    "deploy": ["deploy", "--app", "shop", "--image", "registry.local/shop:2"],
    "switch": ["switch", "--app", "shop"],
    "rollback": ["rollback", "--app", "shop"],
    "retire": ["retire", "--app", "shop", "--after", "1h"],
    "init": ["init", "--app", "shop"],
    "gate": ["gate", "--app", "shop"],
    "watch": ["watch", "--app", "shop"],
    "release": ["release", "--app", "shop", "--image", "registry.local/shop:2"],
    "patch": ["patch", "--app", "shop", "--image", "registry.local/shop:2-p1"],
    "group": ["group", "switch", "--group", "g"],
}
DURATIONS_OK = ["0s", "500ms", "30s", "5m", "1h30m", "24h", "90"]
# Valid values per flag: a command line made of these must be accepted.
GOOD: dict[str, list[str]] = {
    "--app": ["shop", "web-2", "a" * validate.MAX_APP],
    "--namespace": ["default", "shop-prod", "a" * 63],
    "--service": ["shop", "web-live"],
    "--preview-service": ["shop-preview"],
    "--color-label": ["bluegreen.io/color", "color", "example.com/track"],
    "--router": list(validate.ROUTERS),
    "--context": ["kind-local", "arn:aws:eks:eu-west-1:1:cluster/x"],
    "--timeout": DURATIONS_OK,
    "--wait-for-lock": DURATIONS_OK,
    "--after": DURATIONS_OK,
    "--to": ["blue", "green", "GREEN"],
    "--reason": ["release 1.2.3", "rollback: p95 up 40%"],
    "--from": ["shop", "shop.v1"],
    "--min-healthy": DURATIONS_OK,
    "--p95-tolerance": ["20%", "+5%", "0.2", "1000%"],
    "--max-error-rate": ["0.5%", "0.005", "1"],
    "--interval": ["1s", "30s"],
    "--duration": DURATIONS_OK,
    "--run-url": ["https://github.com/o/r/actions/runs/1", ""],
}
SWITCHES = ["--force", "--dry-run", "--keep-failed", "--no-auto-rollback"]


def _own_flags(command: str) -> set[str]:
    sub = parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr,index]
    return {s for action in sub._actions for s in action.option_strings}


OWN = {name: _own_flags(name) for name in COMMANDS}


@st.composite
def argvs(draw: st.DrawFn) -> tuple[list[str], str]:
    """A valid command line with good flags added, then at most one flag given a wild value
    (or an unknown flag); returns it with that flag ("" when nothing was made wild)."""
    command = draw(st.sampled_from(sorted(COMMANDS)))
    argv = list(COMMANDS[command])
    good = [f for f in GOOD if f in OWN[command] and not (command == "deploy" and f == "--from")]
    for flag in draw(st.lists(st.sampled_from(good), max_size=4, unique=True)) if good else []:
        argv.append(f"{flag}={draw(st.sampled_from(GOOD[flag]))}")
    for flag in draw(
        st.lists(
            st.sampled_from([f for f in SWITCHES if f in OWN[command]] or ["--dry-run"]),
            max_size=2,
            unique=True,
        )
    ):
        if flag in OWN[command]:
            argv.append(flag)
    if not draw(st.integers(0, 9)):
        return argv, ""  # a tenth are left valid: they must be accepted
    flag = draw(st.sampled_from([*sorted(GOOD), "--bogus", "--set-image", "--image", "--allow-no-endpoints"]))
    value = draw(st.one_of(ANY_TEXT, DURATION_TEXT, NUMBERS.map(str), NAME_LIKE))
    how = draw(st.sampled_from(["equals", "bare"]))
    argv.append(f"{flag}={value}" if how == "equals" else flag)
    return argv, flag


@settings(max_examples=1500)
@given(argvs())
@example((["gate", "--app", "shop", "--p95-tolerance=nan"], "--p95-tolerance"))
@example((["switch", "--app", "shop", "--service=../../other/services/shop"], "--service"))
@example((["deploy", "--app", "shop", "--image", "r/a:1", "--set-image=web=r/b:2"], "--set-image"))
@example((["retire", "--app", "shop", "--after=-inf"], "--after"))
@example((["deploy", "--app", "shop", "--image", "r/a:1", "--app=--"], "--app"))  # found: argparse stored []
def test_every_command_line_is_typed_and_bounded_or_refused_with_exit_2(case: tuple[list[str], str]) -> None:
    argv, wild = case
    TRIED["cli argv (in-process)"] += 1
    outcome = execute([*argv, *NO_CLUSTER] if argv[0] != "group" else argv)
    error = outcome.error
    assert error is not None  # nothing here has a cluster to reach
    assert "unexpected" not in error.message, error.message
    reached_the_cluster_step = "kubeconfig" in error.message or "no group named" in error.message
    if not wild:
        assert reached_the_cluster_step, (argv, error.message)  # a valid command line passes the edge
    if reached_the_cluster_step:
        # Accepted: every value that would reach the engine is within bounds.
        args = parser().parse_args(argv)
        check_args(args)
        for key in ("timeout", "wait_for_lock", "after"):
            value = getattr(args, key, None)
            if value is not None:
                assert math.isfinite(value) and 0 <= value <= validate.MAX_DURATION
        if hasattr(args, "app"):
            validate.app_name(args.app)
            validate.namespace(args.namespace)
        return
    assert outcome.exit_code == 2, (argv, error.message)
    assert wild in error.message or wild.lstrip("-") in error.message, (argv, error.message)


# -- the Action's inputs --------------------------------------------------------------------------

GOOD_INPUTS: dict[str, list[str]] = {
    "namespace": ["default", "shop-prod"],
    "router": list(validate.ROUTERS),
    "to": ["", "blue", "green"],
    "timeout": DURATIONS_OK,
    "wait-for-lock": DURATIONS_OK,
    "retire-after": DURATIONS_OK,
    "min-healthy": DURATIONS_OK,
    "interval": ["1s", "30s"],
    "duration": DURATIONS_OK,
    "p95-tolerance": ["20%", "0.2"],
    "max-error-rate": ["0.5%", "0.005"],
    "dry-run": ["true", "false", "yes", "no"],
    "auto-rollback": ["true", "false"],
    "reason": ["release 1.2"],
    "context": ["", "kind-local"],
}
WILD_INPUTS = st.one_of(
    NEAR, NAME_LIKE, DURATION_TEXT, NUMBERS.map(str), st.just("clusters: 5\ncontexts: []\n")
)


@st.composite
def input_sets(draw: st.DrawFn) -> tuple[dict[str, str], str]:
    """A valid `with:` block, then at most one input given a wild value; returns it with that input."""
    phase = draw(st.sampled_from(inputs.PHASES))
    values = {"phase": phase, "app": draw(st.sampled_from(["shop", "web-2"]))}
    if phase in ("deploy", "release", "patch"):
        if draw(st.booleans()):
            values["image"] = "registry.local/shop:2"
        else:
            values["set-images"] = "web=registry.local/web:2\napp=r/a:1"
    for key in draw(st.lists(st.sampled_from(sorted(GOOD_INPUTS)), max_size=5, unique=True)):
        values[key] = draw(st.sampled_from(GOOD_INPUTS[key]))
    if not draw(st.integers(0, 9)):
        return values, ""
    wild = draw(
        st.sampled_from(
            [k for k in inputs.DEFAULTS if k not in ("github-token", "environment", "environment-url")]
        )
    )
    values[wild] = draw(WILD_INPUTS)
    return values, wild


@settings(max_examples=1000)
@given(input_sets())
@example(({"phase": "deploy", "app": "shop", "image": "r/a:1", "set-images": "web=r/b:2"}, "set-images"))
@example(({"phase": "gate", "app": "shop", "p95-tolerance": "nan"}, "p95-tolerance"))
@example(({"phase": "init", "app": "shop", "context": "-1e+16"}, "context"))  # found: read as a flag
@example(({"phase": "rollback", "app": "shop", "reason": "-x"}, "reason"))
@example(({"phase": "rollback", "app": "shop", "reason": "--"}, "reason"))
def test_action_inputs_valid_ones_make_a_valid_command_line(case: tuple[dict[str, str], str]) -> None:
    values, wild = case
    TRIED["action inputs"] += 1
    env = {f"INPUT_{k.upper()}": v for k, v in values.items()}
    try:
        parsed = inputs.parse(env)
    except UsageError as error:
        assert wild, (values, error.message)  # a valid block is accepted
        assert error.message.startswith("invalid input: ") and error.exit_code == 2
        named = {
            part.split(":")[0].strip() for part in error.message.removeprefix("invalid input: ").split("; ")
        }
        assert wild in named or (wild in ("phase", "set-images") and "image" in named), (wild, error.message)
        return
    parsed.options("/nonexistent/kubeconfig")  # what the Action accepts becomes a phase's options


# -- bluegreen.yaml documents ---------------------------------------------------------------------

SCALARS = st.one_of(NUMBERS, NEAR, st.booleans(), st.none())
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(NEAR, inner, max_size=3)),
    max_leaves=8,
)
GATE_KEYS = [
    "min-healthy",
    "interval",
    "timeout",
    "window",
    "max-error-rate",
    "p95-tolerance",
    "failure-limit",
]
WATCH_KEYS = ["duration", "interval", "window", "max-p95", "failures", "auto-rollback", "p95-tolerance"]
CHECK = st.fixed_dictionaries(
    {
        "name": st.one_of(st.just("c"), NEAR),
        "kind": st.sampled_from(["kubernetes", "http", "prometheus", "probe", "x"]),
    },
    optional={
        "url": st.one_of(st.just("http://127.0.0.1:9/{{color}}"), NEAR),
        "query": st.just("up"),
        "measure": st.sampled_from(["value", "error-rate", "p95"]),
        "min": SCALARS,
        "max": SCALARS,
        "requests": SCALARS,
        "timeout": SCALARS,
        "max-restarts": SCALARS,
        "status": SCALARS,
    },
)
DOCUMENT = st.fixed_dictionaries(
    {},
    optional={
        "version": st.one_of(st.just(1), SCALARS),
        "app": st.one_of(st.just("shop"), NAME_LIKE, SCALARS),
        "namespace": st.one_of(st.just("shop"), NAME_LIKE, VALUES),
        "gate": st.dictionaries(st.sampled_from(GATE_KEYS), st.one_of(SCALARS, DURATION_TEXT), max_size=4),
        "watch": st.dictionaries(st.sampled_from(WATCH_KEYS), st.one_of(SCALARS, DURATION_TEXT), max_size=4),
        "checks": st.lists(CHECK, max_size=3),
        "groups": st.lists(
            st.fixed_dictionaries(
                {"name": st.one_of(st.just("g"), NEAR)},
                optional={
                    "namespace": st.one_of(st.just("shop"), NAME_LIKE),
                    "members": st.lists(
                        st.one_of(NAME_LIKE, st.fixed_dictionaries({"app": NAME_LIKE})), max_size=3
                    ),
                },
            ),
            max_size=2,
        ),
        "extra": VALUES,
    },
)


def _mangle(text: str, how: int, at: int) -> str:
    """Ways people and tools break YAML: an alias, deep nesting, binary, a tab, a cut."""
    cut = at % (len(text) + 1)
    return [
        text,
        "a: &a [x, x]\nb: [*a, *a]\n" + text,
        text[:cut] + "[" * 300 + "]" * 300 + text[cut:],
        text[:cut] + "\x00\x01" + text[cut:],
        text[:cut] + "\t" + text[cut:],
        text[:cut],
        text[:cut] + ": : -" + text[cut:],
    ][how % 7]


def _bounded(config: Config) -> None:
    for seconds in (config.gate.min_healthy, config.gate.interval, config.gate.window, config.watch.duration):
        assert math.isfinite(seconds) and 0 <= seconds <= validate.MAX_DURATION
    for rate in (config.gate.max_error_rate, config.watch.max_error_rate):
        assert 0 <= rate <= 1
    assert 0 <= config.gate.p95_tolerance <= validate.MAX_TOLERANCE
    for group in config.groups:
        for member in group.members:
            validate.app_name(member.app)
            validate.namespace(member.namespace)


@settings(max_examples=2000)
@given(DOCUMENT, st.integers(0, 20), st.integers(0, 10**6))
@example({"app": 42}, 0, 0)
@example({"namespace": ["a", "b"]}, 0, 0)
@example({"gate": {"p95-tolerance": float("nan")}}, 0, 0)
@example({"watch": {"failures": 10**30}}, 0, 0)
def test_bluegreen_yaml_is_typed_and_bounded_or_refused_naming_the_line(
    document: dict[str, Any], how: int, at: int
) -> None:
    TRIED["bluegreen.yaml documents"] += 1
    text = _mangle(yaml.safe_dump(document, allow_unicode=True), how, at)
    try:
        config = parse(text)
    except ConfigError as error:
        assert error.exit_code == 2 and "in the configuration" in error.message
        assert re.search(r"bluegreen\.yaml(:\d+)?: ", error.message), error.message
        return
    _bounded(config)


# -- kubeconfigs ----------------------------------------------------------------------------------


def _a_real_ca() -> str:
    """Base64 of one real CA certificate (certifi's bundle ships with httpx): valid PEM to start from."""
    import base64

    import certifi

    bundle = Path(certifi.where()).read_text()
    first = bundle[bundle.index("-----BEGIN CERTIFICATE-----") :]
    first = first[: first.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n"
    return base64.b64encode(first.encode()).decode()


CA = _a_real_ca()
KUBECONFIG_BASE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [
        {"name": "c", "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority-data": CA}}
    ],
    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "shop"}}],
    "users": [{"name": "u", "user": {"token": "t0ken"}}],
    "current-context": "x",
}
# Where a hand edit goes wrong: (path into the document, what is put there).
KUBECONFIG_PLACES = [
    (),
    ("clusters",),
    ("clusters", 0),
    ("clusters", 0, "name"),
    ("clusters", 0, "cluster"),
    ("clusters", 0, "cluster", "server"),
    ("clusters", 0, "cluster", "certificate-authority-data"),
    ("clusters", 0, "cluster", "insecure-skip-tls-verify"),
    ("contexts",),
    ("contexts", 0, "context", "cluster"),
    ("contexts", 0, "context", "user"),
    ("users", 0, "user"),
    ("users", 0, "user", "client-certificate-data"),
    ("users", 0, "user", "client-key-data"),
    ("users", 0, "user", "token"),
    ("current-context",),
]
WILD_KUBECONFIG_VALUES = st.one_of(
    SCALARS,
    st.sampled_from(
        ["https://h:99999", "ftp://h", "https://", "h:6443", "LS0tLS1CRUdJTiBY", CA[:-8], "http://[::1"]
    ),
    st.lists(SCALARS, max_size=2),
    st.dictionaries(NEAR, SCALARS, max_size=2),
)


def _kubeconfig_with(place: tuple[str | int, ...], value: Any) -> str:
    import copy

    document: Any = copy.deepcopy(KUBECONFIG_BASE)
    parent = document
    for step in place[:-1]:
        parent = parent[step]
    parent[place[-1]] = value
    return yaml.safe_dump(document)


@st.composite
def kubeconfigs(draw: st.DrawFn) -> str:
    """A valid kubeconfig with at most one field replaced by a wild value, then possibly mangled."""
    import copy

    document: Any = copy.deepcopy(KUBECONFIG_BASE)
    place = draw(st.sampled_from(KUBECONFIG_PLACES))
    if draw(st.integers(0, 9)):
        value = draw(WILD_KUBECONFIG_VALUES)
        if not place:
            document = value
        else:
            parent = document
            for step in place[:-1]:
                parent = parent[step]
            parent[place[-1]] = value
    return _mangle(
        yaml.safe_dump(document, allow_unicode=True), draw(st.integers(0, 40)), draw(st.integers(0, 10**6))
    )


KUBECONFIG_DIR = Path(tempfile.mkdtemp(prefix="bluegreen-fuzz-kubeconfig-"))


@settings(max_examples=1000)
@given(kubeconfigs())
@example("")
@example("clusters: 5\ncontexts: []\n")
@example(
    _kubeconfig_with(("users", 0, "user", "client-certificate-data"), "LS0tLS1CRUdJTiBY")
)  # found: no key
def test_kubeconfigs_are_checked_field_by_field(text: str) -> None:
    TRIED["kubeconfigs"] += 1
    path = KUBECONFIG_DIR / "kubeconfig"
    path.write_text(text)
    try:
        kube.connect(kubeconfig=str(path))  # only builds the client: no request is sent
    except UsageError as error:
        assert error.exit_code == 2 and "unexpected" not in error.message
        assert "kubeconfig" in error.message, error.message
