"""The `bluegreen` command: flags -> one phase of the engine -> text or JSON, and an exit code.

Exit codes:
  0  done (deployed, switched, nothing to do, rolled back on request)
  1  refused, failed, inconclusive or rolled back by the watch (lock held, target not ready, gate failed),
     or drift between the colours (`diff`)
  2  bad usage or configuration (unknown colour, malformed image, app or namespace missing)
  3  cluster or API error (unreachable, forbidden by RBAC, conflict that did not settle), or a check
     that could not measure (result `error`: never a pass)
  130, 143  cancelled by SIGINT, SIGTERM: stopped at a safe point, lock released, state reported

`execute(argv)` never prints: the GitHub Action calls it in-process and renders the outcome itself.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from bluegreen import correlation, logs, validate
from bluegreen.errors import EXIT_CLUSTER, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, BlueGreenError, UsageError
from bluegreen.model import Color, NullReporter, Reporter, Result, RunInfo
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

if TYPE_CHECKING:
    from bluegreen.traffic_probe import ProbeOptions

Runner = Callable[[argparse.Namespace, Reporter], Result]
Build = Callable[[argparse.Namespace], PhaseOptions]


class Command(NamedTuple):
    name: str
    help: str
    run: Runner
    add_arguments: Callable[[argparse.ArgumentParser], None]
    mutating: bool
    per_app: bool = True  # takes --app and the app's flags (group commands name a group instead)
    build: Build | None = None  # a phase: its flags -> its options


COMMANDS: dict[str, Command] = {}


def command(
    name: str, help: str, *, mutating: bool, per_app: bool = True
) -> Callable[[Callable[[argparse.ArgumentParser], Runner]], None]:
    """Register a subcommand: the decorated function adds its flags and returns its runner."""

    def register(define: Callable[[argparse.ArgumentParser], Runner]) -> None:
        holder: dict[str, Runner] = {}

        def add_arguments(parser: argparse.ArgumentParser) -> None:
            holder["run"] = define(parser)

        def run(args: argparse.Namespace, reporter: Reporter) -> Result:
            return holder["run"](args, reporter)

        COMMANDS[name] = Command(name, help, run, add_arguments, mutating, per_app)

    return register


def phase(
    name: str, help: str, *, mutating: bool
) -> Callable[[Callable[[argparse.ArgumentParser], Build]], None]:
    """Register a phase: the decorated function adds its flags and returns how to build its options."""

    def register(define: Callable[[argparse.ArgumentParser], Build]) -> None:
        holder: dict[str, Build] = {}

        def add_arguments(parser: argparse.ArgumentParser) -> None:
            holder["build"] = define(parser)

        def build(args: argparse.Namespace) -> PhaseOptions:
            return holder["build"](args)

        def run(args: argparse.Namespace, reporter: Reporter) -> Result:
            from bluegreen import metrics

            return metrics.run(args.pushgateway, build(args), reporter)

        COMMANDS[name] = Command(name, help, run, add_arguments, mutating, build=build)

    return register


class Outcome(NamedTuple):
    exit_code: int
    result: Result | None = None
    error: BlueGreenError | None = None
    output: str = "text"


# -- shared flags ---------------------------------------------------------------------------------


def typed(check: Callable[[str], Any], *, optional: bool = False) -> Callable[[str], Any]:
    """An argparse `type=` from a validate.py parser: its ValueError becomes argparse's message, which
    names the flag (`argument --app: 'a/b' is not an app name: ...`). `optional`: "" stays ""."""

    def convert(text: str) -> Any:
        if optional and text == "":
            return text
        try:
            return check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = getattr(check, "__name__", "value")
    return convert


def duration(text: str) -> float:
    try:
        return validate.duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def colour(text: str) -> Color:
    try:
        return Color.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def set_image(text: str) -> tuple[str, str]:
    from bluegreen.rollout import valid_image

    name, sep, image = text.partition("=")
    if not sep or not name or not image:
        raise argparse.ArgumentTypeError(f"{validate._shown(text)}: use CONTAINER=IMAGE")
    try:
        validate.container_name(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{validate._shown(text)}: {error}") from None
    if not valid_image(image):
        raise argparse.ArgumentTypeError(
            f"{validate._shown(text)}: {validate._shown(image)} is not an image reference "
            "like [REGISTRY/]NAME[:TAG][@sha256:DIGEST]"
        )
    return name, image


def check_args(args: argparse.Namespace) -> None:
    """What no single flag's `type=` can see: flags that exclude each other, names derived together."""
    for dest, value in vars(args).items():
        # argparse drops a value of "--" (`--app=--`) and stores [] without calling `type=` (Python 3.11).
        if dest == "set_image":
            bad = any(not isinstance(v, tuple) for v in value)
        elif dest == "manifests":  # repeatable, [] when not given
            bad = any(not isinstance(v, str) for v in value)
        else:
            bad = value == []
        if isinstance(value, list) and bad:
            flag = {"source": "--from", "manifests": "--filename"}.get(dest, "--" + dest.replace("_", "-"))
            raise UsageError(
                f"argument {flag}: '--' is not a value for it",
                remedy=f"Give {flag} a value, as `{flag} VALUE`.",
            )
    image, set_images = getattr(args, "image", None), getattr(args, "set_image", None) or []
    if image and set_images:
        given = " ".join(f"--set-image {c}={i}" for c, i in set_images)
        raise UsageError(
            f"--image {validate._shown(image)} and {validate._shown(given)} both given: one would silently win",
            remedy="Give --image for a pod with one container, or --set-image CONTAINER=IMAGE per container.",
        )
    containers = [c for c, _ in set_images]
    repeated = sorted({c for c in containers if containers.count(c) > 1})
    if repeated:
        raise UsageError(
            f"--set-image names container {', '.join(map(repr, repeated))} more than once",
            remedy="Give each container one --set-image CONTAINER=IMAGE.",
        )
    if getattr(args, "allow_no_endpoints", False) and not getattr(args, "force", False):
        raise UsageError(
            "--allow-no-endpoints is given without --force",
            remedy="It only widens --force; without --force a colour with no ready pods is refused anyway.",
        )


