"""What a command imports before it does anything: every Action step and CLI call pays it (issue 14).

`--version`, `--help` and a usage error import no cluster client and no HTTP stack; a
switch imports none of the gate's checks, bluegreen.yaml's parser or the other phases, and no httpcore2
(bluegreen/transport.py speaks HTTP/1.1 on the standard library). Run in a fresh interpreter each.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

# yaml too: bluegreen/validate.py (imported by the CLI for its argument types) leaves its loader to
# bluegreen/yamlsafe.py, imported only where a file is read.
HEAVY = ("yaml", "lightkube", "httpx2", "httpcore2", "msgspec", "anyio", "h2", "asyncio", "github")


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


def test_a_switch_imports_only_what_a_switch_uses(tmp_path: Path) -> None:
    ca = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    if not Path(ca).is_file():
        pytest.skip("no CA bundle on this machine to name in the kubeconfig")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
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
    )
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
