"""The Action's inputs: read from the environment in one place, validated, turned into the phase's options.

action.yml maps every input to a BLUEGREEN_* variable by hand (runners do not reliably pass hyphenated
inputs); the runner's own INPUT_X-Y and INPUT_X_Y spellings are read too, so the action also works
when used with `docker run -e INPUT_...` or an older action.yml. Everything is checked here, before
anything touches the cluster, and all problems are reported together. The engine gets typed options
(bluegreen/options.py), the same objects the CLI builds from its flags: no command line is rebuilt
and parsed again, which is where inputs used to get lost.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bluegreen import logs, validate
from bluegreen.errors import UsageError
from bluegreen.model import Color, RunInfo
from bluegreen.options import (
    Checks,
    DeployOptions,
    DiffOptions,
    GateOptions,
    Images,
    InitOptions,
    MigrateOptions,
    PatchOptions,
    PhaseOptions,
    ReleaseOptions,
    RetireOptions,
    RollbackOptions,
    StatusOptions,
    SwitchOptions,
    Target,
    WatchOptions,
    Writes,
    github_run,
)
from bluegreen.rollout import valid_image

if TYPE_CHECKING:
    from bluegreen.traffic_probe import ProbeOptions

PHASES = (
    "init",
    "deploy",
    "gate",
    "switch",
    "watch",
    "rollback",
    "retire",
    "status",
    "release",
    "expand",
    "contract",
    "diff",
    "patch",
)
ROUTERS = ("service", "ingress", "gateway", "istio", "smi", "dns")
DNS_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
TRUE, FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off", "")

# Every input of action.yml with its default there: a test keeps the two in step.
DEFAULTS: dict[str, str] = {
    "phase": "",
    "app": "",
    "namespace": "default",
    "image": "",
    "set-images": "",
    "manifests": "",
    "copy-cluster-config": "false",
    "kubeconfig": "",
    "context": "",
    "router": "",  # "": the router `init` recorded on the app, else service
    "config": "",
    "to": "",
    "candidate": "",
    "reason": "",
    "dry-run": "false",
    "timeout": "10m",
    "wait-for-lock": "0s",
    "min-healthy": "",
    "interval": "",
    "p95-tolerance": "",
    "max-error-rate": "",
    "duration": "",
    "auto-rollback": "true",
    "retire-after": "0s",
    "environment": "",
    "environment-url": "",
    "probe-url": "",
    "probe-header": "",
    "probe-pattern": "",
    "probe-fail-on-error": "false",
    "log-format": "text",
    "pushgateway": "",
    "release": "",
    "undo": "true",
    "dns-server": "",
    "github-token": "",
}


def env_name(name: str) -> str:
    return "BLUEGREEN_" + name.upper().replace("-", "_")


def raw_inputs(env: Mapping[str, str]) -> dict[str, str]:
    """Each input's text: the first non-empty of BLUEGREEN_X_Y, INPUT_X-Y, INPUT_X_Y, else its default."""
    values = {}
    for name, default in DEFAULTS.items():
        upper = name.upper()
        candidates = (env_name(name), f"INPUT_{upper}", f"INPUT_{upper.replace('-', '_')}")
        values[name] = next((env[key].strip() for key in candidates if env.get(key, "").strip()), default)
    return values


