"""What a command imports before it does anything: every Action step and CLI call pays it (issue 14).

`--version`, `--help` and a usage error import no cluster client and no HTTP stack; a
switch imports none of the gate's checks, bluegreen.yaml's parser or the other phases, and no httpcore2
(bluegreen/transport.py speaks HTTP/1.1 on the standard library). Run in a fresh interpreter each.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

# yaml too: bluegreen/validate.py (imported by the CLI for its argument types) leaves its loader to
# bluegreen/yamlsafe.py, imported only where a file is read.
HEAVY = ("yaml", "lightkube", "httpx2", "httpcore2", "msgspec", "anyio", "h2", "asyncio", "github")
ROOT = Path(__file__).resolve().parents[2]


def imported_by(argv: list[str]) -> set[str]:
    """Top-level packages in sys.modules after `bluegreen ARGV` ran (in-process, output discarded)."""
    code = (
        "import contextlib, io, json, sys\n"
        "from bluegreen.cli import execute\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    outcome = execute({argv!r})\n"
        "print(json.dumps([outcome.exit_code, sorted({m.split('.')[0] for m in sys.modules})]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    exit_code, modules = json.loads(out.stdout)
    assert exit_code in (0, 2), out.stdout
    return set(modules)


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["--help"],
        ["switch", "--help"],
        ["switch", "--app", "shop", "--to", "purple"],
        ["switch"],
        ["deploy", "--app", "shop", "--set-image", "no-equals-sign"],
    ],
    ids=["version", "help", "switch-help", "bad-colour", "missing-app", "bad-set-image"],
)
def test_version_help_and_usage_errors_import_nothing_heavy(argv: list[str]) -> None:
    assert imported_by(argv) & set(HEAVY) == set()


def test_help_is_as_wide_as_argparse_would_make_it_without_importing_shutil() -> None:
    """Help text is wrapped at the width argparse's own sizing (shutil.get_terminal_size: $COLUMNS,
    else the terminal) gives, but no command imports shutil for it (with bz2, lzma and zlib: 3 ms of
    every start)."""

    def switch_help(columns: int, *, argparse_sizing: bool) -> tuple[str, bool]:
        code = (
            "import contextlib, io, json, sys\n"
            "from bluegreen import cli\n"
            + (
                "import shutil\ncli.terminal_columns = lambda: shutil.get_terminal_size().columns\n"
                if argparse_sizing
                else ""
            )
            + "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    cli.execute(['switch', '--help'])\n"
            "print(json.dumps([out.getvalue(), 'shutil' in sys.modules]))\n"
        )
        env = {**os.environ, "COLUMNS": str(columns)}
        run = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        text, shutil_imported = json.loads(run.stdout)
        return text, shutil_imported

    narrow, shutil_imported = switch_help(50, argparse_sizing=False)
    assert "--to" in narrow and not shutil_imported
    assert narrow == switch_help(50, argparse_sizing=True)[0]
    wide, _ = switch_help(120, argparse_sizing=False)
    assert wide == switch_help(120, argparse_sizing=True)[0]
    assert len(wide.splitlines()) < len(narrow.splitlines())


def plain_kubeconfig() -> str:
    """A kubeconfig the lean client takes (JSON, as the local cluster's), for a server that is not there."""
    ca = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    if not Path(ca).is_file():
        pytest.skip("no CA bundle on this machine to name in the kubeconfig")
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "c", "cluster": {"server": "https://127.0.0.1:1", "certificate-authority": ca}}
            ],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
    )


