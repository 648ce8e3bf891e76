#!/usr/bin/env bash
# The GPU image cannot be built or run here (no registry for nvidia/cuda, no GPU, no NVIDIA toolkit), so
# this checks on paper what can be checked: hadolint passes the Dockerfile (gpu target included), and every
# pin in deploy/requirements-runtime-gpu.lock exists on PyPI as a CPython 3.12 manylinux x86_64 binary
# wheel whose hash matches (what `pip install --require-hashes --only-binary=:all:` in the gpu-venv stage
# needs). Downloads about 280 MB. Prints the wheels and their sizes.
#
# Usage: deploy/check-gpu-lock.sh > deploy/results/gpu-lock-check.txt
set -euo pipefail
cd "$(dirname "$0")/.."
HADOLINT=${HADOLINT:-.cache/deploy-venv/bin/hadolint}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT

echo "# $(date -u +%FT%TZ) deploy/check-gpu-lock.sh"
"$HADOLINT" Dockerfile && echo "hadolint Dockerfile: ok"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes --only-binary=:all: \
    --index-url https://pypi.org/simple --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform any \
    -r deploy/requirements-runtime-gpu.lock -d "$dest" 2>&1 | grep -v "^WARNING: Location" || true
pins=$(grep -c '^[a-z].*==' deploy/requirements-runtime-gpu.lock)
wheels=$(find "$dest" -name '*.whl' | wc -l)
(cd "$dest" && du -k -- *.whl | sort -k2) | awk '{printf "%8.1f MB  %s\n", $1 / 1024, $2}'
echo "pins: $pins, hash-checked cp312 manylinux wheels: $wheels, total $(du -sh "$dest" | cut -f1)"
((pins == wheels))
