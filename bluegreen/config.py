"""bluegreen.yaml and command-line flags -> one validated, typed Config.

Everything is checked before anything touches the cluster, and every problem names the key and the
line it is on (`bluegreen.yaml:12: checks[1].kind: unknown kind 'promethues' ...`). All problems
found are reported together in one ConfigError. Durations (`30s`, `5m`, `1h30m`, `500ms`) and
ratios (`0.5%`, `0.005`) are parsed here and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from bluegreen import validate, yamlsafe
from bluegreen.errors import ConfigError
from bluegreen.group import Group, parse_groups
from bluegreen.verdict import Limits, Threshold, parse_condition

DEFAULT_PATH = Path("bluegreen.yaml")
KINDS = ("kubernetes", "http", "command", "job", "prometheus", "probe", "drift")
# Checks a watch runs when watch.checks is not given: one-off smoke tests stay in the gate.
WATCH_DEFAULT_KINDS = ("kubernetes", "http", "prometheus", "probe")
TEMPLATE_VARIABLES = ("color", "window", "namespace", "app")
HOOK_VARIABLES = ("app", "namespace", "color", "release", "hook")  # {{...}} in a migration hook
MEASURES = ("error-rate", "p95", "saturation", "value")
DRAIN_CHECKS = ("warn", "refuse", "off")
HOOKS = ("expand", "post-switch", "contract")
ON_FAILURE = ("rollback", "nothing")  # what a failed post-switch hook triggers
DRAIN_METHODS = ("POST", "PUT", "GET")  # the old colour's drain hook (drain.http.method)
DRAIN_VARIABLES = ("color", "namespace", "app")  # {{...}} in drain.old-traffic.query
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


# ---------------------------------------------------------------------------------------------------
# Scalars: durations, ratios, templates.


def parse_duration(text: str | float | int) -> float:
    """Seconds in `text`: `30s`, `5m`, `1h30m`, `500ms`, or a bare number of seconds; 0..24h, finite.

    ValueError otherwise (bluegreen/validate.py holds the rules and bounds)."""
    return validate.duration(text)


def format_duration(seconds: float) -> str:
    """The shortest of `500ms`, `30s`, `5m`, `1h30m` for `seconds` (for reports and PromQL windows)."""
    if seconds < 1 and seconds != 0:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    if whole != seconds:
        return f"{round(seconds * 1000)}ms"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return "".join(parts) or "0s"


def parse_ratio(text: str | float | int) -> float:
    """`0.5%` -> 0.005; a bare number is already a fraction (0.005). ValueError outside 0..1 or non-finite."""
    return validate.ratio(text)


def parse_tolerance(text: str | float | int) -> float:
    """`20%` or `+20%` or 0.2 -> 0.2: how far above the baseline a value may go (0..10,000%, finite)."""
    return validate.tolerance(text)


def template_names(text: str) -> list[str]:
    return _TEMPLATE.findall(text)


def render(text: str, variables: Mapping[str, str]) -> str:
    """`{{color}}` etc. replaced; names were validated at load time, so a miss is a programming error."""
    return _TEMPLATE.sub(lambda m: variables[m.group(1)], text)


# ---------------------------------------------------------------------------------------------------
# The typed configuration.


@dataclass(frozen=True, kw_only=True)
class CheckConfig:
    name: str
    kind: str
    line: int = 0


@dataclass(frozen=True, kw_only=True)
class KubernetesCheckConfig(CheckConfig):
    kind: str = "kubernetes"
    max_restarts: int = 0  # container restarts tolerated during the gate or watch


@dataclass(frozen=True, kw_only=True)
class HttpCheckConfig(CheckConfig):
    kind: str = "http"
    url: str = ""  # a full URL (templated); empty: `path` through the apiserver's service proxy
    path: str = "/health/ready"
    port: str = ""  # the Service port's name or number; empty: its first port
    status: int = 200
    conditions: tuple[Threshold, ...] = ()
    timeout: float = 5.0


@dataclass(frozen=True, kw_only=True)
class CommandCheckConfig(CheckConfig):
    kind: str = "command"
    command: tuple[str, ...] = ()
    timeout: float = 300.0
    tail_lines: int = 20


@dataclass(frozen=True, kw_only=True)
class JobCheckConfig(CheckConfig):
    kind: str = "job"
    template: Mapping[str, Any] = field(default_factory=dict)  # a batch/v1 Job manifest
    timeout: float = 600.0
    tail_lines: int = 20


@dataclass(frozen=True, kw_only=True)
class PrometheusCheckConfig(CheckConfig):
    kind: str = "prometheus"
    url: str = ""
    query: str = ""
    measure: Literal["error-rate", "p95", "saturation", "value"] = "value"
    min: float | None = None  # for measure: value
    max: float | None = None  # for measure: value; overrides the gate's max-error-rate for error-rate
    timeout: float = 10.0


@dataclass(frozen=True, kw_only=True)
class ProbeCheckConfig(CheckConfig):
    kind: str = "probe"
    url: str = ""  # templated with {{color}}
    urls: Mapping[str, str] = field(default_factory=dict)  # or one URL per colour
    requests: int = 20  # per colour and interval
    timeout: float = 5.0

    def url_for(self, color: str) -> str:
        return self.urls[color] if self.urls else render(self.url, {"color": color})


@dataclass(frozen=True, kw_only=True)
class DriftCheckConfig(CheckConfig):
    """Both colours the same but for the release (bluegreen/drift.py); no keys of its own."""

    kind: str = "drift"


@dataclass(frozen=True, kw_only=True)
class GateConfig:
    min_healthy: float = 300.0
    interval: float = 30.0
    timeout: float = 0.0  # 0: min_healthy + 10 minutes
    window: float = 60.0
    max_error_rate: float = 0.005
    p95_tolerance: float = 0.2
    limits: Limits = field(default_factory=Limits)
    checks: tuple[str, ...] = ()  # names; empty: every check
    drain_check: str = "warn"  # warn | refuse | off: an app that will drop requests (bluegreen.drain)
    max_request: float = 0.0  # seconds: the longest request, for the grace period check

    @property
    def deadline(self) -> float:
        return self.timeout or self.min_healthy + 600.0


@dataclass(frozen=True, kw_only=True)
class WatchConfig:
    duration: float = 600.0
    interval: float = 30.0
    window: float = 60.0
    max_error_rate: float = 0.005
    p95_tolerance: float = 0.2
    max_p95: float | None = None  # seconds; an absolute limit besides the baseline
    failures: int = 2  # consecutive bad intervals that spend the error budget
    limits: Limits = field(default_factory=Limits)
    auto_rollback: bool = True
    checks: tuple[str, ...] = ()  # names; empty: every check of the kinds in WATCH_DEFAULT_KINDS


@dataclass(frozen=True, kw_only=True)
class HookConfig:
    """One migration hook: a local command (an argument list, never a shell) or a Kubernetes Job."""

    name: str  # expand | post-switch | contract
    line: int = 0
    command: tuple[str, ...] = ()
    job: Mapping[str, Any] = field(default_factory=dict)  # a batch/v1 Job manifest
    timeout: float = 600.0
    env: Mapping[str, str] = field(default_factory=dict)  # set for the command as given
    # names passed through from bluegreen's own environment (a database password from a CI secret);
    # their values are masked in the output that is shown
    pass_env: tuple[str, ...] = ()
    tail_lines: int = 20
    on_failure: str = "nothing"  # post-switch: rollback | nothing

    @property
    def kind(self) -> str:
        return "job" if self.job else "command"


@dataclass(frozen=True, kw_only=True)
class MigrationsConfig:
    expand: HookConfig | None = None
    post_switch: HookConfig | None = None
    contract: HookConfig | None = None
    # the rollback window: contract only this long after the last switch (and once retired)
    contract_after: float = 0.0

    def hook(self, name: str) -> HookConfig | None:
        return {"expand": self.expand, "post-switch": self.post_switch, "contract": self.contract}.get(name)


@dataclass(frozen=True, kw_only=True)
class OldTrafficConfig:
    """The watch criterion after a switch: the old colour's request rate falls to zero within a bound."""

    url: str  # the Prometheus HTTP API
    query: str  # templated with {{color}} (the old colour); `sum by (pod) (...)` names lingering pods
    within: float = 120.0  # seconds after the switch
    timeout: float = 10.0


