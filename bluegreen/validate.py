"""The validation edge: every value a person types becomes a typed, bounded value here, or is refused.

Flags, Action inputs, bluegreen.yaml, group files and kubeconfigs all go through these parsers before
any request is sent. Each parser takes the raw value (text, or what YAML made of it) and returns the
typed value, or raises ValueError saying what the value was and what is allowed; the caller adds where
it came from (the flag, the input, or file:line), so every refusal names all three.

Bounds, documented in docs/configuration.md:
- names by their Kubernetes kind: a DNS-1123 label (namespace, container), a DNS-1035 label (Service),
  a DNS-1123 subdomain (Deployment); an app name short enough that `<app>-preview` still fits 63;
- durations finite, 0 <= d <= 24h; ratios 0..1; tolerances 0..100 (10,000%); counts bounded;
- YAML: no aliases, at most MAX_DEPTH levels of nesting, at most MAX_YAML_BYTES, UTF-8 text only.

Pure: no I/O and nothing of ours imported but the error types, so it is cheap to fuzz. The YAML
loader itself is bluegreen/yamlsafe.py, imported on first use: the CLI imports this module for its
argument types, and `--version`, `--help` or a usage error must not pay for PyYAML (issue 14).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bluegreen.yamlsafe import BoundedLoader

MAX_DURATION = 24 * 3600.0  # seconds: no wait, window or safety period of ours is longer than a day
MAX_TOLERANCE = 100.0  # 10,000%: finite, and far above any tolerance a gate means (tests use 2000%)
MAX_TEXT = 1024  # characters of free text (a reason, a run URL, a context name)
MAX_REASON = 1024 * 1024  # characters of a reason: the history cuts it to fit its annotation
MAX_PATH = 4096
MAX_YAML_BYTES = 1024 * 1024  # bluegreen.yaml and kubeconfigs are a few KiB; 1 MiB is generous
MAX_DEPTH = 64  # nesting levels of a YAML document (a Job template needs about 10)
MAX_NUMBER_TEXT = 64  # characters of a duration, ratio or number as typed
LONGEST_SUFFIX = "-preview"  # the longest name bluegreen derives from an app name: <app>-preview
MAX_APP = 63 - len(LONGEST_SUFFIX)
ROUTERS = ("service", "ingress", "gateway", "istio", "smi", "dns")

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_LABEL_KEY_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _shown(value: object) -> str:
    """The value as the message quotes it: repr, cut so a megabyte of input is not echoed back."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------------------------------------------
# Kubernetes names.


