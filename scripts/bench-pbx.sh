#!/usr/bin/env bash
# The full-path benchmark: N concurrent SIP calls (sipp; each caller streams a
# tone, Asterisk echoes it back) into the lab's dockerized Asterisk, three
# times over: not recorded, recorded by MixMonitor, and recorded by callrec
# (the start marker; each recording delivered at hangup to `callrec receive`).
# It reports Asterisk's CPU in each (its process, /proc/<pid>/stat), callrec's,
# callrec's CPU over the extra Asterisk spends on the snoop path (recorded by
# callrec minus not recorded; budget 5 %), the start marker's dwell and the
# time from a recording's end to the receiver storing it (p50/p99), and what
# callrec lost (kernel drops, missing audio).
#
#   scripts/bench-pbx.sh              N = 20, 60, 120 calls of 15 s; the table
#                                     is appended to BENCHMARKS.md
#   scripts/bench-pbx.sh 40 80        other call counts
#   scripts/bench-pbx.sh --seconds 30 longer calls
#   scripts/bench-pbx.sh --smoke      3 calls of 4 s, nothing appended (what
#                                     tests/bench_smoke.rs runs)
#
# CALLREC_BIN=path uses that callrec binary instead of building one. CPU
# figures mean little on a busy machine: the load average is recorded beside
# them.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

