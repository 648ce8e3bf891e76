"""What ``pip install poolserve`` puts into site-packages: one import name, ``poolserve``, whose
subpackages are the repository's top-level folders (service/, models/, export/, repository/, extract/,
loadtests/). Generic names such as ``service`` or ``models`` would collide with other distributions and
with a user's own ``models`` package, which ``poolserve export-model`` imports."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
SUBPACKAGES = ("service", "models", "export", "repository", "extract", "loadtests")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("poolserve-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_licence_is_an_spdx_expression(wheel: Path) -> None:
    """PEP 639 metadata (setuptools >= 77), not the deprecated ``License:`` text field."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata_file,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        headers = archive.read(metadata_file).decode().partition("\n\n")[0].splitlines()
    assert "License-Expression: MIT" in headers
    assert not [h for h in headers if h.startswith("License:")]


def test_the_images_build_the_wheel_with_a_setuptools_pyproject_accepts() -> None:
    """The Dockerfiles' wheel stages install deploy/requirements-build.lock and build without isolation:
    its pins must satisfy pyproject.toml's [build-system] requires."""
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    lock = (ROOT / "deploy" / "requirements-build.lock").read_text()
    pins = {canonicalize_name(n): v for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", lock, re.MULTILINE)}
    for line in requires:
        requirement = Requirement(line)
        pinned = pins.get(canonicalize_name(requirement.name))
        assert pinned is not None and requirement.specifier.contains(pinned), (line, pinned)


def test_the_wheel_installs_one_top_level_package(wheel_names: list[str]) -> None:
    top_level = {name.partition("/")[0] for name in wheel_names}
    packages = {name for name in top_level if not name.endswith((".dist-info", ".data"))}
    assert packages == {"poolserve"}, f"site-packages would get {sorted(packages)}"


@pytest.mark.parametrize("subpackage", SUBPACKAGES)
def test_each_folder_is_a_poolserve_subpackage(wheel_names: list[str], subpackage: str) -> None:
    assert f"poolserve/{subpackage}/__init__.py" in wheel_names


def test_package_data_travels(wheel_names: list[str]) -> None:
    specs = [n for n in wheel_names if n.startswith("poolserve/export/specs/") and n.endswith(".toml")]
    assert specs, "export-pretrained's import specs are missing from the wheel"


def test_the_source_tree_imports_only_through_poolserve() -> None:
    """Every link under poolserve/ points at the top-level folder of the same name."""
    for subpackage in SUBPACKAGES:
        link = ROOT / "poolserve" / subpackage
        assert link.is_symlink() and link.resolve() == (ROOT / subpackage).resolve()


def test_no_code_imports_a_bare_top_level_folder() -> None:
    """``import service`` works from a checkout (the folder is on sys.path) but not from an install."""
    offenders = []
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for file in sorted(ROOT / name for name in tracked):  # not venvs or scratch: git ignores those
        if file.is_relative_to(ROOT / "poolserve") or not file.is_file():
            continue
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{file.relative_to(ROOT)}: {n}" for n in names if n.partition(".")[0] in SUBPACKAGES
            ]
    assert not offenders, offenders
