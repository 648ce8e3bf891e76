#!/usr/bin/env bash
# Proves the image's dependency set without a container engine: installs exactly
# deploy/requirements-runtime.lock (hash-checked, binary wheels, no resolver) plus poolserve's own wheel
# into a fresh venv with no torch, checks it is complete (`pip check`) and torch-free, then serves the
# shipped model repository on 127.0.0.1 with the image's command (python3 -m poolserve.service.supervisor), waits for readiness, classifies the held-out digit PNGs and stops the server with SIGTERM
# (it must drain and shut down cleanly: the image's STOPSIGNAL relies on that).
#
# Usage: deploy/runtime-venv-smoke.sh      (about 30 s with a warm pip cache)
# Env:   RUNTIME_VENV (default .cache/runtime-venv), SMOKE_MODEL (lenet5-mnist), SMOKE_DIGITS (tests/data/digits)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNTIME_VENV=$(realpath -m "${RUNTIME_VENV:-.cache/runtime-venv}")
SMOKE_MODEL=${SMOKE_MODEL:-lenet5-mnist}
SMOKE_DIGITS=${SMOKE_DIGITS:-tests/data/digits}
log() { printf '[runtime-venv-smoke %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
quietly() { "$@" >>"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; return 1; }; }

work=$(mktemp -d)
server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

log "fresh venv $RUNTIME_VENV from deploy/requirements-runtime.lock"
rm -rf "$RUNTIME_VENV"
python3 -m venv "$RUNTIME_VENV" "$work/build"
quietly "$work/build/bin/pip" install -q --require-hashes --no-deps -r deploy/requirements-build.lock
quietly "$work/build/bin/pip" wheel -q --no-deps --no-build-isolation --wheel-dir "$work/dist" .
quietly "$RUNTIME_VENV/bin/pip" install -q --require-hashes --no-deps --only-binary=:all: -r deploy/requirements-runtime.lock
quietly "$RUNTIME_VENV/bin/pip" install -q --no-deps "$work"/dist/*.whl
"$RUNTIME_VENV/bin/pip" check
if "$RUNTIME_VENV/bin/python" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("torch") is None)'; then
    log "FAIL: torch is importable from the runtime venv"
    exit 1
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
repository=$PWD/model_repository
digits=("$(realpath "$SMOKE_DIGITS")"/*.png)
[[ -f ${digits[0]} ]] || { log "FAIL: no PNGs in $SMOKE_DIGITS"; exit 1; }
log "serving on 127.0.0.1:$port as the image does (cwd $work, not the source tree)"
(cd "$work" && POOLSERVE_REPOSITORY=$repository POOLSERVE_HOST=127.0.0.1 POOLSERVE_PORT=$port \
    POOLSERVE_SHUTDOWN_GRACE_S=25 exec "$RUNTIME_VENV/bin/python" -m poolserve.service.supervisor) \
    >"$work/server.log" 2>&1 &
server_pid=$!
if ! python3 deploy/smoke_client.py --url "http://127.0.0.1:$port" --model "$SMOKE_MODEL" --pid "$server_pid" \
    --min-accuracy "${SMOKE_MIN_ACCURACY:-0.95}" "${digits[@]}"; then
    log "FAIL; server log:"
    cat "$work/server.log" >&2
    exit 1
fi
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=
# The supervisor exits 0 once its server has drained (143, 128 + SIGTERM, from a bare uvicorn).
if ! ((status == 0 || status == 143)) || ! grep -q "Application shutdown complete" "$work/server.log"; then
    log "FAIL: no graceful shutdown on SIGTERM (exit $status); server log:"
    cat "$work/server.log" >&2
    exit 1
fi
log "OK: the lock installs alone, no torch, serves and classifies, stops cleanly on SIGTERM"
