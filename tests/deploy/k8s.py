"""Render the Kustomize overlays under deploy/k8s and validate objects against the vendored schemas.

Rendering needs ``kubectl`` (1.27 or later: its built-in kustomize 5 renders offline); the schemas are
JSON files in deploy/k8s/schemas (README.md there says where each comes from).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
COMPONENTS = sorted(p.name for p in (K8S / "components").iterdir() if (p / "kustomization.yaml").is_file())
SCHEMAS = K8S / "schemas"

Manifest = dict[str, Any]


class KubectlNotFoundError(RuntimeError):
    pass


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        raise KubectlNotFoundError(
            "kubectl is needed to render deploy/k8s (any release from 1.27 on: `kubectl kustomize` renders "
            "offline with the kustomize built into it); install it, e.g. from the Kubernetes apt repository"
        )
    return path


def render_dir(directory: Path) -> list[Manifest]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=False, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


@functools.cache
def _render_overlay(name: str) -> str:
    return json.dumps(render_dir(K8S / "overlays" / name))


def render_overlay(name: str) -> list[Manifest]:
    """A fresh copy each call (tests mutate what they get); kubectl runs once per overlay."""
    manifests: list[Manifest] = json.loads(_render_overlay(name))
    return manifests


def render_with_components(overlay: str, components: list[str], workdir: Path) -> list[Manifest]:
    """``overlay`` with optional components added, as a user's own kustomization would."""
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize refuses absolute paths here
        "resources": [os.path.relpath(K8S / "overlays" / overlay, workdir)],
        "components": [os.path.relpath(K8S / "components" / c, workdir) for c in components],
    }
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return render_dir(workdir)


def kind_key(manifest: Manifest) -> str:
    return f"{manifest.get('apiVersion')}/{manifest.get('kind')}"


class SchemaCatalog:
    """Every vendored bundle, by ``<apiVersion>/<kind>``."""

    def __init__(self, directory: Path = SCHEMAS) -> None:
        self.validators: dict[str, Draft202012Validator] = {}
        self.sources: dict[str, str] = {}
        for path in sorted(directory.glob("*.json")):
            bundle = json.loads(path.read_text())
            for key, pointer in bundle["kinds"].items():
                if key in self.validators:
                    raise ValueError(f"{key} in both {self.sources[key]} and {path.name}")
                schema = {"$schema": bundle["$schema"], "$defs": bundle["$defs"], "$ref": pointer}
                self.validators[key] = Draft202012Validator(schema)
                self.sources[key] = path.name

    def errors(self, manifest: Manifest) -> Iterator[str]:
        """What is wrong with ``manifest`` by its schema; one message when no schema covers its kind."""
        key = kind_key(manifest)
        validator = self.validators.get(key)
        if validator is None:
            yield f"{key}: no vendored schema (deploy/k8s/schemas/README.md)"
            return
        for error in validator.iter_errors(manifest):
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            yield f"{key} {manifest.get('metadata', {}).get('name')}: {where}: {error.message}"


@functools.cache
def catalog() -> SchemaCatalog:
    return SchemaCatalog()
