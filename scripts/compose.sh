#!/usr/bin/env bash
# docker-compose for callrec's stack, whichever compose this host has
# (`docker compose` or `docker-compose`), with the project name the other
# scripts use, from the checkout's root. Example:
#
#   cargo build --release && scripts/compose.sh up -d callrec
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$CALLREC_ROOT"
compose "$@"
