"""hack/realnode.py's pure parts: why it cannot run, and the images it imports."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from hack import realnode


def test_without_root_it_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hack.realnode.os.geteuid", lambda: 1000)
    reason = realnode.unavailable()
    assert reason is not None and "root" in reason


def test_the_docker_archive_holds_the_binary_and_one_config_per_tag(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.write_bytes(b"\x7fELF pretend")
    archive = realnode.docker_archive(
        app, {"bluegreen.local/app:v3": (["/app"], ["FAIL_STATUS=500"]), "pause:3": (["/app", "pause"], [])}
    )
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert [m["RepoTags"] for m in manifest] == [["bluegreen.local/app:v3"], ["pause:3"]]
        config = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        assert config["config"]["Env"] == ["PATH=/", "RELEASE=v3", "FAIL_STATUS=500"]
        layer = tar.extractfile(manifest[0]["Layers"][0])
        assert layer is not None
        with tarfile.open(fileobj=io.BytesIO(layer.read())) as files:
            binary = files.getmember("app")
            assert binary.mode == 0o755 and files.extractfile(binary).read() == app.read_bytes()  # type: ignore[union-attr]