def _common(parser: argparse.ArgumentParser, *, mutating: bool) -> None:
    group = parser.add_argument_group("app and cluster")
    group.add_argument(
        "--app",
        required=True,
        type=typed(validate.app_name),
        help="the app's name: Deployments <app>-blue/<app>-green, Service <app>",
    )
    group.add_argument(
        "-n",
        "--namespace",
        type=typed(validate.namespace),
        default=os.environ.get("BLUEGREEN_NAMESPACE", "default"),
    )
    group.add_argument(
        "--kubeconfig",
        default=None,
        type=typed(validate.path),
        help="kubeconfig file (default $KUBECONFIG, ~/.kube/config)",
    )
    group.add_argument(
        "--context",
        default=None,
        type=typed(validate.text),
        help="kubeconfig context (default its current one)",
    )
    group.add_argument(
        "--router",
        default=None,
        type=typed(validate.router),
        help="how traffic is steered: service, ingress, gateway, istio, smi, dns (default: the one "
        "`init --router` recorded on the app, else service)",
    )
    group.add_argument(
        "--dns-server",
        default="",
        type=typed(validate.dns_server),
        metavar="HOST[:PORT]",
        help="dns router: the zone's authoritative DNS server; a switch is verified when it answers "
        "with the new address only (default: not checked, and the report says so)",
    )
    group.add_argument(
        "--color-label",
        default="bluegreen.io/color",
        type=typed(validate.label_key),
        help="the pod label that carries the colour",
    )
    group.add_argument(
        "--service",
        default="",
        type=typed(validate.service_name, optional=True),
        help="the live Service (default <app>)",
    )
    group.add_argument(
        "--preview-service",
        default="",
        type=typed(validate.service_name, optional=True),
        help="the preview Service (default <app>-preview)",
    )
    group.add_argument("-o", "--output", choices=("text", "json"), default="text")
    group.add_argument(
        "--timeout", type=duration, default=600.0, help="longest wait for a rollout (default 10m)"
    )
    if mutating:
        group.add_argument(
            "--dry-run",
            action="store_true",
            help="send the requests with dryRun=All: validate, print, change nothing",
        )
        group.add_argument(
            "--wait-for-lock",
            type=duration,
            default=0.0,
            metavar="DURATION",
            help="wait this long for another run's lock (default: fail at once)",
        )
        run = parser.add_argument_group("audit trail (defaults from the GitHub Actions environment)")
        defaults = github_run(os.environ)
        run.add_argument("--run-id", default=defaults.run_id, type=typed(validate.text))
        run.add_argument("--run-url", default=defaults.run_url, type=typed(validate.url))
        run.add_argument("--actor", default=defaults.actor, type=typed(validate.text))