seconds=15
smoke=false
calls=()
while (($#)); do
    case $1 in
        --smoke) smoke=true ;;
        --seconds) seconds=$2; shift ;;
        --seconds=*) seconds=${1#*=} ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) calls+=("$1") ;;
    esac
    shift
done
if $smoke; then
    calls=(3)
    seconds=4
fi
((${#calls[@]})) || calls=(20 60 120)

ensure_packages sipp=sip-tester
asterisk_up
bin=${CALLREC_BIN:-}
if [[ -z $bin ]]; then
    (cd "$CALLREC_ROOT" && cargo build --release --locked -q --bin callrec)
    bin="${CARGO_TARGET_DIR:-$CALLREC_ROOT/target}/release/callrec"
fi

work=$(mktemp -d)
callrec_pid=""
receiver_pid=""
cleanup() {
    [[ -n $callrec_pid ]] && kill "$callrec_pid" 2>/dev/null && wait "$callrec_pid" 2>/dev/null
    [[ -n $receiver_pid ]] && kill "$receiver_pid" 2>/dev/null && wait "$receiver_pid" 2>/dev/null
    docker exec callrec-asterisk rm -rf /tmp/callrec-bench 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

listen=127.0.0.1:18091
receiver=127.0.0.1:18092
asterisk_pid=$(docker inspect -f '{{.State.Pid}}' callrec-asterisk)

# User plus system CPU of a process, in clock ticks (fields 14 and 15; the
# name in field 2 has no spaces for either process measured).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# One caller per call: a 1 kHz tone for the whole call, its own BYE after
# $seconds.
sed "s|@TONE@|$CALLREC_ROOT/tests/data/caller1000.ulaw|; s|@PAUSE@|$((seconds * 1000))|" \
    >"$work/caller.xml" <<'EOF'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callrec benchmark caller">
  <send retrans="500"><![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Bench Caller" <sip:5550199@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [rtpstream_audio_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

  ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Bench Caller" <sip:5550199@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <nop><action><exec rtp_stream="@TONE@,-1,0"/></action></nop>
  <pause milliseconds="@PAUSE@"/>
  <send retrans="500"><![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Bench Caller" <sip:5550199@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0

  ]]></send>
  <recv response="200"/>
</scenario>
EOF

# Places $2 concurrent calls to bench-$1 and waits for them to end; prints
# "<asterisk ticks> <callrec ticks> <wall seconds>".
place_calls() {
    local mode=$1 n=$2 before_a before_c=0 started ended callrec_ticks=0
    before_a=$(cpu_ticks "$asterisk_pid")
    [[ -n $callrec_pid ]] && before_c=$(cpu_ticks "$callrec_pid")
    started=$(date +%s.%N)
    if ! sipp 127.0.0.1:5060 -sf "$work/caller.xml" -s "bench-$mode" -m "$n" -l "$n" -r "$n" -rp 1000 \
        -i 127.0.0.1 -mi 127.0.0.1 -p 15190 -mp 40000 \
        -nostdin -timeout "$((seconds + 60))s" -timeout_error >"$work/sipp-$mode.log" 2>&1; then
        tail -n 20 "$work/sipp-$mode.log" >&2
        die "the $mode calls failed"
    fi
    ended=$(date +%s.%N)
    [[ -n $callrec_pid ]] && callrec_ticks=$(($(cpu_ticks "$callrec_pid") - before_c))
    echo "$(($(cpu_ticks "$asterisk_pid") - before_a)) $callrec_ticks $(awk -v a="$started" -v b="$ended" 'BEGIN { print b - a }')"
}

start_callrec() {
    mkdir -p "$work/received" "$work/output"
    "$bin" receive --listen "$receiver" --dir "$work/received" >"$work/receiver.log" 2>&1 &
    receiver_pid=$!
    CALLREC_ARI_URL="$ARI_URL" CALLREC_ARI_USER="$ARI_USER" CALLREC_ARI_PASSWORD="$ARI_PASSWORD" \
        "$bin" run --listen "$listen" --agi-listen off --output-dir "$work/output" \
        --webhook-url "http://$receiver/recordings" --log-format json >"$work/callrec.log" 2>&1 &
    callrec_pid=$!
    for _ in $(seq 1 100); do
        curl -fs "http://$listen/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    tail -n 5 "$work/callrec.log" >&2
    die "callrec did not become ready"
}

stop_callrec_and_receiver() {
    kill "$callrec_pid" && wait "$callrec_pid" || true
    callrec_pid=""
    kill "$receiver_pid" && wait "$receiver_pid" || true
    receiver_pid=""
}

commit="$(cd "$CALLREC_ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rows=()
# The highest N with nothing lost (no kernel drop, no audio missing, every
# recording stored).
sustained=0
for n in "${calls[@]}"; do
    log "bench-pbx: $n calls of $seconds s, not recorded"
    place_calls none "$n" >"$work/cpu"
    read -r none_a _ none_wall <"$work/cpu"
    log "bench-pbx: $n calls, recorded by MixMonitor"
    place_calls mixmonitor "$n" >"$work/cpu"
    read -r mix_a _ mix_wall <"$work/cpu"
    docker exec callrec-asterisk rm -rf /tmp/callrec-bench
    log "bench-pbx: $n calls, recorded by callrec"
    rm -rf "$work/received" "$work/output"
    start_callrec
    place_calls callrec "$n" >"$work/cpu"
    read -r rec_a rec_c rec_wall <"$work/cpu"
    # Every recording in the receiver (or given up on), then the counters.
    for _ in $(seq 1 300); do
        (($(find "$work/received" -maxdepth 1 -name '*.json' | wc -l) >= n)) && break
        sleep 0.1
    done
    curl -fs "http://$listen/metrics" >"$work/metrics.txt"
    stop_callrec_and_receiver
    line=$(python3 - "$n" "$seconds" "$(getconf CLK_TCK)" "$work" \
        "$none_a" "$none_wall" "$mix_a" "$mix_wall" "$rec_a" "$rec_c" "$rec_wall" <<'PY'
import json, os, re, sys
from datetime import datetime

n, seconds, hz, work = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
none_a, none_wall, mix_a, mix_wall, rec_a, rec_c, rec_wall = map(float, sys.argv[5:12])
core = lambda ticks, wall: ticks / hz / wall * 100  # % of one core

def quantile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]

metrics = open(os.path.join(work, "metrics.txt")).read()
def metric(name):
    found = re.search(r"^" + re.escape(name) + r" ([0-9.e+-]+)$", metrics, re.M)
    return float(found.group(1)) if found else 0.0
# The dwell histogram: the upper bound of the bucket each quantile falls in.
buckets = [(float("inf") if le == "+Inf" else float(le), float(count)) for le, count in
           re.findall(r'^callrec_start_marker_dwell_seconds_bucket\{le="([^"]+)"\} ([0-9.]+)$', metrics, re.M)]
total = buckets[-1][1] if buckets else 0
def dwell(q):
    for le, count in buckets:
        if total and count >= q * total:
            return le * 1000
    return None

received = os.path.join(work, "received")
latencies, delivered = [], 0
for name in os.listdir(received):
    if not name.endswith(".json"):
        continue
    meta = json.load(open(os.path.join(received, name)))
    ended = datetime.fromisoformat(meta["ended_at"].replace("Z", "+00:00")).timestamp()
    latencies.append((os.stat(os.path.join(received, name)).st_mtime - ended) * 1000)
    delivered += 1

asterisk_none, asterisk_mix, asterisk_rec = core(none_a, none_wall), core(mix_a, mix_wall), core(rec_a, rec_wall)
callrec = core(rec_c, rec_wall)
extra = asterisk_rec - asterisk_none
packets = metric("callrec_rtp_packets_received_total")
result = {
    "calls": n, "seconds": seconds,
    "asterisk_core_pct": {"none": round(asterisk_none, 2), "mixmonitor": round(asterisk_mix, 2),
                          "callrec": round(asterisk_rec, 2)},
    "callrec_core_pct": round(callrec, 2),
    "callrec_over_asterisk_extra": round(callrec / extra, 3) if extra > 0 else None,
    "callrec_us_per_packet": round(rec_c / hz * 1e6 / packets, 2) if packets else None,
    "rtp_packets": int(packets),
    "dwell_ms": {"p50": dwell(0.5), "p99": dwell(0.99)},
    "end_to_stored_ms": {"p50": quantile(latencies, 0.5), "p99": quantile(latencies, 0.99)},
    "recordings_stored": delivered,
    "kernel_drops": int(metric("callrec_rtp_kernel_dropped_packets_total")),
    "audio_missing_s": metric("callrec_audio_missing_seconds_total"),
}
print(json.dumps(result))
ms = lambda v: "–" if v is None else f"{v:.0f}"
ratio = result["callrec_over_asterisk_extra"]
misses = []
if ratio is None:
    misses.append("no extra Asterisk CPU to compare with")
elif ratio > 0.05:
    misses.append(f"callrec is {ratio * 100:.1f} % of Asterisk's extra (budget 5 %)")
for key, label in (("dwell_ms", "dwell"), ("end_to_stored_ms", "end to stored")):
    p99 = result[key]["p99"]
    if p99 is None or p99 > 50:
        misses.append(f"{label} p99 {ms(p99)} ms (target 50 ms)")
if result["kernel_drops"] or result["audio_missing_s"] > 0:
    misses.append("packets lost")
if delivered < n:
    misses.append(f"{n - delivered} recordings not stored")
print("| " + " | ".join([
    str(n), f"{asterisk_none:.1f}%", f"{asterisk_mix:.1f}% (+{asterisk_mix - asterisk_none:.1f})",
    f"{asterisk_rec:.1f}% (+{extra:.1f})", f"{callrec:.2f}%",
    "–" if ratio is None else f"{ratio * 100:.1f}%",
    str(result["callrec_us_per_packet"]),
    f"{ms(result['dwell_ms']['p50'])} / {ms(result['dwell_ms']['p99'])} ms",
    f"{ms(result['end_to_stored_ms']['p50'])} / {ms(result['end_to_stored_ms']['p99'])} ms",
    f"{result['kernel_drops']} / {result['audio_missing_s']:.2f} s",
    f"{delivered}/{n}",
    "all met" if not misses else "missed: " + "; ".join(misses),
]) + " |")
PY
    )
    echo "$line"
    rows+=("$(tail -n 1 <<<"$line")")
    if awk -F'|' -v n="$n" '{ gsub(/ /, "", $11); gsub(/ /, "", $12); exit !($11 == "0/0.00s" && $12 == n "/" n) }' \
        <<<"$(tail -n 1 <<<"$line")" && ((n > sustained)); then
        sustained=$n
    fi
done
((sustained > 0)) || sustained=none
log "bench-pbx: the highest number of calls recorded without loss: $sustained"

if ! $smoke && ((${#rows[@]})); then
    {
        echo
        echo "## Full path, real Asterisk — $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo
        echo "Machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)." \
            "Commit: $commit. Load average before the runs: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)." \
            "Calls of $seconds s (sipp, a 1 kHz tone each way: Asterisk echoes it), all placed within a second."
        echo
        echo "| calls | Asterisk, not recorded | Asterisk, MixMonitor (extra) | Asterisk, callrec (extra) | callrec | callrec / Asterisk's extra (≤ 5 %) | callrec µs/packet | dwell p50 / p99 (≤ 50 ms) | end to stored p50 / p99 (≤ 50 ms) | kernel drops / missing audio (0) | stored | targets |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
        printf '%s\n' "${rows[@]}"
        echo
        echo "Highest number of calls recorded here without loss (no kernel drop, no audio missing, every recording stored): $sustained."
    } >>"$CALLREC_ROOT/BENCHMARKS.md"
    log "bench-pbx: appended to BENCHMARKS.md"
fi