@dataclass(frozen=True, kw_only=True)
class DrainConfig:
    """The app's drain hook: after a verified switch, one HTTP call to each pod of the old colour
    (through the apiserver's pod proxy) that makes it close idle keep-alive connections and answer
    `Connection: close`, so pinned clients reconnect and reach the new colour."""

    line: int = 0
    path: str = "/drain"
    port: int = 8080
    method: str = "POST"
    timeout: float = 5.0  # per pod
    old_traffic: OldTrafficConfig | None = None


@dataclass(frozen=True, kw_only=True)
class Config:
    path: Path | None = None  # None: no file, defaults only
    app: str = ""
    namespace: str = ""
    checks: tuple[CheckConfig, ...] = (KubernetesCheckConfig(name="pods"),)
    gate: GateConfig = field(default_factory=GateConfig)
    watch: WatchConfig = field(default_factory=WatchConfig)
    groups: tuple[Group, ...] = ()  # apps that switch together: see bluegreen/group.py
    migrations: MigrationsConfig = field(default_factory=MigrationsConfig)
    drain: DrainConfig | None = None  # None: no drain hook; keep-alive clients stay on the old colour

    def gate_checks(self) -> tuple[CheckConfig, ...]:
        if not self.gate.checks:
            return self.checks
        return tuple(c for c in self.checks if c.name in self.gate.checks)

    def watch_checks(self) -> tuple[CheckConfig, ...]:
        if not self.watch.checks:
            return tuple(c for c in self.checks if c.kind in WATCH_DEFAULT_KINDS)
        return tuple(c for c in self.checks if c.name in self.watch.checks)