def target(args: argparse.Namespace) -> Target:
    return Target(
        app=args.app,
        namespace=args.namespace,
        kubeconfig=args.kubeconfig,
        context=args.context,
        router=args.router or "",
        dns_server=args.dns_server,
        color_label=args.color_label,
        service=args.service,
        preview_service=args.preview_service,
        timeout=args.timeout,
    )


def writes(args: argparse.Namespace) -> Writes:
    return Writes(
        dry_run=args.dry_run,
        wait_for_lock=args.wait_for_lock,
        run=RunInfo(
            run_id=args.run_id,
            run_url=args.run_url,
            actor=args.actor,
            correlation_id=correlation.correlation_id(),
        ),
    )


# -- commands -------------------------------------------------------------------------------------


@phase(
    "status",
    "show the active and previous colour, each colour's images and readiness, the lock",
    mutating=False,
)
def _status(parser: argparse.ArgumentParser) -> Build:
    return lambda args: StatusOptions(target=target(args))


@phase(
    "diff",
    "the two colours side by side: pod templates and config; drift beyond the release is exit 1",
    mutating=False,
)
def _diff(parser: argparse.ArgumentParser) -> Build:
    return lambda args: DiffOptions(target=target(args))


@phase(
    "init",
    "adopt an existing Deployment and Service: create <app>-blue, point the Service at it",
    mutating=True,
)
def _init(parser: argparse.ArgumentParser) -> Build:
    parser.add_argument(
        "--from",
        dest="source",
        default=None,
        type=typed(validate.deployment_name),
        help="the Deployment to adopt (default <app>)",
    )
    return lambda args: InitOptions(target=target(args), writes=writes(args), source=args.source)


def _image_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image", default=None, type=typed(validate.text), help="the new image, for a pod with one container"
    )
    parser.add_argument(
        "--set-image",
        type=set_image,
        action="append",
        default=[],
        metavar="CONTAINER=IMAGE",
        help="repeatable",
    )
    parser.add_argument(
        "-f",
        "--filename",
        dest="manifests",
        type=typed(validate.path),
        action="append",
        default=[],
        metavar="PATH",
        help="the app's manifests: a YAML file, a directory of them, or - for stdin (repeatable); "
        "their Deployment becomes the idle colour, their ConfigMaps and Secrets are copied per colour",
    )
    parser.add_argument(
        "--keep-failed",
        action="store_true",
        help="leave a failed rollout in place instead of restoring the idle colour",
    )
    parser.add_argument(
        "--copy-cluster-config",
        action="store_true",
        help="copy the ConfigMaps and Secrets the pod template names from the cluster per colour "
        "(content-hash names, as -f copies the files' own), and point the idle colour at the copies",
    )


def images(args: argparse.Namespace) -> Images:
    return Images(
        image=args.image,
        set_images=tuple(args.set_image),
        keep_failed=args.keep_failed,
        manifests=tuple(args.manifests),
        copy_cluster_config=args.copy_cluster_config,
    )


@phase(
    "deploy", "put new images on the idle colour, scaled like live, and wait for the rollout", mutating=True
)
def _deploy(parser: argparse.ArgumentParser) -> Build:
    _image_flags(parser)
    return lambda args: DeployOptions(target=target(args), writes=writes(args), images=images(args))


@phase(
    "patch",
    "re-deploy the idle colour (the rollback target) with patched images of its release; traffic stays",
    mutating=True,
)
def _patch(parser: argparse.ArgumentParser) -> Build:
    parser.add_argument(
        "--image",
        default=None,
        type=typed(validate.text),
        help="the patched image, for a pod with one container (same repository, new tag or digest)",
    )
    parser.add_argument(
        "--set-image",
        type=set_image,
        action="append",
        default=[],
        metavar="CONTAINER=IMAGE",
        help="repeatable",
    )
    parser.add_argument(
        "--reason", default="", type=typed(validate.reason), help="why: recorded in the history and the Event"
    )
    parser.add_argument(
        "--keep-failed",
        action="store_true",
        help="leave a failed rollout in place instead of putting the idle colour back",
    )
    return lambda args: PatchOptions(
        target=target(args),
        writes=writes(args),
        images=Images(image=args.image, set_images=tuple(args.set_image), keep_failed=args.keep_failed),
        reason=args.reason,
    )


