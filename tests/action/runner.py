"""A Docker action's step started exactly as GitHub's runner starts it, for the image tests.

Read from actions/runner at commit 258d6c857db3 (v2.336.0, August 2026); paths below are in that
repository. The container tests used to start the image the way that was convenient (no RUNNER_TEMP,
the kubeconfig and files wherever suited us), and act mounts differently again, which is how a step
given a `kubeconfig` input could crash on every GitHub runner while every test passed (issue 15).
Each part of the `docker run` below names where it comes from:

- ContainerActionHandler.cs (Handlers/): the step's environment; `INPUT_*` from the inputs
  (Handler.cs AddInputsToEnvironment); action.yml `runs.env` evaluated with the `inputs` context
  (only names not already set); HOME; the `github` and `runner` contexts as GITHUB_*/RUNNER_* variables
  (GitHubContext.cs allowlist, RunnerContext.cs); the ACTIONS_* runtime variables; the mounts; every
  value passed through ContainerInfo.TranslateToContainerPath; `/github/workspace` as workdir; the
  job's network if it has one.
- DockerCommandManager.cs (Container/) DockerRun: `--name`, `--label`, `--workdir`, `--rm`, one `-e NAME`
  per variable with the value only in the docker client's environment, `-e GITHUB_ACTIONS=true`,
  `-e CI=true`, `--entrypoint` and `--network` when set, `-v` per mount, the image, then the args.
- FileCommandManager.cs InitializeFiles: the file-command files, made by the runner before the step.
- ActionRunner.cs: the inputs are the step's `with:` plus action.yml's defaults, evaluated.

Two runner generations differ on RUNNER_TEMP: up to v2.330.0 it is passed with the host's path and
that directory is not mounted (actions/runner#1984); from v2.331.0 (#4011, flag removed in #4163) it is
mounted at /github/runner_temp and the variable translated. `Runner(mount_runner_temp=...)` picks one;
the default is the older, unmounted layout, still what self-hosted runners and GHES often run.

Deviations, each forced by this machine: the network is `host` (the runner gives a job without job
or service containers no `--network`, i.e. the default bridge, and one with them a
`github_network_<guid>`; the test cluster's apiserver listens on 127.0.0.1 of the host only); the
image is built by tests/action/conftest.py (no pulls: a local base image) and tagged as the runner
tags what it builds; the argument list is passed as a list where the runner joins one string for the
process to split (equal for these paths, which have no spaces or quotes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.support.github import read_outputs

ROOT = Path(__file__).resolve().parents[2]
RUNNER_UID = 1001  # the GitHub-hosted runner's user (`runner`), who makes every file below
EXPRESSION = re.compile(r"\$\{\{\s*(inputs|github)\.([A-Za-z0-9_-]+)\s*\}\}")
# GitHubContext.cs: the `github` context keys exposed to steps as GITHUB_<KEY>.
GITHUB_ENV_ALLOWLIST = [
    "action_path",
    "action_ref",
    "action_repository",
    "action",
    "actor",
    "actor_id",
    "api_url",
    "artifacts",
    "artifacts_list",
    "base_ref",
    "env",
    "event_name",
    "event_path",
    "graphql_url",
    "head_ref",
    "job",
    "output",
    "path",
    "ref_name",
    "ref_protected",
    "ref_type",
    "ref",
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "retention_days",
    "run_attempt",
    "run_id",
    "run_number",
    "server_url",
    "sha",
    "state",
    "step_summary",
    "triggering_actor",
    "workflow",
    "workflow_ref",
    "workflow_sha",
    "workspace",
]
# FileCommandManager.cs: (context name, file prefix) of each file command.
FILE_COMMANDS = (
    ("path", "add_path_"),
    ("env", "set_env_"),
    ("step_summary", "step_summary_"),
    ("state", "save_state_"),
    ("output", "set_output_"),
)


def sanitize(name: str) -> str:
    """Pipelines/Validation/NameValidation.cs Sanitize: letters, '_', and digits after the first."""
    out = ""
    for char in name:
        if char.isascii() and (char.isalpha() or char == "_" or (char.isdigit() and out)):
            out += char
    return out


def evaluate(text: str, contexts: Mapping[str, Mapping[str, str]]) -> str:
    """The `${{ inputs.x }}` and `${{ github.x }}` expressions action.yml uses; any other form fails
    the test, so action.yml cannot grow an expression this stand-in would get wrong."""
    if "${{" in EXPRESSION.sub("", text):
        raise AssertionError(f"expression not modelled by tests/action/runner.py: {text!r}")
    return EXPRESSION.sub(lambda m: contexts[m.group(1)].get(m.group(2).lower(), ""), text)


@dataclass
class StepResult:
    exit_code: int
    outputs: dict[str, str]
    summary: str
    log: str  # the container's stdout and stderr, as the runner reads them for workflow commands
    argv: list[str]  # the docker command line
    env: dict[str, str]  # the variables passed by name, as the container sees them
    started: float  # time.monotonic() when `docker run` started, and when it ended
    ended: float


@dataclass
class Runner:
    """One runner machine under `root` (standing for /home/runner), with one job of acme/shop."""

    root: Path
    image: str
    mount_runner_temp: bool = False
    network: str = "host"
    github: dict[str, str] = field(default_factory=dict)  # extra `github` context values (e.g. token)

    def __post_init__(self) -> None:
        self.work = self.root / "work"  # WellKnownDirectory.Work: /home/runner/work
        self.workspace = self.work / "shop" / "shop"  # github.workspace: the checkout
        self.temp = self.work / "_temp"  # WellKnownDirectory.Temp, RUNNER_TEMP
        self.tool_cache = self.root / "hostedtoolcache"  # RUNNER_TOOL_CACHE (/opt/hostedtoolcache)
        self.home = self.temp / "_github_home"
        self.workflow = self.temp / "_github_workflow"
        self.file_commands = self.temp / "_runner_file_commands"
        self.root.mkdir(parents=True, exist_ok=True)
        self.own(self.root)
        for folder in (self.workspace, self.tool_cache, self.home, self.workflow, self.file_commands):
            self.make_dir(folder)
        # ExecutionContext.cs writes the event payload to _temp/_github_workflow/event.json.
        event = self.workflow / "event.json"
        event.write_text(json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "acme/shop"}}))
        self.own(event)
        self.action = yaml.safe_load((ROOT / "action.yml").read_text())
        # DockerCommandManager.cs: DockerInstanceLabel, the first 6 hex digits of a hash of the runner's
        # settings; the label marks every container and image of this runner.
        self.label = hashlib.sha256(str(self.root).encode()).hexdigest()[:6]
        self.steps = 0

    def make_dir(self, path: Path) -> None:
        """Directory.CreateDirectory as the runner user (umask 022: 0755)."""
        for part in reversed([path, *path.parents]):
            if part == self.root or self.root not in part.parents:
                continue
            if not part.exists():
                part.mkdir(mode=0o755)
                self.own(part)

    def own(self, path: Path) -> None:
        os.chown(path, RUNNER_UID, RUNNER_UID)

    def github_context(self, step_files: Mapping[str, Path]) -> dict[str, str]:
        return {
            "action": "__self",
            "action_path": str(self.workspace),  # `uses: ./`: the action is the checkout
            "actor": "octocat",
            "actor_id": "1",
            "api_url": "https://api.github.com",
            "event_name": "push",
            "event_path": str(self.workflow / "event.json"),
            "graphql_url": "https://api.github.com/graphql",
            "job": "release",
            "ref": "refs/heads/main",
            "ref_name": "main",
            "ref_type": "branch",
            "repository": "acme/shop",
            "repository_owner": "acme",
            "retention_days": "90",
            "run_attempt": "1",
            "run_id": "42",
            "run_number": "7",
            "server_url": "https://github.com",
            "sha": "0" * 40,
            "workflow": "release",
            "workspace": str(self.workspace),
            "token": "",  # the job token; no GitHub API here (tests/github covers it against Prism)
            **{name: str(path) for name, path in step_files.items()},
            **self.github,
        }

    def runner_context(self) -> dict[str, str]:
        return {
            "os": "Linux",
            "arch": "X64",
            "name": "GitHub Actions 1",
            "environment": "github-hosted",
            "tool_cache": str(self.tool_cache),
            "temp": str(self.temp),
            "workspace": str(self.workspace.parent),
        }

    def step(self, with_: Mapping[str, str], *, env: Mapping[str, str] | None = None) -> StepResult:
        """Run the action as one step with this `with:` block (and step `env:`), as the runner does."""
        self.steps += 1
        # FileCommandManager.InitializeFiles: fresh files per step, made (File.Create) by the runner user.
        suffix = str(uuid.uuid4())
        files: dict[str, Path] = {}
        for context_name, prefix in FILE_COMMANDS:
            path = self.file_commands / f"{prefix}{suffix}"
            path.touch(mode=0o644)
            path.chmod(0o644)
            self.own(path)
            files[context_name] = path
        github = self.github_context(files)

        # ActionRunner.cs: the step's inputs, then every input action.yml declares with its default.
        inputs = {name.lower(): value for name, value in with_.items()}
        for name, spec in self.action["inputs"].items():
            if name not in inputs:
                inputs[name] = evaluate(str(spec.get("default", "")), {"github": github})
        unexpected = set(inputs) - set(self.action["inputs"])
        assert not unexpected, f"the runner would warn: unexpected input(s) {unexpected}"

        # The handler's environment, in the order ContainerActionHandler.RunAsync fills it.
        environment: dict[str, str] = dict(env or {})  # job and step `env:`
        for name, value in inputs.items():  # Handler.cs AddInputsToEnvironment: only ' ' becomes '_'
            environment[f"INPUT_{name.replace(' ', '_').upper()}"] = value
        runs = self.action["runs"]
        assert runs["using"] == "docker"
        for name, value in (runs.get("env") or {}).items():  # only if not already set
            environment.setdefault(name, evaluate(str(value), {"inputs": inputs}))
        environment["HOME"] = str(self.home)
        for key in GITHUB_ENV_ALLOWLIST:  # GitHubContext.GetRuntimeEnvironmentVariables
            if key in github:
                environment[f"GITHUB_{key.upper()}"] = github[key]
        for key, value in self.runner_context().items():  # RunnerContext.GetRuntimeEnvironmentVariables
            environment[f"RUNNER_{key.upper()}"] = value
        environment["ACTIONS_RUNTIME_URL"] = "https://pipelines.actions.githubusercontent.com/x/"
        environment["ACTIONS_RUNTIME_TOKEN"] = "runtime-token"
        environment["ACTIONS_RESULTS_URL"] = "https://results-receiver.actions.githubusercontent.com/"

        # The mounts, and the path translations (AddPathTranslateMapping inserts at the front, so the
        # last added is tried first).
        mounts = [("/var/run/docker.sock", "/var/run/docker.sock")]
        if self.mount_runner_temp:
            mounts.append((str(self.temp), "/github/runner_temp"))
        mounts += [
            (str(self.home), "/github/home"),
            (str(self.workflow), "/github/workflow"),
            (str(self.file_commands), "/github/file_commands"),
            (str(self.workspace), "/github/workspace"),
        ]
        mappings = list(reversed(mounts[1:]))

        def translate(value: str) -> str:  # ContainerInfo.TranslateToContainerPath
            for host, inside in mappings:
                if value == host:
                    return inside
                if value.startswith(host + "/"):
                    return inside + value[len(host) :]
            return value

        translated = {name: translate(value) for name, value in environment.items()}

        # The image: `image: Dockerfile` is built and tagged <instance label>:<step id>.
        assert runs["image"] == "Dockerfile"
        step_id = uuid.uuid4().hex
        tag = f"{self.label}:{step_id}"
        subprocess.run(["docker", "tag", self.image, tag], check=True, capture_output=True)

        # DockerCommandManager.DockerRun, option by option.
        container = f"{sanitize(tag)}_{uuid.uuid4().hex[:6]}"
        argv = ["docker", "run", "--name", container, "--label", self.label]
        argv += ["--workdir", "/github/workspace", "--rm"]
        for variable in translated:
            argv += ["-e", variable]  # the value stays in the client's environment, off the command line
        argv += ["-e", "GITHUB_ACTIONS=true"]
        if "CI" not in translated:
            argv += ["-e", "CI=true"]
        if runs.get("entrypoint"):
            argv += ["--entrypoint", runs["entrypoint"]]
        argv += ["--network", self.network]  # deviation: see the module's docstring
        for source, target in mounts:
            argv += ["-v", f"{source}:{target}"]
        argv.append(tag)
        for arg in runs.get("args") or []:  # none in our action.yml: the image's ENTRYPOINT runs bare
            argv.append(evaluate(str(arg), {"inputs": inputs}))
        started = time.monotonic()
        try:
            done = subprocess.run(
                argv,
                env={**os.environ, **translated},  # the runner's own environment plus the step's
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            ended = time.monotonic()
        finally:  # a step that timed out leaves its container running: stop it, then drop the tag
            subprocess.run(["docker", "rm", "--force", container], check=False, capture_output=True)
            subprocess.run(["docker", "rmi", tag], check=False, capture_output=True)
        result = StepResult(
            exit_code=done.returncode,
            outputs=read_outputs(files["output"]),
            summary=files["step_summary"].read_text(),
            log=done.stdout + done.stderr,
            argv=argv,
            env=translated,
            started=started,
            ended=ended,
        )
        for path in files.values():  # FileCommandManager: the next step's InitializeFiles deletes them
            path.unlink(missing_ok=True)
        return result

    def files(self) -> set[Path]:
        """The files on the host in the runner's temp dir and the checkout."""
        return {p for folder in (self.temp, self.workspace) for p in folder.rglob("*") if p.is_file()}
