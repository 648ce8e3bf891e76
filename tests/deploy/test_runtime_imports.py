"""The runtime image holds only deploy/requirements-runtime.lock and poolserve's own packages: every
module the serving path imports must come from there. Catches a module-level ``import torch`` (or onnx,
locust, ...) reaching the server, e.g. through the CLI's command registrations, which the test suite's
venv (it has torch) would never notice and a torch-free install would only show by failing to start."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "deploy" / "requirements-runtime.lock"
OWN_PACKAGES = {"poolserve", "service", "repository", "models", "export", "extract"}
# The interpreter's and this venv's own hooks: __main__, the editable-install finder, setuptools' .pth
# hack, sysconfig data, and the modules Cython-compiled extensions (httptools) register. None of them is
# something the serving code asked for.
ENVIRONMENT_PREFIXES = ("__", "_distutils_hack", "_sysconfigdata", "_cython_", "cython_runtime")
# Imported by the frameworks only when installed (``try: import ...``), as the dev venv has them: the
# image leaves them out and serves (deploy/container-smoke.sh). Starlette's form parser (poolserve parses
# multipart itself, service/api/multipart.py) and uvicorn's --reload watcher (never used to serve).
OPTIONAL_FRAMEWORK_IMPORTS = {"python_multipart", "multipart", "watchfiles"}

# What the image runs (python3 -m poolserve.service.supervisor, which starts python3 -m
# poolserve.service.serve; HEALTHCHECK
# python3 -m poolserve.service.healthcheck).
IMAGE_SERVING_PATH = """
import json, sys
import uvicorn.main
import poolserve.service.supervisor, poolserve.service.serve
import poolserve.service.healthcheck
from poolserve.service.app import create_app
from poolserve.service.settings import Settings
create_app(Settings(repository=sys.argv[1]))
print(json.dumps(sorted({name.partition(".")[0] for name in sys.modules})))
"""
# `poolserve serve` from a torch-free install (pip install poolserve, the runtime lock's venv).
CLI_SERVING_PATH = IMAGE_SERVING_PATH.replace("import uvicorn.main", "import poolserve.cli")


def locked_distributions() -> set[str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==", LOCK.read_text(), flags=re.MULTILINE)
    return {normalize(pin) for pin in pins}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def modules_outside_the_lock(script: str) -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", script, str(ROOT / "model_repository")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    imported = json.loads(result.stdout.splitlines()[-1])
    owners = metadata.packages_distributions()
    allowed = locked_distributions()
    return {
        module: sorted(owners.get(module, ["<no distribution>"]))
        for module in imported
        if module not in sys.stdlib_module_names
        and module not in OWN_PACKAGES
        and module not in OPTIONAL_FRAMEWORK_IMPORTS
        and not module.startswith(ENVIRONMENT_PREFIXES)
        and not {normalize(d) for d in owners.get(module, [])} & allowed
    }


def test_image_serving_path_imports_only_the_runtime_lock() -> None:
    outside = modules_outside_the_lock(IMAGE_SERVING_PATH)
    assert not outside, f"the image's server imports modules the image does not have: {outside}"


def test_poolserve_cli_imports_only_the_runtime_lock() -> None:
    outside = modules_outside_the_lock(CLI_SERVING_PATH)
    assert not outside, (
        f"`poolserve serve` imports modules a torch-free install does not have: {outside}; "
        "keep heavy imports inside command bodies (CONTRIBUTING.md)"
    )
