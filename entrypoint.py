"""The GitHub Action: inputs -> one phase of the engine -> outputs, job summary, annotations, GitHub API.

The step fails (non-zero exit) exactly when the phase failed: 1 refused or failed, 2 bad input,
3 a cluster or API error. Secrets never reach the log: the kubeconfig's keys and tokens and the
GitHub token are masked before anything else is printed, and removed from the environment that
check commands inherit.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

from bluegreen import correlation, logs
from bluegreen.cli import Outcome, log_outcome, perform
from bluegreen.errors import (
    EXIT_USAGE,
    BlueGreenError,
    CancelledError,
    RefusedError,
    RolloutError,
    UsageError,
)
from bluegreen.github.inputs import ActionInputs, decode_kubeconfig, env_name, kubeconfig_secrets, parse
from bluegreen.github.runner import Annotation, Runner, command

SECRET_INPUTS = ("kubeconfig", "github-token")


class ActionReporter:
    """Progress from the engine's waits as log lines, a log group per stage, warnings as annotations.

    The log's groups cannot nest, so a new stage closes the group of the one before."""

    def __init__(self, runner: Runner, title: str, group: str, log: logs.JsonReporter | None = None) -> None:
        self.runner = runner
        self.title = title
        self.group = group
        self.open = False
        self.json = log  # input log-format json: each line a JSON object (logs.py)

    def __enter__(self) -> ActionReporter:
        return self

    def __exit__(self, *_: object) -> None:
        if self.open:
            self.runner.line("::endgroup::")
            self.open = False

    def stage(self, name: str) -> None:
        self.__exit__()
        self.runner.line(command("group", f"{self.group}: {name}"))
        self.open = True
        if self.json is not None:
            self.json.stage(name)

    def progress(self, message: str) -> None:
        if not self.open:  # opened on the first line, so a phase that says nothing leaves no empty group
            self.runner.line(command("group", self.group))
            self.open = True
        if self.json is not None:
            self.json.progress(message)
            return
        self.runner.line(message)

    def warning(self, message: str) -> None:
        self.runner.annotate(Annotation(level="warning", title=self.title, message=message))
        if self.json is not None:
            self.json.warning(message)


def mask_secrets(runner: Runner, env: MutableMapping[str, str]) -> None:
    """Mask, then take out of the environment, every secret input in any of its spellings.

    The runner passes each input twice (INPUT_KUBECONFIG and action.yml's BLUEGREEN_KUBECONFIG): each
    distinct value is masked once."""
    masked: set[str] = set()

    def mask(value: str) -> None:
        if value not in masked:
            masked.add(value)
            runner.mask(value)

    for name in SECRET_INPUTS:
        for key in (env_name(name), f"INPUT_{name.upper()}", f"INPUT_{name.upper().replace('-', '_')}"):
            value = env.get(key, "")
            if not value.strip():
                continue
            if name != "kubeconfig":
                mask(value)
                continue
            # Mask the secret values, not every line: "kind: Config" masked would garble the log.
            try:
                decoded = decode_kubeconfig(value.strip())
            except ValueError:
                mask(value)  # unreadable, and maybe secret: all of it
                continue
            if decoded.strip() != value.strip():
                mask(value)  # the base64 form
            for secret in kubeconfig_secrets(decoded):
                mask(secret)


def scrub(env: MutableMapping[str, str]) -> None:
    for name in SECRET_INPUTS:
        for key in (env_name(name), f"INPUT_{name.upper()}", f"INPUT_{name.upper().replace('-', '_')}"):
            env.pop(key, None)


# The container's own /tmp (1777 in the image): neither $RUNNER_TEMP, which a Docker action is given
# with the host's path, unmounted before runner v2.331.0 (actions/runner#1984) and the host's shared
# temp dir after; nor the workspace, the user's checkout, which later steps upload and cache; nor
# $TMPDIR, which a step's `env:` may point at either of them.
PRIVATE_ROOT = "/tmp"  # noqa: S108 - mkdtemp makes a 0700 directory of our own in it


@contextmanager
def kubeconfig_file(content: str) -> Iterator[str | None]:
    """The kubeconfig in a file only this user can read, in a directory of the container's own,
    removed when the step ends; None: use $KUBECONFIG. A failure is one BlueGreenError (exit 3)."""
    if not content:
        yield None
        return
    folder = ""
    try:
        folder = tempfile.mkdtemp(prefix="bluegreen-", dir=PRIVATE_ROOT)  # 0700, this user's
        path = os.path.join(folder, "kubeconfig")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as file:
            file.write(content)
    except OSError as error:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
        raise BlueGreenError(
            f"cannot write the kubeconfig input to a private file under {PRIVATE_ROOT}: "
            f"{error.strerror or error}",
            remedy=f"The action's container needs a writable {PRIVATE_ROOT}; check the runner's Docker "
            "settings (a read-only or full /tmp), or leave `kubeconfig` empty and set $KUBECONFIG.",
        ) from None
    try:
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def result_name(outcome: Outcome) -> str:
    if outcome.result is not None:
        return outcome.result.result
    if isinstance(outcome.error, CancelledError):
        return "cancelled"
    if isinstance(outcome.error, RolloutError):
        return "failed"
    if isinstance(outcome.error, RefusedError):
        return "refused"
    return "error"


