#!/usr/bin/env bash
# docker-compose for callrec's stack, whichever compose this host has
# (`docker compose` or `docker-compose`), with the project name the other
# scripts use, from the checkout's root. Starts the Docker engine and builds
# the Asterisk image first if needed (as scripts/demo.sh does). Example:
#
#   cargo build --release && scripts/compose.sh up -d callrec
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_docker
ensure_asterisk_image
config_readable
cd "$CALLREC_ROOT"
compose "$@"
