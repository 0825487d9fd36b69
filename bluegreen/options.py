"""What one phase is asked to do, as typed values: built by the CLI from its flags and by the Action
from its inputs, run by `run`.

The Action used to rebuild a `bluegreen` command line from its inputs and parse it again; inputs the
command line did not take for a phase (the watch's `p95-tolerance` and `max-error-rate`) were lost on
the way without a word. Both front ends now build these objects, so an input is either a field here or
visibly nowhere.

Values are typed where their front end has already checked them (durations in seconds, colours); the
gate and watch thresholds stay as the text given, because `config.apply` checks them against
bluegreen.yaml and names the flag in its error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from bluegreen.correlation import correlation_id
from bluegreen.model import AppSpec, Color, Reporter, Result, RunInfo

if TYPE_CHECKING:  # imported where a probe runs: --version and most phases never need it
    from bluegreen.config import Config
    from bluegreen.traffic_probe import ProbeOptions, TrafficCheck


class Target(NamedTuple):
    """The app and the cluster: every phase has one."""

    app: str
    namespace: str = "default"
    kubeconfig: str | None = None  # a file; None: $KUBECONFIG, then ~/.kube/config
    context: str | None = None
    router: str = ""  # "" -> the one `init --router` recorded on the app's Service, else service
    dns_server: str = ""  # dns router: the zone's authoritative server, HOST:PORT, asked to verify
    color_label: str = "bluegreen.io/color"
    service: str = ""
    preview_service: str = ""
    timeout: float = 600.0  # seconds: the longest wait for a rollout

    def spec(self) -> AppSpec:
        return AppSpec(
            name=self.app,
            namespace=self.namespace,
            color_label=self.color_label,
            service=self.service,
            preview_service=self.preview_service,
        )


class Writes(NamedTuple):
    """How a phase that writes behaves: dry run, the lock, who asked (the audit trail)."""

    dry_run: bool = False
    wait_for_lock: float = 0.0  # seconds
    run: RunInfo = RunInfo()


class Checks(NamedTuple):
    """bluegreen.yaml and the thresholds given on top of it (text, checked when the file is loaded)."""

    config: Path | None = None  # None: ./bluegreen.yaml if present, else the defaults
    min_healthy: str | None = None  # gate
    interval: str | None = None  # gate and watch
    p95_tolerance: str | None = None  # gate and watch
    max_error_rate: str | None = None  # gate and watch
    duration: str | None = None  # watch
    auto_rollback: bool | None = None  # watch

    def load(self, target: Target | None = None) -> Any:
        """The validated Config, before anything touches the cluster; a file naming another app or
        namespace than `target` is refused."""
        from bluegreen.config import Overrides, load

        return load(
            self.config,
            Overrides(
                app=target.app if target else None,
                namespace=target.namespace if target else None,
                min_healthy=self.min_healthy,
                interval=self.interval,
                p95_tolerance=self.p95_tolerance,
                max_error_rate=self.max_error_rate,
                duration=self.duration,
                auto_rollback=self.auto_rollback,
            ),
        )


class Images(NamedTuple):
    """The new images of a deploy: one for a single-container pod, or per container."""

    image: str | None = None
    set_images: tuple[tuple[str, str], ...] = ()
    keep_failed: bool = False
    manifests: tuple[str, ...] = ()  # -f: files, directories, globs, `-` for stdin
    # the ConfigMaps and Secrets the template names, read from the cluster and copied per colour
    copy_cluster_config: bool = False

    def check(self) -> None:
        from bluegreen.phases import deploy

        deploy.check_images(self.image, dict(self.set_images), manifests=bool(self.manifests))

    def load(self, target: Target) -> Any:
        """The app's manifests (bluegreen/manifests.py), read and checked before the cluster is
        contacted; None without -f. One UsageError naming every problem otherwise."""
        if not self.manifests:
            return None
        from bluegreen import manifests
        from bluegreen.errors import UsageError

        try:
            found = manifests.parse(
                manifests.read(manifests.expand(self.manifests)), app=target.app, namespace=target.namespace
            )
            app = target.spec()
            problems = manifests.service_problems(
                found, service=app.service, preview_service=app.preview_service, color_label=app.color_label
            )
            if problems:
                raise manifests.ManifestError("; ".join(problems))
        except (manifests.ManifestError, ValueError) as error:
            raise UsageError(
                f"manifests: {error}",
                remedy="Fix the files given with -f (the Action's `manifests`); nothing was applied.",
            ) from None
        return found


class StatusOptions(NamedTuple):
    target: Target
    phase: str = "status"


class DiffOptions(NamedTuple):
    target: Target
    phase: str = "diff"


class InitOptions(NamedTuple):
    target: Target
    writes: Writes = Writes()
    source: str | None = None  # the Deployment to adopt; None: <app>
    phase: str = "init"


class DeployOptions(NamedTuple):
    target: Target
    images: Images
    writes: Writes = Writes()
    phase: str = "deploy"


class PatchOptions(NamedTuple):
    """The idle colour (the rollback target) re-deployed with patched images; traffic not moved."""

    target: Target
    images: Images
    writes: Writes = Writes()
    reason: str = ""
    phase: str = "patch"


class GateOptions(NamedTuple):
    target: Target
    checks: Checks = Checks()
    phase: str = "gate"


class SwitchOptions(NamedTuple):
    target: Target
    writes: Writes = Writes()
    to: Color | None = None  # None: the candidate deploy recorded (nothing to do when it is live)
    force: bool = False
    allow_no_endpoints: bool = False  # with force: even onto a colour with no ready pod (recorded)
    undo: bool = True  # a switch that fails to verify is moved back to the colour it left (--no-undo)
    reason: str = ""
    candidate: str = ""  # deploy's `candidate` output: promote exactly that release
    # bluegreen.yaml (None: ./bluegreen.yaml if present): a gate in it is required; its watch's
    # Prometheus checks measure the live colour's baseline
    checks: Checks = Checks()
    probe: ProbeOptions | None = None  # --probe URL: requests to the user's URL across the switch
    phase: str = "switch"


class WatchOptions(NamedTuple):
    target: Target
    writes: Writes = Writes()
    checks: Checks = Checks()
    phase: str = "watch"


class RollbackOptions(NamedTuple):
    target: Target
    writes: Writes = Writes()
    to: Color | None = None  # None: the recorded previous colour
    reason: str = ""
    force: bool = False  # even to a release rolled back before (rejected)
    probe: ProbeOptions | None = None
    phase: str = "rollback"


class RetireOptions(NamedTuple):
    target: Target
    writes: Writes = Writes()
    after: float = 0.0  # seconds since the last switch
    phase: str = "retire"


class ReleaseOptions(NamedTuple):
    target: Target
    images: Images
    writes: Writes = Writes()
    checks: Checks = Checks()
    phase: str = "release"


class MigrateOptions(NamedTuple):
    target: Target
    hook: str  # expand | contract | post-switch
    writes: Writes = Writes()
    checks: Checks = Checks()  # bluegreen.yaml: the hook's definition
    release: str = ""  # the release the run belongs to (recorded): an image, a commit
    force: bool = False  # contract: even while the old release can come back (recorded)
    reason: str = ""
    phase: str = "migrate"  # the hook's name when built by the CLI or the Action


PhaseOptions = (
    StatusOptions
    | DiffOptions
    | InitOptions
    | DeployOptions
    | PatchOptions
    | GateOptions
    | SwitchOptions
    | WatchOptions
    | RollbackOptions
    | RetireOptions
    | ReleaseOptions
    | MigrateOptions
)


def github_run(env: Mapping[str, str]) -> RunInfo:
    """Who asked, from the GitHub Actions variables (or the local user): the audit trail's defaults."""
    server, repo, run_id = (
        env.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    return RunInfo(
        run_id=run_id,
        run_url=f"{server}/{repo}/actions/runs/{run_id}" if server and repo and run_id else "",
        actor=env.get("GITHUB_ACTOR") or env.get("USER", ""),
        correlation_id=correlation_id(env),
    )


def context(target: Target, writes: Writes | None, reporter: Reporter) -> Any:
    """The engine's Context: connects to the cluster (imported here to keep --help fast)."""
    from bluegreen.kube import connect
    from bluegreen.phases.context import Context

    writes = writes or Writes()
    if target.dns_server and target.router not in ("", "dns"):
        from bluegreen.errors import ConfigError

        raise ConfigError(
            f"--dns-server is for the dns router, not {target.router}",
            remedy="Drop --dns-server, or pass --router dns.",
        )
    return Context(
        kube=connect(kubeconfig=target.kubeconfig, context=target.context),
        app=target.spec(),
        run=writes.run,
        reporter=reporter,
        dry_run=writes.dry_run,
        router=target.router,
        router_options={"dns_server": target.dns_server} if target.dns_server else {},
        lock_wait=writes.wait_for_lock,
        timeout=target.timeout,
    )


# bluegreen.config.DEFAULT_PATH, named here so that a switch without the file never imports its parser.
DEFAULT_CONFIG = Path("bluegreen.yaml")


def switch_config(path: Path | None) -> Config | None:
    """The app's bluegreen.yaml for `switch` (given, or ./bluegreen.yaml if present): when it gates,
    `switch` promotes only a template a gate passed; its watch's Prometheus checks measure the live
    colour's baseline. Read before the cluster is contacted. None without a file: the defaults neither
    gate nor measure a baseline, and a switch then imports neither bluegreen.config nor the watch's
    checks (issue 14)."""
    if path is None:
        try:
            if not DEFAULT_CONFIG.is_file():
                return None
        except OSError:  # a working directory we may not read (the Action's uid in some runners)
            return None
    from bluegreen.config import load

    return load(path)


def probed(
    probe: ProbeOptions | None,
    run: Callable[[TrafficCheck | None], Result],
    *,
    longest: float,
    refuse_unanswered: bool,
    reporter: Reporter,
) -> Result:
    """`run` inside a traffic probe (bluegreen/traffic_probe.py), imported only when there is one, and
    given the probe's check that traffic moved (None without a probe)."""
    if probe is None:
        return run(None)
    from bluegreen import traffic_probe

    return traffic_probe.probed(
        probe, run, longest=longest, refuse_unanswered=refuse_unanswered, reporter=reporter
    )


def run(options: PhaseOptions, reporter: Reporter) -> Result:
    """Run one phase. Inputs are checked (images, bluegreen.yaml) before the cluster is contacted.

    Each case imports its own phase: a process runs one, and a switch needs none of the gate's checks,
    bluegreen.yaml's parser or the deploy's rollout code (issue 14: start-up is paid by every step)."""
    match options:
        case StatusOptions():
            from bluegreen.phases import status

            return status.run(context(options.target, None, reporter))
        case DiffOptions():
            from bluegreen.phases import diff

            return diff.run(context(options.target, None, reporter))
        case InitOptions():
            from bluegreen.phases import init

            return init.run(context(options.target, options.writes, reporter), source=options.source)
        case DeployOptions():
            from bluegreen.phases import deploy

            options.images.check()
            found = options.images.load(options.target)
            return deploy.run(
                context(options.target, options.writes, reporter),
                image=options.images.image,
                set_images=dict(options.images.set_images),
                keep_failed=options.images.keep_failed,
                manifests=found,
                copy_cluster_config=options.images.copy_cluster_config,
            )
        case PatchOptions():
            from bluegreen.phases import deploy, patch

            deploy.check_images(options.images.image, dict(options.images.set_images))
            return patch.run(
                context(options.target, options.writes, reporter),
                image=options.images.image,
                set_images=dict(options.images.set_images),
                reason=options.reason,
                keep_failed=options.images.keep_failed,
            )
        case GateOptions():
            from bluegreen.phases import checked

            config = options.checks.load(options.target)
            return checked.gate(context(options.target, None, reporter), config)
        case SwitchOptions():
            switching = options
            config = switch_config(switching.checks.config)  # read before the cluster is asked
            gated = config is not None and config.path is not None and bool(config.gate_checks())
            # Connected before the phase is imported: the connection opens meanwhile (Api.prewarm).
            ctx = context(switching.target, switching.writes, reporter)
            from bluegreen.phases import switch

            def baseline(live: Color) -> dict[str, Any]:
                from bluegreen.phases import watch

                return watch.measure_baseline(config, ctx.app, live=live, kube=ctx.kube)

            switched = probed(
                switching.probe,
                lambda traffic: switch.run(
                    ctx,
                    to=switching.to,
                    force=switching.force,
                    reason=switching.reason,
                    candidate=switching.candidate,
                    gate_required=gated,
                    baseline=baseline if config is not None else None,
                    allow_no_endpoints=switching.allow_no_endpoints,
                    undo=switching.undo,
                    traffic=traffic,
                ),
                longest=switching.target.timeout,
                # a probe URL that never answers is a typo: refused before the switch changes anything
                refuse_unanswered=not switching.writes.dry_run,
                reporter=reporter,
            )
            if config is not None and config.drain is not None:
                from bluegreen.phases import keepalive

                switched = keepalive.after_switch(ctx, config, switched)
            if config is None or config.migrations.post_switch is None:
                return switched
            from bluegreen.phases import migrate

            return migrate.post_switch(ctx, config, switched)
        case WatchOptions():
            from bluegreen.phases import checked

            config = options.checks.load(options.target)
            return checked.watch(context(options.target, options.writes, reporter), config)
        case RollbackOptions():
            rolling = options
            # Connected before the phase is imported: the connection opens meanwhile (Api.prewarm).
            rolling_ctx = context(rolling.target, rolling.writes, reporter)
            from bluegreen.phases import rollback

            return probed(
                rolling.probe,
                lambda traffic: rollback.run(
                    rolling_ctx,
                    reason=rolling.reason,
                    to=rolling.to,
                    force=rolling.force,
                    traffic=traffic,
                ),
                longest=rolling.target.timeout,
                refuse_unanswered=False,  # a rollback often runs while the app is failing: warn, go on
                reporter=reporter,
            )
        case RetireOptions():
            from bluegreen.phases import retire

            return retire.run(context(options.target, options.writes, reporter), after=options.after)
        case MigrateOptions():
            from bluegreen.phases import migrate

            config = options.checks.load(options.target)
            migrate.hook_for(config, options.hook)  # a missing hook is refused before the cluster is asked
            return migrate.run(
                context(options.target, options.writes, reporter),
                config,
                name=options.hook,
                release=options.release,
                force=options.force,
                reason=options.reason,
            )
        case ReleaseOptions():
            from bluegreen.phases import release

            options.images.check()
            found = options.images.load(options.target)
            config = options.checks.load(options.target)
            return release.run(
                context(options.target, options.writes, reporter),
                config,
                image=options.images.image,
                set_images=dict(options.images.set_images),
                keep_failed=options.images.keep_failed,
                manifests=found,
                copy_cluster_config=options.images.copy_cluster_config,
            )