def _probe_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("traffic probe: your own URL, before, during and after the switch")
    group.add_argument(
        "--probe",
        default=None,
        metavar="URL",
        help="send new connections to URL across the switch; report failed requests and the cutover",
    )
    group.add_argument(
        "--probe-header", default=None, metavar="NAME", help="the header naming the colour (default X-Color)"
    )
    group.add_argument(
        "--probe-pattern",
        default=None,
        metavar="REGEX",
        help="read the colour from the body: the first group",
    )
    group.add_argument(
        "--probe-rate", type=float, default=20.0, metavar="N", help="requests per second (default 20)"
    )
    group.add_argument(
        "--probe-after",
        type=duration,
        default=3.0,
        metavar="DURATION",
        help="keep probing this long after the write (default 3s)",
    )
    group.add_argument("--probe-fail-on-error", action="store_true", help="fail if any probe request failed")


def probe(args: argparse.Namespace) -> ProbeOptions | None:
    """The --probe flags as the engine's ProbeOptions; None without --probe."""
    if not args.probe:
        return None
    from bluegreen.traffic_probe import ProbeOptions

    return ProbeOptions(
        url=args.probe,
        header=args.probe_header,
        pattern=args.probe_pattern,
        rate=args.probe_rate,
        after=args.probe_after,
        fail_on_error=args.probe_fail_on_error,
    )


@phase(
    "switch", "move all traffic to the other colour (or --to) in one write, verify and time it", mutating=True
)
def _switch(parser: argparse.ArgumentParser) -> Build:
    parser.add_argument(
        "--to",
        type=colour,
        default=None,
        help="blue or green (default: the candidate `deploy` recorded; nothing to do when it is live)",
    )
    parser.add_argument(
        "--candidate",
        default="",
        metavar="HASH",
        help="promote this release (deploy's `candidate` output); refused if a later deploy replaced it",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="switch even to a colour not fully available, a rejected release or an ungated template "
        "(recorded in the history)",
    )
    parser.add_argument(
        "--allow-no-endpoints",
        action="store_true",
        help="with --force: switch even onto a colour with no ready pod at all (an outage; recorded)",
    )
    parser.add_argument(
        "--no-undo",
        action="store_true",
        help="leave a switch that fails its verification in place (default: moved back to the colour it "
        "left, exit 1, 'rolled back the switch'); ingress, gateway, istio, smi and dns routers",
    )
    parser.add_argument(
        "--reason", default="", type=typed(validate.reason), help="recorded in the history and the Event"
    )
    parser.add_argument(
        "--config",
        default=None,
        type=typed(validate.path),
        help="bluegreen.yaml (default ./bluegreen.yaml if present): when it exists, a gate is required; "
        "its watch's Prometheus checks measure the live colour just before the switch, the baseline a "
        "later watch judges against",
    )
    _probe_flags(parser)
    return lambda args: SwitchOptions(
        target=target(args),
        writes=writes(args),
        to=args.to,
        force=args.force,
        allow_no_endpoints=args.allow_no_endpoints,
        undo=not args.no_undo,
        reason=args.reason,
        candidate=args.candidate,
        checks=Checks(config=Path(args.config) if args.config else None),
        probe=probe(args),
    )


@phase("rollback", "move traffic back to the previous colour; the other keeps running", mutating=True)
def _rollback(parser: argparse.ArgumentParser) -> Build:
    parser.add_argument(
        "--reason", default="", type=typed(validate.reason), help="why: recorded in the history and the Event"
    )
    parser.add_argument(
        "--to",
        type=colour,
        default=None,
        help="the colour to go back to (default: the recorded previous one)",
    )
    parser.add_argument(
        "--force", action="store_true", help="roll back even to a release that was rejected before"
    )
    _probe_flags(parser)
    return lambda args: RollbackOptions(
        target=target(args),
        writes=writes(args),
        to=args.to,
        reason=args.reason,
        force=args.force,
        probe=probe(args),
    )


@phase("retire", "scale the idle colour to zero once --after has passed since the last switch", mutating=True)
def _retire(parser: argparse.ArgumentParser) -> Build:
    parser.add_argument(
        "--after",
        type=duration,
        default=0.0,
        metavar="DURATION",
        help="safety window after the last switch (default 0)",
    )
    return lambda args: RetireOptions(target=target(args), writes=writes(args), after=args.after)


