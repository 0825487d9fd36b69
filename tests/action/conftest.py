"""The Action as users run it: the Docker image built from this checkout, on the local Docker engine.

Nothing can be pulled here, so the image is built on a local stand-in for python:3.11-slim
(hack/docker-base-image.sh) passed as BASE_IMAGE. The build context is a copy of the files the
Dockerfile takes, plus this machine's CA bundle so pip can reach PyPI through the local network
(it stays in the build stage, and never exists on GitHub).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "bluegreen.local/python:3.11-slim"
IMAGE = "bluegreen-action:test"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=False, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def build_context(into: Path) -> Path:
    """The files the Dockerfile copies, taken from the work tree as it is (tracked or not)."""
    for name in ("Dockerfile", ".dockerignore", "entrypoint.py", "requirements/runtime.txt"):
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, into / name)
    shutil.copytree(ROOT / "bluegreen", into / "bluegreen", ignore=shutil.ignore_patterns("__pycache__"))
    if HOST_CA.exists():
        shutil.copy2(HOST_CA, into / "requirements" / "build-ca.crt")
    return into


def build_image(context: Path) -> subprocess.CompletedProcess[str]:
    """docker build on the local base; host network, so pip reaches PyPI as this machine does."""
    return run(
        [
            "docker",
            "build",
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
            "-t",
            IMAGE,
            str(context),
        ]
    )


@pytest.fixture(scope="session")
def docker_engine() -> None:
    for script in ("install-docker.sh", "docker-base-image.sh"):
        done = run(["bash", str(ROOT / "hack" / script)])
        if done.returncode != 0:
            pytest.fail(f"hack/{script} failed:\n{done.stdout}{done.stderr}")


@pytest.fixture(scope="session")
def image(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    context = build_context(tmp_path_factory.mktemp("image"))
    built = build_image(context)
    if built.returncode != 0:
        pytest.fail(f"docker build failed:\n{built.stdout[-3000:]}{built.stderr[-3000:]}")
    return IMAGE
