"""A repository with broken entries: each says why in a log line and in its status; the rest serve."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import httpx
import pytest

from poolserve.service.settings import Settings
from tests.service.conftest import DATA, REPOSITORY, running_server


def copy_entry(root: Path, name: str) -> Path:
    """lenet5-mnist under another name (the manifest must say the name of the folder it lives in)."""
    (version,) = (REPOSITORY / "lenet5-mnist").iterdir()
    target = root / name / version.name
    shutil.copytree(version, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["name"] = name
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_broken_entries_fail_alone_with_a_reason(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shutil.copytree(REPOSITORY / "lenet5-mnist", tmp_path / "lenet5-mnist")
    (copy_entry(tmp_path, "no-onnx") / "model.onnx").unlink()
    (copy_entry(tmp_path, "bad-manifest") / "manifest.json").write_text("{not json")
    (copy_entry(tmp_path, "no-manifest") / "manifest.json").unlink()
    garbage = copy_entry(tmp_path, "garbage-onnx")
    (garbage / "model.onnx").write_bytes(b"not an onnx graph")
    manifest = json.loads((garbage / "manifest.json").read_text())
    manifest["sha256"] = hashlib.sha256(b"not an onnx graph").hexdigest()  # passes the hash, fails to load
    (garbage / "manifest.json").write_text(json.dumps(manifest))

    with (
        caplog.at_level(logging.ERROR, logger="poolserve"),
        running_server(Settings(repository=tmp_path)) as url,
    ):
        statuses = httpx.get(f"{url}/health/ready").json()["models"]
        assert statuses == {
            "bad-manifest": "failed",
            "garbage-onnx": "failed",
            "lenet5-mnist": "ready",
            "no-manifest": "failed",
            "no-onnx": "failed",
        }
        reasons = {m["name"]: m["reason"] for m in httpx.get(f"{url}/v1/models").json()["models"]}
        assert "missing" in reasons["no-onnx"] and "missing" in reasons["no-manifest"]
        assert "invalid manifest" in reasons["bad-manifest"]
        assert "\n" not in reasons["bad-manifest"] and "pydantic.dev" not in reasons["bad-manifest"]
        assert "{not json" not in reasons["bad-manifest"]  # what was sent is the operator's file, not echoed
        assert "onnxruntime could not load" in reasons["garbage-onnx"]
        assert not any(str(tmp_path) in (r or "") for r in reasons.values())  # no server paths
        refused = httpx.post(f"{url}/v1/models/garbage-onnx/classify", json={"images": []})
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        digit = sorted((DATA / "digits").glob("*.png"))[0]
        served = httpx.post(
            f"{url}/v1/models/lenet5-mnist/classify",
            content=digit.read_bytes(),
            headers={"content-type": "image/png"},
        )
        assert served.status_code == 200
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for name in ("no-onnx", "bad-manifest", "no-manifest", "garbage-onnx"):
        assert f"model {name} v1 failed to load" in logged
