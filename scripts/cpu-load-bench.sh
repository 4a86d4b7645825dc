#!/usr/bin/env bash
# Decode speed while other processes compete for the CPU: `ferrum bench -p 0 -n N -t T` with 0
# and 1 busy-looping processes beside it, for several thread counts. A benchmark, not a test: it
# prints tok/s (median over rounds) and judges nothing. From the repository root:
#
#   bash scripts/cpu-load-bench.sh [options] [NAME=PATH/TO/ferrum ...]
#
#   -m MODEL    model (default: scripts/get-default-model.sh, SmolLM2-135M Q4_1)
#   -n N        decode steps per timed run (default 32)
#   -r R        rounds (default 3); each round runs every (load, threads, binary) once, the
#               binaries in a rotated order, so slow drifts of the machine hit all of them alike
#   -t LIST     thread counts (default "1 2 4 8")
#   -l LIST     numbers of competing busy processes (default "0 1")
#   -s SECONDS  time limit of one ferrum run (default 120); a run over it prints "timeout"
#
# Binaries default to build/ferrum. Several NAME=PATH binaries are alternated (an A/B of two
# builds). Each run is `ferrum bench -r 1` (one warm-up, one timed run of N tokens).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
model="" n=32 rounds=3 threads="1 2 4 8" loads="0 1" limit=120
while getopts "m:n:r:t:l:s:h" o; do
    case "$o" in
    m) model="$OPTARG" ;;
    n) n="$OPTARG" ;;
    r) rounds="$OPTARG" ;;
    t) threads="$OPTARG" ;;
    l) loads="$OPTARG" ;;
    s) limit="$OPTARG" ;;
    *)
        sed -n '2,18p' "$0"
        exit 2
        ;;
    esac
done
shift $((OPTIND - 1))
[ -n "$model" ] || model="$(bash scripts/get-default-model.sh)" || exit 1
[ -f "$model" ] || {
    echo "cpu-load-bench: model $model not found" >&2
    exit 1
}
names=() bins=()
if [ $# -eq 0 ]; then set -- "ferrum=build/ferrum"; fi
for a in "$@"; do
    case "$a" in
    *=*) names+=("${a%%=*}") bins+=("${a#*=}") ;;
    *) names+=("$(basename "$(dirname "$a")")") bins+=("$a") ;;
    esac
done
for b in "${bins[@]}"; do
    [ -x "$b" ] || {
        echo "cpu-load-bench: $b is not an executable" >&2
        exit 1
    }
done

busy=()
stop_load() {
    for p in "${busy[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    busy=()
}
trap stop_load EXIT
start_load() {
    for ((k = 0; k < $1; k++)); do
        bash -c 'while :; do :; done' &
        busy+=($!)
    done
}

samples="$(mktemp)"
trap 'stop_load; rm -f "$samples"' EXIT
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); $(nproc) cpus" \
    "usable; model $(basename "$model"); tg$n; $rounds rounds; $(date -u +%Y-%m-%dT%H:%M:%SZ)"
nb=${#bins[@]}
for ((r = 0; r < rounds; r++)); do
    for l in $loads; do
        start_load "$l"
        sleep 0.2
        for t in $threads; do
            for ((j = 0; j < nb; j++)); do
                i=$(((j + r) % nb))
                out="$(timeout "$limit" "${bins[$i]}" bench -m "$model" -p 0 -n "$n" -r 1 -t "$t" \
                    --no-bandwidth --json 2>/dev/null)"
                v="$(grep -o '"tok_s":[0-9.]*' <<<"$out" | head -1 | cut -d: -f2)"
                [ -n "$v" ] || v=timeout
                echo "${names[$i]} $l $t $v" >>"$samples"
                echo "  round $((r + 1)): ${names[$i]} load $l -t $t: $v tok/s" >&2
            done
        done
        stop_load
    done
done

# median per (binary, load, threads); a timed-out run counts as 0 tok/s
printf "\n| binary | busy procs | threads | tok/s (median) | runs |\n|---|---|---|---|---|\n"
for name in "${names[@]}"; do
    for l in $loads; do
        for t in $threads; do
            runs="$(awk -v b="$name" -v l="$l" -v t="$t" '$1 == b && $2 == l && $3 == t {print $4}' \
                "$samples")"
            med="$(sort -g <<<"${runs//timeout/0}" | awk '{v[NR] = $1}
                END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}')"
            printf "| %s | %s | %s | %s | %s |\n" "$name" "$l" "$t" "$med" "$(tr '\n' ' ' <<<"$runs")"
        done
    done
done
