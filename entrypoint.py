"""The GitHub Action: inputs -> one phase of the engine -> outputs, job summary, annotations, GitHub API.

The step fails (non-zero exit) exactly when the phase failed: 1 refused or failed, 2 bad input,
3 a cluster or API error. Secrets never reach the log: the kubeconfig's keys and tokens and the
GitHub token are masked before anything else is printed, and removed from the environment that
check commands inherit.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bluegreen.cli import Outcome, execute
from bluegreen.errors import (
    EXIT_USAGE,
    BlueGreenError,
    CancelledError,
    RefusedError,
    RolloutError,
    UsageError,
)
from bluegreen.github import summary
from bluegreen.github.inputs import ActionInputs, decode_kubeconfig, env_name, kubeconfig_secrets, parse
from bluegreen.github.runner import Annotation, Runner, command

SECRET_INPUTS = ("kubeconfig", "github-token")


class ActionReporter:
    """Progress from the engine's waits as log lines, a log group per stage, warnings as annotations.

    The log's groups cannot nest, so a new stage closes the group of the one before."""

    def __init__(self, runner: Runner, title: str, group: str) -> None:
        self.runner = runner
        self.title = title
        self.group = group
        self.open = False

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

    def progress(self, message: str) -> None:
        if not self.open:  # opened on the first line, so a phase that says nothing leaves no empty group
            self.runner.line(command("group", self.group))
            self.open = True
        self.runner.line(message)

    def warning(self, message: str) -> None:
        self.runner.annotate(Annotation(level="warning", title=self.title, message=message))


def mask_secrets(runner: Runner, env: MutableMapping[str, str]) -> None:
    """Mask, then take out of the environment, every secret input in any of its spellings."""
    for name in SECRET_INPUTS:
        for key in (env_name(name), f"INPUT_{name.upper()}", f"INPUT_{name.upper().replace('-', '_')}"):
            value = env.get(key, "")
            if not value.strip():
                continue
            if name != "kubeconfig":
                runner.mask(value)
                continue
            # Mask the secret values, not every line: "kind: Config" masked would garble the log.
            try:
                decoded = decode_kubeconfig(value.strip())
            except ValueError:
                runner.mask(value)  # unreadable, and maybe secret: all of it
                continue
            if decoded.strip() != value.strip():
                runner.mask(value)  # the base64 form
            for secret in kubeconfig_secrets(decoded):
                runner.mask(secret)


def scrub(env: MutableMapping[str, str]) -> None:
    for name in SECRET_INPUTS:
        for key in (env_name(name), f"INPUT_{name.upper()}", f"INPUT_{name.upper().replace('-', '_')}"):
            env.pop(key, None)


@contextmanager
def kubeconfig_file(content: str) -> Iterator[str | None]:
    """The kubeconfig in a 0600 file that is gone when the step ends; None: use $KUBECONFIG."""
    if not content:
        yield None
        return
    fd, path = tempfile.mkstemp(prefix="kubeconfig-", dir=os.environ.get("RUNNER_TEMP") or None)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:  # mkstemp creates it 0600
            file.write(content)
        yield path
    finally:
        Path(path).unlink(missing_ok=True)


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

    return {
        "result": result_name(outcome),
        "active-color": (result.active_color or "") if result else "",
        "previous-color": (result.previous_color or "") if result else "",
        "api-ms": ms(result.api_ms) if result else "",
        "converged-ms": ms(result.converged_ms) if result else "",
        "report": json.dumps(report, separators=(",", ":"), default=str),
    }


def publish(
    runner: Runner, inputs: ActionInputs, outcome: Outcome, markdown: str, notes: list[Annotation]
) -> None:
    """The check run and the GitHub Deployment; a refusal is a warning, never a failed step."""
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
    app, phase = env.get(env_name("app"), "") or env.get("INPUT_APP", ""), env.get(env_name("phase"), "")
    try:
        inputs = parse(env)
    except UsageError as error:
        scrub(env)
        return fail_early(runner, error, phase=phase or "?", app=app or "?")
    scrub(env)
    title = f"bluegreen {inputs.phase} ({inputs.app})"
    with kubeconfig_file(inputs.kubeconfig) as path:
        if path:
            env["KUBECONFIG"] = path  # for kubectl in command checks; --kubeconfig names it for us
        with ActionReporter(runner, title, f"{title}: {inputs.namespace}") as reporter:
            outcome = execute(inputs.argv(path), reporter=reporter)
            cancel.settle()  # from here the outcome is reported, whatever signal comes
    return finish(runner, inputs, outcome, started=started)


def fail_early(runner: Runner, error: BlueGreenError, *, phase: str, app: str) -> int:
    outcome = Outcome(EXIT_USAGE, error=error, output="json")
    runner.set_outputs(outputs(outcome))
    for note in summary.notes(None, error, phase=phase, app=app):
        runner.annotate(note)
    runner.summary(summary.markdown(None, error, phase=phase, app=app))
    return EXIT_USAGE


def finish(runner: Runner, inputs: ActionInputs, outcome: Outcome, *, started: float) -> int:
    markdown = summary.markdown(outcome.result, outcome.error, phase=inputs.phase, app=inputs.app)
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