@dataclass(frozen=True, kw_only=True)
class ActionInputs:
    phase: str
    app: str
    namespace: str
    image: str
    set_images: tuple[tuple[str, str], ...]
    manifests: tuple[str, ...]  # paths or globs, expanded when the phase runs (in the workspace)
    copy_cluster_config: bool
    kubeconfig: str  # the content, decoded; "" means $KUBECONFIG
    context: str
    router: str
    config: str
    to: Color | None
    candidate: str
    reason: str
    dry_run: bool
    timeout: float  # seconds
    wait_for_lock: float
    min_healthy: str  # the gate's and watch's thresholds as given: config.apply checks them with the file
    interval: str
    p95_tolerance: str
    max_error_rate: str
    duration: str
    auto_rollback: bool
    retire_after: float
    environment: str
    environment_url: str
    github_token: str
    run: RunInfo  # who asked, from the GitHub variables: the audit trail
    release: str = ""  # expand and contract: the release the run belongs to (default GITHUB_SHA)
    probe: ProbeOptions | None = None  # probe-url and its companions (switch and rollback)
    log_format: str = "text"  # text, or json: one JSON object a line (logs.py), as --log-format
    pushgateway: str = ""  # where the release metrics are pushed (metrics.py), as --pushgateway; "" none
    undo: bool = True  # switch: a switch that fails its verification is moved back
    dns_server: str = ""  # router dns: the authoritative server asked to verify, host:port; "" none

    def options(self, kubeconfig_path: str | None) -> PhaseOptions:
        """What the engine runs: every input that applies to this phase, typed, and nothing else."""
        target = Target(
            app=self.app,
            namespace=self.namespace,
            kubeconfig=kubeconfig_path,
            context=self.context or None,
            router=self.router,
            timeout=self.timeout,
            dns_server=self.dns_server,
        )
        writes = Writes(dry_run=self.dry_run, wait_for_lock=self.wait_for_lock, run=self.run)
        images = Images(
            image=self.image or None,
            set_images=self.set_images,
            manifests=self.manifests,
            copy_cluster_config=self.copy_cluster_config,
        )
        checks = Checks(
            config=Path(self.config) if self.config else None,
            min_healthy=self.min_healthy or None,
            interval=self.interval or None,
            p95_tolerance=self.p95_tolerance or None,
            max_error_rate=self.max_error_rate or None,
            duration=self.duration or None,
            auto_rollback=None if self.auto_rollback else False,  # true is the default: the file decides
        )
        match self.phase:
            case "status":
                return StatusOptions(target=target)
            case "diff":
                return DiffOptions(target=target)
            case "init":
                return InitOptions(target=target, writes=writes)
            case "deploy":
                return DeployOptions(target=target, writes=writes, images=images)
            case "patch":
                return PatchOptions(
                    target=target,
                    writes=writes,
                    images=Images(image=self.image or None, set_images=self.set_images),
                    reason=self.reason,
                )
            case "gate":
                return GateOptions(target=target, checks=checks._replace(duration=None, auto_rollback=None))
            case "switch":
                return SwitchOptions(
                    target=target,
                    writes=writes,
                    to=self.to,
                    reason=self.reason,
                    candidate=self.candidate,
                    # with a gate in it, only a gated template is promoted; its watch's checks measure the baseline
                    checks=Checks(config=checks.config),
                    probe=self.probe,
                    undo=self.undo,
                )
            case "watch":
                return WatchOptions(target=target, writes=writes, checks=checks._replace(min_healthy=None))
            case "rollback":
                return RollbackOptions(
                    target=target, writes=writes, to=self.to, reason=self.reason, probe=self.probe
                )
            case "retire":
                return RetireOptions(target=target, writes=writes, after=self.retire_after)
            case "release":
                return ReleaseOptions(target=target, writes=writes, images=images, checks=checks)
            case "expand" | "contract":
                return MigrateOptions(
                    target=target,
                    writes=writes,
                    hook=self.phase,
                    checks=Checks(config=checks.config),
                    release=self.release,
                    phase=self.phase,
                )
        raise AssertionError(f"phase {self.phase!r} was validated by parse")  # pragma: no cover


