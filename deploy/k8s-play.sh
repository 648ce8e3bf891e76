#!/usr/bin/env bash
# The Kubernetes Deployment run for real on one host, without a cluster: `podman kube play` of the rendered
# deploy/k8s/overlays/podman-play (the cpu overlay's Deployment, one replica, published on loopback, an
# API key Secret), then:
#   1. ready: /health/ready 200 on the published port (podman runs no probes without systemd: polled)
#   2. what the manifest asks for is what runs: uid 10001, read-only root filesystem, writable /tmp,
#      POOLSERVE_INTRA_OP_THREADS = the CPU limit (downward API), the API key from the Secret (/v1
#      without it: 401)
#   3. the held-out digits classified through the published port (all HTTP 200, >= SMOKE_MIN_ACCURACY)
#   4. `podman kube down`: SIGTERM; uvicorn drains ("Application shutdown complete") and exits before
#      the pod's terminationGracePeriodSeconds, no SIGKILL (exit code != 137)
# What only a cluster proves (Service routing, HPA, PDB, probes run by the kubelet, preStop): docs/deploy.md.
#
# Usage: deploy/k8s-play.sh   (after deploy/container-smoke.sh built localhost/poolserve:cpu; root, podman)
# Env:   SMOKE_RESULTS (.cache/container-smoke), SMOKE_MODEL, SMOKE_DIGITS, SMOKE_MIN_ACCURACY (0.95)
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE_RESULTS=${SMOKE_RESULTS:-.cache/container-smoke}
SMOKE_MODEL=${SMOKE_MODEL:-lenet5-mnist}
SMOKE_DIGITS=${SMOKE_DIGITS:-tests/data/digits}
SMOKE_MIN_ACCURACY=${SMOKE_MIN_ACCURACY:-0.95}
OVERLAY=deploy/k8s/overlays/podman-play
IMAGE=localhost/poolserve:cpu
API_KEY=podman-play-test-key  # the overlay's secretGenerator literal

started=$SECONDS
log() { printf '[k8s-play %(%H:%M:%S)T +%3ds] %s\n' -1 $((SECONDS - started)) "$*"; }
fail() { log "FAIL: $*"; exit 1; }
for tool in kubectl podman python3; do
    command -v "$tool" >/dev/null || fail "$tool not found: this step needs kubectl (1.27+, built-in kustomize), podman (deploy/podman-host.sh) and python3"
done
podman image exists "$IMAGE" || fail "$IMAGE not built (deploy/container-smoke.sh builds it)"
mkdir -p "$SMOKE_RESULTS"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d)
manifest=$SMOKE_RESULTS/k8s-play.yaml
# The overlay publishes hostPort 8000; a kustomization of our own moves it to a free port.
cat >"$work/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $(realpath --relative-to="$work" "$OVERLAY")
patches:
  - target: {kind: Deployment, name: poolserve}
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/0/ports/0/hostPort
        value: $port
EOF
kubectl kustomize "$work" >"$manifest"
rm -rf "$work"
grace=$(python3 -c 'import re, sys; print(re.search(r"terminationGracePeriodSeconds: (\d+)", sys.stdin.read())[1])' <"$manifest")

logs_pid=
teardown() {
    local status=$?
    if ((status != 0)); then
        podman pod ps --filter "label=app.kubernetes.io/name=poolserve" 2>&1 | tail -n 5
        [[ -n ${container:-} ]] && podman logs "$container" 2>&1 | tail -n 40
    fi
    podman kube down "$manifest" >/dev/null 2>&1 || true
    [[ -n $logs_pid ]] && kill "$logs_pid" 2>/dev/null || true
    exit "$status"
}
trap teardown EXIT

log "podman kube play $manifest (127.0.0.1:$port -> 8000)"
play_at=$(date +%s.%N)
events_since=$(date +%s)
podman kube play "$manifest" >"$SMOKE_RESULTS/k8s-play-output.txt"
container=$(podman ps --filter "label=io.kubernetes.container.name=poolserve" --format '{{.Names}}' | head -n 1)
[[ -n $container ]] || container=$(podman ps --format '{{.Names}}' | grep -- '-poolserve$' | head -n 1)
[[ -n $container ]] || fail "no poolserve container after kube play"
podman logs -f "$container" >"$SMOKE_RESULTS/k8s-play-server.log" 2>&1 &
logs_pid=$!

digits=("$SMOKE_DIGITS"/*.png)
[[ -f ${digits[0]} ]] || fail "no PNGs in $SMOKE_DIGITS"
python3 deploy/smoke_client.py --url "http://127.0.0.1:$port" --model "$SMOKE_MODEL" --since "$play_at" \
    --api-key "$API_KEY" --min-accuracy "$SMOKE_MIN_ACCURACY" --ready-timeout 120 "${digits[@]}" \
    >"$SMOKE_RESULTS/k8s-play-classify.json" || { cat "$SMOKE_RESULTS/k8s-play-classify.json"; fail "classification"; }
log "ready and classified: $(python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(f"{r[\"seconds_to_ready\"]} s to ready, {r[\"http_200\"]}/{r[\"classified\"]} HTTP 200, {r[\"correct\"]} labels right")' "$SMOKE_RESULTS/k8s-play-classify.json")"

no_key=$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: image/png' --data-binary "@${digits[0]}" \
    "http://127.0.0.1:$port/v1/models/$SMOKE_MODEL/classify")
[[ $no_key == 401 ]] || fail "/v1 without the API key answered $no_key, not 401: the Secret did not reach the server"

# `! cmd` does not trip set -e inside sh -c, so each check exits on its own.
podman exec "$container" sh -c '
    test "$(id -u)" = 10001 || { echo "uid $(id -u), not 10001"; exit 1; }
    if touch /app/.write-test 2>/dev/null; then echo "root filesystem is writable"; exit 1; fi
    touch /tmp/.write-test || { echo "/tmp is not writable"; exit 1; }
    test "$POOLSERVE_INTRA_OP_THREADS" = 2 || { echo "POOLSERVE_INTRA_OP_THREADS=$POOLSERVE_INTRA_OP_THREADS, not 2"; exit 1; }
' || fail "the container does not run as the manifest says"
log "uid 10001, read-only root, writable /tmp, POOLSERVE_INTRA_OP_THREADS=2 (limits.cpu), API key from the Secret"

log "podman kube down (SIGTERM; grace period ${grace} s)"
down_at=$SECONDS
podman kube down "$manifest" >/dev/null
down_seconds=$((SECONDS - down_at))
wait "$logs_pid" 2>/dev/null || true
logs_pid=
exit_code=$(podman events --since "$events_since" --until "$(date +%s)" --filter event=died \
    --filter "container=$container" --format '{{.ContainerExitCode}}' 2>/dev/null | tail -n 1)
grep "Application shutdown complete" "$SMOKE_RESULTS/k8s-play-server.log" >/dev/null ||
    fail "no graceful shutdown in the server log (exit code ${exit_code:-unknown})"
[[ $exit_code != 137 ]] || fail "SIGKILLed: exit code 137"
((down_seconds < grace)) || fail "kube down took ${down_seconds} s, not under the ${grace} s grace period"
log "drained: \"Application shutdown complete\", exit code ${exit_code:-unknown}, down in ${down_seconds} s"
trap - EXIT
log "OK"
