#!/usr/bin/env bash
# The Kubernetes Deployment run for real on one host, without a cluster: `podman kube play` of the rendered
# deploy/k8s/overlays/podman-play (the cpu overlay's Deployment, one replica, published on loopback) with
# the API key Secret it refers to, then:
#   1. ready: /health/ready 200 on the published port (podman runs no probes without systemd: polled)
#   2. what the manifest asks for is what runs: uid 10001, read-only root filesystem, writable /tmp,
#      POOLSERVE_INTRA_OP_THREADS = the CPU limit (downward API), the API key from the Secret (/v1
#      without it: 401)
#   3. the held-out digits classified through the published port (all HTTP 200, >= SMOKE_MIN_ACCURACY)
#   4. SIGTERM with the pod's terminationGracePeriodSeconds (`podman pod stop -t`: podman 4.3's
#      `kube down` SIGKILLs), uvicorn drains ("Application shutdown complete") and exits within it, no
#      SIGKILL (exit code != 137); then `podman kube down`
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
SECRET=poolserve-api-key  # the Deployment's secretKeyRef: name, key api-key
API_KEY=podman-play-test-key  # a test value for this local run

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

# The Secret, as `kubectl create secret generic` would make it on a cluster. podman 4.3 resolves a
# secretKeyRef from a podman secret holding the Secret's `data` as JSON (key -> base64); a `kind: Secret`
# in the played YAML becomes a podman secret in a form its own secretKeyRef lookup then rejects.
podman secret rm "$SECRET" >/dev/null 2>&1 || true
printf '{"api-key": "%s"}' "$(printf %s "$API_KEY" | base64 -w0)" | podman secret create "$SECRET" - >/dev/null

teardown() {
    local status=$?
    if ((status != 0)) && [[ -n ${container:-} ]]; then
        podman logs "$container" 2>&1 | tail -n 40
    fi
    podman kube down "$manifest" >/dev/null 2>&1 || true
    podman secret rm "$SECRET" >/dev/null 2>&1 || true
    exit "$status"
}
trap teardown EXIT

log "podman kube play $manifest (127.0.0.1:$port -> 8000)"
play_at=$(date +%s.%N)
# stderr: podman 4.3 complains that it cannot set up healthcheck timers without systemd
podman kube play "$manifest" >"$SMOKE_RESULTS/k8s-play-output.txt" 2>"$SMOKE_RESULTS/k8s-play-stderr.txt"
# It prints "Pod:", the pod's id, "Container:", the container's id.
container=$(grep -A 1 '^Container:' "$SMOKE_RESULTS/k8s-play-output.txt" | tail -n 1)
pod=$(grep -A 1 '^Pod:' "$SMOKE_RESULTS/k8s-play-output.txt" | tail -n 1)
[[ -n $container && -n $pod ]] || fail "kube play did not report a pod and a container"

digits=("$SMOKE_DIGITS"/*.png)
[[ -f ${digits[0]} ]] || fail "no PNGs in $SMOKE_DIGITS"
python3 deploy/smoke_client.py --url "http://127.0.0.1:$port" --model "$SMOKE_MODEL" --since "$play_at" \
    --api-key "$API_KEY" --min-accuracy "$SMOKE_MIN_ACCURACY" --ready-timeout 120 "${digits[@]}" \
    >"$SMOKE_RESULTS/k8s-play-classify.json" || { cat "$SMOKE_RESULTS/k8s-play-classify.json"; fail "classification"; }
log "ready and classified: $(python3 -c 'import json, sys; print("{seconds_to_ready} s to ready, {http_200}/{classified} HTTP 200, {correct} labels right".format(**json.load(open(sys.argv[1]))))' "$SMOKE_RESULTS/k8s-play-classify.json")"

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

# podman 4.3's `kube down` kills the pod at once (exit 137, seen here) and `kube play` leaves podman's 10 s
# stop timeout in place of terminationGracePeriodSeconds. So stop it as the kubelet does once preStop
# has run: SIGTERM, then up to the grace period; `kube down` only removes what is left.
log "SIGTERM: podman pod stop -t $grace (terminationGracePeriodSeconds), then podman kube down"
stop_at=$SECONDS
podman pod stop -t "$grace" "$pod" >/dev/null 2>&1
stop_seconds=$((SECONDS - stop_at))
exit_code=$(podman inspect "$container" --format '{{.State.ExitCode}}')
podman logs "$container" >"$SMOKE_RESULTS/k8s-play-server.log" 2>&1
podman kube down "$manifest" >/dev/null 2>&1
grep "Application shutdown complete" "$SMOKE_RESULTS/k8s-play-server.log" >/dev/null ||
    fail "no graceful shutdown in the server log (exit code $exit_code)"
[[ $exit_code != 137 ]] || fail "SIGKILLed: exit code 137"
((stop_seconds < grace)) || fail "the stop took ${stop_seconds} s, not under the ${grace} s grace period"
log "drained: \"Application shutdown complete\", exit code $exit_code, stopped in ${stop_seconds} s"
podman secret rm "$SECRET" >/dev/null
trap - EXIT
log "OK"
