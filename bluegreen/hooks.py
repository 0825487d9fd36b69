"""Run one migration hook (expand, post-switch, contract): a local command or a Kubernetes Job.

A command is an argument list, never a shell. It gets an environment built here and nothing else:
PATH, HOME, LANG and TZ, the hook's `env`, the names in its `pass-env` (their values masked in any
output shown), and BLUEGREEN_APP, BLUEGREEN_NAMESPACE, BLUEGREEN_COLOR, BLUEGREEN_RELEASE and
BLUEGREEN_HOOK; the kubeconfig and the GitHub token never reach it. It runs in a process group of
its own so that at its timeout (or on SIGTERM to bluegreen) the whole group is stopped: SIGTERM,
then SIGKILL after KILL_GRACE.

A Job is created from the manifest with a fresh name and bluegreen labels, its deadline set to the
hook's timeout, and followed until Complete or Failed; a failed Job's error names the pods' reasons
(exit code, OOMKilled, Unschedulable, ImagePullBackOff), which are read while it runs because the Job
controller deletes them at the deadline.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any, cast

from lightkube import Client
from lightkube.resources.batch_v1 import Job
from lightkube.types import CascadeType

from bluegreen.config import HookConfig, format_duration, render
from bluegreen.errors import BlueGreenError
from bluegreen.kube import call, get_json, label_selector
from bluegreen.model import AppSpec, Reporter
from bluegreen.rollout import pod_problems

BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL for a hook's process group
HOOK_LABEL = "bluegreen.io/hook"
POLL = 0.5  # seconds between reads of a Job hook and its pods
MASK = "***"
MAX_OUTPUT = 64 * 1024  # bytes of a command's output read back for its tail


@dataclass(frozen=True, kw_only=True)
class HookRun:
    """How one run of a hook ended."""

    hook: str
    kind: str  # command | job
    target: str  # the program, or the Job's namespace/name
    outcome: str  # succeeded | failed | timed-out | error
    seconds: float
    exit_code: int | None = None
    reason: str = ""  # one line: why it failed
    output: str = ""  # the tail of its output (command) or its pods' states (job), secrets masked

    @property
    def ok(self) -> bool:
        return self.outcome == "succeeded"


def variables(app: AppSpec, color: str, release: str, hook: str) -> dict[str, str]:
    """What `{{...}}` in a hook's arguments or Job manifest can name."""
    return {
        "app": app.name,
        "namespace": app.namespace,
        "color": color,
        "window": "",
        "release": release,
        "hook": hook,
    }