@dataclass(frozen=True, kw_only=True)
class Overrides:
    """Command-line flags, as typed (strings); None: not given."""

    app: str | None = None
    namespace: str | None = None
    min_healthy: str | None = None
    interval: str | None = None
    p95_tolerance: str | None = None
    max_error_rate: str | None = None
    duration: str | None = None
    auto_rollback: bool | None = None


# ---------------------------------------------------------------------------------------------------
# Loading, with line numbers.


class _Located:
    line: int
    lines: dict[Any, int]


class LocatedDict(dict[str, Any], _Located):
    pass


class LocatedList(list[Any], _Located):
    pass


class _LineLoader(yamlsafe.BoundedLoader):
    """A SafeLoader whose mappings and sequences remember the line of each key and item; no aliases,
    bounded depth (yamlsafe.BoundedLoader)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LocatedDict:
    result = LocatedDict()
    result.line = node.start_mark.line + 1
    result.lines = {}
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise yaml.MarkedYAMLError(problem=f"duplicate key {key!r}", problem_mark=key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LocatedList:
    result = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.lines = {i: child.start_mark.line + 1 for i, child in enumerate(node.value)}
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class _Problems:
    """Collects every problem with its place, to raise them together."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[int, str]] = []

    def add(self, where: str, line: int, problem: str) -> None:
        place = f"{self.source}:{line}" if line else self.source
        self.items.append((line, f"{place}: {where}: {problem}"))

    def raise_if_any(self) -> None:
        if self.items:
            count = f"{len(self.items)} problems" if len(self.items) > 1 else "1 problem"
            ordered = [text for _, text in sorted(self.items, key=lambda item: item[0])]
            raise ConfigError(
                f"{count} in the configuration:\n  " + "\n  ".join(ordered),
                remedy="Fix the keys named above; docs/configuration.md lists every key.",
            )


def _line(mapping: object, key: object) -> int:
    if isinstance(mapping, (LocatedDict, LocatedList)):
        return mapping.lines.get(key, mapping.line)
    return 0


class _Section:
    """Typed reads from one mapping, recording problems by key path and line; unknown keys too."""

    def __init__(self, data: Mapping[str, Any], where: str, problems: _Problems, allowed: Sequence[str]):
        self.data, self.where, self.problems = data, where, problems
        for key in data:
            if key not in allowed:
                self.fail(str(key), f"unknown key; known keys here: {', '.join(allowed)}")

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, problem: str) -> None:
        self.problems.add(self.path(key), _line(self.data, key), problem)

    def has(self, key: str) -> bool:
        return key in self.data

    def parsed(self, key: str, parse: Any, default: Any) -> Any:
        if key not in self.data:
            return default
        try:
            return parse(self.data[key])
        except (ValueError, TypeError) as error:
            self.fail(key, str(error))
            return default

    def string(self, key: str, default: str = "", *, required: bool = False) -> str:
        if key not in self.data:
            if required:
                self.problems.add(self.path(key), getattr(self.data, "line", 0), "required key is missing")
            return default
        value = self.data[key]
        if not isinstance(value, str) or (required and not value.strip()):
            self.fail(key, f"expected a non-empty string, got {value!r}")
            return default
        return value

    def integer(self, key: str, default: int, *, minimum: int = 0, maximum: int = 1000) -> int:
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            self.fail(key, f"expected a whole number in {minimum}..{maximum}, got {validate._shown(value)}")
            return default
        return value

    def number(self, key: str, default: float | None) -> float | None:
        if key not in self.data:
            return default
        value = self.data[key]
        try:
            return validate.finite(value)
        except ValueError as error:
            self.fail(key, str(error))
            return default

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {value!r}")
            return default
        return value

    def names(self, key: str) -> tuple[str, ...]:
        if key not in self.data:
            return ()
        value = self.data[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, "expected a list of check names")
            return ()
        return tuple(value)

    def template(self, key: str, text: str) -> None:
        for name in template_names(text):
            if name not in TEMPLATE_VARIABLES:
                self.fail(
                    key, f"unknown template variable {{{{{name}}}}}: use {', '.join(TEMPLATE_VARIABLES)}"
                )


_CHECK_KEYS: Mapping[str, tuple[str, ...]] = {
    "kubernetes": ("max-restarts",),
    "http": ("url", "path", "port", "status", "conditions", "timeout"),
    "command": ("command", "timeout", "tail-lines"),
    "job": ("template", "template-file", "timeout", "tail-lines"),
    "prometheus": ("url", "query", "measure", "min", "max", "timeout"),
    "probe": ("url", "urls", "requests", "timeout"),
    "drift": (),
}