@phase(
    "migrate",
    "run the expand, contract or post-switch hook of bluegreen.yaml (contract: refused while the old "
    "release can still come back)",
    mutating=True,
)
def _migrate(parser: argparse.ArgumentParser) -> Build:
    parser.add_argument(
        "hook",
        choices=("expand", "contract", "post-switch"),
        help="expand: before deploy; contract: after retire; post-switch: after a verified switch",
    )
    parser.add_argument(
        "--config",
        default=None,
        type=typed(validate.path),
        help="path of bluegreen.yaml with migrations (default ./bluegreen.yaml)",
    )
    parser.add_argument(
        "--release",
        default="",
        type=typed(lambda v: validate.text(v, kind="a release name")),
        help="the release this run belongs to, recorded in the history (default: $GITHUB_SHA)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="contract even while the previous colour runs or can be rolled back to (recorded)",
    )
    parser.add_argument(
        "--reason", default="", type=typed(validate.reason), help="why --force: recorded in the history"
    )

    def build(args: argparse.Namespace) -> MigrateOptions:
        import os
        from pathlib import Path

        if args.force and args.hook != "contract":
            raise UsageError(
                f"--force is given for {args.hook}",
                remedy="Only contract is ever refused: leave --force out.",
            )
        return MigrateOptions(
            target=target(args),
            writes=writes(args),
            hook=args.hook,
            checks=Checks(config=Path(args.config) if args.config else None),
            release=args.release or os.environ.get("GITHUB_SHA", ""),
            force=args.force,
            reason=args.reason,
            phase=args.hook,
        )

    return build


def _config_flags(parser: argparse.ArgumentParser, *, gate: bool, watch: bool) -> None:
    group = parser.add_argument_group("checks (bluegreen.yaml, flags on top)")
    group.add_argument(
        "--config",
        default=None,
        type=typed(validate.path),
        help="path of bluegreen.yaml (default ./bluegreen.yaml if present)",
    )
    if gate:
        group.add_argument(
            "--min-healthy",
            default=None,
            metavar="DURATION",
            help="healthy this long before a switch (default 5m)",
        )
    # The gate compares the idle colour with live; the watch compares live with its baseline.
    group.add_argument(
        "--p95-tolerance", default=None, help="p95 within this of the baseline's (default 20%%)"
    )
    group.add_argument("--max-error-rate", default=None, help="error rate under this (default 0.5%%)")
    if watch:
        group.add_argument(
            "--duration",
            default=None,
            metavar="DURATION",
            help="how long to watch after the switch (default 10m)",
        )
        group.add_argument("--no-auto-rollback", dest="auto_rollback", action="store_false", default=None)
    group.add_argument("--interval", default=None, metavar="DURATION", help="time between check rounds")


def checks(args: argparse.Namespace) -> Checks:
    """bluegreen.yaml with the flags on top (validated when loaded, before anything touches the cluster)."""
    from pathlib import Path

    return Checks(
        config=Path(args.config) if args.config else None,
        min_healthy=getattr(args, "min_healthy", None),
        interval=args.interval,
        p95_tolerance=args.p95_tolerance,
        max_error_rate=args.max_error_rate,
        duration=getattr(args, "duration", None),
        auto_rollback=getattr(args, "auto_rollback", None),
    )


@phase("gate", "run the checks and the switching gate against the idle colour", mutating=False)
def _gate(parser: argparse.ArgumentParser) -> Build:
    _config_flags(parser, gate=True, watch=False)
    return lambda args: GateOptions(target=target(args), checks=checks(args))


@phase(
    "watch", "watch the live colour after a switch; roll back when the error budget is spent", mutating=True
)
def _watch(parser: argparse.ArgumentParser) -> Build:
    _config_flags(parser, gate=False, watch=True)
    return lambda args: WatchOptions(target=target(args), writes=writes(args), checks=checks(args))


@phase("release", "deploy to the idle colour, gate it, switch to it, watch it", mutating=True)
def _release(parser: argparse.ArgumentParser) -> Build:
    _image_flags(parser)
    _config_flags(parser, gate=True, watch=True)
    return lambda args: ReleaseOptions(
        target=target(args), writes=writes(args), images=images(args), checks=checks(args)
    )


