"""The layering in the README holds: the core never reaches up into the CLI or the GitHub layer.

Like kopf's import-linter contract: a violation is a design regression even when the code works.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "bluegreen"
# The plain-data modules that everything else may use; they use nothing of ours but each other.
LEAVES = {"bluegreen.model", "bluegreen.errors"}
# The top of the stack: only these may import bluegreen.cli or bluegreen.github.
TOP = {"bluegreen.cli", "bluegreen.__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "bluegreen" or name.startswith("bluegreen.")}


def all_modules() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}


def test_leaves_import_only_each_other() -> None:
    modules = all_modules()
    for leaf in LEAVES & modules.keys():
        assert modules[leaf] <= LEAVES, f"{leaf} imports {sorted(modules[leaf] - LEAVES)}"


def test_nothing_below_the_cli_imports_the_cli_or_the_github_layer() -> None:
    offenders = {
        name: sorted(i for i in imported if i.startswith(("bluegreen.cli", "bluegreen.github")))
        for name, imported in all_modules().items()
        if name not in TOP and not name.startswith("bluegreen.github")
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_routers_and_checks_do_not_import_phases() -> None:
    offenders = {
        name: sorted(i for i in imported if i.startswith("bluegreen.phases"))
        for name, imported in all_modules().items()
        if name.startswith(("bluegreen.routers", "bluegreen.checks", "bluegreen.kube", "bluegreen.lock"))
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    # Guard against a checker that passes because it parses nothing.
    bad = tmp_path / "bad.py"
    bad.write_text("from bluegreen.github import runner\nimport bluegreen.cli\n")
    assert imports_of(bad) >= {"bluegreen.github", "bluegreen.github.runner", "bluegreen.cli"}


# What `bluegreen switch` and `bluegreen rollback` with the service router import (besides kube, lock
# and history): lightkube costs ~80 ms of a ~200 ms switch to import, so none of these may import it
# when loaded; the Client type is for the type checker only, other routers' resources on their own path.
SWITCH_PATH = (
    "phases/switch.py",
    "phases/rollback.py",
    "phases/context.py",
    "routers/__init__.py",
    "routers/base.py",
    "routers/service.py",
    "rollout.py",
    "gitops.py",
    "telemetry.py",
    "intent.py",
    "ordering.py",
)


def loaded_imports(tree: ast.Module) -> set[str]:
    """The modules a module imports when it is loaded: not inside a function, nor `if TYPE_CHECKING:`."""
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit([*node.body, *node.orelse, *node.finalbody])
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.With | ast.ClassDef):
                visit(node.body)

    visit(tree.body)
    return found


def test_the_service_router_switch_path_does_not_load_lightkube() -> None:
    offenders = {
        name: sorted(
            i for i in loaded_imports(ast.parse((PACKAGE / name).read_text())) if i.startswith("lightkube")
        )
        for name in SWITCH_PATH
    }
    assert {name: bad for name, bad in offenders.items() if bad} == {}


def test_an_import_under_type_checking_is_not_counted_as_loaded() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lightkube import Client\n"
        "import json\ndef f() -> None:\n    import lightkube\n"
    )
    assert loaded_imports(tree) == {"typing", "json"}