def _need_str(value: object, kind: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{_shown(value)} is not {kind}: expected text, got {type(value).__name__}")
    return value


def dns_label(value: object, *, kind: str = "a Kubernetes name") -> str:
    """A DNS-1123 label (namespaces, containers): 1-63 of a-z, 0-9 and '-', alphanumeric at both ends."""
    text = _need_str(value, kind)
    if len(text) > 63 or not _LABEL.fullmatch(text):
        raise ValueError(
            f"{_shown(text)} is not {kind}: use 1-63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit (no '/', '.', '..' or spaces)"
        )
    return text


def dns1035_label(value: object, *, kind: str = "a Service name") -> str:
    """A DNS-1035 label (Services): a DNS-1123 label that starts with a letter."""
    text = _need_str(value, kind)
    if len(text) > 63 or not _DNS1035.fullmatch(text):
        raise ValueError(
            f"{_shown(text)} is not {kind}: use 1-63 lower-case letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return text


def dns_subdomain(value: object, *, kind: str = "a Kubernetes object name") -> str:
    """A DNS-1123 subdomain (Deployments, Jobs): labels joined by '.', at most 253 characters."""
    text = _need_str(value, kind)
    if not text or len(text) > 253 or not all(_LABEL.fullmatch(part) for part in text.split(".")):
        raise ValueError(
            f"{_shown(text)} is not {kind}: use at most 253 lower-case letters, digits, '-' and '.', "
            "each dot-separated part starting and ending with a letter or digit"
        )
    return text


def app_name(value: object) -> str:
    """An app's name: it names the Service (DNS-1035) and `<app>-blue`, `<app>-green`, `<app>-preview`."""
    text = dns1035_label(value, kind="an app name")
    if len(text) > MAX_APP:
        raise ValueError(
            f"{_shown(text)} is {len(text)} characters: an app name may have at most {MAX_APP}, "
            f"so that {text[:8]}...{LONGEST_SUFFIX} still fits Kubernetes' 63"
        )
    return text


def namespace(value: object) -> str:
    return dns_label(value, kind="a namespace name")


def service_name(value: object) -> str:
    return dns1035_label(value, kind="a Service name")


def deployment_name(value: object) -> str:
    return dns_subdomain(value, kind="a Deployment name")


def container_name(value: object) -> str:
    return dns_label(value, kind="a container name")


def label_key(value: object) -> str:
    """A label key: NAME or PREFIX/NAME, PREFIX a DNS subdomain, NAME 1-63 of [A-Za-z0-9-_.]."""
    text = _need_str(value, "a label key")
    prefix, slash, name = text.rpartition("/")
    try:
        if slash:
            dns_subdomain(prefix, kind="a label key's prefix")
    except ValueError as error:
        raise ValueError(f"{_shown(text)} is not a label key: {error}") from None
    if len(name) > 63 or not _LABEL_KEY_NAME.fullmatch(name):
        raise ValueError(
            f"{_shown(text)} is not a label key: write NAME or PREFIX/NAME, e.g. bluegreen.io/color "
            "(NAME: 1-63 letters, digits, '-', '_' or '.')"
        )
    return text


def choice(value: object, allowed: Iterable[str], *, kind: str) -> str:
    """One of `allowed` (case-insensitive); the lower-case spelling."""
    options = tuple(allowed)
    text = _need_str(value, kind).strip().lower()
    if text not in options:
        raise ValueError(f"{_shown(value)} is not {kind}: use one of {', '.join(options)}")
    return text


def router(value: object) -> str:
    return choice(value, ROUTERS, kind="a router")


def dns_server(value: object) -> str:
    """`HOST[:PORT]` of a DNS server, as `host:port` (port 53 when omitted), or empty."""
    got = text(value, kind="a DNS server")
    if not got:
        return ""
    from bluegreen.dnsquery import server

    host, port = server(got)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def text(value: object, *, kind: str = "text", limit: int = MAX_TEXT) -> str:
    """Free text (a reason, an actor): at most `limit` characters, no control characters but tab."""
    got = _need_str(value, kind)
    if len(got) > limit:
        raise ValueError(f"{_shown(got)} is {len(got)} characters long: {kind} may have at most {limit}")
    if got.strip() == "--":  # argparse drops it: `--reason=--` would arrive as nothing
        raise ValueError(
            f"{_shown(got)} cannot be given as a value: a command line reads it as the end of options"
        )
    bad = next((c for c in got if (ord(c) < 32 and c != "\t") or ord(c) == 127), None)
    if bad is not None:
        raise ValueError(f"{_shown(got)}: {kind} may not contain control characters such as {bad!r}")
    return got


def reason(value: object) -> str:
    """Why a change was made: free text on one line; long ones are cut where they are recorded."""
    return text(value, kind="a reason", limit=MAX_REASON)


def url(value: object, *, kind: str = "an http(s) URL") -> str:
    """An http(s) URL with a host, or empty."""
    got = text(value, kind=kind)
    if got and not re.fullmatch(r"https?://[^/\s?#]+([/?#]\S*)?", got):
        raise ValueError(f"{_shown(got)} is not {kind}: write http://HOST[:PORT][/PATH] or https://...")
    return got


def path(value: object, *, kind: str = "a file path") -> str:
    """A file path: no NUL byte, at most MAX_PATH characters (what the OS itself would refuse)."""
    got = _need_str(value, kind)
    if "\x00" in got or len(got) > MAX_PATH or not got:
        raise ValueError(f"{_shown(got)} is not {kind}: a non-empty path without NUL bytes")
    return got


# ---------------------------------------------------------------------------------------------------
# Numbers: durations, ratios, tolerances, counts.


def _number_text(value: object, kind: str, example: str) -> str | float:
    """`value` as text to parse, or as a float when YAML already made a number of it."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{_shown(value)} is not {kind}: write e.g. {example}")
    if isinstance(value, str):
        raw = value.strip()
        if not raw or len(raw) > MAX_NUMBER_TEXT:
            raise ValueError(f"{_shown(value)} is not {kind}: write e.g. {example}")
        return raw
    try:
        return float(value)
    except OverflowError:  # an int too large for a float
        raise ValueError(f"{_shown(value)} is not {kind}: it is far out of range") from None


def _finite(number: float, value: object, kind: str, example: str) -> float:
    if not math.isfinite(number):
        raise ValueError(f"{_shown(value)} is not {kind}: it must be a finite number, e.g. {example}")
    return number


def duration(value: object, *, minimum: float = 0.0, maximum: float = MAX_DURATION) -> float:
    """Seconds: `30s`, `5m`, `1h30m`, `500ms` or a bare number of seconds, within minimum..maximum."""
    example = "30s, 5m, 1h30m or 500ms"
    raw = _number_text(value, "a duration", example)
    if isinstance(raw, float):
        seconds = raw
    elif re.fullmatch(r"[0-9]+(\.[0-9]+)?", raw):
        seconds = float(raw)  # digits only: float() would also take nan, inf, 1e400 and '1_0'
    else:
        pos, seconds = 0, 0.0
        for match in _DURATION.finditer(raw):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _SCALE[match.group(2)]
            pos = match.end()
        if pos != len(raw):
            raise ValueError(f"{_shown(value)} is not a duration: write e.g. {example}")
    _finite(seconds, value, "a duration", example)
    if seconds < minimum:
        raise ValueError(f"{_shown(value)} is too short: at least {format_seconds(minimum)} here")
    if seconds > maximum:
        raise ValueError(
            f"{_shown(value)} is too long: a duration here may be at most {format_seconds(maximum)}"
        )
    return seconds


def positive_duration(value: object) -> float:
    """A duration of more than zero (intervals and windows: zero would be a busy loop)."""
    seconds = duration(value)
    if seconds <= 0:
        raise ValueError(f"{_shown(value)}: must be more than zero")
    return seconds


def format_seconds(seconds: float) -> str:
    """`86400` -> `24h`, `0.5` -> `500ms`: how bounds are quoted back."""
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v) or "0s"


def _fraction(value: object, kind: str, example: str) -> float:
    raw = _number_text(value, kind, example)
    if isinstance(raw, float):
        number = raw
    else:
        digits = raw[:-1].strip() if raw.endswith("%") else raw
        if not re.fullmatch(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", digits):
            raise ValueError(f"{_shown(value)} is not {kind}: write e.g. {example}")
        number = float(digits) / 100 if raw.endswith("%") else float(digits)
    return _finite(number, value, kind, example)


def ratio(value: object) -> float:
    """`0.5%` -> 0.005; a bare number is already a fraction. 0..1 (0%..100%)."""
    number = _fraction(value, "a ratio", "0.5% or 0.005")
    if not 0 <= number <= 1:
        raise ValueError(f"{_shown(value)} is outside 0..100%: a rate is a fraction of requests")
    return number


def tolerance(value: object) -> float:
    """`20%`, `+20%` or 0.2 -> 0.2: how far above the baseline a value may go, 0..10,000%."""
    if isinstance(value, str) and value.strip().startswith("+"):
        value = value.strip()[1:]
    number = _fraction(value, "a tolerance", "20% or 0.2")
    if not 0 <= number <= MAX_TOLERANCE:
        raise ValueError(f"{_shown(value)} is outside 0..{MAX_TOLERANCE * 100:.0f}%")
    return number


def count(value: object, *, minimum: int = 0, maximum: int, kind: str = "a count") -> int:
    """A whole number in minimum..maximum (YAML or text)."""
    number: Any = value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,18}", value.strip()):
        number = int(value.strip())
    if isinstance(number, bool) or not isinstance(number, int) or not minimum <= number <= maximum:
        raise ValueError(f"{_shown(value)} is not {kind}: expected a whole number in {minimum}..{maximum}")
    return number


def finite(value: object, *, kind: str = "a number") -> float:
    """A finite number (YAML int or float): no .nan, .inf or 1e400."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{_shown(value)} is not {kind}: it is far out of range") from None
    return _finite(number, value, kind, "0.5 or 100")


# ---------------------------------------------------------------------------------------------------
# Safe YAML.


def yaml_text(data: bytes, *, source: str) -> str:
    """The text of a YAML file: at most MAX_YAML_BYTES, UTF-8; ValueError naming the source otherwise."""
    if len(data) > MAX_YAML_BYTES:
        raise ValueError(
            f"{source} is larger than {MAX_YAML_BYTES // 1024} KiB, the most bluegreen reads "
            "(is it the right file?)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ValueError(
            f"{source}:{line}: not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start}); "
            "is it a binary file?"
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ValueError(f"{source}:{line}: a NUL byte: this is a binary file, not YAML")
    return text


def load_yaml(text: str, loader: type[BoundedLoader] | None = None) -> Any:
    """One YAML document through `loader` (yamlsafe.BoundedLoader by default): yaml.YAMLError for
    anything refused."""
    from bluegreen import yamlsafe

    return yamlsafe.load(text, loader or yamlsafe.BoundedLoader)