def command_env(hook: HookConfig, found: Mapping[str, str], values: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of a command hook (pure): nothing is inherited unless named."""
    env = {name: found[name] for name in BASE_ENV if name in found}
    env.update(hook.env)
    env.update({name: found[name] for name in hook.pass_env if name in found})
    env.update(
        {
            "BLUEGREEN_APP": values["app"],
            "BLUEGREEN_NAMESPACE": values["namespace"],
            "BLUEGREEN_COLOR": values["color"],
            "BLUEGREEN_RELEASE": values["release"],
            "BLUEGREEN_HOOK": values["hook"],
        }
    )
    return env


def masked(text: str, hidden: list[str]) -> str:
    """`text` with every value in `hidden` replaced by *** (pure); longest first, so a value that
    contains another is masked whole."""
    for value in sorted((v for v in hidden if len(v) >= 3), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def tail(text: str, lines: int) -> str:
    kept = text.rstrip().splitlines()[-lines:]
    return "\n".join(kept)


def run(
    hook: HookConfig,
    *,
    app: AppSpec,
    color: str,
    release: str,
    kube: Client | None,
    reporter: Reporter,
    environ: Mapping[str, str] | None = None,
) -> HookRun:
    values = variables(app, color, release, hook.name)
    if hook.job:
        assert kube is not None
        return run_job(hook, values=values, app=app, kube=kube, reporter=reporter)
    return run_command(hook, values=values, environ=os.environ if environ is None else environ)


# -- a local command --------------------------------------------------------------------------------


def run_command(hook: HookConfig, *, values: Mapping[str, str], environ: Mapping[str, str]) -> HookRun:
    argv = [render(arg, values) for arg in hook.command]
    env = command_env(hook, environ, values)
    hidden = [environ[name] for name in hook.pass_env if environ.get(name)]
    start = time.monotonic()
    # Output to a file, not a pipe: a chatty migration cannot fill memory, and a child left holding
    # the output open cannot keep the wait going after the hook itself has ended.
    with tempfile.TemporaryFile() as out:
        try:
            process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the timeout stops its children too
            )
        except OSError as error:
            return HookRun(
                hook=hook.name,
                kind="command",
                target=argv[0],
                outcome="error",
                seconds=time.monotonic() - start,
                reason=f"cannot run {argv[0]}: {error.strerror or error}",
            )
        timed_out = False
        try:
            try:
                process.wait(timeout=hook.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _stop(process)
        except BaseException:
            # SIGTERM to bluegreen (Cancelled) or anything else: never leave a migration running unseen.
            _stop(process)
            raise
        finally:
            # Whatever the hook started and left behind in its group ends with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        seconds = time.monotonic() - start
        output = masked(tail(_last(out, MAX_OUTPUT).decode(errors="replace"), hook.tail_lines), hidden)
    if timed_out:
        return HookRun(
            hook=hook.name,
            kind="command",
            target=argv[0],
            outcome="timed-out",
            seconds=seconds,
            exit_code=process.returncode,
            reason=f"still running after its timeout of {format_duration(hook.timeout)}: stopped",
            output=output,
        )
    code = process.returncode
    return HookRun(
        hook=hook.name,
        kind="command",
        target=argv[0],
        outcome="succeeded" if code == 0 else "failed",
        seconds=seconds,
        exit_code=code,
        reason="" if code == 0 else f"{argv[0]} exited with {_exit(code)}",
        output=output,
    )


def _last(file: IO[bytes], size: int) -> bytes:
    """The last `size` bytes written to `file`."""
    end = file.seek(0, os.SEEK_END)
    file.seek(max(0, end - size))
    return file.read()


def _exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"code {code}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the hook's process group, SIGKILL after KILL_GRACE."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=KILL_GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


# -- a Kubernetes Job -------------------------------------------------------------------------------


def _render_all(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return render(value, values)
    if isinstance(value, dict):
        return {k: _render_all(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_all(v, values) for v in value]
    return value


def job_manifest(hook: HookConfig, app: AppSpec, values: Mapping[str, str], suffix: str) -> dict[str, Any]:
    """The Job to create (pure): the manifest rendered, named and labelled, never retried unless it
    says so, ended by the Job controller at the hook's timeout."""
    job: dict[str, Any] = _render_all(dict(hook.job), values)
    job["apiVersion"], job["kind"] = "batch/v1", "Job"
    metadata = dict(job.get("metadata") or {})
    metadata.pop("generateName", None)
    metadata["name"] = f"{app.name}-{hook.name}-{suffix}"[:63].rstrip("-")
    metadata["namespace"] = app.namespace
    metadata["labels"] = {
        **(metadata.get("labels") or {}),
        "app.kubernetes.io/managed-by": "bluegreen",
        "app.kubernetes.io/name": app.name,
        HOOK_LABEL: hook.name,
    }
    job["metadata"] = metadata
    spec = dict(job["spec"])
    spec.setdefault("backoffLimit", 0)
    deadline = max(1, round(hook.timeout))
    spec["activeDeadlineSeconds"] = min(int(spec.get("activeDeadlineSeconds") or deadline), deadline)
    spec.setdefault("ttlSecondsAfterFinished", 3600)
    job["spec"] = spec
    return job


def job_outcome(job: dict[str, Any]) -> tuple[str, str]:
    """("Complete" | "Failed" | "", the failure's reason and message) from a Job's conditions (pure)."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            why = ": ".join(p for p in (condition.get("reason"), condition.get("message")) if p)
            return str(condition["type"]), why
    return "", ""


def pod_reasons(pods: list[dict[str, Any]]) -> list[str]:
    """Why a Job's pods failed or do not run, one line each (pure): terminated containers with their
    exit code and reason, then what keeps the others from running."""
    found: list[str] = []
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        status = pod.get("status") or {}
        for container in [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]:
            ended = (container.get("state") or {}).get("terminated") or {}
            if ended and ended.get("exitCode", 0) != 0:
                detail = ": ".join(
                    p for p in (ended.get("reason"), (ended.get("message") or "").strip()) if p
                )
                found.append(
                    f"pod {name}: container {container.get('name', '?')} exited with code "
                    f"{ended.get('exitCode')}" + (f" ({detail})" if detail else "")
                )
        if status.get("phase") == "Failed" and status.get("reason"):
            found.append(f"pod {name}: {status['reason']}: {status.get('message', '')}".rstrip(": "))
    found += [
        f"{line}"
        for line in pod_problems([p for p in pods if (p.get("status") or {}).get("phase") != "Failed"])
    ]
    return list(dict.fromkeys(found))


def run_job(
    hook: HookConfig, *, values: Mapping[str, str], app: AppSpec, kube: Client, reporter: Reporter
) -> HookRun:
    ns = app.namespace
    body = job_manifest(hook, app, values, secrets.token_hex(3))
    name = body["metadata"]["name"]
    shown = f"job {ns}/{name}"
    start = time.monotonic()
    try:
        call(
            f"creating Job {ns}/{name}",
            lambda: kube.create(cast(Job, Job.from_dict(body)), namespace=ns),
            idempotent=False,
        )
    except BlueGreenError as error:
        return HookRun(
            hook=hook.name, kind="job", target=shown, outcome="error", seconds=0.0, reason=error.message
        )
    reasons: list[str] = []
    outcome, why = "", ""
    # The Job controller ends it at activeDeadlineSeconds; our own wait is a little longer so that
    # its Failed condition (DeadlineExceeded), not our clock, normally says how it ended.
    deadline = start + hook.timeout + 15.0
    last_note = 0.0
    try:
        while time.monotonic() < deadline:
            job = call(
                f"reading Job {ns}/{name}",
                lambda: get_json(kube, f"/apis/batch/v1/namespaces/{ns}/jobs/{name}"),
            )
            pods = call(
                f"listing the pods of Job {ns}/{name}",
                lambda: get_json(
                    kube,
                    f"/api/v1/namespaces/{ns}/pods",
                    params={"labelSelector": label_selector({"job-name": name})},
                )["items"],
            )
            reasons = pod_reasons(pods) or reasons  # the last seen: a deadline deletes the pods
            outcome, why = job_outcome(job)
            if outcome:
                break
            if time.monotonic() - last_note >= 10.0:
                reporter.progress(f"{hook.name}: waiting for {shown}")
                last_note = time.monotonic()
            time.sleep(POLL)
    except BaseException:
        _delete_job(kube, name, ns)
        raise
    seconds = time.monotonic() - start
    output = "\n".join(reasons)
    if outcome == "Complete":
        return HookRun(
            hook=hook.name, kind="job", target=shown, outcome="succeeded", seconds=seconds, output=output
        )
    if not outcome:
        _delete_job(kube, name, ns)
        return HookRun(
            hook=hook.name,
            kind="job",
            target=shown,
            outcome="timed-out",
            seconds=seconds,
            reason=f"not finished after its timeout of {format_duration(hook.timeout)}: deleted"
            + (f"; {'; '.join(reasons)}" if reasons else ""),
            output=output,
        )
    timed_out = "DeadlineExceeded" in why
    return HookRun(
        hook=hook.name,
        kind="job",
        target=shown,
        outcome="timed-out" if timed_out else "failed",
        seconds=seconds,
        reason=f"{shown} failed ({why or 'no reason given'})"
        + (f"; {'; '.join(reasons)}" if reasons else ""),
        output=output,
    )


def _delete_job(kube: Client, name: str, namespace: str) -> None:
    # Best effort (ttlSecondsAfterFinished cleans up too); its pods go with it.
    with contextlib.suppress(Exception):
        kube.delete(Job, name, namespace=namespace, cascade=CascadeType.BACKGROUND)
