#!/usr/bin/env bash
# One run on a GPU machine, at most 8 minutes: the gpu-marked tests, then raw onnxruntime vs poolserve
# and the RoI ops on CUDA (python -m bench.gpu). Everything lands in bench/results/gpu/ (or --out).
#
#   bash bench/gpu.sh                                    # CUDA: onnxruntime-gpu must be importable
#   bash bench/gpu.sh --provider cpu --quick --out DIR   # the CPU path, run by tests/bench/test_gpu_script.py
#
# PYTHON picks the interpreter (default python3). Each step has its own time limit, so one that hangs
# cannot take the whole run; the exit status is the first failing step's.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
PROVIDER=cuda
QUICK=()
OUT=bench/results/gpu
while [ $# -gt 0 ]; do
    case "$1" in
        --provider) PROVIDER=$2; shift 2 ;;
        --quick) QUICK=(--quick); shift ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "bench/gpu.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
# Only the files that use the marker: collecting every test would import what the GPU machine lacks
# (schemathesis, tritonclient, ray, ...) and stop the run at collection.
mapfile -t GPU_TESTS < <(grep -rl --include='*.py' 'pytest.mark.gpu' tests | sort)

mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
BENCH_COMMIT=${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export BENCH_COMMIT

{
    echo "date: $(date -u +%FT%TZ)  commit: $BENCH_COMMIT  cores: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
    "$PYTHON" --version
    "$PYTHON" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())"
} > "$OUT/environment.txt" 2>&1
cat "$OUT/environment.txt"

# Name every missing module at once, rather than failing on the first import deep inside a step.
"$PYTHON" - "$PROVIDER" "${QUICK[@]}" <<'PY' || exit 3
import importlib.util, sys
needed = ["numpy", "onnx", "onnxruntime", "PIL", "pytest", "fastapi", "uvicorn", "pydantic",
          "pydantic_settings", "multipart", "orjson", "prometheus_client", "typer", "httpx", "pytest_timeout",
          "torch"]  # torch: the gpu tests' case builders, and the ResNet-size model is exported on the spot
missing = [name for name in needed if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(f"bench/gpu.sh: missing Python modules: {' '.join(missing)}")
PY

status=0
echo "gpu-marked test files: ${GPU_TESTS[*]}"
timeout 150 "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider "${GPU_TESTS[@]}" > "$OUT/pytest-gpu.txt" 2>&1
tests=$?
tail -n 3 "$OUT/pytest-gpu.txt"
# 5: nothing collected (no test carries the marker): not a failure of this run.
if [ "$tests" -ne 0 ] && [ "$tests" -ne 5 ]; then status=$tests; fi

timeout 300 "$PYTHON" -m bench.gpu --provider "$PROVIDER" "${QUICK[@]}" --out "$OUT" --commit "$BENCH_COMMIT"
bench=$?
if [ "$bench" -ne 0 ] && [ "$status" -eq 0 ]; then status=$bench; fi
echo "bench/gpu.sh: tests exit $tests, benchmark exit $bench; results in $OUT"
exit "$status"