def parse(env: Mapping[str, str]) -> ActionInputs:
    """The validated inputs; one UsageError listing every problem otherwise."""
    raw = raw_inputs(env)
    problems: list[str] = []

    def need(ok: bool, problem: str) -> None:
        if not ok:
            problems.append(problem)

    phase = raw["phase"].lower()
    need(phase in PHASES, f"phase: {raw['phase']!r} is not one of {', '.join(PHASES)}")
    for key, name_check in (
        ("app", validate.app_name),
        ("namespace", validate.namespace),
        ("router", lambda v: validate.router(v) if v else ""),
        ("context", validate.text),
        ("reason", validate.reason),
        ("release", lambda v: validate.text(v, kind="a release name")),
    ):
        try:
            name_check(raw[key])
        except ValueError as error:
            problems.append(f"{key}: {error}")
    if raw["config"]:
        try:
            validate.path(raw["config"])
        except ValueError as error:
            problems.append(f"config: {error}")
    router = raw["router"].lower()
    dns_server = ""
    try:
        dns_server = validate.dns_server(raw["dns-server"])
    except ValueError as error:
        problems.append(f"dns-server: {error}")
    need(not dns_server or router in ("", "dns"), f"dns-server: for router dns only, not {router}")
    if raw["image"]:
        need(
            valid_image(raw["image"]), f"image: {raw['image']!r} is not an image reference like repo/name:tag"
        )
    set_images: list[tuple[str, str]] = []
    for line in raw["set-images"].splitlines():
        if not line.strip():
            continue
        container, sep, image = line.strip().partition("=")
        if not sep or not container or not valid_image(image.strip()):
            problems.append(f"set-images: {validate._shown(line.strip())} is not CONTAINER=IMAGE")
        else:
            try:
                set_images.append((validate.container_name(container.strip()), image.strip()))
            except ValueError as error:
                problems.append(f"set-images: {validate._shown(line.strip())}: {error}")
    if raw["image"] and set_images:
        problems.append(
            f"image: {validate._shown(raw['image'])} and set-images are both given: one would silently win; "
            "give `image` for a pod with one container, or `set-images` (CONTAINER=IMAGE lines)"
        )
    manifests: list[str] = []
    for line in raw["manifests"].splitlines():
        if line.strip():
            try:
                manifests.append(validate.path(line.strip(), kind="a manifest path or glob"))
            except ValueError as error:
                problems.append(f"manifests: {error}")
    if phase in ("deploy", "release"):
        need(
            bool(raw["image"] or set_images or manifests),
            f"image: phase {phase} needs `image`, `set-images` or `manifests`",
        )
    if phase == "patch":
        need(bool(raw["image"] or set_images), "image: phase patch needs `image` or `set-images`")
    to: Color | None = None
    if raw["to"]:
        try:
            to = Color.parse(raw["to"])
        except ValueError as error:
            problems.append(f"to: {error}")
    seconds: dict[str, float] = {}
    for key in ("timeout", "wait-for-lock", "retire-after", "min-healthy", "interval", "duration"):
        if raw[key]:
            try:
                seconds[key] = validate.duration(raw[key])
            except ValueError as error:
                problems.append(f"{key}: {error}")
    for key, check in (("p95-tolerance", validate.tolerance), ("max-error-rate", validate.ratio)):
        if raw[key]:
            try:
                check(raw[key])
            except (ValueError, UsageError) as error:
                problems.append(f"{key}: {error}")
    flags = {}
    if raw["probe-url"]:
        # The probe's module only when a probe is asked for: most switch and rollback steps have none.
        from bluegreen.traffic_probe import ColorReader, ProbeOptions, parse_url

        try:
            ColorReader.parse(header=raw["probe-header"] or None, pattern=raw["probe-pattern"] or None)
            parse_url(raw["probe-url"])
        except ValueError as error:
            problems.append(f"probe-url: {error}")
    for key in ("dry-run", "auto-rollback", "probe-fail-on-error", "undo", "copy-cluster-config"):
        value = raw[key].lower()
        need(value in TRUE + FALSE, f"{key}: {raw[key]!r} is not true or false")
        flags[key] = value in TRUE
    probe = None
    if raw["probe-url"]:
        probe = ProbeOptions(
            url=raw["probe-url"],
            header=raw["probe-header"] or None,
            pattern=raw["probe-pattern"] or None,
            fail_on_error=flags["probe-fail-on-error"],
        )
    log_format = "text"
    try:
        log_format = logs.log_format(raw["log-format"])
    except argparse.ArgumentTypeError as error:
        problems.append(f"log-format: {error}")
    if raw["pushgateway"]:
        gateway = urllib.parse.urlsplit(raw["pushgateway"])
        need(
            gateway.scheme in ("http", "https") and bool(gateway.hostname),
            f"pushgateway: {validate._shown(raw['pushgateway'])} is not an http(s) URL "
            "like http://pushgateway.monitoring:9091",
        )
    kubeconfig = ""
    try:
        kubeconfig = decode_kubeconfig(raw["kubeconfig"])
        if kubeconfig:
            check_kubeconfig(kubeconfig)
    except ValueError as error:
        problems.append(f"kubeconfig: {error}")
    if problems:
        raise UsageError(
            "invalid input: " + "; ".join(problems),
            remedy="Fix the `with:` block of the step; see the Inputs table in the README.",
        )
    return ActionInputs(
        phase=phase,
        app=raw["app"],
        namespace=raw["namespace"],
        image=raw["image"],
        set_images=tuple(set_images),
        manifests=tuple(manifests),
        copy_cluster_config=flags["copy-cluster-config"],
        kubeconfig=kubeconfig,
        context=raw["context"],
        router=router,
        config=raw["config"],
        to=to,
        candidate=raw["candidate"],
        reason=raw["reason"],
        dry_run=flags["dry-run"],
        timeout=seconds.get("timeout", 0.0),
        wait_for_lock=seconds.get("wait-for-lock", 0.0),
        min_healthy=raw["min-healthy"],
        interval=raw["interval"],
        p95_tolerance=raw["p95-tolerance"],
        max_error_rate=raw["max-error-rate"],
        duration=raw["duration"],
        auto_rollback=flags["auto-rollback"],
        retire_after=seconds.get("retire-after", 0.0),
        environment=raw["environment"],
        environment_url=raw["environment-url"],
        github_token=raw["github-token"],
        run=github_run(env),
        probe=probe,
        log_format=log_format,
        pushgateway=raw["pushgateway"],
        release=raw["release"] or env.get("GITHUB_SHA", ""),
        undo=flags["undo"],
        dns_server=dns_server,
    )


