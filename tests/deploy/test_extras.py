"""Each optional extra declares what its code imports. Every import statement in a group of folders (at
module level or inside a function, read from the source, so lazily imported packages count too) must
resolve to the standard library, poolserve itself, or a distribution that ``pip install
'poolserve[EXTRA]'`` brings: the project's dependencies and the extra's (read from pyproject.toml), and
everything those require (read from the installed packages' metadata)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
OWN = {"poolserve", "service", "models", "export", "repository", "loadtests", "extract", "__future__"}

# What a user installs to run each part: the plain install serves; each extra adds one job.
GROUPS: dict[str, tuple[str, ...]] = {
    "service": (),
    "repository": (),
    "poolserve/cli.py": (),
    "poolserve/__init__.py": (),
    "poolserve/__main__.py": (),
    "poolserve/client": ("client",),
    "poolserve/ops.py": ("export",),
    "export": ("export",),
    "models": ("export",),
    "loadtests": ("load",),
    "extract": ("extract",),
    "extract/ray_engine.py": ("ray",),
}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def own_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


@cache
def requirements_of(distribution: str, extras: frozenset[str]) -> tuple[Requirement, ...]:
    try:
        lines = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return ()
    wanted = []
    for line in lines:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in ("", *extras)):
            wanted.append(requirement)
    return tuple(wanted)


def installable(extras: tuple[str, ...]) -> set[str]:
    """Distribution names ``poolserve[extras]`` installs, transitively (this platform's markers)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [r for r in own_requirements(extras) if r.marker is None or r.marker.evaluate()]
    while todo:
        requirement = todo.pop()
        key = (normalize(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        todo += requirements_of(requirement.name, frozenset(requirement.extras))
    return {name for name, _ in seen}


def group_files(group: str) -> list[Path]:
    path = ROOT / group
    if path.is_file():
        return [path]
    more_specific = {ROOT / other for other in GROUPS if other != group and other.startswith(f"{group}/")}
    return [file for file in sorted(path.rglob("*.py")) if file not in more_specific]


def imported_top_levels(files: list[Path]) -> set[str]:
    names = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Import):
                names |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.partition(".")[0])
    return names - OWN - set(sys.stdlib_module_names)


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_import_comes_with_the_groups_extra(group: str) -> None:
    owners = metadata.packages_distributions()
    allowed = installable(GROUPS[group])
    missing = {
        module: sorted(owners.get(module, ["<not installed>"]))
        for module in sorted(imported_top_levels(group_files(group)))
        if not {normalize(d) for d in owners.get(module, [])} & allowed
    }
    extra = "plain install" if not GROUPS[group] else f"extra {GROUPS[group]}"
    assert not missing, f"{group} imports what its {extra} does not install: {missing}"


def test_the_check_can_fail() -> None:
    """torch is what the plain install must never bring; the closure must see that."""
    assert "torch" not in installable(())
    assert "torch" in installable(("export",))
