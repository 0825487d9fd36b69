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
from typing import Any

import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lightkube import KubeConfig

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
    "group": ["group", "switch", "--group", "g"],
}
FLAGS = [
    "--app",
    "-n",
    "--namespace",
    "--service",
    "--preview-service",
    "--color-label",
    "--router",
    "--context",
    "--timeout",
    "--wait-for-lock",
    "--after",
    "--to",
    "--reason",
    "--image",
    "--set-image",
    "--from",
    "--min-healthy",
    "--p95-tolerance",
    "--max-error-rate",
    "--interval",
    "--duration",
    "--config",
    "--force",
    "--allow-no-endpoints",
    "--dry-run",
    "--run-url",
    "--bogus",
]


@st.composite
def argvs(draw: st.DrawFn) -> list[str]:
    """A real command line with a few flags added, replaced or mangled."""
    argv = list(COMMANDS[draw(st.sampled_from(sorted(COMMANDS)))])
    for _ in range(draw(st.integers(1, 4))):
        flag = draw(st.sampled_from(FLAGS))
        value = draw(st.one_of(ANY_TEXT, DURATION_TEXT, NUMBERS.map(str), NAME_LIKE))
        how = draw(st.sampled_from(["pair", "equals", "bare", "replace"]))
        if how == "pair":
            argv += [flag, value]
        elif how == "equals":
            argv.append(f"{flag}={value}")
        elif how == "bare":
            argv.append(flag)
        elif flag in argv:
            at = argv.index(flag)
            argv[at + 1 : at + 2] = [value]
        else:
            argv.insert(draw(st.integers(0, len(argv))), value)
    return argv


@settings(max_examples=2000)
@given(argvs())
@example(["gate", "--app", "shop", "--p95-tolerance", "nan"])
@example(["switch", "--app", "shop", "--service", "../../other/services/shop"])
@example(["deploy", "--app", "shop", "--image", "r/a:1", "--set-image", "web=r/b:2"])
@example(["retire", "--app", "shop", "--after=-inf"])
def test_every_command_line_is_typed_and_bounded_or_refused_with_exit_2(argv: list[str]) -> None:
    TRIED["cli argv (in-process)"] += 1
    try:
        args = parser().parse_args(argv)
        check_args(args)
    except UsageError as error:
        assert error.exit_code == 2
        assert "unexpected" not in error.message
        return
    except SystemExit:  # --help/--version only
        return
    # Accepted: every value that reaches the engine is within bounds.
    for key in ("app",):
        if hasattr(args, key):
            validate.app_name(getattr(args, key))
    for key in ("namespace",):
        if hasattr(args, key):
            validate.namespace(getattr(args, key))
    for key in ("timeout", "wait_for_lock", "after"):
        value = getattr(args, key, None)
        if value is not None:
            assert math.isfinite(value) and 0 <= value <= validate.MAX_DURATION
    assert not (getattr(args, "image", None) and getattr(args, "set_image", None))
    # The whole run up to the cluster (flags on bluegreen.yaml, then connecting) refuses with exit 2.
    outcome = execute([*argv, *NO_CLUSTER] if args.command != "group" else argv)
    assert outcome.error is None or "unexpected" not in outcome.error.message, outcome.error
    assert outcome.exit_code in (0, 1, 2, 3)
    if outcome.error is not None and outcome.exit_code != 2:
        assert "kubeconfig" in outcome.error.message.lower() or "cluster" in outcome.error.message.lower()


# -- the Action's inputs --------------------------------------------------------------------------

INPUT_VALUES = {
    "phase": st.sampled_from([*inputs.PHASES, "Deploy", "nope", ""]),
    "app": st.one_of(st.just("shop"), NAME_LIKE),
    "namespace": st.one_of(st.just("shop"), NAME_LIKE),
    "image": st.one_of(st.just(""), st.just("registry.local/shop:2"), NEAR),
    "set-images": st.one_of(st.just(""), st.just("web=registry.local/web:2"), NEAR),
    "router": st.one_of(st.sampled_from(validate.ROUTERS), NEAR),
    "to": st.one_of(st.sampled_from(["", "blue", "green"]), NEAR),
    "timeout": DURATION_TEXT,
    "wait-for-lock": DURATION_TEXT,
    "retire-after": DURATION_TEXT,
    "interval": DURATION_TEXT,
    "p95-tolerance": st.one_of(NEAR, NUMBERS.map(str)),
    "max-error-rate": st.one_of(NEAR, NUMBERS.map(str)),
    "dry-run": st.sampled_from(["true", "false", "yes", "maybe", ""]),
    "reason": ANY_TEXT,
    "context": ANY_TEXT,
    "kubeconfig": st.one_of(st.just(""), NEAR, st.just("clusters: 5\ncontexts: []\n")),
}


@settings(max_examples=1500)
@given(st.fixed_dictionaries({}, optional=INPUT_VALUES))
@example({"phase": "deploy", "app": "shop", "image": "r/a:1", "set-images": "web=r/b:2"})
@example({"phase": "gate", "app": "shop", "p95-tolerance": "nan"})
def test_action_inputs_valid_ones_make_a_valid_command_line(values: dict[str, str]) -> None:
    TRIED["action inputs"] += 1
    env = {f"INPUT_{k.upper()}": v for k, v in values.items()}
    try:
        parsed = inputs.parse(env)
    except UsageError as error:
        assert error.message.startswith("invalid input: ") and error.exit_code == 2
        named = error.message.removeprefix("invalid input: ").split(":")[0]
        assert named in inputs.DEFAULTS, error.message
        return
    args = parser().parse_args(parsed.argv("/nonexistent/kubeconfig"))
    check_args(args)  # what the Action accepts, the CLI accepts


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

SERVER = st.one_of(st.just("https://127.0.0.1:6443"), st.just("http://h"), NEAR, NUMBERS, st.none())
KUBECONFIG = st.fixed_dictionaries(
    {},
    optional={
        "clusters": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.one_of(st.just("c"), SCALARS)},
                    optional={
                        "cluster": st.fixed_dictionaries(
                            {"server": SERVER},
                            optional={
                                "certificate-authority-data": st.one_of(NEAR, st.just("LS0tLS1CRUdJTiBY")),
                                "insecure-skip-tls-verify": SCALARS,
                            },
                        )
                    },
                ),
                max_size=2,
            ),
            SCALARS,
        ),
        "contexts": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.one_of(st.just("x"), SCALARS)},
                    optional={
                        "context": st.fixed_dictionaries({"cluster": st.one_of(st.just("c"), SCALARS)})
                    },
                ),
                max_size=2,
            ),
            SCALARS,
        ),
        "users": st.one_of(
            st.lists(st.fixed_dictionaries({"name": st.just("u"), "user": VALUES}), max_size=1), SCALARS
        ),
        "current-context": st.one_of(st.just("x"), SCALARS),
    },
)


@settings(max_examples=1000)
@given(KUBECONFIG, st.integers(0, 20), st.integers(0, 10**6))
@example({}, 0, 0)
@example({"clusters": 5, "contexts": []}, 0, 0)
def test_kubeconfigs_are_checked_field_by_field(document: dict[str, Any], how: int, at: int) -> None:
    TRIED["kubeconfigs"] += 1
    text = _mangle(yaml.safe_dump(document, allow_unicode=True), how, at)
    try:
        data = kube.kubeconfig_data(text)
    except ValueError as error:
        assert str(error).startswith("kubeconfig: "), error
        return
    config = KubeConfig.from_dict(data)  # lightkube takes whatever passed, without a type error
    if data.get("current-context") is not None:
        assert config.get() is not None
