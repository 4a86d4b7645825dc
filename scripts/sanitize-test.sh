#!/usr/bin/env bash
# Sanitizer and fuzz run (CI runs it after `make test`; `make sanitize` locally; docs/testing.md).
#  1. builds CPU-only with clang, -fsanitize=address,undefined -fno-sanitize-recover=undefined, into
#     build-asan (FERRUM_FUZZ=ON: the library also carries libFuzzer's coverage instrumentation,
#     so one build serves both steps);
#  2. runs the CPU test suite there (ctest -LE cuda: every test, the fuzz regression replays of
#     tests/fuzz/corpus and tests/fuzz/regress included);
#  3. runs each libFuzzer target for FR_FUZZ_RUNS executions (default 50000) starting from its
#     corpus and regression inputs. New interesting inputs go to a scratch folder, not into the
#     tree; a crash leaves its input in build-asan/fuzz-artifacts/ and fails the run (minimize it
#     with -minimize_crash=1, add it to tests/fuzz/regress/<target>/, fix the bug).
# Environment: FR_ASAN_BUILD (build folder), FR_FUZZ_RUNS, FR_FUZZ_ONLY=1 (skip step 2),
# FR_FUZZ_TARGETS (space-separated subset), JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${FR_ASAN_BUILD:-build-asan}
RUNS=${FR_FUZZ_RUNS:-50000}
JOBS=${JOBS:-$(nproc)}
TARGETS=${FR_FUZZ_TARGETS:-"gguf safetensors tokenizer_json tokenize template chat_messages"}
start=$(date +%s)

bash scripts/install-deps.sh clang
# libFuzzer's runtime is a separate package on Debian 12 (libclang-rt-14-dev, only recommended by
# clang): check that -fsanitize=fuzzer links and install it when it does not.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' >"$probe/p.c"
if ! clang -fsanitize=fuzzer,address "$probe/p.c" -o "$probe/p" 2>/dev/null; then
    major=$(clang -dumpversion | cut -d. -f1)
    bash scripts/install-deps.sh "libclang-rt-$major-dev"
fi

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# -O1 -g: ASan's usual setting (readable reports, assertions on); CMake 3.25 reconfigures cleanly.
CC=clang cmake -S . -B "$BUILD" -DFERRUM_CUDA=OFF -DFERRUM_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DCMAKE_C_FLAGS="$SAN" >/dev/null
cmake --build "$BUILD" -j "$JOBS" >"$BUILD/sanitize-build.log" 2>&1 || {
    tail -50 "$BUILD/sanitize-build.log"
    echo "sanitize: build failed (whole log: $BUILD/sanitize-build.log)" >&2
    exit 1
}
echo "sanitize: built in $(($(date +%s) - start)) s"

# abort_on_error: a report ends the process with SIGABRT, which CTest and libFuzzer both catch.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:abort_on_error=1
if [ "${FR_FUZZ_ONLY:-0}" != 1 ]; then
    t0=$(date +%s)
    (cd "$BUILD" && ctest --output-on-failure -LE cuda -j "$JOBS")
    echo "sanitize: CPU suite under ASan+UBSan passed in $(($(date +%s) - t0)) s"
fi

export FR_TEST_TOKENIZERS="$(cd "$BUILD" && pwd)/test-data/tokenizers"
mkdir -p "$BUILD/fuzz-artifacts"
for t in $TARGETS; do
    t0=$(date +%s)
    scratch="$probe/new-$t"
    mkdir -p "$scratch"
    # -max_len: the largest seed is ~40 KB; longer inputs only slow the run. -rss/-malloc limits:
    # far above what a valid input of that size needs, so an allocation blow-up is a finding.
    if ! "$BUILD/fuzz_${t}_libfuzzer" "$scratch" "tests/fuzz/corpus/$t" "tests/fuzz/regress/$t" \
        -runs="$RUNS" -seed=1 -max_len=65536 -timeout=30 -rss_limit_mb=2560 -malloc_limit_mb=1024 \
        -artifact_prefix="$BUILD/fuzz-artifacts/$t-" -print_final_stats=1 \
        >"$BUILD/fuzz-artifacts/$t.log" 2>&1; then
        tail -60 "$BUILD/fuzz-artifacts/$t.log"
        echo "sanitize: fuzz target $t failed; input in $BUILD/fuzz-artifacts/$t-*" >&2
        exit 1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$BUILD/fuzz-artifacts/$t.log" |
        grep -o '[0-9]*$' || echo "?")
    echo "sanitize: fuzz $t: $execs executions in $(($(date +%s) - t0)) s, no crash"
done
echo "sanitize: all done in $(($(date +%s) - start)) s"
