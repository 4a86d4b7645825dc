#!/usr/bin/env bash
# The CPU backend on the GPU machine's host CPU, in one device call: that host has AVX-512 (VNNI,
# BF16), which the development VM lacks, so this is where the AVX-512 kernels are tested and timed.
# From the repository root:
#
#   FR_COMMIT=$(git rev-parse --short HEAD) bash scripts/host-cpu-bench.sh [VARIANT ...]
#
# 1. builds a CPU-only ferrum and its tests (FERRUM_CUDA=OFF, Release) into build-host;
# 2. runs the CPU op, quantized-matmul and model tests (test_ops and test_quant_matmul check every
#    ISA the host has against the scalar/float64 references; the model tests run the best one);
# 3. makes random Qwen3-0.6B GGUFs of the types $FR_HOST_TYPES (default "F16 Q8_0 Q4_0 Q4_K_M")
#    in $FR_BENCH_MODELS (default /tmp/fr-bench-models);
# 4. for each model, scripts/gpu-ab.sh with FR_AB_BACKEND=cpu alternates the VARIANTs (default
#    "FR_CPU_ISA=avx2" "FR_CPU_ISA=avx512"), pinned to the cores $FR_HOST_CORES (default 0,1, as
#    the 2-core development VM) with one thread per core, `-p $FR_BENCH_PP -n $FR_BENCH_TG`
#    (default 128 and 32), FR_AB_ROUNDS rounds (default 3).
# FR_BENCH_BUDGET (seconds, default 540) stops starting new steps near the device tool's limit;
# FR_HOST_TESTS=0 skips step 2. Logs go to $OUT when set, else build-host/logs.
set -uo pipefail

root="$(pwd)"
build="${FR_GPU_BUILD:-$root/build-host}"
logs="${OUT:-$build/logs}"
models="${FR_BENCH_MODELS:-/tmp/fr-bench-models}"
budget="${FR_BENCH_BUDGET:-540}"
cores="${FR_HOST_CORES:-0,1}"
mkdir -p "$logs" "$models"
fr_note_prefix=host-cpu
# shellcheck source=scripts/gpu-common.sh
source "$root/scripts/gpu-common.sh"
fr_gpu_logs="$logs"
: >"$logs/summary.txt"

cpu="$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
flags="$(grep -m1 "^flags" /proc/cpuinfo | tr ' ' '\n' | grep -E '^avx512(f|bw|vl|dq|_bf16|_vnni|_fp16)$|^avx_vnni$' | tr '\n' ' ')"
commit="${FR_COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}"
fr_note "cpu: $cpu; $(nproc) cpus; flags: $flags; date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit: $commit"
fr_gpu_setup "$root" "$logs"

fr_gpu_cmake_extra+=(-DFERRUM_CUDA=OFF)
: >"$logs/build.log"
if ! fr_gpu_build "$root" "$build" "$logs"; then
    fr_note "build FAILED"
    grep -E "error" "$logs/build.log" | head -20
    exit 1
fi
fr_note "build ready (${SECONDS}s)"
ferrum="$build/ferrum"

if [ "${FR_HOST_TESTS:-1}" = 1 ]; then
    (cd "$build" && ctest -j "$(nproc)" --output-on-failure \
        -R '^test_(core|ops|fused_ops|quant|quant_matmul|model|gguf_parse|gguf_model|sample_op)$') \
        >"$logs/ctest.log" 2>&1
    fr_note "tests: $(grep -E 'tests passed|tests failed' "$logs/ctest.log" | tail -1) (${SECONDS}s)"
    grep -E "Failed|\*\*\*" "$logs/ctest.log" | head -10
fi

[ $# -gt 0 ] && variants=("$@") || variants=("FR_CPU_ISA=avx2" "FR_CPU_ISA=avx512")
threads="$(echo "$cores" | tr ',' '\n' | wc -l)"
for type in ${FR_HOST_TYPES:-F16 Q8_0 Q4_0 Q4_K_M}; do
    if [ "$SECONDS" -gt "$budget" ]; then
        fr_note "qwen3-0.6b $type: skipped, over the time budget (${SECONDS}s)"
        continue
    fi
    fr_make_gguf qwen3-0.6b "$type" || continue
    fr_note "A/B qwen3-0.6b-$type on cores $cores (${SECONDS}s)"
    FR_AB_BACKEND=cpu FR_GPU_BUILD="$build" OUT="$logs" FR_AB_ROUNDS="${FR_AB_ROUNDS:-3}" \
        taskset -c "$cores" bash "$root/scripts/gpu-ab.sh" "$models/qwen3-0.6b-$type.gguf" \
        "-t $threads -p ${FR_BENCH_PP:-128} -n ${FR_BENCH_TG:-32}" "${variants[@]}" |
        tee -a "$logs/summary.txt"
done
fr_note "done (${SECONDS}s)"
