"""Which folders of a model repository become models, and that none is left out without a word."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx

from poolserve.repository.store import discover, latest_versions
from poolserve.service.settings import Settings
from tests.service.conftest import REPOSITORY, DigitFile, running_server


def _entry(root: Path, name: str, version: str) -> None:
    entry = root / name / version
    entry.mkdir(parents=True)
    shutil.copy(REPOSITORY / "lenet5-mnist" / "1" / "model.onnx", entry / "model.onnx")
    manifest = json.loads((REPOSITORY / "lenet5-mnist" / "1" / "manifest.json").read_text())
    manifest["name"], manifest["version"] = name, int(version)
    (entry / "manifest.json").write_text(json.dumps(manifest))


def _repository(root: Path) -> Path:
    _entry(root, "two-versions", "1")
    (root / "two-versions" / "2").mkdir()  # being filled: must not hide version 1
    _entry(root, "staged", "1")
    (root / "staged" / ".2.staging").mkdir()  # an export in progress: nothing to say
    (root / "no-manifest" / "1").mkdir(parents=True)  # nothing else: listed, failed with the reason
    for odd in ("Upper-Case", "has space", "versionless", "zero/0", "leading-zero/01", "latest/latest"):
        (root / odd).mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "README.md").write_text("models")
    return root


def test_every_folder_is_an_entry_or_reported(tmp_path: Path) -> None:
    root = _repository(tmp_path)
    skipped: dict[str, str] = {}

    def skip(folder: Path, why: str) -> None:
        skipped[folder.relative_to(root).as_posix()] = why

    found = discover(root, skip)
    assert [(e.name, e.version) for e in latest_versions(found)] == [
        ("no-manifest", 1),
        ("staged", 1),
        ("two-versions", 1),
    ]
    assert skipped == {
        "Upper-Case": "not a model name (lowercase letters, digits, '.', '_', '-'; at most 64)",
        "has space": "not a model name (lowercase letters, digits, '.', '_', '-'; at most 64)",
        "latest/latest": "not a version number (1, 2, ...)",
        "latest": "holds no version folder (<name>/1/manifest.json)",
        "leading-zero/01": "not a version number (1, 2, ...)",
        "leading-zero": "holds no version folder (<name>/1/manifest.json)",
        "two-versions/2": "holds no manifest.json; older versions serve",
        "versionless": "holds no version folder (<name>/1/manifest.json)",
        "zero/0": "not a version number (1, 2, ...)",
        "zero": "holds no version folder (<name>/1/manifest.json)",
    }


def test_the_server_serves_the_older_version_and_lists_the_failed_one(
    tmp_path: Path, digit_files: list[DigitFile]
) -> None:
    with (
        running_server(Settings(repository=_repository(tmp_path))) as url,
        httpx.Client(base_url=url) as client,
    ):
        models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
        assert sorted(models) == ["no-manifest", "staged", "two-versions"]
        assert models["two-versions"]["status"] == "ready" and models["two-versions"]["version"] == 1
        assert (
            models["no-manifest"]["status"] == "failed"
            and "manifest is missing" in models["no-manifest"]["reason"]
        )
        digit = digit_files[0]
        answer = client.post(
            "/v1/models/two-versions/classify",
            content=digit.path.read_bytes(),
            headers={"content-type": "image/png"},
        )
        assert answer.json()["results"][0]["predictions"][0]["label"] == digit.label


def test_a_manifest_with_non_finite_preprocessing_fails_its_model_with_the_reason(
    tmp_path: Path, digit_files: list[DigitFile]
) -> None:
    """NaN or infinity in the preprocessing would make every score NaN (served as null): refused at load."""
    _entry(tmp_path, "good", "1")
    for name, field, value in (("nan-scale", "scale", float("nan")), ("inf-std", "std", [float("inf")])):
        _entry(tmp_path, name, "1")
        manifest_path = tmp_path / name / "1" / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest["preprocessing"][field] = value
        manifest_path.write_text(json.dumps(manifest))  # json writes NaN and Infinity, as a tool might
    with (
        running_server(Settings(repository=tmp_path), wait_ready=False) as url,
        httpx.Client(base_url=url) as client,
    ):
        deadline = time.monotonic() + 30
        by_name = listed(client)
        while any(m["status"] == "loading" for m in by_name.values()):
            assert time.monotonic() < deadline, "the models never finished loading"
            time.sleep(0.05)
            by_name = listed(client)
        assert by_name["good"]["status"] == "ready"
        for name, field in (("nan-scale", "scale"), ("inf-std", "std")):
            assert by_name[name]["status"] == "failed", by_name[name]
            assert field in by_name[name]["reason"] and "finite" in by_name[name]["reason"]


def listed(client: httpx.Client) -> dict[str, dict[str, str]]:
    return {m["name"]: m for m in client.get("/v1/models").json()["models"]}