def _check(item: Any, where: str, line: int, problems: _Problems, base: Path) -> CheckConfig | None:
    if not isinstance(item, dict):
        problems.add(where, line, "expected a mapping with at least `name` and `kind`")
        return None
    kind = item.get("kind")
    if kind not in KINDS:
        known = ", ".join(KINDS)
        problem = "required key is missing" if kind is None else f"unknown kind {kind!r}"
        problems.add(
            f"{where}.kind",
            _line(item, "kind") if "kind" in item else line,
            f"{problem}; known kinds: {known}",
        )
        return None
    s = _Section(item, where, problems, ("name", "kind", *_CHECK_KEYS[kind]))
    name = s.string("name", required=True)
    if name and not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
        s.fail("name", f"{name!r}: use lower-case letters, digits and '-' (it names Jobs and report rows)")
    if kind == "kubernetes":
        return KubernetesCheckConfig(name=name, line=line, max_restarts=s.integer("max-restarts", 0))
    if kind == "drift":
        return DriftCheckConfig(name=name, line=line)
    if kind == "http":
        url = s.string("url")
        s.template("url", url)
        _check_url(s, "url", url)
        path = s.string("path", "/health/ready")
        if not path.startswith("/"):
            s.fail("path", f"{path!r} must start with /")
        port = s.data.get("port", "")
        if isinstance(port, bool) or not isinstance(port, (str, int)):
            s.fail("port", "expected a port name or number")
            port = ""
        status = s.integer("status", 200, minimum=100, maximum=599)
        conditions: list[Threshold] = []
        raw = s.data.get("conditions", [])
        if not isinstance(raw, list):
            s.fail("conditions", 'expected a list such as ["checks.db == \\"ok\\"", "workers.running >= 1"]')
            raw = []
        for i, text in enumerate(raw):
            try:
                if not isinstance(text, str):
                    raise ValueError(f"expected a string, got {text!r}")
                conditions.append(parse_condition(text))
            except ValueError as error:
                problems.add(f"{where}.conditions[{i}]", _line(raw, i), str(error))
        return HttpCheckConfig(
            name=name,
            line=line,
            url=url,
            path=path,
            port=str(port),
            status=status,
            conditions=tuple(conditions),
            timeout=s.parsed("timeout", parse_duration, 5.0),
        )
    if kind == "command":
        command = s.data.get("command")
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(a, (str, int, float)) for a in command)
        ):
            s.fail(
                "command",
                "expected a list of arguments such as [./smoke.sh, --color, '{{color}}'] (no shell)",
            )
            command = []
        argv = tuple(str(a) for a in command)
        for arg in argv:
            s.template("command", arg)
        return CommandCheckConfig(
            name=name,
            line=line,
            command=argv,
            timeout=s.parsed("timeout", parse_duration, 300.0),
            tail_lines=s.integer("tail-lines", 20, minimum=1, maximum=10000),
        )
    if kind == "job":
        template: Any = s.data.get("template")
        if "template-file" in s.data:
            if template is not None:
                s.fail("template-file", "give either `template` or `template-file`, not both")
            file = s.string("template-file", required=True)
            try:
                where = str(base / file)
                template = validate.load_yaml(validate.yaml_text((base / file).read_bytes(), source=where))
            except (OSError, ValueError, yaml.YAMLError) as error:
                s.fail("template-file", f"cannot read a Job manifest from {file}: {error}")
                template = {}
        if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
            key = "template-file" if "template-file" in s.data else "template"
            s.fail(key, "expected a batch/v1 Job manifest (a mapping with `spec.template`)")
            template = {}
        elif template.get("kind", "Job") != "Job":
            s.fail("template", f"expected kind Job, got {template.get('kind')!r}")
        return JobCheckConfig(
            name=name,
            line=line,
            template=_plain(template),
            timeout=s.parsed("timeout", parse_duration, 600.0),
            tail_lines=s.integer("tail-lines", 20, minimum=1, maximum=10000),
        )
    if kind == "prometheus":
        url = s.string("url", required=True)
        _check_url(s, "url", url)
        query = s.string("query", required=True)
        s.template("query", query)
        measure = s.string("measure", "value")
        if measure not in MEASURES:
            s.fail("measure", f"unknown measure {measure!r}; use {', '.join(MEASURES)}")
            measure = "value"
        minimum, maximum = s.number("min", None), s.number("max", None)
        if measure == "value" and minimum is None and maximum is None and query:
            s.fail("measure", "a `value` measure needs `min`, `max` or both to judge against")
        if measure == "saturation" and minimum is not None:
            s.fail(
                "measure",
                "saturation is judged against the other colour's (p95-tolerance) and `max`, not `min`",
            )
        if measure == "p95" and (minimum is not None or maximum is not None):
            s.fail("measure", "p95 is judged against the other colour's p95 (p95-tolerance), not min/max")
        return PrometheusCheckConfig(
            name=name,
            line=line,
            url=url,
            query=query,
            measure=measure,  # type: ignore[arg-type]  # checked against MEASURES above
            min=minimum,
            max=maximum,
            timeout=s.parsed("timeout", parse_duration, 10.0),
        )
    # probe
    url = s.string("url")
    urls_raw = s.data.get("urls", {})
    urls: dict[str, str] = {}
    if not isinstance(urls_raw, dict) or not all(isinstance(v, str) for v in urls_raw.values()):
        s.fail("urls", "expected a mapping {blue: URL, green: URL}")
    else:
        urls = {str(k): v for k, v in urls_raw.items()}
        if urls and set(urls) != {"blue", "green"}:
            s.fail("urls", f"give exactly blue and green, got {', '.join(map(str, urls)) or 'none'}")
    if bool(url) == bool(urls):
        s.fail("url", "give either `url` (with {{color}}) or `urls` (one per colour)")
    s.template("url", url)
    if url and "{{" not in url:
        s.fail("url", "the URL must contain {{color}} to reach each colour apart, or use `urls`")
    _check_url(s, "url", url)
    for one in urls.values():
        _check_url(s, "urls", one)
    return ProbeCheckConfig(
        name=name,
        line=line,
        url=url,
        urls=urls,
        requests=s.integer("requests", 20, minimum=1),
        timeout=s.parsed("timeout", parse_duration, 5.0),
    )


