# Shared steps of callrec's scripts: install what is missing, start the Docker
# engine, build the Asterisk 22 image, bring Asterisk up and wait for ARI.
# Every step is idempotent and quick when its work is already done.
# Sourced by scripts/demo.sh and scripts/test.sh; not meant to be run alone.

set -euo pipefail

CALLREC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ASTERISK_IMAGE=${ASTERISK_IMAGE:-callrec-asterisk:22}
ARI_URL=${CALLREC_ARI_URL:-http://127.0.0.1:8088}
ARI_USER=${CALLREC_ARI_USER:-callrec}
ARI_PASSWORD=${CALLREC_ARI_PASSWORD:-callrec}
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1

# Where scripts/demo.sh keeps the callrec it runs as a host process.
STATE_DIR="$CALLREC_ROOT/.demo"
PID_FILE="$STATE_DIR/callrec.pid"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# ensure_packages CMD=PKG ...: installs PKG with apt when CMD is not on PATH.
APT_UPDATED=
ensure_packages() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
    done
    ((${#missing[@]})) || return 0
    log "installing ${missing[*]}"
    if [[ -z $APT_UPDATED ]]; then
        as_root apt-get update -q >/dev/null
        APT_UPDATED=1
    fi
    as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_python_module MODULE PKG [PIP_SPEC]: makes `import MODULE` work in
# python3, with pip (PIP_SPEC, by default MODULE), or with Debian's PKG where
# pip may not install.
ensure_python_module() {
    local module=$1 package=$2 spec=${3:-$1}
    ensure_packages python3=python3
    python3 -c "import $module" 2>/dev/null && return 0
    log "installing the Python module $module ($spec)"
    if ! python3 -m pip install -q "$spec" >/dev/null 2>&1; then
        if [[ -z $APT_UPDATED ]]; then
            as_root apt-get update -q >/dev/null
            APT_UPDATED=1
        fi
        as_root apt-get install -y -q --no-install-recommends "$package" >/dev/null
    fi
    python3 -c "import $module" 2>/dev/null || die "python3 cannot import $module: install it (pip install '$spec')"
}

compose() {
    # One project name wherever the checkout lives: one lab Asterisk per host.
    export COMPOSE_PROJECT_NAME=callrec
    if docker compose version >/dev/null 2>&1; then
        docker compose "$@"
    else
        docker-compose "$@"
    fi
}

# ensure_docker: a Docker engine answering `docker info`, started here if needed.
ensure_docker() {
    ensure_packages dockerd=docker.io
    if ! docker compose version >/dev/null 2>&1; then
        ensure_packages docker-compose=docker-compose
    fi
    docker info >/dev/null 2>&1 && return 0
    if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
        as_root systemctl start docker || true
    fi
    if ! docker info >/dev/null 2>&1; then
        log "starting the Docker engine"
        # No systemd here: run the engine in the background. Host networking
        # is all callrec's stack uses, so no bridge or iptables is needed.
        as_root bash -c 'nohup dockerd --iptables=false --bridge=none >/var/log/callrec-dockerd.log 2>&1 &'
    fi
    local i
    for i in $(seq 1 60); do
        docker info >/dev/null 2>&1 && return 0
        sleep 1
    done
    die "the Docker engine did not start (see /var/log/callrec-dockerd.log)"
}

# ensure_asterisk_image: builds $ASTERISK_IMAGE unless it exists. First with the
# Dockerfile (needs an image registry); where none can be reached, from a root
# file system made by debootstrap from Debian sid, imported into Docker.
ensure_asterisk_image() {
    docker image inspect "$ASTERISK_IMAGE" >/dev/null 2>&1 && return 0
    log "building $ASTERISK_IMAGE"
    if docker build -q -t "$ASTERISK_IMAGE" "$CALLREC_ROOT/docker/asterisk" >/dev/null 2>&1; then
        return 0
    fi
    log "no image registry reachable: building $ASTERISK_IMAGE with debootstrap instead (about a minute)"
    ensure_packages debootstrap=debootstrap
    local rootfs
    rootfs=$(mktemp -d /var/tmp/callrec-asterisk-rootfs.XXXXXX)
    # shellcheck disable=SC2064
    trap "as_root rm -rf '$rootfs'" RETURN
    as_root debootstrap --variant=minbase \
        --include=asterisk,asterisk-modules,asterisk-core-sounds-en-gsm \
        sid "$rootfs" >/tmp/callrec-debootstrap.log 2>&1 \
        || die "debootstrap failed (see /tmp/callrec-debootstrap.log)"
    as_root tar -C "$rootfs" -c . | docker import \
        --change 'CMD ["asterisk", "-f", "-U", "asterisk", "-G", "asterisk"]' \
        - "$ASTERISK_IMAGE" >/dev/null
}

# asterisk_up: the Asterisk service of docker-compose.yml running with the
# checkout's configuration, ARI answering.
asterisk_up() {
    ensure_docker
    ensure_asterisk_image
    config_readable
    local was_running
    was_running=$(docker ps -q --filter 'name=^callrec-asterisk$')
    (cd "$CALLREC_ROOT" && compose up -d asterisk >/dev/null 2>&1) \
        || (cd "$CALLREC_ROOT" && compose up -d asterisk)
    local stamp
    stamp=$(config_stamp)
    # An Asterisk left running reads its configuration anew when the
    # checkout's has changed (files mounted one by one keep their old
    # contents once replaced, so a reload is not enough: restart).
    if [[ -n $was_running ]] && [[ $(docker exec callrec-asterisk cat /tmp/callrec-config-stamp 2>/dev/null) != "$stamp" ]]; then
        log "the Asterisk configuration changed: restarting Asterisk"
        docker restart callrec-asterisk >/dev/null
    fi
    docker exec callrec-asterisk sh -c "echo $stamp >/tmp/callrec-config-stamp"
    wait_for_ari
}

# config_stamp: a short hash of everything Asterisk's container is configured from.
config_stamp() {
    (cd "$CALLREC_ROOT" && cat docker-compose.yml docker/asterisk/etc/* dialplan/* tests/asterisk/* | sha256sum | cut -c1-16)
}

# config_readable: Asterisk reads its mounted configuration as an unprivileged user.
config_readable() {
    chmod -R a+rX "$CALLREC_ROOT/docker/asterisk/etc" "$CALLREC_ROOT/dialplan" \
        "$CALLREC_ROOT/tests/asterisk" "$CALLREC_ROOT/tests/data"
}

wait_for_ari() {
    ensure_packages curl=curl
    local i
    for i in $(seq 1 90); do
        if curl -fsS -o /dev/null -u "$ARI_USER:$ARI_PASSWORD" "$ARI_URL/ari/asterisk/info" 2>/dev/null; then
            return 0
        fi
        sleep 1
    done
    die "Asterisk's ARI did not answer at $ARI_URL (see: docker logs callrec-asterisk)"
}

ensure_rust() {
    command -v cargo >/dev/null 2>&1 || [[ -x $HOME/.cargo/bin/cargo ]] \
        || die "cargo is needed: install a Rust toolchain with rustup"
    command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
}

# stop_callrec: stops the callrec that scripts/demo.sh started, if it runs.
stop_callrec() {
    if [[ -f $PID_FILE ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
        kill -TERM "$(cat "$PID_FILE")"
        local i
        for i in $(seq 1 30); do
            kill -0 "$(cat "$PID_FILE")" 2>/dev/null || break
            sleep 1
        done
    fi
    rm -f "$PID_FILE"
}
