"""The Action's inputs: read from the environment in one place, validated, turned into CLI arguments.

action.yml maps every input to a BLUEGREEN_* variable by hand (runners do not reliably pass hyphenated
inputs); the runner's own INPUT_X-Y and INPUT_X_Y spellings are read too, so the action also works
when used with `docker run -e INPUT_...` or an older action.yml. Everything is checked here, before
anything touches the cluster, and all problems are reported together.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass

from bluegreen import validate
from bluegreen.config import parse_duration, parse_ratio, parse_tolerance
from bluegreen.errors import UsageError
from bluegreen.model import Color
from bluegreen.rollout import valid_image

PHASES = ("init", "deploy", "gate", "switch", "watch", "rollback", "retire", "status", "release")
ROUTERS = ("service", "ingress", "gateway", "istio", "smi", "dns")
READ_ONLY = ("status", "gate")  # phases that write nothing: no lock, no dry run
DNS_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
TRUE, FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off", "")

# Every input of action.yml with its default there: a test keeps the two in step.
DEFAULTS: dict[str, str] = {
    "phase": "",
    "app": "",
    "namespace": "default",
    "image": "",
    "set-images": "",
    "kubeconfig": "",
    "context": "",
    "router": "service",
    "config": "",
    "to": "",
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
    kubeconfig: str  # the content, decoded; "" means $KUBECONFIG
    context: str
    router: str
    config: str
    to: Color | None
    reason: str
    dry_run: bool
    timeout: str
    wait_for_lock: str
    min_healthy: str
    interval: str
    p95_tolerance: str
    max_error_rate: str
    duration: str
    auto_rollback: bool
    retire_after: str
    environment: str
    environment_url: str
    github_token: str

    def argv(self, kubeconfig_path: str | None) -> list[str]:
        """The `bluegreen` command line for this phase: a list, never a shell string."""
        args = [self.phase, "--app", self.app, "--namespace", self.namespace, "--output", "json"]
        if kubeconfig_path:
            args += ["--kubeconfig", kubeconfig_path]
        if self.context:
            args.append(f"--context={self.context}")  # "=": a value may start with "-"
        args += ["--router", self.router, "--timeout", self.timeout]
        if self.phase not in READ_ONLY:
            args += ["--wait-for-lock", self.wait_for_lock]
            if self.dry_run:
                args.append("--dry-run")
        if self.phase in ("deploy", "release"):
            if self.image:
                args += ["--image", self.image]
            for container, image in self.set_images:
                args += ["--set-image", f"{container}={image}"]
        if self.phase in ("switch", "rollback"):
            if self.to:
                args += ["--to", str(self.to)]
            if self.reason:
                args.append(f"--reason={self.reason}")
        if self.phase == "retire":
            args += ["--after", self.retire_after]
        if self.phase in ("gate", "watch", "release"):
            if self.config:
                args.append(f"--config={self.config}")
            if self.interval:
                args += ["--interval", self.interval]
        if self.phase in ("gate", "release"):
            for flag, value in (
                ("--min-healthy", self.min_healthy),
                ("--p95-tolerance", self.p95_tolerance),
                ("--max-error-rate", self.max_error_rate),
            ):
                if value:
                    args += [flag, value]
        if self.phase in ("watch", "release"):
            if self.duration:
                args += ["--duration", self.duration]
            if not self.auto_rollback:
                args.append("--no-auto-rollback")
        return args


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
        ("router", validate.router),
        ("context", validate.text),
        ("reason", validate.text),
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
    if phase in ("deploy", "release"):
        need(bool(raw["image"] or set_images), f"image: phase {phase} needs `image` or `set-images`")
    to: Color | None = None
    if raw["to"]:
        try:
            to = Color.parse(raw["to"])
        except ValueError as error:
            problems.append(f"to: {error}")
    for key in ("timeout", "wait-for-lock", "retire-after", "min-healthy", "interval", "duration"):
        if raw[key]:
            try:
                parse_duration(raw[key])
            except ValueError as error:
                problems.append(f"{key}: {error}")
    for key, check in (("p95-tolerance", parse_tolerance), ("max-error-rate", parse_ratio)):
        if raw[key]:
            try:
                check(raw[key])
            except (ValueError, UsageError) as error:
                problems.append(f"{key}: {error}")
    flags = {}
    for key in ("dry-run", "auto-rollback"):
        value = raw[key].lower()
        need(value in TRUE + FALSE, f"{key}: {raw[key]!r} is not true or false")
        flags[key] = value in TRUE
    kubeconfig = ""
    try:
        kubeconfig = decode_kubeconfig(raw["kubeconfig"])
        if kubeconfig:
            from bluegreen.kube import kubeconfig_data

            kubeconfig_data(kubeconfig, source="the kubeconfig input")
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
        kubeconfig=kubeconfig,
        context=raw["context"],
        router=router,
        config=raw["config"],
        to=to,
        reason=raw["reason"],
        dry_run=flags["dry-run"],
        timeout=raw["timeout"],
        wait_for_lock=raw["wait-for-lock"],
        min_healthy=raw["min-healthy"],
        interval=raw["interval"],
        p95_tolerance=raw["p95-tolerance"],
        max_error_rate=raw["max-error-rate"],
        duration=raw["duration"],
        auto_rollback=flags["auto-rollback"],
        retire_after=raw["retire-after"],
        environment=raw["environment"],
        environment_url=raw["environment-url"],
        github_token=raw["github-token"],
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


def kubeconfig_secrets(text: str) -> list[str]:
    """The values in a kubeconfig that must never reach a log: tokens, passwords, keys."""
    import yaml

    try:
        data = validate.load_yaml(text)  # no aliases, bounded depth: the walk below stays small
    except yaml.YAMLError:
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