def _check_url(s: _Section, key: str, url: str) -> None:
    """An http(s) URL with a host, as it will be once templated (so a space is found now, not as an
    InvalidURL in the middle of a gate)."""
    if not url:
        return
    import httpx2  # here, not at the top: `bluegreen --help` stays fast

    sample = _TEMPLATE.sub(lambda m: "x", url)
    try:
        validate.url(sample)
        httpx2.URL(sample)
    except ValueError as error:
        s.fail(key, str(error).replace(validate._shown(sample), validate._shown(url)))
    except httpx2.InvalidURL as error:
        s.fail(key, f"{validate._shown(url)} is not a URL: {error}")


def _plain(value: Any) -> Any:
    """Located containers -> plain dicts and lists (Job manifests go to the API as plain data)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _limits(s: _Section, default: Limits) -> Limits:
    return Limits(
        failure_limit=s.integer("failure-limit", default.failure_limit),
        inconclusive_limit=s.integer("inconclusive-limit", default.inconclusive_limit),
        consecutive_error_limit=s.integer("consecutive-error-limit", default.consecutive_error_limit),
    )


_LIMIT_KEYS = ("failure-limit", "inconclusive-limit", "consecutive-error-limit")


def _gate(data: Any, problems: _Problems, line: int) -> GateConfig:
    if data is None:
        return GateConfig()
    if not isinstance(data, dict):
        problems.add("gate", line, "expected a mapping")
        return GateConfig()
    s = _Section(
        data,
        "gate",
        problems,
        (
            "min-healthy",
            "interval",
            "timeout",
            "window",
            "max-error-rate",
            "p95-tolerance",
            "checks",
            "drain-check",
            "max-request",
            *_LIMIT_KEYS,
        ),
    )
    d = GateConfig()
    drain_check = s.string("drain-check", d.drain_check)
    if drain_check not in DRAIN_CHECKS:
        s.fail("drain-check", f"expected one of {', '.join(DRAIN_CHECKS)}, got {drain_check!r}")
    return GateConfig(
        min_healthy=s.parsed("min-healthy", parse_duration, d.min_healthy),
        interval=s.parsed("interval", _positive_duration, d.interval),
        timeout=s.parsed("timeout", parse_duration, d.timeout),
        window=s.parsed("window", _positive_duration, d.window),
        max_error_rate=s.parsed("max-error-rate", parse_ratio, d.max_error_rate),
        p95_tolerance=s.parsed("p95-tolerance", parse_tolerance, d.p95_tolerance),
        limits=_limits(s, d.limits),
        checks=s.names("checks"),
        drain_check=drain_check,
        max_request=s.parsed("max-request", parse_duration, d.max_request),
    )


def _watch(data: Any, problems: _Problems, line: int) -> WatchConfig:
    if data is None:
        return WatchConfig()
    if not isinstance(data, dict):
        problems.add("watch", line, "expected a mapping")
        return WatchConfig()
    s = _Section(
        data,
        "watch",
        problems,
        (
            "duration",
            "interval",
            "window",
            "max-error-rate",
            "p95-tolerance",
            "max-p95",
            "failures",
            "auto-rollback",
            "checks",
            *_LIMIT_KEYS,
        ),
    )
    d = WatchConfig()
    return WatchConfig(
        duration=s.parsed("duration", parse_duration, d.duration),
        interval=s.parsed("interval", _positive_duration, d.interval),
        window=s.parsed("window", _positive_duration, d.window),
        max_error_rate=s.parsed("max-error-rate", parse_ratio, d.max_error_rate),
        p95_tolerance=s.parsed("p95-tolerance", parse_tolerance, d.p95_tolerance),
        max_p95=s.parsed("max-p95", parse_duration, d.max_p95),
        failures=s.integer("failures", d.failures, minimum=1),
        limits=_limits(s, d.limits),
        auto_rollback=s.boolean("auto-rollback", d.auto_rollback),
        checks=s.names("checks"),
    )


def _job_manifest(s: _Section, base: Path) -> Any:
    """A Job manifest from `job` (inline) or `job-file` (beside bluegreen.yaml); {} with a problem."""
    manifest: Any = s.data.get("job")
    if "job-file" in s.data:
        if manifest is not None:
            s.fail("job-file", "give either `job` or `job-file`, not both")
        file = s.string("job-file", required=True)
        try:
            where = str(base / file)
            manifest = validate.load_yaml(validate.yaml_text((base / file).read_bytes(), source=where))
        except (OSError, ValueError, yaml.YAMLError) as error:
            s.fail("job-file", f"cannot read a Job manifest from {file}: {error}")
            return {}
    key = "job-file" if "job-file" in s.data else "job"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("spec"), dict):
        s.fail(key, "expected a batch/v1 Job manifest (a mapping with `spec.template`)")
        return {}
    if manifest.get("kind", "Job") != "Job":
        s.fail(key, f"expected kind Job, got {manifest.get('kind')!r}")
        return {}
    return _plain(manifest)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _strings(v)]
    if isinstance(value, list):
        return [t for v in value for t in _strings(v)]
    return []


def _hook(data: Any, name: str, problems: _Problems, line: int, base: Path) -> HookConfig | None:
    where = f"migrations.{name}"
    if not isinstance(data, dict):
        problems.add(where, line, "expected a mapping with `command` (an argument list) or `job`")
        return None
    keys = ("command", "job", "job-file", "timeout", "env", "pass-env", "tail-lines")
    s = _Section(data, where, problems, (*keys, "on-failure") if name == "post-switch" else keys)
    given = [k for k in ("command", "job", "job-file") if k in data]
    if len(given) != 1:
        s.fail(
            given[1] if len(given) > 1 else "command",
            "give exactly one of `command` (an argument list, no shell), `job` or `job-file`",
        )
    argv: tuple[str, ...] = ()
    if "command" in data:
        command = data["command"]
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in command)
        ):
            s.fail("command", "expected a list of arguments such as [./migrate, expand] (no shell)")
        else:
            argv = tuple(str(a) for a in command)
    job = _job_manifest(s, base) if "job" in data or "job-file" in data else {}
    for key, text in [("command", a) for a in argv] + [("job", t) for t in _strings(job)]:
        for unknown in [n for n in template_names(text) if n not in HOOK_VARIABLES]:
            s.fail(key, f"unknown template variable {{{{{unknown}}}}}: use {', '.join(HOOK_VARIABLES)}")
    env: dict[str, str] = {}
    raw_env = data.get("env", {})
    if not isinstance(raw_env, dict) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float)) and not isinstance(v, bool)
        for k, v in raw_env.items()
    ):
        s.fail("env", "expected a mapping of variable names to values, such as {PGHOST: db.internal}")
    else:
        env = {k: str(v) for k, v in raw_env.items()}
    raw_pass = data.get("pass-env", [])
    pass_env: tuple[str, ...] = ()
    if not isinstance(raw_pass, list) or not all(isinstance(v, str) for v in raw_pass):
        s.fail("pass-env", "expected a list of environment variable names, such as [PGPASSWORD]")
    else:
        pass_env = tuple(raw_pass)
    for key, names in (("env", tuple(env)), ("pass-env", pass_env)):
        for bad in [n for n in names if not _ENV_NAME.fullmatch(n)]:
            s.fail(key, f"{validate._shown(bad)} is not an environment variable name")
    if job and (env or pass_env):
        s.fail(
            "env" if env else "pass-env", "a Job hook takes its environment from its manifest (and Secrets)"
        )
    on_failure = s.string("on-failure", "nothing")
    if on_failure not in ON_FAILURE:
        s.fail("on-failure", f"expected one of {', '.join(ON_FAILURE)}, got {on_failure!r}")
    return HookConfig(
        name=name,
        line=line,
        command=argv,
        job=job,
        timeout=s.parsed("timeout", _positive_duration, 600.0),
        env=env,
        pass_env=pass_env,
        tail_lines=s.integer("tail-lines", 20, minimum=1, maximum=10000),
        on_failure=on_failure,
    )


def _migrations(data: Any, problems: _Problems, line: int, base: Path) -> MigrationsConfig:
    if data is None:
        return MigrationsConfig()
    if not isinstance(data, dict):
        problems.add("migrations", line, "expected a mapping with expand, post-switch and contract")
        return MigrationsConfig()
    s = _Section(data, "migrations", problems, (*HOOKS, "contract-after"))
    hooks = {
        name: _hook(data[name], name, problems, _line(data, name), base) for name in HOOKS if name in data
    }
    return MigrationsConfig(
        expand=hooks.get("expand"),
        post_switch=hooks.get("post-switch"),
        contract=hooks.get("contract"),
        contract_after=s.parsed("contract-after", parse_duration, 0.0),
    )


def _drain(data: Any, problems: _Problems, line: int) -> DrainConfig | None:
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("http"), dict):
        problems.add(
            "drain", line, "expected a mapping such as {http: {path: /drain, port: 8080, method: POST}}"
        )
        return None
    s = _Section(data, "drain", problems, ("http", "timeout", "old-traffic"))
    h = _Section(data["http"], "drain.http", problems, ("path", "port", "method"))
    d = DrainConfig()
    path = h.string("path", d.path)
    if not path.startswith("/") or any(c.isspace() or c in "?#" for c in path):
        h.fail("path", f"{validate._shown(path)}: a path such as /drain (starts with /, no spaces, ? or #)")
    method = h.string("method", d.method)
    if method not in DRAIN_METHODS:
        h.fail("method", f"expected one of {', '.join(DRAIN_METHODS)}, got {validate._shown(method)}")
    old: OldTrafficConfig | None = None
    raw = data.get("old-traffic")
    if raw is not None:
        if not isinstance(raw, dict):
            s.fail("old-traffic", "expected a mapping with `url`, `query` and `within`")
        else:
            o = _Section(raw, "drain.old-traffic", problems, ("url", "query", "within", "timeout"))
            url = o.string("url", required=True)
            _check_url(o, "url", url)
            query = o.string("query", required=True)
            for name in template_names(query):
                if name not in DRAIN_VARIABLES:
                    o.fail(
                        "query", f"unknown template variable {{{{{name}}}}}: use {', '.join(DRAIN_VARIABLES)}"
                    )
            if query and "color" not in template_names(query):
                o.fail("query", "the query must name the old colour with {{color}}")
            old = OldTrafficConfig(
                url=url,
                query=query,
                within=o.parsed("within", _positive_duration, 120.0),
                timeout=o.parsed("timeout", _positive_duration, 10.0),
            )
    return DrainConfig(
        line=line,
        path=path,
        port=h.integer("port", d.port, minimum=1, maximum=65535),
        method=method,
        timeout=s.parsed("timeout", _positive_duration, d.timeout),
        old_traffic=old,
    )


def _positive_duration(text: str | float | int) -> float:
    return validate.positive_duration(text)


def parse(text: str, *, source: str = "bluegreen.yaml", base: Path = Path()) -> Config:
    """A Config from YAML text; ConfigError listing every problem with its line."""
    problems = _Problems(source)
    try:
        data = validate.load_yaml(text, _LineLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        problems.add("(yaml)", mark.line + 1 if mark else 0, str(error.problem or error))
        problems.raise_if_any()
        raise AssertionError("unreachable") from error
    except yaml.YAMLError as error:
        problems.add("(yaml)", 0, str(error))
        problems.raise_if_any()
        raise AssertionError("unreachable") from error
    if data is None:
        data = LocatedDict()
        data.line, data.lines = 1, {}
    if not isinstance(data, dict):
        problems.add("(top)", 1, "expected a mapping with keys such as checks, gate and watch")
        problems.raise_if_any()
    top = _Section(
        data,
        "",
        problems,
        ("version", "app", "namespace", "checks", "gate", "watch", "groups", "migrations", "drain"),
    )
    if "version" in data and data["version"] != 1:
        top.fail("version", f"unsupported version {data['version']!r}; this bluegreen reads version 1")
    checks: list[CheckConfig] = []
    raw_checks = data.get("checks", None)
    if raw_checks is not None and not isinstance(raw_checks, list):
        top.fail("checks", "expected a list of checks")
    elif raw_checks is not None:
        seen: dict[str, int] = {}
        for i, item in enumerate(raw_checks):
            built = _check(item, f"checks[{i}]", _line(raw_checks, i), problems, base)
            if built is None:
                continue
            if built.name in seen:
                problems.add(
                    f"checks[{i}].name",
                    built.line,
                    f"duplicate name {built.name!r} (first on line {seen[built.name]})",
                )
            seen[built.name] = built.line
            checks.append(built)
    gate = _gate(data.get("gate"), problems, _line(data, "gate"))
    watch = _watch(data.get("watch"), problems, _line(data, "watch"))
    migrations = _migrations(data.get("migrations"), problems, _line(data, "migrations"), base)
    drain = _drain(data.get("drain"), problems, _line(data, "drain"))
    names = {c.name for c in checks}
    for section, wanted, key in (("gate", gate.checks, "gate"), ("watch", watch.checks, "watch")):
        for name in wanted:
            if name not in names:
                where = data.get(key)
                problems.add(
                    f"{section}.checks",
                    _line(where, "checks"),
                    f"no check named {name!r}; defined: {', '.join(sorted(names)) or 'none'}",
                )
    if gate.timeout and gate.timeout < gate.min_healthy:
        problems.add(
            "gate.timeout",
            _line(data.get("gate"), "timeout"),
            "shorter than gate.min-healthy: the gate could never pass",
        )
    app = top.parsed("app", validate.app_name, "")
    namespace = top.parsed("namespace", validate.namespace, "")
    groups, group_problems = parse_groups(data.get("groups"), default_namespace=namespace)
    for line, where, problem in group_problems:
        problems.add(where, line, problem)
    problems.raise_if_any()
    return Config(
        path=None,
        app=app,
        namespace=namespace,
        checks=tuple(checks) if raw_checks is not None else Config().checks,
        gate=gate,
        watch=watch,
        groups=groups,
        migrations=migrations,
        drain=drain,
    )


def load(path: Path | None = None, overrides: Overrides | None = None) -> Config:
    """The Config from `path` (default ./bluegreen.yaml, optional) with flags applied on top.

    An explicit path that does not exist is an error; a missing default file means the defaults:
    one `kubernetes` check, the seed's switching gate and a 10-minute watch.
    """
    overrides = overrides or Overrides()
    if path is None:
        chosen = DEFAULT_PATH
        config = Config()
        if chosen.is_file():
            config = replace(parse(read(chosen), source=str(chosen), base=Path()), path=chosen)
    else:
        config = replace(parse(read(path), source=str(path), base=path.parent), path=path)
    return apply(config, overrides)


def read(path: Path) -> str:
    """The text of a configuration file: bounded in size, UTF-8; ConfigError naming the file otherwise."""
    try:
        with path.open("rb") as file:
            data = file.read(validate.MAX_YAML_BYTES + 1)  # enough to refuse a huge file, no more
        return validate.yaml_text(data, source=str(path))
    except OSError as error:
        raise ConfigError(
            f"cannot read the configuration {path}: {error.strerror or error}",
            remedy="Pass --config with the path of an existing bluegreen.yaml, or leave it out for defaults.",
        ) from None
    except ValueError as error:
        raise ConfigError(
            f"{error}", remedy="Point --config at a bluegreen.yaml (UTF-8 YAML text, at most 1 MiB)."
        ) from None


def apply(config: Config, overrides: Overrides) -> Config:
    """Flags on top of the file; a bad flag value is one ConfigError naming the flag."""
    problems = _Problems("command line")

    def flag(name: str, raw: str | None, parse_: Any) -> Any:
        if raw is None:
            return None
        try:
            return parse_(raw)
        except ValueError as error:
            problems.add(f"--{name}", 0, str(error))
            return None

    min_healthy = flag("min-healthy", overrides.min_healthy, parse_duration)
    interval = flag("interval", overrides.interval, _positive_duration)
    tolerance = flag("p95-tolerance", overrides.p95_tolerance, parse_tolerance)
    error_rate = flag("max-error-rate", overrides.max_error_rate, parse_ratio)
    duration = flag("duration", overrides.duration, parse_duration)
    # A file that names its app is that app's: its checks and thresholds judged against another app
    # would pass or fail a release on someone else's numbers.
    source = str(config.path) if config.path else "bluegreen.yaml"
    for key, named, given in (
        ("app", config.app, overrides.app),
        ("namespace", config.namespace, overrides.namespace),
    ):
        if named and given and named != given:
            problems.add(f"--{key}", 0, f"{given!r}, but {source} is for {key} {named!r}")
    problems.raise_if_any()
    gate, watch = config.gate, config.watch
    gate = replace(
        gate,
        min_healthy=gate.min_healthy if min_healthy is None else min_healthy,
        interval=gate.interval if interval is None else interval,
        p95_tolerance=gate.p95_tolerance if tolerance is None else tolerance,
        max_error_rate=gate.max_error_rate if error_rate is None else error_rate,
    )
    if gate.timeout and gate.timeout < gate.min_healthy:
        gate = replace(gate, timeout=0.0)  # the flag asked for longer; let the deadline follow it
    watch = replace(
        watch,
        interval=watch.interval if interval is None else interval,
        p95_tolerance=watch.p95_tolerance if tolerance is None else tolerance,
        max_error_rate=watch.max_error_rate if error_rate is None else error_rate,
        duration=watch.duration if duration is None else duration,
        auto_rollback=watch.auto_rollback if overrides.auto_rollback is None else overrides.auto_rollback,
    )
    return replace(
        config,
        app=overrides.app or config.app,
        namespace=overrides.namespace or config.namespace,
        gate=gate,
        watch=watch,
    )
