#!/usr/bin/env bash
# CUDA benchmark of issue #8, in one GPU-machine call. From the repository root:
#
#   FR_COMMIT=$(git rev-parse --short HEAD) bash scripts/gpu-bench.sh [MODEL...]
#
# MODEL is any of qwen3-8b-bf16 qwen3-8b-q8_0 qwen3-8b-q4_k_m qwen3-0.6b-bf16 (default: all four).
# 1. builds ferrum (Release, sm_${CUDA_ARCH:-90}) into build-gpu unless it is already built;
# 2. makes the random-weight models with scripts/make_random_model.py (real shapes,
#    torch + transformers), quantizes with `ferrum quantize`; models live in $FR_BENCH_MODELS
#    (default /tmp/fr-bench-models), never in the repository, and are reused when present;
# 3. runs `ferrum bench --backend cuda -p $FR_BENCH_PP -n $FR_BENCH_TG --json` on each and prints
#    one table next to llama.cpp's numbers and the targets from issue #8.
# FR_BENCH_BUDGET (seconds, default 540) stops starting new steps near the device tool's limit.
# FR_BENCH_ARGS adds options to every bench (e.g. "--compute bf16"); FR_BENCH_PROFILE=1 also runs
# nsys over a short decode of each model and keeps the per-kernel summary.
# Logs and JSON go to $OUT when set, else build-gpu/bench-logs.
set -uo pipefail

root="$(pwd)"
build="${FR_GPU_BUILD:-$root/build-gpu}"
logs="${OUT:-$build/bench-logs}"
models="${FR_BENCH_MODELS:-/tmp/fr-bench-models}"
budget="${FR_BENCH_BUDGET:-540}"
pp="${FR_BENCH_PP:-512,2048}"
tg="${FR_BENCH_TG:-128}"
mkdir -p "$logs" "$models"
fr_note_prefix=gpu-bench
# shellcheck source=scripts/gpu-common.sh
source "$root/scripts/gpu-common.sh"
fr_gpu_logs="$logs"
: >"$logs/summary.txt"

card="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
commit="${FR_COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}"
fr_note "card: ${card:-none}; date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit: $commit"
fr_gpu_setup "$root" "$logs"

if [ ! -x "$build/ferrum" ]; then
    : >"$logs/build.log"
    if ! fr_gpu_build "$root" "$build" "$logs" ferrum; then
        fr_note "build FAILED"
        grep -E "error" "$logs/build.log" | head -20
        exit 1
    fi
fi
fr_note "build ready (${SECONDS}s)"
ferrum="$build/ferrum"

over_budget() { [ "$SECONDS" -gt "$budget" ]; }

# name -> model path (made on demand)
model_path() {
    case "$1" in
    qwen3-8b-bf16) fr_make_hf qwen3-8b && echo "$models/qwen3-8b" ;;
    qwen3-8b-q8_0) fr_make_gguf qwen3-8b Q8_0 && echo "$models/qwen3-8b-Q8_0.gguf" ;;
    qwen3-8b-q4_k_m) fr_make_gguf qwen3-8b Q4_K_M && echo "$models/qwen3-8b-Q4_K_M.gguf" ;;
    qwen3-0.6b-bf16) fr_make_hf qwen3-0.6b && echo "$models/qwen3-0.6b" ;;
    *) return 1 ;;
    esac
}

[ $# -gt 0 ] && names=("$@") || names=(qwen3-8b-bf16 qwen3-8b-q8_0 qwen3-8b-q4_k_m qwen3-0.6b-bf16)
rows=()
for name in "${names[@]}"; do
    if over_budget; then
        fr_note "$name: skipped, over the time budget (${SECONDS}s)"
        continue
    fi
    path="$(model_path "$name")" || { fr_note "$name: no model"; continue; }
    fr_note "bench $name (${SECONDS}s)"
    # shellcheck disable=SC2086
    if ! "$ferrum" bench -m "$path" --backend cuda -p "$pp" -n "$tg" --json ${FR_BENCH_ARGS:-} \
        >"$logs/$name.json" 2>>"$logs/bench.log"; then
        fr_note "$name: bench FAILED"
        tail -5 "$logs/bench.log"
        continue
    fi
    if [ "${FR_BENCH_PROFILE:-0}" = 1 ] && command -v nsys >/dev/null && ! over_budget; then
        # shellcheck disable=SC2086
        nsys profile -o "/tmp/fr-$name" --force-overwrite true "$ferrum" bench -m "$path" \
            --backend cuda -p 0 -n 64 -r 1 --no-bandwidth ${FR_BENCH_ARGS:-} >/dev/null 2>&1 &&
            nsys stats -q --report cuda_gpu_kern_sum --format csv "/tmp/fr-$name.nsys-rep" \
                >"$logs/$name.kernels.csv" 2>/dev/null
    fi
    rows+=("$name")
done

# one table from the JSON files (python3 is on the GPU machine for the model maker anyway)
python3 - "$logs" "${rows[@]}" <<'PY' | tee -a "$logs/summary.txt"
import json, sys
logs, names = sys.argv[1], sys.argv[2:]
# llama.cpp tg128, pp2048 and the targets (tg, pp2048) on the H100, from issue #8
ref = {"qwen3-8b-bf16": (158.6, 23000, 185, 38000), "qwen3-8b-q8_0": (209.1, 11100, 330, 20000),
       "qwen3-8b-q4_k_m": (235.5, 9900, 520, 18000), "qwen3-0.6b-bf16": (633, 55800, 1800, 70000)}
print("| model | pp512 tok/s | pp2048 tok/s | tg tok/s | GB/s | % read bw | llama.cpp tg / pp2048 | target tg / pp2048 |")
print("|---|---|---|---|---|---|---|---|")
for n in names:
    j = json.load(open(f"{logs}/{n}.json"))
    r = {x["test"]: x for x in j["results"]}
    tg = next((x for k, x in r.items() if k.startswith("tg")), None)
    f = lambda k: f'{r[k]["tok_s"]:.0f}' if k in r else "-"
    lt, lp, tt, tp = ref.get(n, ("-",) * 4)
    print(f'| {n} | {f("pp512")} | {f("pp2048")} | {tg["tok_s"]:.1f} | {tg.get("gbps", 0):.0f} | '
          f'{tg.get("pct_of_read_bandwidth") or 0:.1f} | {lt} / {lp} | {tt} / {tp} |' if tg else
          f'| {n} | {f("pp512")} | {f("pp2048")} | - | - | - | {lt} / {lp} | {tt} / {tp} |')
bw = next((json.load(open(f"{logs}/{n}.json")).get("read_bandwidth_gbps") for n in names), None)
print(f"\nread bandwidth measured by the bench: {bw} GB/s")
PY
fr_note "done (${SECONDS}s)"
