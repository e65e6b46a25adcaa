#!/usr/bin/env bash
# docker-compose for callrec's stack, whichever compose this host has
# (`docker compose` or `docker-compose`), with the project name the other
# scripts use, from the checkout's root. Starts the Docker engine and builds
# the Asterisk image first if needed (as scripts/demo.sh does). Examples:
#
#   scripts/compose.sh up -d --build      build callrec from source (needs an image registry)
#   cargo build --release && CALLREC_DOCKERFILE=docker/callrec/Dockerfile.prebuilt scripts/compose.sh up -d --build
#                                         the host-built binary instead (works offline)
#
# The callrec services run as CALLREC_UID:CALLREC_GID: by default the
# invoking user's, or callrec's own 10001 when that is root. Before the
# stack starts, the host directories they write to (CALLREC_RECORDINGS,
# CALLREC_RECEIVED) are made, and given to that user when root owns them.
# The webhook secret is CALLREC_WEBHOOK_SECRET, or one made for this
# checkout (.demo/webhook-secret).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_docker
ensure_asterisk_image
config_readable
cd "$CALLREC_ROOT"

if [[ -z ${CALLREC_UID:-} ]]; then
    if [[ $(id -u) -eq 0 ]]; then CALLREC_UID=10001; else CALLREC_UID=$(id -u); fi
    if [[ $(id -u) -eq 0 ]]; then CALLREC_GID=${CALLREC_GID:-10001}; else CALLREC_GID=${CALLREC_GID:-$(id -g)}; fi
fi
export CALLREC_UID CALLREC_GID=${CALLREC_GID:-$CALLREC_UID}

# callrec signs its deliveries and the receiver checks them with one secret:
# CALLREC_WEBHOOK_SECRET, or one made once and kept in .demo/webhook-secret.
if [[ -z ${CALLREC_WEBHOOK_SECRET:-} ]]; then
    if [[ ! -s $STATE_DIR/webhook-secret ]]; then
        mkdir -p "$STATE_DIR"
        (umask 077 && od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$STATE_DIR/webhook-secret")
    fi
    CALLREC_WEBHOOK_SECRET=$(cat "$STATE_DIR/webhook-secret")
fi
export CALLREC_WEBHOOK_SECRET

if [[ " $* " =~ \ (up|run|start|restart|create)\  ]]; then
    for dir in "${CALLREC_RECORDINGS:-./recordings}" "${CALLREC_RECEIVED:-./received}"; do
        mkdir -p "$dir"
        if [[ $(id -u) -eq 0 && $(stat -c %u "$dir") -eq 0 && $CALLREC_UID -ne 0 ]]; then
            chown "$CALLREC_UID:$CALLREC_GID" "$dir"
        fi
    done
fi
compose "$@"
