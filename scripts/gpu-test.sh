#!/usr/bin/env bash
# GPU test run for the CUDA backend. Run from the repository root on a machine with an NVIDIA GPU:
#
#   FR_COMMIT=$(git rev-parse --short HEAD) bash scripts/gpu-test.sh   (FR_COMMIT optional)
#
# 1. configures and builds (Release, sm_${CUDA_ARCH:-90}) into build-gpu;
# 2. runs `ctest -L cuda -V` (the op tests on CUDA, graph replay, quantized weights, the fixture
#    models); the per-fixture error lines and the measured read bandwidth go to the summary;
# 3. runs compute-sanitizer --tool memcheck over the op test program (FR_TEST_BACKENDS=cuda),
#    test_cuda_graph and test_cuda_quant, each only while the time budget allows
#    (FR_GPU_TEST_BUDGET seconds, default 400: the device tool stops a command at 420);
# 4. prints one summary line: card, driver, date, commit, pass/fail counts, sanitizer errors.
# Logs go to $OUT when set (the device machine's result folder), else build-gpu/logs.
#
# Build dependencies and test data: see scripts/gpu-common.sh.
set -uo pipefail

root="$(pwd)"
build="${FR_GPU_BUILD:-$root/build-gpu}"
arch="${CUDA_ARCH:-90}"
logs="${OUT:-$build/logs}"
mkdir -p "$logs"
jobs="$(nproc 2>/dev/null || echo 4)"
status=0

fr_note_prefix=gpu-test
note() { fr_note "$@"; }
# shellcheck source=scripts/gpu-common.sh
source "$root/scripts/gpu-common.sh"
fr_gpu_logs="$logs"
: >"$logs/summary.txt"

card="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
[ -n "$card" ] || card="no GPU visible to nvidia-smi"
# The device copy of the tree may carry no git history: pass FR_COMMIT=<hash> from outside then.
if [ -n "${FR_COMMIT:-}" ]; then
    commit="$FR_COMMIT"
elif commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null)"; then
    if git -C "$root" status --porcelain 2>/dev/null | grep -q .; then commit="$commit+dirty"; fi
else
    commit=unknown
fi
stamp="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
note "card: $card; date: $stamp; commit: $commit"

fr_gpu_setup "$root" "$logs"
[ -d "$root/tests/data/fixtures" ] || note "WARNING: no tests/data/fixtures (the model tests will fail)"
budget="${FR_GPU_TEST_BUDGET:-400}"


# ---- configure and build ----
: >"$logs/build.log"
if ! fr_gpu_build "$root" "$build" "$logs" && ! grep -q "Build files have been written" "$logs/build.log"; then
    note "configure FAILED (see build.log)"
    tail -30 "$logs/build.log"
    exit 1
fi
build_ok=1
if grep -qE "Error [0-9]|error:" "$logs/build.log"; then
    # someone's unfinished file must not hide the CUDA results: build what the CUDA tests need
    build_ok=0
    status=1
    note "full build FAILED (errors below); building the CUDA test programs alone"
    grep -E "error|Error" "$logs/build.log" | head -20 | tee -a "$logs/summary.txt"
    targets=(test_ops)
    for f in "$root"/tests/test_cuda_*.c; do [ -e "$f" ] && targets+=("$(basename "$f" .c)"); done
    cmake --build "$build" -j "$jobs" --target "${targets[@]}" >>"$logs/build.log" 2>&1 ||
        note "CUDA test programs FAILED to build"
fi
warn="$(grep -cE "src/kernels/cuda/.*warning" "$logs/build.log")"
note "build: $([ $build_ok = 1 ] && echo ok || echo FAILED); warnings in src/kernels/cuda: $warn"

# ---- ctest -L cuda ----
(cd "$build" && ctest -L cuda -V --timeout 180) >"$logs/ctest.log" 2>&1
grep -Eo "(cuda-model .*|cuda read bandwidth.*|test_[a-z_]+: [0-9]+ checks, [0-9]+ failures)" \
    "$logs/ctest.log" | tee -a "$logs/summary.txt"
# "100% tests passed out of 2" or "50% tests passed, 1 tests failed out of 2"
line="$(grep -E "tests passed(,| out of)" "$logs/ctest.log" | tail -1)"
total="$(echo "$line" | sed -nE 's/.*out of ([0-9]+).*/\1/p')"
failed="$(echo "$line" | sed -nE 's/.* ([0-9]+) tests? failed out of.*/\1/p')"
[ -n "$total" ] && [ -z "$failed" ] && failed=0
if [ -z "$total" ]; then
    note "ctest: no result (see ctest.log)"
    failed=?
    total=?
    status=1
else
    [ "$failed" = 0 ] || status=1
    note "ctest -L cuda: $((total - failed)) passed, $failed failed of $total"
    grep -E "\(Failed\)|\(Timeout\)|Not Run|\*\*\*|FAIL " "$logs/ctest.log" | head -40 |
        tee -a "$logs/summary.txt"
fi

# ---- compute-sanitizer memcheck ----
san_summary=""
run_sanitizer() {
    local name="$1" bin="$build/$1"
    if [ ! -x "$bin" ]; then
        san_summary+=" $name=not-built"
        status=1
        return
    fi
    if [ "$SECONDS" -gt $((budget - 90)) ]; then
        san_summary+=" $name=skipped(time:${SECONDS}s)"
        status=1
        return
    fi
    if ! command -v compute-sanitizer >/dev/null; then
        san_summary+=" $name=no-compute-sanitizer"
        status=1
        return
    fi
    FR_TEST_BACKENDS=cuda FR_TEST_DATA="$root/tests/data" FR_SOURCE_DIR="$root" \
        FR_TEST_TOKENIZERS="$build/test-data/tokenizers" \
        timeout $((budget - SECONDS)) compute-sanitizer --tool memcheck --error-exitcode 99 "$bin" \
        >"$logs/sanitizer-$name.log" 2>&1
    local rc=$?
    local errs
    errs="$(grep -Eo "ERROR SUMMARY: [0-9]+" "$logs/sanitizer-$name.log" | tail -1 | grep -Eo "[0-9]+")"
    [ -n "$errs" ] || errs="?"
    san_summary+=" $name=${errs}errors/rc$rc"
    note "memcheck $name: $errs errors, rc $rc, at ${SECONDS}s"
    if [ "$errs" != 0 ] || [ $rc -ne 0 ]; then
        status=1
        grep -E "=========|FAIL" "$logs/sanitizer-$name.log" | head -20 | tee -a "$logs/summary.txt"
    fi
}
run_sanitizer test_ops
run_sanitizer test_cuda_graph
run_sanitizer test_cuda_quant
run_sanitizer test_cuda_sample
note "compute-sanitizer memcheck:$san_summary"

result=PASS
[ $status = 0 ] || result=FAIL
summary="gpu-test $result | card: $card | date: $stamp | commit: $commit | ctest -L cuda: $((${total/\?/0} - ${failed/\?/0}))/$total passed, $failed failed | memcheck:$san_summary"
note "$summary"
exit $status