def outputs(outcome: Outcome) -> dict[str, str]:
    result = outcome.result
    report: dict[str, Any] = {"exit_code": outcome.exit_code, "result": result_name(outcome)}
    report["correlation_id"] = correlation.correlation_id()
    if result is not None:
        report["phase"] = result.to_dict()
    if outcome.error is not None:
        report["error"] = {
            "title": outcome.error.title,
            "message": outcome.error.message,
            "remedy": outcome.error.remedy,
        }

    def ms(value: float | None) -> str:
        return f"{value:.1f}" if value is not None else ""

    # A switch's planes apart (phases/switch.py planes): the data plane is the probe's, or the dns router's answer.
    verification: dict[str, Any] = dict((result.details.get("verification") or {}) if result else {})

    return {
        "result": result_name(outcome),
        "active-color": (result.active_color or "") if result else "",
        "previous-color": (result.previous_color or "") if result else "",
        "candidate": (result.candidate or "") if result else "",
        "api-ms": ms(result.api_ms) if result else "",
        "converged-ms": ms(result.converged_ms) if result else "",
        "control-plane-ms": ms(verification.get("control_plane_ms")),
        "data-plane-ms": ms(verification.get("data_plane_ms")),
        "probe-failed": str(result.probe_failed) if result and result.probe_failed is not None else "",
        "probe-cutover-ms": ms(result.probe_cutover_ms) if result else "",
        "report": json.dumps(report, separators=(",", ":"), default=str),
    }


def publish(
    runner: Runner, inputs: ActionInputs, outcome: Outcome, markdown: str, notes: list[Annotation]
) -> None:
    """The check run and the GitHub Deployment; a refusal is a warning, never a failed step."""
    from bluegreen.github import summary
    from bluegreen.github.api import Publication
    from bluegreen.github.api import publish as send
    from bluegreen.github.event import GitHubContext

    result = outcome.result
    publication = Publication(
        phase=inputs.phase,
        app=inputs.app,
        namespace=inputs.namespace,
        result=result_name(outcome),
        failed=outcome.exit_code != 0,
        dry_run=inputs.dry_run,
        title=f"{inputs.app}: {inputs.phase} {summary.HEADLINES.get(result_name(outcome), result_name(outcome))}",
        summary=markdown,
        annotations=notes,
        environment=inputs.environment,
        environment_url=inputs.environment_url,
        image=inputs.image,
        active_color=result.active_color if result else None,
    )

    def warn(message: str) -> None:
        runner.annotate(Annotation(level="warning", title="bluegreen: GitHub API", message=message))

    send(publication, GitHubContext.from_env(runner.env), token=inputs.github_token, warn=warn)


def main(env: MutableMapping[str, str] | None = None) -> int:
    from bluegreen import cancel

    env = os.environ if env is None else env
    if env is os.environ:
        cancel.install()  # as PID 1 in the container, SIGTERM is ignored unless handled
    runner = Runner(env)
    started = time.monotonic()
    mask_secrets(runner, env)
    # In the environment, so check commands inherit it and every part of the run names the same ID.
    env[correlation.ENV] = os.environ[correlation.ENV] = correlation.correlation_id(env)
    app, phase = env.get(env_name("app"), "") or env.get("INPUT_APP", ""), env.get(env_name("phase"), "")
    try:
        inputs = parse(env)
    except UsageError as error:
        scrub(env)
        return fail_early(runner, error, phase=phase or "?", app=app or "?")
    scrub(env)
    title = f"bluegreen {inputs.phase} ({inputs.app})"
    try:
        with kubeconfig_file(inputs.kubeconfig) as path:
            if path:
                env["KUBECONFIG"] = path  # for kubectl in command checks; the options name it for us
            log = None
            if inputs.log_format == "json":
                log = logs.JsonReporter(
                    runner.line,
                    app=inputs.app,
                    namespace=inputs.namespace,
                    phase=inputs.phase,
                    correlation_id=inputs.run.correlation_id,
                )
            with ActionReporter(runner, title, f"{title}: {inputs.namespace}", log) as reporter:
                outcome = perform(inputs.options(path), reporter=reporter, pushgateway=inputs.pushgateway)
                cancel.settle()  # from here the outcome is reported, whatever signal comes
            if log is not None:
                log_outcome(log, outcome)  # the last line, as the CLI's: result and exit code
    except BlueGreenError as error:  # only the kubeconfig file: perform() returns every failure
        outcome = Outcome(error.exit_code, error=error, output="json")
    return finish(runner, inputs, outcome, started=started)


def fail_early(runner: Runner, error: BlueGreenError, *, phase: str, app: str) -> int:
    from bluegreen.github import summary

    outcome = Outcome(EXIT_USAGE, error=error, output="json")
    runner.set_outputs(outputs(outcome))
    for note in summary.notes(None, error, phase=phase, app=app):
        runner.annotate(note)
    runner.summary(
        summary.markdown(None, error, phase=phase, app=app, correlation_id=correlation.correlation_id())
    )
    return EXIT_USAGE


def finish(runner: Runner, inputs: ActionInputs, outcome: Outcome, *, started: float) -> int:
    # The summary's module here, once the phase is done: a switch or rollback step imports before its
    # first request only what the phase needs (issue 14); so does publish() its API client.
    from bluegreen.github import summary

    markdown = summary.markdown(
        outcome.result,
        outcome.error,
        phase=inputs.phase,
        app=inputs.app,
        correlation_id=inputs.run.correlation_id,
    )
    notes = summary.notes(outcome.result, outcome.error, phase=inputs.phase, app=inputs.app)
    with runner.group("outputs"):
        values = outputs(outcome)
        for name, value in values.items():
            if name != "report":
                runner.line(f"{name}: {value}")
        runner.set_outputs(values)
    for note in notes:
        runner.annotate(note)
    runner.summary(markdown)
    if inputs.github_token:
        with runner.group("GitHub check run and deployment"):
            publish(runner, inputs, outcome, markdown, notes)
    runner.line(
        f"{inputs.phase}: {result_name(outcome)} in {time.monotonic() - started:.1f}s (exit {outcome.exit_code})"
    )
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
