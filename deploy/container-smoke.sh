#!/usr/bin/env bash
# End-to-end proof of the container setup (docs/deploy.md), for CI and for people:
#   1. host: podman + runc + debootstrap, containers.conf, tool venv, local bookworm base (podman-host.sh)
#   2. static: hadolint on the Dockerfiles, docker-compose.yml against the compose-spec JSON schema and
#      through `podman-compose config` with every profile
#   3. the lock without containers: deploy/runtime-venv-smoke.sh (skip with SMOKE_VENV=0)
#   4. image: build (docker format, so HEALTHCHECK survives), size, non-root, no compiler, no torch
#   5. `podman-compose up -d api`, time to ready on the published 127.0.0.1 port, HEALTHCHECK run inside,
#      read-only model mount, classify the held-out digit PNGs through the published port (all HTTP 200,
#      labels as their file names say, at least SMOKE_MIN_ACCURACY of them)
#      (SMOKE_LOADTEST=1: a 10 s run of the loadtest profile against it), then a graceful stop: SIGTERM,
#      uvicorn drains and exits, no SIGKILL after the grace period
#   6. scale profile: 3 replicas behind nginx, requests must reach all three (SMOKE_SCALE=0 skips)
#   6b. the Kubernetes Deployment through `podman kube play`: deploy/k8s-play.sh (SMOKE_K8S=0 skips)
#   7. always: compose down (trap). Results: $SMOKE_RESULTS/container-smoke.{json,log}
#
# Usage: deploy/container-smoke.sh          (root on Debian 12; ~5 min on a fresh machine, ~1.5 min warm)
# Env:   SMOKE_RESULTS (.cache/container-smoke), SMOKE_MODEL (lenet5-mnist), SMOKE_DIGITS (tests/data/digits),
#        SMOKE_MIN_ACCURACY (0.95), SMOKE_VENV=1, SMOKE_SCALE=1, SMOKE_K8S=1, SMOKE_LOADTEST=0,
#        BASE_IMAGE_LOCAL (localhost/bookworm-python:latest)
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE_RESULTS=${SMOKE_RESULTS:-.cache/container-smoke}
SMOKE_MODEL=${SMOKE_MODEL:-lenet5-mnist}
SMOKE_DIGITS=${SMOKE_DIGITS:-tests/data/digits}
# The held-out PNGs are labelled by file name; lenet5-mnist gets 0.98 of held-out digits right.
export SMOKE_MIN_ACCURACY=${SMOKE_MIN_ACCURACY:-0.95}
SMOKE_VENV=${SMOKE_VENV:-1}
SMOKE_SCALE=${SMOKE_SCALE:-1}
SMOKE_K8S=${SMOKE_K8S:-1}
SMOKE_LOADTEST=${SMOKE_LOADTEST:-0}
export BASE_IMAGE_LOCAL=${BASE_IMAGE_LOCAL:-localhost/bookworm-python:latest}
IMAGE=localhost/poolserve:cpu
LB_IMAGE=localhost/poolserve-lb:latest
LOADTEST_IMAGE=localhost/poolserve-loadtest:latest
PROJECT=poolserve-smoke