def test_a_switch_imports_only_what_a_switch_uses(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(plain_kubeconfig())
    code = (
        "import sys\n"
        "from bluegreen import kube, options\n"
        "from bluegreen.phases import switch\n"
        "from bluegreen.routers import service\n"
        f"kube.connect(kubeconfig={str(kubeconfig)!r})\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = set(out.stdout.split())
    unused = {
        "bluegreen.config",
        "bluegreen.checks",
        "bluegreen.gate",
        "bluegreen.verdict",
        "bluegreen.phases.deploy",
        "bluegreen.phases.checked",
        "bluegreen.phases.release",
        "httpcore2",
        "github",
        # The lean client and plain classes: no client library, no http.client (the email package),
        # no dataclasses (inspect, ast, dis, tokenize).
        "lightkube",
        "httpx2",
        "msgspec",
        "yaml",
        "http.client",
        "email",
        "dataclasses",
        "inspect",
    }
    assert modules & unused == set()


def test_a_switch_without_bluegreen_yaml_imports_neither_its_parser_nor_the_watch(tmp_path: Path) -> None:
    """No bluegreen.yaml: the defaults neither gate nor measure a baseline, so a switch does not import
    the config parser (PyYAML's loader for it, the group and verdict parsers) or the watch's checks."""
    code = (
        "import sys\n"
        "from bluegreen import config, options\n"
        "assert options.DEFAULT_CONFIG == config.DEFAULT_PATH\n"
        "for name in [m for m in sys.modules if m.startswith('bluegreen.config')]:\n"
        "    del sys.modules[name]\n"
        "assert options.switch_config(None) is None\n"
        "print('bluegreen.config' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.split() == ["False"]
    (tmp_path / "bluegreen.yaml").write_text("app: shop\n")
    code = "from bluegreen import options\nprint(options.switch_config(None).path)\n"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.split() == ["bluegreen.yaml"]


# What an Action step for switch or rollback never needs: bluegreen.yaml's parser (only with the file),
# the probe (only with probe-url), the manifests (deploy, diff, status), the GitHub API (only with a token).
ACTION_UNUSED = {
    "bluegreen.config",
    "bluegreen.verdict",
    "bluegreen.group",
    "bluegreen.manifests",
    "bluegreen.traffic_probe",
    "bluegreen.github.api",
    "bluegreen.checks",
    "bluegreen.gate",
    "bluegreen.phases.deploy",
    "bluegreen.phases.checked",
    "bluegreen.phases.release",
}


def action_step(tmp_path: Path, **inputs: str) -> tuple[int, set[str] | None, set[str]]:
    """Run entrypoint.main() as the runner starts the container (INPUT_* variables, GITHUB_* files, the
    kubeconfig input), in a fresh interpreter with no bluegreen.yaml in its directory: its exit code, the
    modules loaded when it first connected to the apiserver (None: it never did), and at its end."""
    code = (
        "import json, sys\n"
        "first = []\n"
        "def hook(event, args):\n"
        "    if event == 'socket.connect' and not first:\n"
        "        first.append(sorted(sys.modules))\n"
        "sys.addaudithook(hook)\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import entrypoint\n"
        "code = entrypoint.main()\n"
        "print(json.dumps([code, first[0] if first else None, sorted(sys.modules)]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "BLUEGREEN_", "GITHUB_"))}
    env.pop("KUBECONFIG", None)
    for name in ("OUTPUT", "STEP_SUMMARY"):
        (tmp_path / name).touch()
        env[f"GITHUB_{name}"] = str(tmp_path / name)
    env.update({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path, env=env
    )
    exit_code, first, last = json.loads(out.stdout.splitlines()[-1])
    return exit_code, None if first is None else set(first), set(last)


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


@pytest.mark.parametrize("phase", ["switch", "rollback"])
def test_an_action_switch_or_rollback_step_imports_only_what_it_uses(tmp_path: Path, phase: str) -> None:
    """The step's own parts (inputs, masking, the kubeconfig's check, summary, outputs) import no parser,
    probe or API client the phase does not use, before its first request and after it; the job
    summary's module only after the phase."""
    kubeconfig = plain_kubeconfig()
    exit_code, first, last = action_step(
        tmp_path, phase=phase, app="shop", to="green", kubeconfig=kubeconfig, timeout="1s"
    )
    assert exit_code == 3  # no apiserver there: the phase tried, and said so
    assert first is not None
    assert first & (ACTION_UNUSED | {"bluegreen.github.summary"}) == set()  # the summary: once it is done
    assert "bluegreen.github.summary" in last
    assert last & ACTION_UNUSED == set()
    assert top_level(last) & {"httpcore2", "github"} == set()


def test_an_action_step_with_a_bad_input_imports_nothing_heavy(tmp_path: Path) -> None:
    exit_code, first, last = action_step(
        tmp_path, phase="switch", app="shop", to="purple", kubeconfig=plain_kubeconfig()
    )
    assert (exit_code, first) == (2, None)
    assert top_level(last) & set(HEAVY) == set()
    assert last & ACTION_UNUSED == set()


@pytest.mark.parametrize("phase", ["switch", "rollback"])
def test_an_action_switch_or_rollback_step_imports_no_client_library(tmp_path: Path, phase: str) -> None:
    """With the service router and no token, nothing but the lean client (the standard library) talks
    to the cluster: no lightkube, PyYAML (a JSON kubeconfig), msgspec, or httpx2 (only to publish)."""
    exit_code, first, last = action_step(
        tmp_path, phase=phase, app="shop", to="green", kubeconfig=plain_kubeconfig(), timeout="1s"
    )
    assert exit_code == 3 and first is not None
    assert top_level(first) & set(HEAVY) == set()
    assert top_level(last) & set(HEAVY) == set()
