#!/usr/bin/env bash
# The main job: a dockerized Asterisk 22, callrec beside it (recordings in
# ./recordings), and one real demo call through the example IVR's bookended
# section. Afterwards the stack keeps running for your own calls.
#
#   scripts/demo.sh          bring everything up and place the demo call
#   scripts/demo.sh stop     stop callrec and Asterisk
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOG_FILE="$STATE_DIR/callrec.log"
OUTPUT_DIR="${CALLREC_OUTPUT_DIR:-$CALLREC_ROOT/recordings}"

if [[ ${1:-} == stop ]]; then
    stop_callrec
    (cd "$CALLREC_ROOT" && compose stop asterisk >/dev/null 2>&1) || true
    log "stopped callrec and Asterisk"
    exit 0
fi

ensure_rust
ensure_packages sipp=sip-tester sox=sox curl=curl
asterisk_up
log "building callrec"
(cd "$CALLREC_ROOT" && cargo build --release --locked -q)

# (Re)start callrec as a host process beside the containerized Asterisk.
mkdir -p "$STATE_DIR" "$OUTPUT_DIR"
stop_callrec
CALLREC_ARI_URL="$ARI_URL" CALLREC_ARI_USER="$ARI_USER" CALLREC_ARI_PASSWORD="$ARI_PASSWORD" \
CALLREC_OUTPUT_DIR="$OUTPUT_DIR" \
    nohup "$CALLREC_ROOT/target/release/callrec" run >"$LOG_FILE" 2>&1 </dev/null &
echo $! >"$PID_FILE"
for _ in $(seq 1 50); do
    grep -q "ARI event WebSocket connected" "$LOG_FILE" && break
    kill -0 "$(cat "$PID_FILE")" 2>/dev/null || die "callrec exited: $(tail -n 3 "$LOG_FILE")"
    sleep 0.2
done
grep -q "ARI event WebSocket connected" "$LOG_FILE" || die "callrec did not connect to ARI (see $LOG_FILE)"
log "callrec is running (pid $(cat "$PID_FILE"), log $LOG_FILE)"

# The demo call: extension 100 of dialplan/example-ivr.conf records only the
# confirmation between its start and stop markers.
log "placing a demo call to the example IVR (extension 100)"
scenario=$(mktemp --suffix=.xml)
trap 'rm -f "$scenario"' EXIT
sed "s|@TONE@|$CALLREC_ROOT/tests/data/caller1000.ulaw|" "$CALLREC_ROOT/scripts/demo-caller.xml" >"$scenario"
marker=$(mktemp)
(cd "$STATE_DIR" && sipp 127.0.0.1:5060 -sf "$scenario" -s 100 -m 1 -i 127.0.0.1 -mi 127.0.0.1 -mp 36000 \
    -nostdin -timeout 60s -timeout_error >"$STATE_DIR/sipp.log" 2>&1) \
    || die "the demo call failed (see $STATE_DIR/sipp.log)"

for _ in $(seq 1 50); do
    recording=$(find "$OUTPUT_DIR" -maxdepth 1 -name '*.json' -newer "$marker" | head -n 1)
    [[ -n $recording ]] && break
    sleep 0.2
done
rm -f "$marker"
[[ -n ${recording:-} ]] || die "no recording arrived in $OUTPUT_DIR (see $LOG_FILE)"

field() { sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$recording"; }
cat <<EOT

Recorded: ${recording%.json}.ul
  name $(field name), $(field duration_ms) ms, ended by $(field end_reason), caller $(field caller_number)
  metadata: $recording
  listen:   target/release/callrec convert ${recording%.json}.ul demo.wav

The stack keeps running: call sip:100@127.0.0.1 (partial), sip:200@127.0.0.1
(entire call) or sip:400@127.0.0.1 (a card number kept out by pause and
resume) from a softphone on this host, and new recordings land in
$OUTPUT_DIR. Stop it all with: scripts/demo.sh stop
EOT