def decode_kubeconfig(text: str) -> str:
    """The kubeconfig as YAML text: given plain, or base64 of it (as many secrets store it)."""
    if not text:
        return ""
    if len(text) > 2 * validate.MAX_YAML_BYTES:
        raise ValueError(f"longer than {2 * validate.MAX_YAML_BYTES // 1024} KiB: is it the right secret?")
    if ":" in text:
        return text if text.endswith("\n") else text + "\n"
    try:
        decoded = base64.b64decode("".join(text.split()), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("neither kubeconfig YAML nor base64 of it") from None
    if ":" not in decoded:
        raise ValueError("the base64 does not hold kubeconfig YAML")
    return decoded


SECRET_KEYS = ("token", "password", "client-key-data", "client-certificate-data", "id-token", "refresh-token")
# A server the lean client reads as it is (apiclient.plain_server): http(s)://HOST[:PORT], nothing more.
PLAIN_SERVER = re.compile(r"https?://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?/?")


def kubeconfig_document(text: str) -> Any:
    """The kubeconfig's document, read as the client reads it: JSON when it is JSON (`kubectl config
    view -o json`, the local cluster's), which spares every step PyYAML's import, else the safe YAML
    (no aliases, bounded depth). Any exception for a text it refuses."""
    from bluegreen import kube

    return kube.parsed_kubeconfig(text)


def check_kubeconfig(text: str) -> None:
    """ValueError naming the bad field (kube.kubeconfig_data's words), before anything is sent.

    A kubeconfig of the plain shape, as the lean client reads it (every entry checked by kube.plain_shape,
    servers like https://HOST:6443), passes without the full check, which imports msgspec, httpx2 and
    lightkube's models for a file this step would never hand them (issue 14). Anything else, and
    anything wrong, goes through the full check, which says what is wrong."""
    try:
        plain = len(text.encode()) <= validate.MAX_YAML_BYTES and plain_kubeconfig(kubeconfig_document(text))
    except Exception:  # whatever the lean read refuses, the full check words
        plain = False
    if not plain:
        from bluegreen.kube import kubeconfig_data

        kubeconfig_data(text, source="the kubeconfig input")


def plain_kubeconfig(data: Any) -> bool:
    """Every entry sound (kube.plain_shape) and every server a plain http(s)://HOST[:PORT] with a port in
    range, the insecure flag a bool: what kubeconfig_data accepts, checked without its imports."""
    from bluegreen import kube

    if not isinstance(data, dict) or not kube.plain_shape(data):
        return False
    for entry in data["clusters"]:
        cluster = entry["cluster"]
        server = cluster.get("server", "")
        if not PLAIN_SERVER.fullmatch(server) or not isinstance(
            cluster.get("insecure-skip-tls-verify", False), bool
        ):
            return False
        urllib.parse.urlsplit(server).port  # noqa: B018  # ValueError for a port out of range
    return True


def kubeconfig_secrets(text: str) -> list[str]:
    """The values in a kubeconfig that must never reach a log: tokens, passwords, keys."""
    try:
        data = kubeconfig_document(text)
    except Exception:
        return [text]  # unreadable, and maybe secret: all of it
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in SECRET_KEYS and isinstance(value, str) and value:
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(data)
    return found
