#!/usr/bin/env bash
# Runs every callrec test: unit tests, then end to end against a real,
# dockerized Asterisk 22 with real SIP callers. Installs and starts what is
# missing (Docker engine, the Asterisk image, sipp, sox, moto's S3 server,
# Chromium and chromedriver);
# quick when all is there.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_rust
ensure_packages sipp=sip-tester sox=sox curl=curl tcpdump=tcpdump
# tests/e2e_receive.rs opens the receiver's page in a headless Chromium.
ensure_packages chromium=chromium chromedriver=chromium-driver
# tests/cli_integrity.rs runs the README's Python verifier of a signed recording.
ensure_python_module cryptography python3-cryptography
# tests/e2e_delivery.rs stores recordings in an S3-compatible server: moto's.
ensure_python_module moto.server python3-moto 'moto[server]'
asterisk_up
# The tests run their own callrec on the lab's Stasis application: another one
# (the demo's, or the compose service) would take it over.
if [[ -f $PID_FILE ]]; then
    log "stopping the demo's callrec for the tests (scripts/demo.sh starts it again)"
    stop_callrec
fi
if docker ps -q --filter name='^callrec$' | grep -q .; then
    log "stopping the callrec container for the tests"
    docker stop callrec >/dev/null
fi
# The compose receiver holds the port tests/e2e_compose.rs gives it.
if docker ps -q --filter name='^callrec-receiver$' | grep -q .; then
    log "stopping the receiver container for the tests"
    docker stop callrec-receiver >/dev/null
fi
log "Asterisk is up; running the tests"
cd "$CALLREC_ROOT"
cargo fmt --check
cargo clippy --locked --all-targets -q -- -D warnings
# The end-to-end tests take the lab one at a time (a lock file); unit tests run in parallel.
cargo test --locked --all-targets
