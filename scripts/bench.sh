#!/usr/bin/env bash
# The media-path benchmark: N concurrent RTP streams (20 ms pacing, a source
# port each) into callrec's media task in bench mode (recordings registered
# without Asterisk), every delivered track checked frame by frame, then the
# same streams into a minimal batched receiver (the floor). CPU comes from
# /proc/<pid>/stat, memory from /proc/<pid>/status.
#
#   scripts/bench.sh                 N = 100, 1000, 2000, 5000; 20 s each;
#                                    the table is appended to BENCHMARKS.md
#   scripts/bench.sh 300 600         other stream counts
#   scripts/bench.sh --seconds 60    longer runs
#   scripts/bench.sh --smoke         20 streams for 2 s, nothing appended
#                                    (what tests/bench_smoke.rs runs)
#
# CALLREC_BENCH=path uses that callrec-bench binary instead of building one.
# CPU figures mean little on a busy machine: the load average is recorded
# beside them.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=20
smoke=false
base_port=${CALLREC_BENCH_BASE_PORT:-21000}
streams=()
while (($#)); do
    case $1 in
        --smoke) smoke=true ;;
        --seconds) seconds=$2; shift ;;
        --seconds=*) seconds=${1#*=} ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) streams+=("$1") ;;
    esac
    shift
done
if $smoke; then
    ((${#streams[@]})) || streams=(20)
    seconds=2
fi
((${#streams[@]})) || streams=(100 1000 2000 5000)

bench=${CALLREC_BENCH:-}
if [[ -z $bench ]]; then
    command -v cargo >/dev/null 2>&1 || export PATH="$HOME/.cargo/bin:$PATH"
    cargo build --release --locked --bin callrec-bench >&2
    bench="${CARGO_TARGET_DIR:-target}/release/callrec-bench"
fi

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
rows=()
failed=0
for n in "${streams[@]}"; do
    echo "callrec-bench: $n streams for $seconds s" >&2
    if ! output=$("$bench" run --streams "$n" --seconds "$seconds" --base-port "$base_port"); then
        echo "callrec-bench: the run with $n streams failed" >&2
        failed=1
        continue
    fi
    echo "$output"
    rows+=("$(tail -n 1 <<<"$output")")
done

if ! $smoke && ((${#rows[@]})); then
    {
        echo
        echo "## Media path, synthetic — $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo
        echo "Machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r)." \
            "Commit: $commit. Load average before the runs: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)." \
            "$seconds s per run."
        echo
        echo "| streams | packets | callrec µs/packet | callrec % core | floor µs/packet | callrec / floor (≤ 1.5×) | frames lost / misplaced (0) | resident per recorded s (≤ 8,200 B) | longest stall, CPU (wall) (≤ 2 ms) | wake-ups/s | sender's worst lag | load (1 min) | targets |"
        echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        printf '%s\n' "${rows[@]}"
    } >>BENCHMARKS.md
    echo "callrec-bench: appended to BENCHMARKS.md" >&2
fi
exit "$failed"
