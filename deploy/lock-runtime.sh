#!/usr/bin/env bash
# Regenerates the images' pinned, hashed dependency sets from pyproject.toml:
#   deploy/requirements-runtime.lock      [project.dependencies] for the CPU image (CPython 3.11)
#   deploy/requirements-runtime-gpu.lock  the same with onnxruntime-gpu for the CUDA image (CPython 3.12,
#                                         Ubuntu 24.04's python3)
#   deploy/requirements-build.lock        setuptools, to build poolserve's own wheel in the image
#   deploy/requirements-loadtest.lock     the `load` extra plus what loadtests/ imports, for the load
#                                         generator image (compose profile `loadtest`)
# "Current resolution": every package is pinned to the version installed in the project venv (.venv), the
# set the test suite runs against; hashes come from PyPI. onnxruntime-gpu is pinned to 1.31.1, the release
# built for CUDA 13 (the GPU image's base). Needs uv (deploy/podman-host.sh installs it).
#
# Usage: deploy/lock-runtime.sh     then review and commit the three files.
set -euo pipefail
cd "$(dirname "$0")/.."

UV=${UV:-.cache/deploy-venv/bin/uv}
PY=${PY:-.venv/bin/python}
ORT_GPU_VERSION=${ORT_GPU_VERSION:-1.31.1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$PY" - "$tmp" <<'PY'
import sys
import tomllib
from importlib import metadata
from pathlib import Path

out = Path(sys.argv[1])
deps = tomllib.loads(Path("pyproject.toml").read_text())["project"]["dependencies"]
(out / "runtime.in").write_text("\n".join(deps) + "\n")
gpu = ["onnxruntime-gpu" + d.removeprefix("onnxruntime") if d.startswith("onnxruntime") else d for d in deps]
(out / "runtime-gpu.in").write_text("\n".join(gpu) + "\n")
# The image builds poolserve's wheel with exactly what pyproject's [build-system] asks for.
build = tomllib.loads(Path("pyproject.toml").read_text())["build-system"]["requires"]
(out / "build.in").write_text("\n".join(build) + "\n")
project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
load = project.get("optional-dependencies", {}).get("load", [])
# loadtests/ imports these from the runtime set (not onnxruntime: it only talks HTTP).
load += [d for d in deps if d.split(">")[0].split("[")[0] in {"numpy", "pillow", "pydantic", "orjson", "typer"}]
(out / "loadtest.in").write_text("\n".join([*load, "httpx"]) + "\n")
# Local versions (torch's "+cpu") are not on PyPI and are never runtime dependencies anyway.
pins = sorted(
    f"{d.metadata['Name']}=={d.version}"
    for d in metadata.distributions()
    if "+" not in d.version and d.metadata["Name"] != "poolserve"
)
(out / "venv.txt").write_text("\n".join(pins) + "\n")
PY
echo "onnxruntime-gpu==$ORT_GPU_VERSION" >>"$tmp/venv.txt"

compile() {  # compile IN PYTHON_VERSION OUT
    "$UV" pip compile "$tmp/$1" --constraint "$tmp/venv.txt" --generate-hashes --no-config \
        --index-url https://pypi.org/simple --python-version "$2" --python-platform x86_64-manylinux_2_28 \
        --custom-compile-command deploy/lock-runtime.sh --no-annotate --quiet --output-file "$3"
}
compile runtime.in 3.11 deploy/requirements-runtime.lock
compile runtime-gpu.in 3.12 deploy/requirements-runtime-gpu.lock
compile build.in 3.11 deploy/requirements-build.lock
compile loadtest.in 3.11 deploy/requirements-loadtest.lock
grep -c '==' deploy/requirements-*.lock