@command(
    "group",
    "switch, roll back or show several apps that must move together (bluegreen.yaml groups)",
    mutating=True,
    per_app=False,
)
def _group(parser: argparse.ArgumentParser) -> Runner:
    parser.add_argument("action", choices=("switch", "rollback", "status"))
    parser.add_argument(
        "--group", required=True, type=typed(validate.text), help="the group's name in bluegreen.yaml"
    )
    parser.add_argument(
        "--config",
        default=None,
        type=typed(validate.path),
        help="path of bluegreen.yaml (default ./bluegreen.yaml)",
    )
    parser.add_argument("--to", type=colour, default=None, help="the colour every member moves to")
    parser.add_argument("--kubeconfig", default=None, type=typed(validate.path))
    parser.add_argument("--context", default=None, type=typed(validate.text))
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text")
    parser.add_argument(
        "--timeout", type=duration, default=60.0, help="longest wait to verify every member (default 60s)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="send the writes with dryRun=All; change nothing"
    )
    parser.add_argument(
        "--wait-for-lock",
        type=duration,
        default=0.0,
        metavar="DURATION",
        help="wait this long for other runs' locks on the members (default: fail at once)",
    )

    def run(args: argparse.Namespace, reporter: Reporter) -> Result:
        from pathlib import Path

        from bluegreen.config import load
        from bluegreen.group import find
        from bluegreen.kube import connect
        from bluegreen.phases import group

        chosen = find(load(Path(args.config) if args.config else None).groups, args.group)
        kube = connect(kubeconfig=args.kubeconfig, context=args.context)
        out = Result(
            phase=f"group {args.action}", result="status", app=chosen.name, namespace="", dry_run=args.dry_run
        )
        if args.action == "status":
            for member, state in group.status(kube, chosen):
                active = state if isinstance(state, str) else f"{state.active or '-'} ({state.detail})"
                out.messages.append(f"{member.key} [{member.router}]: {active}")
            return out
        run_info = github_run(os.environ)
        done = group.run(
            kube,
            chosen,
            action=args.action,
            to=args.to,
            timeout=args.timeout,
            dry_run=args.dry_run,
            run_info=run_info,
            wait=args.wait_for_lock,
        )
        out.details = done.as_dict()
        out.messages = done.text().splitlines()
        out.active_color = str(done.target) if done.target else None
        if args.dry_run:
            out.result = "planned" if done.ok else "failed"
        elif done.not_moved_back:
            # Members left on different colours: an error that needs a person, named one by one.
            out.result = "error"
            out.messages.append(f"error: could not move back {', '.join(done.not_moved_back)}: fix by hand")
        elif done.ok and not any(m.changed for m in done.members):
            out.result = "noop"  # every member already where it should be: a re-run moves nothing
        else:
            out.result = ("rolled-back" if args.action == "rollback" else "switched") if done.ok else "failed"
        return out

    return run


# -- running --------------------------------------------------------------------------------------


_columns: int | None = None


def terminal_columns() -> int:
    """The terminal's width as shutil.get_terminal_size() finds it ($COLUMNS, else stdout's, else 80),
    without importing shutil, and with it bz2, lzma and zlib: argparse sizes its help text that way
    for every argument it adds, which cost every start 3 ms (issue 14)."""
    global _columns
    if _columns is None:
        try:
            _columns = int(os.environ.get("COLUMNS", "0"))
        except ValueError:
            _columns = 0
        if _columns <= 0:
            try:
                _columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 0
            except (AttributeError, ValueError, OSError):
                _columns = 0
        _columns = _columns if _columns > 0 else 80
    return _columns


class _Help(argparse.HelpFormatter):
    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, terminal_columns() - 2 if width is None else width
        )


class _RawHelp(argparse.RawDescriptionHelpFormatter, _Help):
    pass


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:  # argparse would print and exit; we report it as one UsageError
        raise UsageError(message, remedy=f"See `{self.prog} --help`.")


def parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The CLI's parser. Given the arguments it will parse, and they name a command, only that command
    is built (the others are for `bluegreen --help` and a misspelt command, which name no command):
    building every command's arguments was a tenth of a switch's start-up (issue 14)."""
    only = argv[0] if argv and argv[0] in COMMANDS else None
    top = _Parser(
        prog="bluegreen",
        description="Blue-green deployments for Kubernetes.",
        epilog=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=_RawHelp,
    )
    from bluegreen import __version__

    top.add_argument("--version", action="version", version=f"bluegreen {__version__}")
    subs = top.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for cmd in COMMANDS.values():
        if only is not None and cmd.name != only:
            continue
        sub = subs.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        if cmd.per_app:
            _common(sub, mutating=cmd.mutating)
        cmd.add_arguments(sub)
        sub.add_argument(
            "--log-format",
            type=logs.log_format,
            default=os.environ.get(logs.ENV, "text"),
            help="progress on stderr as text (default) or JSON lines ($BLUEGREEN_LOG_FORMAT)",
        )
        sub.add_argument(
            "--pushgateway",
            default=os.environ.get("BLUEGREEN_PUSHGATEWAY", ""),
            metavar="URL",
            help="push release metrics to this Prometheus Pushgateway ($BLUEGREEN_PUSHGATEWAY)",
        )
    return top


def exit_code_for(result: Result) -> int:
    if result.result == "error":
        return EXIT_CLUSTER  # a check could not measure: never a pass
    if result.result in ("failed", "refused", "inconclusive", "drift"):
        return EXIT_REFUSED
    if result.result == "rolled-back" and not result.phase.endswith("rollback"):
        return EXIT_REFUSED  # a release or watch that rolled back did not ship
    return EXIT_OK


def execute(argv: Sequence[str], *, reporter: Reporter | None = None) -> Outcome:
    """Parse and run one command; every failure comes back as an Outcome, never as an exception."""
    from bluegreen import cancel

    pairs = set(itertools.pairwise(argv))
    output = "json" if {("-o", "json"), ("--output", "json")} & pairs or "--output=json" in argv else "text"
    cancel.begin()

    def run() -> Result:
        nonlocal output
        args = parser(argv).parse_args(list(argv))
        output = args.output
        check_args(args)
        return COMMANDS[args.command].run(args, reporter or NullReporter())

    return _guarded(run, lambda: output, argv)


def perform(
    options: PhaseOptions, *, reporter: Reporter | None = None, pushgateway: str | None = None
) -> Outcome:
    """Run one phase from options already parsed (the Action's inputs), as `execute` runs a command line.

    `pushgateway`: where its metrics go, as --pushgateway; None reads $BLUEGREEN_PUSHGATEWAY."""
    from bluegreen import cancel, metrics

    url = os.environ.get(metrics.ENV, "") if pushgateway is None else pushgateway
    cancel.begin()
    return _guarded(
        lambda: metrics.run(url, options, reporter or NullReporter()), lambda: "json", [options.phase]
    )


def parse_options(argv: Sequence[str]) -> PhaseOptions:
    """The options a command line asks for, without running anything (a phase, not `group`)."""
    args = parser(argv).parse_args(list(argv))
    check_args(args)
    build = COMMANDS[args.command].build
    if build is None:
        raise UsageError(f"{args.command} is not a phase of one app", remedy="Name a phase such as switch.")
    return build(args)


def _guarded(run: Callable[[], Result], output: Callable[[], str], argv: Sequence[str]) -> Outcome:
    from bluegreen import cancel

    try:
        result = run()
    except cancel.Cancelled as stop:
        stopped = stop_error(stop.signum, argv)
        return Outcome(stopped.exit_code, error=stopped, output=output())
    except BlueGreenError as error:
        if cancel.requested():  # a signal arrived while this error was on its way: both matter
            stopped = stop_error(cancel.requested(), argv, cause=error)
            return Outcome(stopped.exit_code, error=stopped, output=output())
        return Outcome(error.exit_code, error=error, output=output())
    except SystemExit as done:  # --help and --version print and leave
        return Outcome(int(done.code or 0), output=output())
    except Exception as error:  # a bug of ours: still one error with a way forward, never a bare traceback
        import traceback

        where = "".join(traceback.format_exception(error)[-3:]).strip()
        return Outcome(
            EXIT_CLUSTER,
            error=BlueGreenError(
                f"unexpected {type(error).__name__}: {error}",
                remedy=f"Please report it with this context: {where}",
            ),
            output=output(),
        )
    except KeyboardInterrupt:  # no handler installed (in-process use): the same report as SIGINT
        import signal

        stopped = stop_error(signal.SIGINT, argv)
        return Outcome(stopped.exit_code, error=stopped, output=output())
    return Outcome(exit_code_for(result), result=result, output=output())


def stop_error(signum: int, argv: Sequence[str], *, cause: BlueGreenError | None = None) -> BlueGreenError:
    """What a run stopped by a signal reports: where it stopped and what it had written (the state left).

    The lock was released on the way out (Lock.release), so the next run can start at once."""
    import signal

    from bluegreen import cancel
    from bluegreen.errors import CancelledError, InterruptedByUserError

    phase = next((a for a in argv if a in COMMANDS), "the command")
    done = cancel.writes()
    state = (
        "Written before stopping: " + "; ".join(done) + "."
        if done
        else "Nothing had been written: the cluster is as it was."
    )
    also = f" It was also failing: {cause.message}" if cause else ""
    kind = InterruptedByUserError if signum == signal.SIGINT else CancelledError
    return kind(
        f"{phase} cancelled by {cancel.signal_name(signum)}, stopped at a safe point (no write cut "
        f"short, the lock released). {state}{also}",
        remedy="Run `bluegreen status` to see the state; running the same command again is safe.",
    )


class _StderrReporter:
    def progress(self, message: str) -> None:
        print(f"  … {message}", file=sys.stderr, flush=True)

    def warning(self, message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)

    def stage(self, name: str) -> None:
        print(f"== {name}", file=sys.stderr, flush=True)


def _json_log(argv: Sequence[str]) -> logs.JsonReporter | None:
    """The JSON reporter when --log-format or $BLUEGREEN_LOG_FORMAT asks for it, else None (text)."""
    try:
        args = parser(argv).parse_args(list(argv))
        chosen = args.log_format
    except (BlueGreenError, argparse.ArgumentTypeError, SystemExit):
        # execute() reports the usage error: as a JSON line too, if that much can be read
        args, chosen = None, os.environ.get(logs.ENV, "").strip().lower()
        if ("--log-format", "json") in set(itertools.pairwise(argv)) or "--log-format=json" in argv:
            chosen = "json"
    if chosen != "json":
        return None
    return logs.JsonReporter(
        lambda line: print(line, file=sys.stderr, flush=True),
        app=getattr(args, "app", None) or getattr(args, "group", None) or "",
        namespace=getattr(args, "namespace", None) or "",
        phase=getattr(args, "command", None) or (argv[0] if argv else ""),
        correlation_id=os.environ[correlation.ENV],
    )


def log_outcome(log: logs.JsonReporter, outcome: Outcome) -> None:
    """The JSON log's last line, the CLI's and the Action's: what the run ended in."""
    from bluegreen import report

    if outcome.error is not None:
        log.outcome(
            result="error",
            colour=None,
            summary=outcome.error.message,
            exit_code=outcome.exit_code,
            remedy=outcome.error.remedy,
        )
    elif outcome.result is not None:
        result = outcome.result
        log.outcome(
            result=result.result,
            colour=result.active_color,
            summary=report.text(result).splitlines()[0],
            exit_code=outcome.exit_code,
        )


def main(argv: Sequence[str] | None = None) -> None:
    from bluegreen import report

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or "--help" in argv or "-h" in argv or "--version" in argv:
        parser(argv).parse_args(argv or ["--help"])  # prints and exits 0
    from bluegreen import cancel

    cancel.install()  # SIGTERM/SIGINT stop at a safe point; needed as PID 1 too, where SIGTERM is ignored
    # In the environment, so command checks and smoke tests see the same ID (and a second parse agrees).
    os.environ[correlation.ENV] = correlation.correlation_id()
    log = _json_log(argv)
    outcome = execute(argv, reporter=log or _StderrReporter())
    cancel.settle()
    if log is not None:
        log_outcome(log, outcome)
    if outcome.output == "json":
        payload: dict[str, Any] = {"exit_code": outcome.exit_code}
        payload["correlation_id"] = os.environ[correlation.ENV]
        if outcome.result is not None:
            payload["result"] = outcome.result.to_dict()
        if outcome.error is not None:
            payload["error"] = {
                "title": outcome.error.title,
                "message": outcome.error.message,
                "remedy": outcome.error.remedy,
            }
        print(json.dumps(payload, indent=2))
    elif outcome.result is not None:
        print(report.text(outcome.result))
    if outcome.error is not None and outcome.output != "json" and log is None:
        print(f"error: {outcome.error.message}", file=sys.stderr)
        if outcome.error.remedy:
            print(f"  what to do: {outcome.error.remedy}", file=sys.stderr)
    _exit(outcome.exit_code)


def _exit(code: int) -> None:
    """Leave without the interpreter's teardown (freeing every module: tens of milliseconds after a
    switch, and each Action step pays it; issue 14). The atexit handlers still run (temporary files
    and directories are removed by them), output is flushed, and a non-daemon thread still running
    gets the ordinary exit, which waits for it."""
    import atexit
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()

__all__ = [
    "COMMANDS",
    "EXIT_CLUSTER",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_USAGE",
    "Outcome",
    "command",
    "execute",
    "main",
    "parse_options",
    "perform",
]