mkdir -p "$SMOKE_RESULTS"
exec > >(tee "$SMOKE_RESULTS/container-smoke.log") 2>&1
started=$SECONDS
declare -A seconds
log() { printf '[container-smoke %(%H:%M:%S)T +%3ds] %s\n' -1 $((SECONDS - started)) "$*"; }
phase() { seconds[$1]=$((SECONDS - phase_start)); phase_start=$SECONDS; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
phase_start=$SECONDS

log "1/7 host setup"
eval "$(deploy/podman-host.sh | tail -n 1)"
phase host_setup

log "2/7 static checks"
hadolint Dockerfile deploy/nginx.Dockerfile deploy/ray.Dockerfile
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
podman-compose --profile scale --profile gpu --profile loadtest config >/dev/null
phase static_checks

if [[ $SMOKE_VENV == 1 ]]; then
    log "3/7 runtime lock in a plain venv (no container engine)"
    SMOKE_MODEL=$SMOKE_MODEL SMOKE_DIGITS=$SMOKE_DIGITS deploy/runtime-venv-smoke.sh
    phase runtime_venv_smoke
fi

log "4/7 build $IMAGE on $BASE_IMAGE_LOCAL"
podman build --quiet --format docker --build-arg BASE_IMAGE="$BASE_IMAGE_LOCAL" -t "$IMAGE" . >/dev/null
phase build
image_bytes=$(podman image inspect "$IMAGE" --format '{{.Size}}')
base_bytes=$(podman image inspect "$BASE_IMAGE_LOCAL" --format '{{.Size}}')
[[ $(podman image inspect "$IMAGE" --format '{{.Config.User}} {{.Config.StopSignal}}') == "10001:10001 SIGTERM" ]]
podman image inspect "$IMAGE" --format '{{json .Config.Healthcheck.Test}}' | grep poolserve.service.healthcheck >/dev/null
# `! cmd` does not trip set -e inside sh -c, so each check exits on its own.
podman run --rm "$IMAGE" sh -c '
    if command -v gcc || command -v cc || command -v g++; then echo "compiler in image"; exit 1; fi
    python3 -c "import importlib.util as u, sys; sys.exit(u.find_spec(\"torch\") is not None)" || { echo "torch in image"; exit 1; }
    test "$(id -u)" = 10001' 2>/dev/null
log "image $(numfmt --to=si "$image_bytes")B (base $(numfmt --to=si "$base_bytes")B): non-root, no compiler, no torch"

api_port=$(free_port)
lb_port=$(free_port)
export POOLSERVE_PUBLISH=127.0.0.1:$api_port POOLSERVE_LB_PUBLISH=127.0.0.1:$lb_port POOLSERVE_IMAGE=$IMAGE \
    POOLSERVE_LOADTEST_IMAGE=$LOADTEST_IMAGE
compose() { podman-compose -p "$PROJECT" --profile scale "$@"; }
teardown() {
    local status=$?
    ((status != 0)) && compose logs 2>&1 | tail -n 80
    log "7/7 down"
    compose down -t 10 >/dev/null 2>&1 || true
    exit "$status"
}
trap teardown EXIT

# The api service mounts ./model_repository read-only and serves it as uid 10001.
unreadable=$(find model_repository ! -perm -o=r | head -n 5)
if [[ -n $unreadable ]]; then
    log "FAIL: model_repository has files other users cannot read (the container runs as uid 10001):"
    printf '  %s\n' $unreadable
    exit 1
fi
digits=("$SMOKE_DIGITS"/*.png)
[[ -f ${digits[0]} ]] || { log "FAIL: no PNGs in $SMOKE_DIGITS"; exit 1; }
log "5/7 up api on 127.0.0.1:$api_port"
up_at=$(date +%s.%N)
compose up -d api >/dev/null 2>&1
python3 deploy/smoke_client.py --url "http://127.0.0.1:$api_port" --model "$SMOKE_MODEL" --since "$up_at" \
    --min-accuracy "$SMOKE_MIN_ACCURACY" \
    --ready-timeout 120 "${digits[@]}" >"$SMOKE_RESULTS/api.json"
cat "$SMOKE_RESULTS/api.json"
podman inspect "${PROJECT}_api_1" --format '{{.State.StartedAt}}' >"$SMOKE_RESULTS/api-started-at.txt"
podman healthcheck run "${PROJECT}_api_1" >/dev/null 2>&1  # the image's HEALTHCHECK, as non-root, read-only root
if podman exec "${PROJECT}_api_1" touch /app/model_repository/.write-test 2>/dev/null; then
    log "FAIL: model repository mount is writable"
    exit 1
fi
phase api_up_ready_classify

if [[ $SMOKE_LOADTEST == 1 ]]; then
    log "5b/7 loadtest profile: 10 s, 2 users, against api"
    podman build --quiet --format docker --build-arg BASE_IMAGE="$BASE_IMAGE_LOCAL" --target loadtest \
        -t "$LOADTEST_IMAGE" . >/dev/null
    loadtest_ok=1
    POOLSERVE_LOADTEST_DURATION=10s POOLSERVE_LOADTEST_USERS=2 \
        podman-compose -p "$PROJECT" --profile loadtest run --rm loadtest >"$SMOKE_RESULTS/loadtest.log" 2>&1 ||
        loadtest_ok=0
    grep -v '^time=' "$SMOKE_RESULTS/loadtest.log" | tail -n 40
    ((loadtest_ok)) || { log "FAIL: load test did not pass"; exit 1; }
    phase loadtest_profile
fi

podman stop -t 20 "${PROJECT}_api_1" >/dev/null 2>&1
stop_code=$(podman inspect "${PROJECT}_api_1" --format '{{.State.ExitCode}}')
# grep without -q reads to the end: with pipefail, -q exiting early would fail the pipeline on SIGPIPE.
if [[ $stop_code == 137 ]] || ! podman logs "${PROJECT}_api_1" 2>&1 | grep "Application shutdown complete" >/dev/null; then
    log "FAIL: api did not shut down gracefully on SIGTERM (exit $stop_code)"
    exit 1
fi
log "graceful stop on SIGTERM (exit $stop_code)"
phase graceful_stop

if [[ $SMOKE_SCALE == 1 ]]; then
    log "6/7 scale: 3 replicas behind nginx on 127.0.0.1:$lb_port"
    podman build --quiet --format docker --build-arg BASE_IMAGE="$BASE_IMAGE_LOCAL" -t "$LB_IMAGE" \
        -f deploy/nginx.Dockerfile deploy >/dev/null
    compose up -d api-replica lb >/dev/null 2>&1
    # Every replica healthy (its own HEALTHCHECK) before counting which ones nginx reaches.
    for replica in 1 2 3; do
        for _ in $(seq 120); do
            podman healthcheck run "${PROJECT}_api-replica_$replica" >/dev/null 2>&1 && break
            sleep 0.5
        done
    done
    python3 deploy/smoke_client.py --url "http://127.0.0.1:$lb_port" --model "$SMOKE_MODEL" --repeat 2 \
        --min-accuracy "$SMOKE_MIN_ACCURACY" \
        --ready-timeout 120 "${digits[@]}" >"$SMOKE_RESULTS/scale.json"
    cat "$SMOKE_RESULTS/scale.json"
    python3 -c 'import json, sys; n = len(json.load(open(sys.argv[1]))["upstreams"]); sys.exit(n != 3)' \
        "$SMOKE_RESULTS/scale.json" || { log "FAIL: nginx did not reach all 3 replicas"; exit 1; }
    phase scale_out
fi

if [[ $SMOKE_K8S == 1 ]]; then
    log "6b/7 Kubernetes Deployment (deploy/k8s/overlays/podman-play) through podman kube play"
    SMOKE_RESULTS=$SMOKE_RESULTS SMOKE_MODEL=$SMOKE_MODEL SMOKE_DIGITS=$SMOKE_DIGITS deploy/k8s-play.sh
    phase k8s_play
fi

python3 - "$SMOKE_RESULTS" "$image_bytes" "$base_bytes" "$((SECONDS - started))" \
    "$(declare -p seconds)" "$(podman --version)" "$(podman-compose --version 2>/dev/null | grep -i compose | head -n 1)" <<'PY'
import json, platform, re, sys, time
from datetime import datetime
from pathlib import Path

out, image, base, total, phases, podman, compose = sys.argv[1:]
api = json.loads((Path(out) / "api.json").read_text())
# podman: "2026-11-23 07:23:16.123456789 +0000 UTC"; nanoseconds cut to what datetime parses.
stamp = (Path(out) / "api-started-at.txt").read_text().split()
started_at = datetime.strptime(f"{stamp[0]} {stamp[1][:15]} {stamp[2]}", "%Y-%m-%d %H:%M:%S.%f %z").timestamp()
scale = Path(out) / "scale.json"
summary = {
    "when_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "host": f"{platform.platform()}; {podman}; {compose}",
    "image": "localhost/poolserve:cpu (BASE_IMAGE=localhost/bookworm-python:latest)",
    "image_bytes": int(image),
    "base_image_bytes": int(base),
    "image_minus_base_bytes": int(image) - int(base),
    "compose_up_to_ready_seconds": api["seconds_to_ready"],
    "container_start_to_ready_seconds": round(api["ready_at_epoch"] - started_at, 3),
    "digits_sent_through_published_port": api["classified"],
    "http_200": api["http_200"],
    "labels_correct": api["correct"],
    "accuracy": api["accuracy"],
    "scale_upstreams": json.loads(scale.read_text())["upstreams"] if scale.exists() else None,
    "phase_seconds": {k: int(v) for k, v in re.findall(r'\[(\w+)\]="?(\d+)', phases)},
    "total_seconds": int(total),
}
(Path(out) / "container-smoke.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
PY
log "OK"
